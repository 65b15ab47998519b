"""Training-step time of the Decision Transformer on MinAtar frames, for sizing the `minatar` preset.

A synthetic MinAtar-shaped dataset ((4, 10, 10) 0/1 frames, 3 actions, 20k steps) in memory; for
each model size, a few warm-up steps then timed steps (sample + forward + backward + AdamW), one
thread, all in one process, printed with the ratio to the first size.

    python bench/pixel_step.py [--steps 10]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

SIZES = [  # (K, width, layers, heads, batch)
    (20, 64, 3, 4, 64),       # the minatar preset
    (20, 128, 3, 4, 64),
    (30, 128, 6, 8, 128),     # the paper's Atari size
]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=10)
    a = p.parse_args()
    torch.set_num_threads(1)
    from decision_transformer.data.datasets import Episode, TrajectoryDataset
    from decision_transformer.data.sampler import WindowSampler
    from decision_transformer.models.dt import (
        DecisionTransformer,
        DecisionTransformerConfig,
    )
    rng = np.random.default_rng(0)
    eps = []
    for _ in range(200):
        T = 100
        eps.append(Episode(rng.integers(0, 2, (T, 4, 10, 10), dtype=np.uint8), rng.integers(0, 3, T),
                           rng.random(T), np.r_[np.zeros(T - 1, bool), True], np.zeros(T, bool)))
    ds = TrajectoryDataset.from_episodes(eps, "synthetic")
    base = None
    print(f"{'K':>3} {'width':>5} {'layers':>6} {'heads':>5} {'batch':>5} {'ms/step':>8} {'ratio':>6}")
    for K, H, L, nh, B in SIZES:
        torch.manual_seed(0)
        m = DecisionTransformer(DecisionTransformerConfig(
            state_type="image", state_shape=[4, 10, 10], act_dim=3, action_type="discrete", hidden_size=H,
            n_layer=L, n_head=nh, context_length=K, max_ep_len=1000, n_inner=None)).train()
        opt = torch.optim.AdamW(m.parameters(), lr=1e-4, fused=True)
        s = WindowSampler(ds, K=K, batch_size=B, scale=1.0, max_ep_len=1000)

        def step():
            b = s.sample()
            pred = m.forward_actions(b["states"], b["actions"], b["returns_to_go"], b["timesteps"],
                                     b["attention_mask"])
            mask = b["attention_mask"].bool()
            loss = torch.nn.functional.cross_entropy(pred[mask], b["actions"][mask])
            opt.zero_grad()
            loss.backward()
            opt.step()
        for _ in range(3):
            step()
        t = time.perf_counter()
        for _ in range(a.steps):
            step()
        ms = 1000 * (time.perf_counter() - t) / a.steps
        base = base or ms
        print(f"{K:>3} {H:>5} {L:>6} {nh:>5} {B:>5} {ms:>8.0f} {ms / base:>6.2f}")


if __name__ == "__main__":
    main()
