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

import numpy as np
import torch

from decision_transformer.errors import DTError
from decision_transformer.models.dt import DecisionTransformer


class Agent:
    def __init__(self, model: DecisionTransformer, num_envs: int = 1, target_return=None,
                 state_mean=None, state_std=None, scale=None, context_length: int | None = None,
                 deterministic: bool = True, seed: int | None = None, mode: str = "exact",
                 backend: str = "torch", temperature: float = 1.0):
        """Discrete actions: the argmax of the logits (deterministic=True, the default), or a sample
        from softmax(logits / temperature) drawn with a generator seeded by `seed`."""
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
        mean = state_mean if state_mean is not None else cfg.state_mean
        std = state_std if state_std is not None else cfg.state_std
        if self.image or mean is None:
            self.mean, self.std = None, None
        else:
            self.mean = np.asarray(mean, dtype=np.float64).reshape(-1)
            self.std = np.asarray(std if std is not None else np.ones_like(self.mean), dtype=np.float64).reshape(-1)
            for name, v in (("state_mean", self.mean), ("state_std", self.std)):
                if v.shape != (cfg.state_dim,):
                    raise DTError(f"{name} has {v.size} values but the checkpoint's state_dim is {cfg.state_dim}")
        if mode not in ("exact", "cached"):
            raise DTError(f"mode must be 'exact' or 'cached' (approximate, see cached.py), got {mode!r}")
        self.mode = mode
        if backend not in ("torch", "onnxruntime"):
            raise DTError(f"backend must be 'torch' or 'onnxruntime', got {backend!r}")
        if backend == "onnxruntime" and mode != "exact":
            raise DTError("backend='onnxruntime' runs the exact mode only; use mode='exact' or backend='torch'")
        self.deterministic = deterministic
        if not (np.isfinite(temperature) and temperature > 0):
            raise DTError(f"temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)
        self.gen = torch.Generator().manual_seed(seed) if seed is not None else None
        N, K = self.N, self.K
        W = self.W = 2 * K            # ring of 2K steps: the window is the view [p-K, p), O(1) per step
        self.dev = dev = next(model.parameters()).device
        # host buffers in numpy (per-step writes are ~1 us numpy stores, not torch indexing ops),
        # torch tensors viewing the same memory for the forward
        self._s = np.zeros((N, W, *self.state_shape), dtype=np.uint8 if self.image else np.float32)
        self._a = np.zeros((N, W), dtype=np.int64) if self.discrete else np.zeros((N, W, cfg.act_dim), np.float32)
        self._R = np.zeros((N, W, 1), dtype=np.float32)
        self._ts = np.zeros((N, W), dtype=np.int64)
        self._bufs = (self._s, self._a, self._R, self._ts)      # the attention mask comes from mask_table
        self.s, self.a, self.R, self.ts = (torch.from_numpy(b) for b in self._bufs)
        self.p = K
        # token masks for c = 0..K real (most recent) steps in the window: (K+1, 1, 3K-1, 3K-1)
        steps = (torch.arange(K)[None, :] >= K - torch.arange(K + 1)[:, None]).float()   # (K+1, K)
        self.mask_table = DecisionTransformer.token_mask(steps, 3 * K - 1).to(dev)
        self.cache = self.onnx = None
        if backend == "onnxruntime":
            from decision_transformer.inference.onnx import OnnxLastAction
            self.onnx = OnnxLastAction(model, self.K, batch=N)
            self.bias_np = self.onnx.bias(self.mask_table.cpu().numpy())
        if mode == "cached":
            from decision_transformer.inference.cached import KVCache
            try:
                self.cache = KVCache(model, N, K)
            except ValueError as e:
                raise DTError(str(e))
        self.target = np.zeros(N)
        self.rtg = np.zeros(N, dtype=np.float32)   # float32 like the blog's target_return tensor
        self.t = np.zeros(N, dtype=np.int64)
        self._acted = False
        self.reset(target)

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
        if self.cache is not None:
            self.cache.reset(torch.as_tensor(idx, device=self.dev))
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
        if self.cache is not None:                        # approximate: only the 3 new tokens
            dev = self.dev
            out = self.cache.step(self.s[:, p - 1].to(dev), self.R[:, p - 1, 0].to(dev), self.ts[:, p - 1].to(dev),
                                  self.a[:, p - 2].to(dev), torch.from_numpy(self.t > 0).to(dev))
        elif self.onnx is not None:                       # exact, the same math through ONNX Runtime
            real = np.minimum(self.t + 1, K)              # real steps in each env's window
            out = torch.from_numpy(self.onnx(self._s[:, w], self._a[:, w], self._R[:, w], self._ts[:, w],
                                             self.bias_np[real]))
        else:
            real = np.minimum(self.t + 1, K)
            mask = None if real.min() == K else self.mask_table[torch.from_numpy(real).to(self.dev)]
            dev = self.dev
            out = self.model.predict_last_action(self.s[:, w].to(dev), self.a[:, w].to(dev), self.R[:, w].to(dev),
                                                 self.ts[:, w].to(dev), token_mask=mask)  # (N, act_dim) | logits
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
