"""The optimisers `dt train` and `dt finetune` offer (`--optimizer`): AdamW (torch's) and LAMB.

LAMB (You et al., "Large Batch Optimization for Deep Learning: Training BERT in 76 minutes", ICLR
2020, Algorithm 2) is what the Online Decision Transformer trains with. torch has none, and the
packages that ship one (torch-optimizer, timm) are unmaintained or pull torchvision, so it is
written here from the paper, tested against a NumPy transcription of Algorithm 2 and, with the
trust ratio off, against torch.optim.Adam. Per parameter tensor w with gradient g, at step t:

    m = b1 m + (1 - b1) g              v = b2 v + (1 - b2) g^2
    r = (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps) + weight_decay x w
    w = w - lr x phi(|w|) / |r| x r    phi(z) = min(z, max_weight_norm); the ratio is 1 where a norm is 0

A parameter group may set `trust_ratio: False` (plain Adam with decoupled weight decay for it):
the ODT's temperature is one scalar, which the paper trains with Adam apart from the network.
Models give their groups through `Policy.param_groups()` (models/policy.py).
"""

from __future__ import annotations

import torch

OPTIMIZERS = ("adamw", "lamb")


class Lamb(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
                 trust_ratio: bool = True, max_weight_norm: float = 10.0):
        if lr <= 0 or eps <= 0 or weight_decay < 0 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"Lamb: invalid lr {lr}, eps {eps}, weight_decay {weight_decay} or betas {betas}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      trust_ratio=trust_ratio, max_weight_norm=max_weight_norm))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            if any(p.grad.is_sparse for p in params):
                raise RuntimeError("Lamb does not support sparse gradients")
            self._step_group(group, params)
        return loss

    def _step_group(self, group: dict, params: list) -> None:
        """One group's update with torch's foreach (multi-tensor) ops: the same per-tensor arithmetic,
        in the same order, as a loop over tensors, in a few kernel launches instead of ~12 a tensor."""
        b1, b2 = group["betas"]
        grads = [p.grad for p in params]
        for p in params:
            state = self.state[p]
            if not state:
                state["step"] = torch.zeros((), dtype=torch.float32)
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["step"] += 1
        ms = [self.state[p]["exp_avg"] for p in params]
        vs = [self.state[p]["exp_avg_sq"] for p in params]
        ts = [float(self.state[p]["step"]) for p in params]
        torch._foreach_lerp_(ms, grads, 1 - b1)
        torch._foreach_mul_(vs, b2)
        torch._foreach_addcmul_(vs, grads, grads, value=1 - b2)
        r = torch._foreach_div(ms, [1 - b1 ** t for t in ts])
        denom = torch._foreach_div(vs, [1 - b2 ** t for t in ts])
        torch._foreach_sqrt_(denom)
        torch._foreach_add_(denom, group["eps"])
        torch._foreach_div_(r, denom)
        if group["weight_decay"]:
            torch._foreach_add_(r, params, alpha=group["weight_decay"])
        if group["trust_ratio"]:
            w = torch.stack(torch._foreach_norm(params)).clamp(max=group["max_weight_norm"])
            u = torch.stack(torch._foreach_norm(r))
            scale = torch.where((w > 0) & (u > 0), w / u, torch.ones_like(w)) * group["lr"]
            torch._foreach_mul_(r, list(scale.unbind()))
            torch._foreach_sub_(params, r)
        else:
            torch._foreach_add_(params, r, alpha=-group["lr"])


def make_optimizer(name: str, groups: list[dict], lr: float, weight_decay: float, betas=(0.9, 0.999)):
    """`name`'s optimiser over parameter groups (a model's `param_groups()`: a group may set its own
    weight_decay, and trust_ratio, which only LAMB reads). AdamW runs torch's fused kernel, on the CPU
    too, in `dt train` and `dt finetune` alike."""
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay, betas=tuple(betas), fused=True)
    if name == "lamb":
        return Lamb(groups, lr=lr, weight_decay=weight_decay, betas=tuple(betas))
    raise ValueError(f"unknown optimizer {name!r}: {', '.join(OPTIMIZERS)}")
