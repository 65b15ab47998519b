"""The Hugging Face blog's evaluation loop, kept as the reference our Agent is tested and
benchmarked against (tests/test_agent.py, bench/rollout.py). It is deliberately written the way the blog does it:
tensors grown with torch.cat every step, the whole history normalised every step, the whole
window recomputed. Do not use it for evaluation; use `decision_transformer.Agent`.
"""

from __future__ import annotations

import torch


def blog_get_action(model, states, actions, rewards, returns_to_go, timesteps, K: int,
                    state_dim: int, act_dim: int):
    states = states.reshape(1, -1, state_dim)[:, -K:]
    actions = actions.reshape(1, -1, act_dim)[:, -K:]
    returns_to_go = returns_to_go.reshape(1, -1, 1)[:, -K:]
    timesteps = timesteps.reshape(1, -1)[:, -K:]
    padding = K - states.shape[1]
    attention_mask = torch.cat([torch.zeros(padding), torch.ones(states.shape[1])]).to(torch.long).reshape(1, -1)
    states = torch.cat([torch.zeros((1, padding, state_dim)), states], dim=1).float()
    actions = torch.cat([torch.zeros((1, padding, act_dim)), actions], dim=1).float()
    returns_to_go = torch.cat([torch.zeros((1, padding, 1)), returns_to_go], dim=1).float()
    timesteps = torch.cat([torch.zeros((1, padding), dtype=torch.long), timesteps], dim=1)
    _, action_preds, _ = model(states=states, actions=actions, rewards=rewards, returns_to_go=returns_to_go,
                               timesteps=timesteps, attention_mask=attention_mask, return_dict=False)
    return action_preds[0, -1]


class BlogEpisode:
    """One episode of the blog loop, stepped from outside: act(obs) then observe(reward)."""

    def __init__(self, model, state_mean, state_std, target_return: float, scale: float, K: int,
                 state_dim: int, act_dim: int):
        self.model, self.K, self.scale = model, K, scale
        self.state_dim, self.act_dim = state_dim, act_dim
        self.mean = torch.as_tensor(state_mean, dtype=torch.float32)
        self.std = torch.as_tensor(state_std, dtype=torch.float32)
        self.target_return = torch.tensor(target_return / scale).float().reshape(1, 1)
        self.states = None
        self.actions = torch.zeros((0, act_dim)).float()
        self.rewards = torch.zeros(0).float()
        self.timesteps = torch.tensor(0).reshape(1, 1).long()
        self.t = 0

    @torch.no_grad()
    def act(self, obs):
        cur = torch.from_numpy(obs).reshape(1, self.state_dim)
        self.states = cur.float() if self.states is None else torch.cat([self.states, cur], dim=0)
        self.actions = torch.cat([self.actions, torch.zeros((1, self.act_dim))], dim=0)
        self.rewards = torch.cat([self.rewards, torch.zeros(1)])
        action = blog_get_action(self.model, (self.states - self.mean) / self.std, self.actions, self.rewards,
                                 self.target_return, self.timesteps, self.K, self.state_dim, self.act_dim)
        self.actions[-1] = action
        return action.detach().numpy()

    def observe(self, reward: float):
        self.rewards[-1] = reward
        pred_return = self.target_return[0, -1] - (reward / self.scale)
        self.target_return = torch.cat([self.target_return, pred_return.reshape(1, 1)], dim=1)
        self.t += 1
        self.timesteps = torch.cat([self.timesteps, torch.ones((1, 1)).long() * self.t], dim=1)
