"""Dropout, the same math as `torch.nn.Dropout`, with a much cheaper CPU implementation.

`F.dropout` on CPU draws one Bernoulli per element: ~27 ms for the ~4M elements a paper-config
training step drops, measured on this machine, a quarter of the step. Two faster paths, both
with P(drop) = round(p * 2^32) / 2^32 (p to within 2^-33) and kept values scaled by 1 / (1 - p):

- fused (default when a C compiler is available, see _native.py): one pass over memory computes
  keep(i) from a counter-based hash of (seed, i) and writes x * keep * scale. The backward pass
  recomputes the same keep(i) from the seed, so no mask is stored. ~7x cheaper than F.dropout.
- torch (fallback, or DT_NATIVE=0): one 64-bit generator draw gives two 32-bit uniforms,
  compared with the threshold; the bool mask is kept by autograd. ~4x cheaper than F.dropout.

Both take their randomness from torch's default generator (the fused path draws two 32-bit seed
words per call), so `torch.manual_seed` makes training deterministic on a given machine.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from decision_transformer.models import _native


def _threshold(p: float) -> int:
    return min(int(round(p * 2 ** 32)), 2 ** 32 - 1)


def keep_mask(shape, p: float, device=None) -> torch.Tensor:
    """Torch path: bool tensor of `shape`, each element True with probability 1 - p."""
    n = 1
    for d in shape:
        n *= d
    bits = torch.empty((n + 1) // 2, dtype=torch.int64, device=device).random_(-(2 ** 63), None)
    u = bits.view(torch.int32)[:n]                    # uniform over all 2^32 int32 values
    # unsigned u' = u + 2^31 is uniform on [0, 2^32); keep when u' >= round(p * 2^32)
    return (u >= _threshold(p) - 2 ** 31).view(shape)


def _seeds() -> tuple[int, int]:
    s = torch.randint(0, 2 ** 32, (2,), dtype=torch.int64)
    return int(s[0]), int(s[1])


class _FusedDropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, p):
        lib = _native.load()
        x = x.contiguous()
        y = torch.empty_like(x)
        s0, s1 = _seeds()
        thr, scale = _threshold(p), 1.0 / (1.0 - p)
        lib.dt_dropout_f32(x.data_ptr(), y.data_ptr(), x.numel(), s0, s1, thr, scale)
        ctx.args = (s0, s1, thr, scale)
        return y

    @staticmethod
    def backward(ctx, g):
        lib = _native.load()
        g = g.contiguous()
        gx = torch.empty_like(g)
        lib.dt_dropout_f32(g.data_ptr(), gx.data_ptr(), g.numel(), *ctx.args)
        return gx, None


def fused_keep_mask(shape, p: float) -> torch.Tensor | None:
    """The mask the fused path would use for the next call (None without the kernel); tests."""
    lib = _native.load()
    if lib is None:
        return None
    n = 1
    for d in shape:
        n *= d
    out = torch.empty(n, dtype=torch.uint8)
    s0, s1 = _seeds()
    lib.dt_keep_mask_u8(out.data_ptr(), n, s0, s1, _threshold(p))
    return out.bool().view(shape)


def fast_dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """Training-mode dropout of x with probability p (callers check `training`)."""
    if p <= 0:
        return x
    if p >= 1:
        return torch.zeros_like(x)
    if x.dtype == torch.float32 and x.device.type == "cpu" and x.numel() < 2 ** 32 and _native.load() is not None:
        return _FusedDropout.apply(x, p)
    return x * torch.where(keep_mask(x.shape, p, x.device), 1.0 / (1.0 - p), 0.0).to(x.dtype)


class FastDropout(nn.Module):
    def __init__(self, p: float):
        super().__init__()
        self.p = float(p)

    def forward(self, x):
        return fast_dropout(x, self.p) if self.training and self.p > 0 else x

    def extra_repr(self):
        return f"p={self.p}"
