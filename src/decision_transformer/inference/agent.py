"""A batched, stateful Decision Transformer agent: the blog's evaluation loop, done right.

Semantics (identical to the blog's `get_action` loop, tested against it):
each step the current observation joins the window with a zero action placeholder and the
current return-to-go; states are normalised with (s - mean) / std; the last K steps are kept,
left-padded with zeros (timestep 0, attention mask 0); the action predicted at the last state
token is returned and written into the placeholder. `observe` then sets
rtg <- rtg - reward / scale and advances the timestep. Each of the N environments ends on its
own: a done env starts a fresh context, timestep 0 and its target return again.

Unlike the blog: fixed-size per-env buffers (no tensor growth, O(K) work per step whatever the
episode length), all N envs in one forward pass under `torch.inference_mode`, and only the work
the last action needs (`DecisionTransformer.predict_last_action`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from decision_transformer.errors import DTError
from decision_transformer.models.dt import DecisionTransformer


class Window(NamedTuple):
    """What a backend sees each step: the last K steps of every env (numpy views of the Agent's
    ring buffers; the newest step's action is the zero placeholder), and the newest step's context."""
    states: np.ndarray           # (N, K, *state_shape), normalised
    actions: np.ndarray          # (N, K, act_dim) float32, or (N, K) int64 indices
    returns_to_go: np.ndarray    # (N, K, 1), scaled
    timesteps: np.ndarray        # (N, K)
    real: np.ndarray             # (N,) real steps in each env's window (the rest is left padding)
    prev_action: np.ndarray      # (N, act_dim) or (N,): the action taken before the newest step
    started: np.ndarray          # (N,) bool: the episode has a step before the newest


class TorchBackend:
    """The exact forward in PyTorch: `predict_last_action` on the window, padded steps masked.
    Every backend has this interface: built from the model, N and K; `backend(window)` -> the
    output at the newest state token, (N, act_dim) actions or (N, n_actions) logits, a torch
    tensor; `reset(envs)` when those envs start over (inference/onnx.py: OnnxBackend, the same
    math in ONNX Runtime; inference/cached.py: KVCache, approximate)."""

    def __init__(self, model, num_envs: int, K: int, generator: torch.Generator | None = None):
        """generator: draw actions from a stochastic model's policy (sample_last_action) with it,
        instead of its mean action."""
        self.model, self.K, self.gen = model, K, generator
        self.dev = next(model.parameters()).device
        self.mask_table = DecisionTransformer.window_masks(K).to(self.dev)

    def reset(self, envs) -> None:
        pass

    def __call__(self, w: Window) -> torch.Tensor:
        mask = None if w.real.min() == self.K else self.mask_table[torch.from_numpy(w.real).to(self.dev)]
        s, a, R, ts = (torch.from_numpy(x).to(self.dev) for x in (w.states, w.actions, w.returns_to_go, w.timesteps))
        if self.gen is not None:
            return self.model.sample_last_action(s, a, R, ts, token_mask=mask, generator=self.gen)
        return self.model.predict_last_action(s, a, R, ts, token_mask=mask)


def resolve_backend(model, backend: str) -> str:
    """`backend`, with "auto" resolved: ONNX Runtime where it is installed and runs this model (a
    Decision Transformer: the same math, less time per step on a CPU), else torch."""
    if backend != "auto":
        return backend
    import importlib.util
    fast = all(importlib.util.find_spec(m) for m in ("onnxruntime", "onnx"))
    return "onnxruntime" if fast and type(model) is DecisionTransformer else "torch"


def make_backend(model, num_envs: int, K: int, mode: str = "exact", backend: str = "torch",
                 generator: torch.Generator | None = None):
    """The Agent's forward: `backend` (torch | onnxruntime) in `mode` (exact | cached); with a
    generator, a stochastic model's sampled actions (exact mode, torch)."""
    if generator is not None:
        if not hasattr(model, "sample_last_action"):
            raise DTError(f"this {model.config.architecture!r} model has a deterministic head: sampling continuous "
                          "actions needs a stochastic policy (dt train --model odt)")
        if mode != "exact" or backend != "torch":
            raise DTError("sampled actions run in the exact mode with the torch backend")
        return TorchBackend(model, num_envs, K, generator)
    if mode not in ("exact", "cached"):
        raise DTError(f"mode must be 'exact' or 'cached' (approximate, see cached.py), got {mode!r}")
    if backend not in ("torch", "onnxruntime"):
        raise DTError(f"backend must be 'torch' or 'onnxruntime', got {backend!r}")
    if backend == "onnxruntime":
        if mode != "exact":
            raise DTError("backend='onnxruntime' runs the exact mode only; use mode='exact' or backend='torch'")
        from decision_transformer.inference.onnx import OnnxBackend
        return OnnxBackend(model, num_envs, K)
    if mode == "cached":
        from decision_transformer.inference.cached import KVCache
        try:
            return KVCache(model, num_envs, K)
        except ValueError as e:
            raise DTError(str(e))
    return TorchBackend(model, num_envs, K)


class Agent:
    def __init__(self, model: DecisionTransformer, num_envs: int = 1, target_return=None,
                 state_mean=None, state_std=None, scale=None, context_length: int | None = None,
                 deterministic: bool = True, seed: int | None = None, mode: str = "exact",
                 backend: str = "torch", temperature: float = 1.0):
        """Discrete actions: the argmax of the logits (deterministic=True, the default), or a sample
        from softmax(logits / temperature) drawn with a generator seeded by `seed`. Continuous
        actions: the model's (mean) action, or with deterministic=False a draw from a stochastic
        model's policy (`--model odt`), seeded likewise."""
        cfg = model.config
        self.model = model.eval()
        self.cfg, self.N = cfg, int(num_envs)
        if self.N < 1:
            raise DTError(f"num_envs must be >= 1, got {num_envs}")
        self.K = int(context_length or cfg.context_length)
        self.scale = float(scale if scale is not None else (cfg.return_scale or 1.0))
        target = target_return if target_return is not None else (cfg.target_returns or [None])[0]
        if target is None:
            raise DTError("no target return: pass target_return=..., or save one in the checkpoint config")
        self.image = cfg.state_type == "image"
        self.discrete = cfg.action_type == "discrete"
        self.state_shape = tuple(cfg.state_shape) if self.image else (cfg.state_dim,)
        self.mean, self.std = self._normalisation(state_mean, state_std)
        self.mode = mode
        self.deterministic = deterministic
        if not (np.isfinite(temperature) and temperature > 0):
            raise DTError(f"temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)
        self.gen = torch.Generator().manual_seed(seed) if seed is not None else None
        sampled = not deterministic and not self.discrete     # continuous: the model draws its own actions
        if sampled and temperature != 1.0:
            raise DTError("temperature applies to discrete actions; a stochastic model samples from its own policy")
        if sampled and self.gen is None:
            self.gen = torch.Generator().manual_seed(int(torch.randint(2**31 - 1, ()).item()))
        self.backend = make_backend(model, self.N, self.K, mode, backend, self.gen if sampled else None)
        self._allocate()
        self.target = np.zeros(self.N)
        self.rtg = np.zeros(self.N, dtype=np.float32)   # float32 like the blog's target_return tensor
        self.t = np.zeros(self.N, dtype=np.int64)
        self._acted = False
        self.reset(target)

    def _normalisation(self, state_mean, state_std):
        """(mean, std) of the states as float64 arrays, or (None, None): frames, or no statistics."""
        cfg = self.cfg
        mean = state_mean if state_mean is not None else cfg.state_mean
        std = state_std if state_std is not None else cfg.state_std
        if self.image or mean is None:
            return None, None
        mean = np.asarray(mean, dtype=np.float64).reshape(-1)
        std = np.asarray(std if std is not None else np.ones_like(mean), dtype=np.float64).reshape(-1)
        for name, v in (("state_mean", mean), ("state_std", std)):
            if v.shape != (cfg.state_dim,):
                raise DTError(f"{name} has {v.size} values but the checkpoint's state_dim is {cfg.state_dim}")
        return mean, std

    def _allocate(self) -> None:
        """Per-env ring buffers of 2K steps (the window is the view [p-K, p): O(1) per step), in
        numpy: per-step writes are ~1 us numpy stores, not torch indexing ops."""
        N, K, cfg = self.N, self.K, self.cfg
        self.W = 2 * K
        self._s = np.zeros((N, self.W, *self.state_shape), dtype=np.uint8 if self.image else np.float32)
        self._a = np.zeros((N, self.W), dtype=np.int64) if self.discrete else np.zeros((N, self.W, cfg.act_dim), np.float32)
        self._R = np.zeros((N, self.W, 1), dtype=np.float32)
        self._ts = np.zeros((N, self.W), dtype=np.int64)
        self._bufs = (self._s, self._a, self._R, self._ts)
        self.p = K

    # -- episode bookkeeping ------------------------------------------------------------------
    def reset(self, target_return=None, envs=None):
        """Start fresh episodes (all envs, or the indices in `envs`), optionally with new targets."""
        idx = np.arange(self.N) if envs is None else np.asarray(envs, dtype=np.int64).reshape(-1)
        if target_return is not None:
            tr = np.broadcast_to(np.asarray(target_return, dtype=np.float64), (self.N,)) \
                if np.ndim(target_return) == 0 or len(np.atleast_1d(target_return)) == self.N else None
            if tr is None:
                raise DTError(f"target_return must be one number or {self.N} numbers (one per env)")
            if not np.all(np.isfinite(tr)):
                raise DTError("target_return must be finite")
            self.target[idx] = tr[idx]
        self.rtg[idx] = self.target[idx] / self.scale
        self.t[idx] = 0
        for buf in self._bufs:
            buf[idx] = 0
        self.backend.reset(idx)
        self._acted = False

    def _check_obs(self, obs) -> np.ndarray:
        obs = np.asarray(obs)
        want = (self.N, *self.state_shape)
        if obs.shape != want:
            if obs.shape == self.state_shape and self.N == 1:
                obs = obs[None]
            else:
                raise DTError(f"observation batch has shape {obs.shape} but the agent expects {want} "
                              f"(num_envs={self.N}, checkpoint state shape {self.state_shape}): "
                              "is this the environment the checkpoint was trained on?")
        if not self.image and not np.all(np.isfinite(obs)):
            raise DTError("observation contains NaN or inf")
        return obs

    # -- the loop ---------------------------------------------------------------------------
    def act(self, obs) -> np.ndarray:
        """obs (num_envs, *state_shape) -> actions (num_envs, act_dim), or (num_envs,) indices."""
        obs = self._check_obs(obs)
        K, p = self.K, self.p
        if p == self.W:                                   # ring full: move the last K-1 steps to the front
            for buf in self._bufs:
                buf[:, :K - 1] = buf[:, p - K + 1:p]
            p = K - 1
        if self.image:
            self._s[:, p] = obs
        elif self.mean is not None:
            self._s[:, p] = (obs.astype(np.float64) - self.mean) / self.std
        else:
            self._s[:, p] = obs
        self._a[:, p] = 0
        self._R[:, p, 0] = self.rtg
        np.minimum(self.t, self.cfg.max_ep_len - 1, out=self._ts[:, p])
        self.p = p = p + 1
        w = slice(p - K, p)
        out = self.backend(Window(self._s[:, w], self._a[:, w], self._R[:, w], self._ts[:, w],
                                  np.minimum(self.t + 1, K), self._a[:, p - 2], self.t > 0))
        if self.discrete:
            if self.deterministic:
                act = out.argmax(dim=-1)
            else:
                probs = (out.float().cpu() / self.temperature).softmax(dim=-1)
                act = torch.multinomial(probs, 1, generator=self.gen)[:, 0]
        else:
            act = out
        act = act.cpu().numpy()
        if not self.discrete and not np.isfinite(act).all():
            bad = np.flatnonzero(~np.isfinite(act).all(axis=1))
            raise DTError(f"the model produced NaN/inf actions (env {bad[0]}, return-to-go "
                          f"{float(self._R[bad[0], p - 1, 0]) * self.scale:.4g}): a target return far outside what it was "
                          "trained on, or corrupt weights")
        self._a[:, p - 1] = act
        self._acted = True
        return act

    def observe(self, rewards, dones=None) -> None:
        """Rewards (num_envs,) of the actions just taken; envs with dones[i] start over."""
        if not self._acted:
            raise DTError("observe() called before act(): call act(obs), step the envs, then observe(rewards, dones)")
        r = np.asarray(rewards, dtype=np.float64).reshape(-1)
        if r.shape != (self.N,):
            raise DTError(f"rewards has {r.size} values for {self.N} envs")
        self.rtg = (self.rtg - (r / self.scale)).astype(np.float32)
        self.t += 1
        self._acted = False
        if dones is not None:
            d = np.asarray(dones, dtype=bool).reshape(-1)
            if d.any():
                self.reset(envs=np.flatnonzero(d))
