"""An APPROXIMATE, faster inference mode: a key/value cache that is not recomputed when the
window slides (`Agent(..., mode="cached")`).

Exact evaluation (the default) recomputes the whole window every step, because once the window
slides every hidden state depends on where it starts. Here each step runs only its three new
tokens (a_{t-1}, R_t, s_t) through the layers; they attend to the cached keys/values of the last
3K-1 tokens, which were computed when those tokens arrived (with the context they had then).

- Layer 0 is exact (a token's layer-0 keys/values depend on that token alone); deeper layers'
  cached keys/values of older tokens carry context from before the window start.
- For the first K steps of an episode nothing has left the window yet, so the actions equal the
  exact mode's to float precision (tested); after that they differ slightly.
The effect on returns must be measured per checkpoint (docs/performance.md has one measurement).
"""

from __future__ import annotations

import torch

from decision_transformer.models.dt import DecisionTransformer


class KVCache:
    def __init__(self, model, num_envs: int, K: int):
        cfg = model.config
        if not isinstance(model, DecisionTransformer) or cfg.state_type != "vector":
            raise ValueError("the cached mode supports vector-state Decision Transformers")
        self.model, self.N, self.K = model, num_envs, K
        self.C = 3 * K - 1                                          # tokens in the window
        self.cap = 2 * self.C + 3                                  # ring: the window is a view
        nh, H = cfg.n_head, cfg.hidden_size
        dev = next(model.parameters()).device
        shape = (num_envs, nh, self.cap, H // nh)
        self.k = [torch.zeros(shape, device=dev) for _ in range(cfg.n_layer)]
        self.v = [torch.zeros(shape, device=dev) for _ in range(cfg.n_layer)]
        self.valid = torch.zeros(num_envs, self.cap, dtype=torch.bool, device=dev)
        self.p = self.C                                            # next slot; window = [p - C, p)

    def reset(self, envs) -> None:
        self.valid[torch.as_tensor(envs, device=self.valid.device)] = False

    def __call__(self, w) -> torch.Tensor:
        """The Agent's backend interface (agent.py: TorchBackend): only the newest step's 3 tokens."""
        dev = self.valid.device
        return self.step(torch.from_numpy(w.states[:, -1]).to(dev), torch.from_numpy(w.returns_to_go[:, -1, 0]).to(dev),
                         torch.from_numpy(w.timesteps[:, -1]).to(dev), torch.from_numpy(w.prev_action).to(dev),
                         torch.from_numpy(w.started).to(dev))

    @torch.inference_mode()
    def step(self, s, rtg, ts, prev_a, has_prev):
        """s (N, S) normalised, rtg (N,) scaled, ts (N,) long, prev_a (N, A) or (N,) long,
        has_prev (N,) bool -> the action output for s_t: (N, act_dim)."""
        m = self.model
        C = self.C
        if self.p + 3 > self.cap:                                  # move the last C-3 tokens to the front
            keep = slice(self.p - (C - 3), self.p)
            for buf in self.k + self.v:
                buf[:, :, :C - 3] = buf[:, :, keep].clone()
            self.valid[:, :C - 3] = self.valid[:, keep].clone()
            self.p = C - 3
        p = self.p
        t_prev = m.embed_timestep((ts - 1).clamp(min=0))           # (N, H)
        t_now = m.embed_timestep(ts)
        r, s, a = (e[:, 0] for e in m.embed_modalities(s[:, None], prev_a[:, None], rtg[:, None, None]))
        x = torch.stack((a + t_prev, r + t_now, s + t_now), dim=1)  # (N, 3, H): a_{t-1}, R_t, s_t
        x = m.norm_tokens(x)
        self.valid[:, p] = has_prev
        self.valid[:, p + 1:p + 3] = True
        w = slice(p + 3 - C, p + 3)
        slots = torch.arange(p + 3 - C, p + 3, device=x.device)
        causal = slots[None, :] <= torch.arange(p, p + 3, device=x.device)[:, None]     # (3, C)
        mask = (self.valid[:, None, w] & causal[None])             # (N, 3, C)
        mask[:, 0, C - 3] = True                                   # a dummy a_{-1} query sees itself
        mask = mask[:, None]                                       # (N, 1, 3, C)
        for l, blk in enumerate(m.encoder.h):                     # the model's own blocks, keys/values cached
            x = blk(x, mask, cache=(self.k[l], self.v[l], slice(p, p + 3), w))
        self.p = p + 3
        return m.predict_action(m.encoder.ln_f(x[:, 2]))
