"""Run an exported Decision Transformer (`dt export CKPT --format onnx OUT`) with numpy and
ONNX Runtime only: no torch, no decision_transformer. This file is copied next to the model as
OUT/onnx_policy.py, so a deployment needs nothing else.

    from onnx_policy import OnnxPolicy
    policy = OnnxPolicy("OUT")                    # OUT/model.onnx + OUT/config.json
    policy.reset(target_return=3600.0)
    obs, _ = env.reset(seed=0)
    while True:
        action = policy.act(obs)                  # (act_dim,) floats, or an int for discrete actions
        obs, reward, terminated, truncated, _ = env.step(action)
        policy.observe(reward)
        if terminated or truncated:
            break

The model takes the last K steps as they happened (raw states, unscaled returns-to-go, previous
actions, timesteps, a 0/1 mask of real steps, left-padded) and returns the action at the last
step; state normalisation and the return scale are inside the graph. OnnxPolicy keeps that window:
each step the observation joins it with a zero action placeholder and the current return-to-go,
and observe() subtracts the reward from the return-to-go (the blog's evaluation loop).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


class OnnxPolicy:
    def __init__(self, path, threads: int = 1):
        import onnxruntime as ort
        path = Path(path)
        self.config = json.loads((path / "config.json").read_text())["decision_transformer"]
        c = self.config
        self.K = int(c["context_length"])
        self.discrete = c["action_type"] == "discrete"
        self.image = c["state_type"] == "image"
        self.state_shape = tuple(c["state_shape"]) if self.image else (int(c["state_dim"]),)
        self.act_dim = int(c["act_dim"])
        self.max_t = int(c["max_ep_len"]) - 1
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path / "model.onnx"), so, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}   # a BC export ignores returns and actions
        self.reset((c.get("target_returns") or [0.0])[0])

    def reset(self, target_return: float) -> None:
        """Start an episode conditioned on `target_return` (unscaled, e.g. 3600 for Hopper)."""
        K = self.K
        self.states = np.zeros((1, K, *self.state_shape), np.uint8 if self.image else np.float32)
        self.actions = np.zeros((1, K), np.int64) if self.discrete else np.zeros((1, K, self.act_dim), np.float32)
        self.rtg = np.zeros((1, K, 1), np.float32)
        self.timesteps = np.zeros((1, K), np.int64)
        self.mask = np.zeros((1, K), np.float32)
        self.R, self.t = np.float32(target_return), 0

    def act(self, obs):
        for a in (self.states, self.actions, self.rtg, self.timesteps, self.mask):
            a[:, :-1] = a[:, 1:].copy()                       # shift the window left by one step
        self.states[0, -1] = obs
        self.actions[0, -1] = 0
        self.rtg[0, -1, 0] = self.R
        self.timesteps[0, -1] = min(self.t, self.max_t)
        self.mask[0, -1] = 1.0
        feeds = {"states": self.states, "actions": self.actions, "returns_to_go": self.rtg,
                 "timesteps": self.timesteps, "attention_mask": self.mask}
        out = self.session.run(None, {k: v for k, v in feeds.items() if k in self.inputs})[0][0]
        action = int(np.argmax(out)) if self.discrete else out
        self.actions[0, -1] = action
        return action

    def observe(self, reward: float) -> None:
        self.R = np.float32(self.R - np.float32(reward))
        self.t += 1
