"""Behaviour policies stored small: an MLP actor in safetensors, run with numpy.

The suite's policies are TD3/SAC actors trained with sbx (`behaviour.py`). Only the actor is
kept: `l{i}.weight` (in, out) and `l{i}.bias` for each Dense layer, plus metadata (env id,
activation, action bounds, squashing). No pickle, no JAX needed to run them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from .errors import DTError


class MLPActor:
    """Deterministic actor: relu hidden layers, tanh output rescaled to the action bounds."""

    def __init__(self, layers: list[tuple[np.ndarray, np.ndarray]], low, high, meta: dict | None = None):
        self.layers = [(np.asarray(w, np.float32), np.asarray(b, np.float32)) for w, b in layers]
        self.low, self.high = np.asarray(low, np.float32), np.asarray(high, np.float32)
        self.meta = dict(meta or {})
        self.obs_dim, self.act_dim = self.layers[0][0].shape[0], self.layers[-1][0].shape[1]

    def __call__(self, obs) -> np.ndarray:
        """obs (obs_dim,) or (N, obs_dim) -> actions of the same batch shape."""
        x = np.asarray(obs, np.float32)
        single = x.ndim == 1
        x = x[None] if single else x
        if x.shape[-1] != self.obs_dim:
            raise DTError(f"policy expects observations of size {self.obs_dim}, got {x.shape[-1]}: "
                          f"it was trained on {self.meta.get('env_id', 'another env')}")
        for i, (w, b) in enumerate(self.layers):
            x = x @ w + b
            x = np.maximum(x, 0) if i < len(self.layers) - 1 else np.tanh(x)
        a = self.low + 0.5 * (x + 1.0) * (self.high - self.low)
        return a[0] if single else a

    def save(self, path) -> None:
        from safetensors.numpy import save_file
        tensors = {}
        for i, (w, b) in enumerate(self.layers):
            tensors[f"l{i}.weight"], tensors[f"l{i}.bias"] = w, b
        tensors["action_low"], tensors["action_high"] = self.low, self.high
        meta = {k: json.dumps(v) for k, v in self.meta.items()}
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        save_file(tensors, str(tmp), metadata=meta)
        tmp.replace(path)

    @classmethod
    def load(cls, path) -> "MLPActor":
        from safetensors import safe_open
        path = Path(path)
        if not path.is_file():
            raise DTError(f"{path}: no such policy file")
        try:
            with safe_open(str(path), "np") as f:
                meta = {k: json.loads(v) for k, v in (f.metadata() or {}).items()}
                t = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as e:
            raise DTError(f"{path}: not a readable safetensors policy ({e})")
        n = sum(1 for k in t if k.endswith(".weight"))
        return cls([(t[f"l{i}.weight"], t[f"l{i}.bias"]) for i in range(n)], t["action_low"], t["action_high"], meta)

    @classmethod
    def from_sbx(cls, zip_path, **meta) -> "MLPActor":
        """Extract the actor of an sbx TD3/SAC save (our own training output: trusted)."""
        import sbx
        algo = sbx.TD3 if meta.get("algo", "td3") == "td3" else sbx.SAC
        model = algo.load(str(zip_path), device="cpu")
        params = model.policy.actor_state.params["params"]
        dense = sorted((k for k in params if k.startswith("Dense_")), key=lambda k: int(k.split("_")[1]))
        if algo is not sbx.TD3:
            raise DTError("only TD3 actors are exported so far (SAC's Gaussian head differs)")
        layers = [(np.asarray(params[k]["kernel"]), np.asarray(params[k]["bias"])) for k in dense]
        space = model.action_space
        return cls(layers, space.low, space.high, meta)


def sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def evaluate(policy, env_id: str, episodes: int = 10, seed: int = 0) -> list[float]:
    """Undiscounted returns of `episodes` episodes, env seeds seed, seed+1, ..."""
    import gymnasium as gym
    env = gym.make(env_id)
    out = []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        done, ret = False, 0.0
        while not done:
            obs, r, term, trunc, _ = env.step(policy(obs))
            ret += float(r)
            done = term or trunc
        out.append(ret)
    env.close()
    return out
