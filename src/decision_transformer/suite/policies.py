"""Behaviour policies stored small: an MLP actor in safetensors, run with numpy.

The suite's policies are TD3/SAC actors trained with sbx (`behaviour.py`). Only the actor is
kept: `l{i}.weight` (in, out) and `l{i}.bias` for each Dense layer, plus metadata (env id,
activation, action bounds, squashing). No pickle, no JAX needed to run them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from decision_transformer.errors import DTError
from decision_transformer.fileio import atomic_path

_ACTS = {"relu": lambda x: np.maximum(x, 0), "tanh": np.tanh, "elu": lambda x: np.where(x > 0, x, np.expm1(x)),
         "leakyrelu": lambda x: np.where(x > 0, x, 0.01 * x), "silu": lambda x: x / (1 + np.exp(-x)),
         "gelu": lambda x: 0.5 * x * (1 + np.tanh(0.7978845608 * (x + 0.044715 * x ** 3)))}


class MLPActor:
    """An MLP actor: hidden layers with meta["activation"] (relu), output squashed with tanh and
    rescaled to the action bounds, or clipped (meta["squash"] = "clip").

    Deterministic (TD3), or a squashed Gaussian (SAC, `log_std` given): calling it gives the mean
    action tanh(mu(s)), `sample(obs, rng)` draws tanh(mu + sigma * eps), the policy's own
    stochastic actions (the v1 suite's data are such samples, as D4RL's were)."""

    LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0      # sbx / SB3 SAC clip log sigma to this range

    def __init__(self, layers: list[tuple[np.ndarray, np.ndarray]], low, high, meta: dict | None = None,
                 log_std: tuple[np.ndarray, np.ndarray] | None = None):
        self.layers = [(np.asarray(w, np.float32), np.asarray(b, np.float32)) for w, b in layers]
        self.log_std = None if log_std is None else tuple(np.asarray(x, np.float32) for x in log_std)
        self.low, self.high = np.asarray(low, np.float32), np.asarray(high, np.float32)
        self.meta = dict(meta or {})
        self.obs_dim, self.act_dim = self.layers[0][0].shape[0], self.layers[-1][0].shape[1]

    @property
    def stochastic(self) -> bool:
        return self.log_std is not None

    def _features(self, obs):
        """(hidden features of the last layer's input, whether obs was one observation)"""
        x = np.asarray(obs, np.float32)
        single = x.ndim == 1
        x = x[None] if single else x
        if x.shape[-1] != self.obs_dim:
            raise DTError(f"policy expects observations of size {self.obs_dim}, got {x.shape[-1]}: "
                          f"it was trained on {self.meta.get('env_id', 'another env')}")
        act = _ACTS[self.meta.get("activation", "relu")]
        for w, b in self.layers[:-1]:
            x = act(x @ w + b)
        return x, single

    def _squash(self, x, single):
        if self.meta.get("squash", "tanh") == "tanh":       # tanh, rescaled to the bounds
            a = self.low + 0.5 * (np.tanh(x) + 1.0) * (self.high - self.low)
        else:                                                # "clip": a Gaussian mean, clipped
            a = np.clip(x, self.low, self.high)
        return a[0] if single else a

    def __call__(self, obs) -> np.ndarray:
        """obs (obs_dim,) or (N, obs_dim) -> mean actions of the same batch shape."""
        h, single = self._features(obs)
        w, b = self.layers[-1]
        return self._squash(h @ w + b, single)

    def sample(self, obs, rng: np.random.Generator) -> np.ndarray:
        """Actions drawn from the policy: tanh(mu + sigma * eps), eps ~ N(0, I) from `rng`."""
        if self.log_std is None:
            raise DTError(f"{self.meta.get('file', 'this policy')} is deterministic (no Gaussian head): it cannot "
                          "be sampled; add action noise instead (--noise gaussian:SIGMA)")
        h, single = self._features(obs)
        w, b = self.layers[-1]
        mu = h @ w + b
        log_std = np.clip(h @ self.log_std[0] + self.log_std[1], self.LOG_STD_MIN, self.LOG_STD_MAX)
        eps = rng.standard_normal(mu.shape).astype(np.float32)
        return self._squash(mu + np.exp(log_std) * eps, single)

    def save(self, path) -> None:
        from safetensors.numpy import save_file
        tensors = {}
        for i, (w, b) in enumerate(self.layers):
            tensors[f"l{i}.weight"], tensors[f"l{i}.bias"] = w, b
        tensors["action_low"], tensors["action_high"] = self.low, self.high
        if self.log_std is not None:
            tensors["log_std.weight"], tensors["log_std.bias"] = self.log_std
        meta = {k: json.dumps(v) for k, v in self.meta.items()}
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=meta)

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
        n = sum(1 for k in t if k.startswith("l") and k.endswith(".weight") and k[1:-7].isdigit())
        log_std = (t["log_std.weight"], t["log_std.bias"]) if "log_std.weight" in t else None
        return cls([(t[f"l{i}.weight"], t[f"l{i}.bias"]) for i in range(n)], t["action_low"], t["action_high"], meta,
                   log_std=log_std)

    @classmethod
    def from_sbx(cls, zip_path, **meta) -> "MLPActor":
        """Extract the actor of an sbx TD3/SAC save (our own training output: trusted), or of a
        freshly built sbx model (`zip_path` an sbx model object)."""
        import sbx
        algo = sbx.TD3 if meta.get("algo", "td3") == "td3" else sbx.SAC
        model = zip_path if isinstance(zip_path, algo) else algo.load(str(zip_path), device="cpu")
        return cls.from_sbx_model(model, **meta)

    @classmethod
    def from_sbx_model(cls, model, **meta) -> "MLPActor":
        """TD3: the Dense chain. SAC (sbx's SquashedGaussianActor): hidden Dense layers, then the
        mean head and the log-std head, created in that order (Dense_{n-2}, Dense_{n-1})."""
        import sbx
        params = model.policy.actor_state.params["params"]
        dense = sorted((k for k in params if k.startswith("Dense_")), key=lambda k: int(k.split("_")[1]))
        layers = [(np.asarray(params[k]["kernel"]), np.asarray(params[k]["bias"])) for k in dense]
        space = model.action_space
        if isinstance(model, sbx.TD3):
            return cls(layers, space.low, space.high, meta)
        return cls(layers[:-1], space.low, space.high, meta, log_std=layers[-1])


# The committed policies live in the source checkout's suite/ (an editable install finds them);
# DT_SUITE_DIR points elsewhere, e.g. for a wheel install next to a copy of suite/.
SUITE = Path(os.environ.get("DT_SUITE_DIR") or Path(__file__).resolve().parents[3] / "suite")


def evaluate(policy, env_id: str, episodes: int = 10, seed: int = 0) -> list[float]:
    """Undiscounted returns of `episodes` episodes, env seeds seed, seed+1, ..."""
    from decision_transformer.envs import make_env
    env = make_env(env_id)
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


# ---------------------------------------------------------------------------------------------
# Stable-Baselines3 / RL-Zoo zips, read without unpickling anything
# ---------------------------------------------------------------------------------------------

def _zip_activation(data: dict, default: str) -> str:
    """The activation named in policy_kwargs, found as text in its serialised form (never
    unpickled): SB3 stores `activation_fn` as a base64 cloudpickle of e.g. torch.nn.ReLU."""
    import base64
    kw = data.get("policy_kwargs") or {}
    blob = kw.get(":serialized:", "") if isinstance(kw, dict) else ""
    raw = base64.b64decode(blob) if blob else b""
    for name in ("ReLU", "Tanh", "ELU", "LeakyReLU", "SiLU", "GELU"):
        if name.encode() in raw:
            return name.lower()
    return default


def from_sb3_zip(path, env_id: str | None = None) -> MLPActor:
    """A deterministic MLPActor from an SB3 SAC / TD3 / DDPG / PPO / A2C zip (Box actions).

    Only `policy.pth` (read with torch.load(weights_only=True)) and the `data` JSON's plain
    fields are read; the pickled objects in `data` (spaces, schedules) are never deserialised, so
    zips made with old gym load too. SAC: tanh(mu); TD3/DDPG: the actor; PPO/A2C: the Gaussian
    mean, clipped to the action bounds (as SB3's deterministic predict does)."""
    import io
    import zipfile

    import torch
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as z:
            data = json.loads(z.read("data"))
            sd = torch.load(io.BytesIO(z.read("policy.pth")), map_location="cpu", weights_only=True)
    except (OSError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as e:
        raise DTError(f"{path}: not a readable Stable-Baselines3 zip ({type(e).__name__}: {e})")
    except Exception as e:
        raise DTError(f"{path}: policy.pth cannot be read with weights_only=True ({type(e).__name__})")

    def chain(prefix):
        ids = sorted({int(k[len(prefix):].split(".")[0]) for k in sd if k.startswith(prefix) and k.endswith(".weight")})
        return [(sd[f"{prefix}{i}.weight"].T.numpy(), sd[f"{prefix}{i}.bias"].numpy()) for i in ids]

    if any(k.startswith("actor.latent_pi.") for k in sd):                          # SAC
        layers = chain("actor.latent_pi.") + [(sd["actor.mu.weight"].T.numpy(), sd["actor.mu.bias"].numpy())]
        kind, act, squash = "sac", _zip_activation(data, "relu"), "tanh"
    elif any(k.startswith("actor.mu.") for k in sd):                               # TD3 / DDPG
        layers = chain("actor.mu.")
        kind, act, squash = "td3", _zip_activation(data, "relu"), "tanh"
    elif "action_net.weight" in sd:                                                # PPO / A2C
        layers = chain("mlp_extractor.policy_net.") + [(sd["action_net.weight"].T.numpy(), sd["action_net.bias"].numpy())]
        kind, act, squash = "ppo", _zip_activation(data, "tanh"), "clip"
    else:
        raise DTError(f"{path}: unsupported SB3 policy (expected SAC, TD3/DDPG or PPO/A2C with Box actions)")
    # action bounds: the JSON keeps them as plain lists beside the pickled space
    space = data.get("action_space", {})

    def plain(v):  # "[-1. -1.  2.]" (SB3's str of an array) or a list -> floats
        if isinstance(v, str):
            v = v.replace("[", " ").replace("]", " ").split()
        try:
            return None if v is None else np.asarray(v, dtype=np.float32)
        except ValueError:
            return None
    low, high = plain(space.get("low")), plain(space.get("high"))
    if low is None or high is None:
        if env_id is None:
            raise DTError(f"{path}: the zip does not state its action bounds in plain form; pass the env id")
        from decision_transformer.envs import make_env
        sp = make_env(env_id).action_space
        low, high = sp.low, sp.high
    return MLPActor(layers, np.asarray(low, np.float32).reshape(-1), np.asarray(high, np.float32).reshape(-1),
                    {"source": str(path), "algo": kind, "activation": act, "squash": squash, "env_id": env_id})
