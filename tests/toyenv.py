"""A tiny, fast continuous-control task for learning tests: reach a goal on a line.

Observation (x, g): position and goal in [-1, 1]; action a in [-1, 1] moves x by 0.2 a;
reward 1 - |x - g| per step; 20 steps. Optimal return ~18-19, uniform random ~6-8.
"""

import gymnasium as gym
import numpy as np


class LineReach(gym.Env):
    def __init__(self):
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.x, self.g = self.np_random.uniform(-1, 1, size=2)
        self.t = 0
        return np.array([self.x, self.g], np.float32), {}

    def step(self, a):
        self.x = float(np.clip(self.x + 0.2 * float(np.clip(a[0], -1, 1)), -1, 1))
        self.t += 1
        r = 1.0 - abs(self.x - self.g)
        return np.array([self.x, self.g], np.float32), r, False, self.t >= 20, {}


if "LineReach-v0" not in gym.registry:
    gym.register("LineReach-v0", entry_point=LineReach)


def expert(obs):
    return np.clip((obs[..., 1:2] - obs[..., 0:1]) / 0.2, -1, 1)


def make_dataset(path, episodes=300, seed=0):
    """Episodes of mixed skill: action = k * expert + (1 - k) * uniform, k in {0, .25, .5, .75, 1}."""
    rng = np.random.default_rng(seed)
    env = LineReach()
    cols = {k: [] for k in ("observations", "next_observations", "actions", "rewards", "terminations", "truncations")}
    for ep in range(episodes):
        k = (ep % 5) / 4
        obs, _ = env.reset(seed=seed * 100_000 + ep)
        done = False
        while not done:
            a = (k * expert(obs) + (1 - k) * rng.uniform(-1, 1, 1)).astype(np.float32)
            nobs, r, term, trunc, _ = env.step(a)
            for key, v in zip(cols, (obs, nobs, a, r, term, trunc)):
                cols[key].append(v)
            obs, done = nobs, term or trunc
    np.savez(path, **{k: np.asarray(v) for k, v in cols.items()})
    return path


def setup() -> None:
    """A worker process's set-up hook (Ray's worker_process_setup_hook): importing this module
    registered the env."""
