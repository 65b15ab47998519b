"""The floor under exact per-step evaluation: the GEMMs of one window recompute, and nothing else.

One exact Agent step (paper config: K=20, width 128, 3 layers, N=1) multiplies 59-row matrices:
per full layer qkv (128x384), attention output (128x128), MLP in (128x512) and out (512x128), for
the first two layers, plus the last layer's keys and values (128x256) (its single-query work is
negligible). This times exactly those products, back to back, with numpy (OpenBLAS) and torch,
so the best achievable step time can be compared with the blog loop's (bench/rollout.py):

    python bench/gemm_floor.py [--reps 300]

A step can never be faster than (GEMM floor + env step); see docs/performance.md.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

T = 59  # 3K - 1 tokens for K = 20 (the final action placeholder is not computed)
SHAPES = [(T, 128, 384), (T, 128, 128), (T, 128, 512), (T, 512, 128)] * 2 + [(T, 128, 256)]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--reps", type=int, default=300)
    a = p.parse_args()
    flop = sum(2 * m * k * n for m, k, n in SHAPES)
    rng = np.random.default_rng(0)
    mats = [(rng.standard_normal((m, k), dtype=np.float32), rng.standard_normal((k, n), dtype=np.float32))
            for m, k, n in SHAPES]
    tens = [(torch.from_numpy(x), torch.from_numpy(w)) for x, w in mats]
    best = {"numpy (OpenBLAS)": float("inf"), "torch.mm": float("inf")}
    for _ in range(5):                                   # alternate, keep the best of 5 rounds
        t0 = time.perf_counter()
        for _ in range(a.reps):
            for x, w in mats:
                x @ w
        best["numpy (OpenBLAS)"] = min(best["numpy (OpenBLAS)"], (time.perf_counter() - t0) / a.reps)
        t0 = time.perf_counter()
        for _ in range(a.reps):
            for x, w in tens:
                torch.mm(x, w)
        best["torch.mm"] = min(best["torch.mm"], (time.perf_counter() - t0) / a.reps)
    print(f"GEMMs of one exact N=1 step: {len(SHAPES)} products, {flop / 1e6:.1f} MFLOP, "
          f"{torch.get_num_threads()} torch threads")
    for k, v in best.items():
        print(f"  {k:18} {v * 1e3:.3f} ms  ({flop / v / 1e9:.0f} GFLOP/s)")


if __name__ == "__main__":
    main()
