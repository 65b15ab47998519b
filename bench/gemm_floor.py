"""The floor under exact evaluation: the GEMMs of the per-step window recompute, and nothing else.

One exact Agent step (paper config: K=20, width 128, 3 layers) multiplies 59-row matrices per
env: per full layer qkv (128x384), attention output (128x128), MLP in (128x512) and out
(512x128), for the first two layers, plus the last layer's keys and values (128x256) (its
single-query work is negligible). This times exactly those products, back to back, with numpy
(OpenBLAS) and torch, for one env (59 rows) and for 50 envs (2,950 rows; 1,475 per thread when
the envs run as two groups in two threads), times the env stepping and the blog loop in the same
run, and prints the best ratios the two evaluation goals could reach if a step cost nothing but
its GEMMs and its env stepping:

    python bench/gemm_floor.py [--reps 200]

"cache" rows assume the one exact saving not built: each token's layer-0 q/k/v kept across
steps (they depend on that token alone), so layer 0's qkv product runs on the 3 new rows only.
See docs/performance.md ("Bounds").
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

T = 59  # 3K - 1 tokens for K = 20 (the final action placeholder is not computed)
LAYER = [(128, 384), (128, 128), (128, 512), (512, 128)]


def shapes(rows: int, cache: bool = False) -> list[tuple[int, int, int]]:
    out = [(rows, k, n) for k, n in LAYER * 2] + [(rows, 128, 256)]
    if cache:                       # layer 0's qkv for the 3 new tokens of each env only
        out[0] = (rows // T * 3, 128, 384)
    return out


def gemm_time(sh, reps: int, threads: int) -> tuple[float, float]:
    """Best of 5 rounds, seconds per pass over `sh`: (numpy, torch), both on `threads` threads."""
    from threadpoolctl import (
        threadpool_limits,  # numpy's OpenBLAS keeps its own thread pool
    )
    torch.set_num_threads(threads)
    with threadpool_limits(limits=threads, user_api="blas"):
        return _gemm_time(sh, reps)


def _gemm_time(sh, reps: int) -> tuple[float, float]:
    rng = np.random.default_rng(0)
    mats = [(rng.standard_normal((m, k), dtype=np.float32), rng.standard_normal((k, n), dtype=np.float32))
            for m, k, n in sh]
    tens = [(torch.from_numpy(x), torch.from_numpy(w)) for x, w in mats]
    best = [float("inf"), float("inf")]
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(reps):
            for x, w in mats:
                x @ w
        best[0] = min(best[0], (time.perf_counter() - t0) / reps)
        t0 = time.perf_counter()
        for _ in range(reps):
            for x, w in tens:
                torch.mm(x, w)
        best[1] = min(best[1], (time.perf_counter() - t0) / reps)
    return best[0], best[1]


def env_times(n: int) -> tuple[float, float]:
    """Seconds per step: one Hopper-v5 env, and a SyncVectorEnv of n."""
    import gymnasium as gym
    mk = lambda: gym.make("Hopper-v5", terminate_when_unhealthy=False, max_episode_steps=10_000)
    env = mk()
    env.reset(seed=0)
    t0 = time.perf_counter()
    for _ in range(2000):
        env.step(env.action_space.sample())
    one = (time.perf_counter() - t0) / 2000
    envs = gym.vector.SyncVectorEnv([mk for _ in range(n)])
    envs.reset(seed=0)
    t0 = time.perf_counter()
    for _ in range(200):
        envs.step(envs.action_space.sample())
    return one, (time.perf_counter() - t0) / 200


def blog_time(steps: int = 1000) -> float:
    """Seconds per step of the blog loop (transformers model) on a Hopper-v5 episode."""
    import gymnasium as gym
    from transformers import DecisionTransformerConfig, DecisionTransformerModel

    from decision_transformer.inference.reference import BlogEpisode
    torch.manual_seed(0)
    hf = DecisionTransformerModel(DecisionTransformerConfig(state_dim=11, act_dim=3, hidden_size=128, max_ep_len=1000,
                                                            n_layer=3, n_head=1)).eval()
    pol = BlogEpisode(hf, np.zeros(11), np.ones(11), 3600.0, 1000.0, 20, 11, 3)
    env = gym.make("Hopper-v5", terminate_when_unhealthy=False, max_episode_steps=steps)
    obs, _ = env.reset(seed=0)
    t0 = time.perf_counter()
    for _ in range(steps):
        obs, r, *_ = env.step(pol.act(obs))
        pol.observe(r)
    return (time.perf_counter() - t0) / steps


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--reps", type=int, default=200)
    p.add_argument("--num-envs", type=int, default=50)
    a = p.parse_args()
    N, threads = a.num_envs, torch.get_num_threads()
    blog = blog_time()
    env1, envN = env_times(N)
    torch.set_num_threads(threads)
    print(f"blog loop {blog * 1e3:.3f} ms/step; Hopper-v5 step {env1 * 1e3:.3f} ms; {N} envs "
          f"{N / envN:,.0f} env-steps/s ({envN * 1e3:.2f} ms per batch step)")
    print("GEMMs only (best of numpy/OpenBLAS and torch.mm):")
    for cache in (False, True):
        tag = "cache" if cache else "exact"
        for rows, th in ((T, threads), (T, 1), (T * N, threads), (T * (N // 2), 1)):
            sh = shapes(rows, cache)
            flop = sum(2 * m * k * n for m, k, n in sh)
            t = min(gemm_time(sh, max(3, a.reps * T // rows), th))
            print(f"  {tag} {rows:5d} rows, {th} thread(s): {t * 1e3:7.3f} ms  {flop / 1e6:7.1f} MFLOP  "
                  f"{flop / t / 1e9:4.0f} GFLOP/s")
            if rows == T and th == threads:
                print(f"      N=1 bound, one thread of work after another: step >= {(t + env1) * 1e3:.3f} ms, "
                      f"<= {blog / (t + env1):.2f}x the blog loop (goal 5x)")
            elif rows == T:
                print(f"      N=1 bound, two cores perfectly shared (GEMMs on one, env on the other, "
                      f"balanced): step >= {(t + env1) / 2 * 1e3:.3f} ms, <= {blog / ((t + env1) / 2):.2f}x")
            elif th == threads:
                print(f"      N={N} bound, one batch: {envN / (envN + t):.0%} of raw stepping (goal 40%)")
            else:
                print(f"      N={N} bound, 2 groups in 2 threads: {envN / (envN / 2 + t):.0%} of raw one-thread "
                      "stepping")


if __name__ == "__main__":
    main()
