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
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("Lamb does not support sparse gradients")
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                t = float(state["step"])
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.lerp_(p.grad, 1 - b1)
                v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                r = (m / (1 - b1 ** t)) / (v / (1 - b2 ** t)).sqrt_().add_(group["eps"])
                if group["weight_decay"]:
                    r.add_(p, alpha=group["weight_decay"])
                if group["trust_ratio"]:
                    w, u = p.norm().clamp(max=group["max_weight_norm"]), r.norm()
                    ratio = torch.where((w > 0) & (u > 0), w / u, torch.ones_like(w))
                    p.sub_(r * (ratio * group["lr"]))
                else:
                    p.sub_(r, alpha=group["lr"])
        return loss


def make_optimizer(name: str, groups: list[dict], lr: float, weight_decay: float, betas=(0.9, 0.999),
                   fused: bool = True):
    """`name`'s optimiser over parameter groups (a model's `param_groups()`: a group may set its own
    weight_decay, and trust_ratio, which only LAMB reads). AdamW runs torch's fused kernel, on the CPU
    too, in `dt train` and `dt finetune` alike."""
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay, betas=tuple(betas), fused=fused)
    if name == "lamb":
        return Lamb(groups, lr=lr, weight_decay=weight_decay, betas=tuple(betas))
    raise ValueError(f"unknown optimizer {name!r}: {', '.join(OPTIMIZERS)}")
