"""Behaviour cloning baseline, as in the official code's MLPBCModel: an MLP on the last K
states (left-padded with zeros, flattened) predicting the action at the last one. %BC is the
same model trained on the top X% of episodes by return (`dt train --model bc --top-pct X`).

It shares DecisionTransformerConfig (architecture="bc"; hidden_size, n_layer, resid_pdrop,
context_length, state/action types and normalisation) so checkpoints, the Agent, `dt eval`
and `dt sweep` work unchanged; the target return is ignored.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .model import DecisionTransformerConfig


class BCModel(nn.Module):
    def __init__(self, config: DecisionTransformerConfig):
        super().__init__()
        cfg = self.config = config
        if cfg.state_type != "vector":
            raise ValueError("the BC baseline takes vector states")
        H, K = cfg.hidden_size, cfg.context_length
        layers = [nn.Linear(K * cfg.state_dim, H)]
        for _ in range(cfg.n_layer - 1):
            layers += [nn.ReLU(), nn.Dropout(cfg.resid_pdrop), nn.Linear(H, H)]
        layers += [nn.ReLU(), nn.Dropout(cfg.resid_pdrop), nn.Linear(H, cfg.act_dim)]
        if cfg.action_type == "continuous" and cfg.action_tanh:
            layers.append(nn.Tanh())
        self.model = nn.Sequential(*layers)

    def _last(self, states):                       # (B, L, S) -> (B, act_dim): left-pad to K, flatten
        K = self.config.context_length
        B, L, S = states.shape
        if L < K:
            states = torch.cat([states.new_zeros(B, K - L, S), states], dim=1)
        return self.model(states[:, -K:].reshape(B, K * S))

    def forward_actions(self, states, actions=None, returns_to_go=None, timesteps=None, attention_mask=None):
        """(B, L, act_dim) with only the last step predicted (the trainer's loss uses that one);
        earlier steps are zeros and masked out of the loss by `loss_positions`."""
        out = states.new_zeros(*states.shape[:2], self.config.act_dim)
        out[:, -1] = self._last(states * attention_mask[..., None] if attention_mask is not None else states)
        return out

    @staticmethod
    def loss_positions(attention_mask):
        m = torch.zeros_like(attention_mask, dtype=torch.bool)
        m[:, -1] = True
        return m

    @torch.inference_mode()
    def predict_last_action(self, states, actions=None, returns_to_go=None, timesteps=None, attention_mask=None,
                            token_mask=None):
        return self._last(states)                   # padded states are already zero in the Agent

    def save_pretrained(self, path, **kw):
        from .checkpoint import save_pretrained
        return save_pretrained(self, path, **kw)
