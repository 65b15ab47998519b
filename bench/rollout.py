"""Rollout speed: the blog's evaluation loop vs our Agent, and N batched envs vs raw stepping.

    python bench/rollout.py [--reps 3] [--num-envs 50] [--steps 1000]

Cases run in fresh processes, alternating (this machine is noisy; read the ratios):
  blog    the blog loop (transformers model, torch.cat growth) over one 1000-step Hopper-v5 episode
  agent   our Agent (N=1, exact semantics, same weights) over the same episode length
  env1    stepping Hopper-v5 alone (random actions), per step
  envN    a SyncVectorEnv of N Hopper-v5 envs alone, env-steps/s
  agentN  our Agent batched over the same N envs, env-steps/s
  onnx, onnxN   our Agent, exact semantics, with backend="onnxruntime" (same math, ONNX Runtime)
  env2N, pipeN, onnxpipeN   the N envs as 2 groups, one thread each, as `dt eval --threads 2`
          runs them (decision_transformer/parallel.py): raw stepping, PyTorch, ONNX Runtime
  interleaved   blog, agent and onnx in ONE process, on three episodes advanced in turns of 50
          steps, ratios per turn (robust to the machine's speed drifting between processes)
  cached, cachedN   the same with Agent(mode="cached"): APPROXIMATE (KV cache not recomputed
          when the window slides; see decision_transformer/cached.py)
Episodes use terminate_when_unhealthy=False so every episode is exactly --steps long.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _models():
    import torch
    from transformers import DecisionTransformerConfig as HFConfig
    from transformers import DecisionTransformerModel

    from decision_transformer import DecisionTransformer, DecisionTransformerConfig

    torch.manual_seed(0)
    kw = dict(state_dim=11, act_dim=3, hidden_size=128, max_ep_len=1000, n_layer=3, n_head=1)
    hf = DecisionTransformerModel(HFConfig(**kw)).eval()
    ours = DecisionTransformer(DecisionTransformerConfig(**kw, return_scale=1000.0)).eval()
    ours.load_state_dict(hf.state_dict())
    return hf, ours


def _env(steps):
    import gymnasium as gym
    return gym.make("Hopper-v5", terminate_when_unhealthy=False, max_episode_steps=steps)


def interleaved(a) -> dict:
    """N=1, all in one process: the blog loop, our Agent (PyTorch) and our Agent (ONNX Runtime),
    each on its own Hopper-v5 episode, advanced in turns of 50 steps (order rotating), so a slow
    phase of a noisy machine hits all alike; ratios are taken per turn, medians reported."""
    import statistics

    from decision_transformer import Agent
    from decision_transformer.inference.reference import BlogEpisode
    hf, ours = _models()
    mean, std = np.zeros(11), np.ones(11)
    blog = BlogEpisode(hf, mean, std, 3600.0, 1000.0, 20, 11, 3)
    runners = {"blog": (blog.act, lambda r, d: blog.observe(r))}
    for b in ("torch", "onnxruntime"):
        ag = Agent(ours, target_return=3600, state_mean=mean, state_std=std, backend=b)
        runners[b] = ((lambda o, ag=ag: ag.act(o[None])[0]), (lambda r, d, ag=ag: ag.observe([r], [d])))
    envs = {n: _env(a.steps) for n in runners}
    obs = {n: envs[n].reset(seed=0)[0] for n in runners}
    times = {n: [] for n in runners}
    names = list(runners)
    for turn in range(a.steps // 50):
        for n in names[turn % 3:] + names[:turn % 3]:
            act, observe = runners[n]
            t0 = time.perf_counter()
            for _ in range(50):
                obs[n], r, term, trunc, _ = envs[n].step(act(obs[n]))
                observe(r, term or trunc)
            times[n].append((time.perf_counter() - t0) / 50 * 1e3)
    out = {f"{n}_ms_median": statistics.median(v) for n, v in times.items()}
    for n in ("torch", "onnxruntime"):
        out[f"{n}_ratio_median"] = statistics.median(b / x for b, x in zip(times["blog"], times[n]))
    return out


def case(name: str, a) -> dict:
    import gymnasium as gym

    from decision_transformer import Agent
    from decision_transformer.evaluation.parallel import (
        one_thread_per_group,
        run_in_threads,
        split,
    )
    from decision_transformer.inference.reference import BlogEpisode

    if name == "interleaved":
        return interleaved(a)
    mean, std = np.zeros(11), np.ones(11)
    mode = "cached" if name.startswith("cached") else "exact"
    backend = "onnxruntime" if name.startswith("onnx") else "torch"
    if name in ("blog", "agent", "cached", "onnx", "env1"):
        hf, ours = _models()
        env = _env(a.steps)
        obs, _ = env.reset(seed=0)
        if name == "blog":
            pol = BlogEpisode(hf, mean, std, 3600.0, 1000.0, 20, 11, 3)
            act, obs_fn = pol.act, (lambda r, d: pol.observe(r))
        elif name in ("agent", "cached", "onnx"):
            ag = Agent(ours, target_return=3600, state_mean=mean, state_std=std, mode=mode, backend=backend)
            act, obs_fn = (lambda o: ag.act(o[None])[0]), (lambda r, d: ag.observe([r], [d]))
        else:
            act, obs_fn = (lambda o: env.action_space.sample()), (lambda r, d: None)
        n, t0 = 0, time.perf_counter()
        while True:
            obs, r, term, trunc, _ = env.step(act(obs))
            obs_fn(r, term or trunc)
            n += 1
            if term or trunc:
                break
        dt = time.perf_counter() - t0
        return {"steps": n, "ms_per_step": dt / n * 1e3}
    N = a.num_envs
    G = 2 if name in ("env2N", "pipeN", "onnxpipeN") else 1     # env groups, one thread each (parallel.py)
    steps, t0 = 300, []
    start = threading.Barrier(G, action=lambda: t0.append(time.perf_counter()))
    with one_thread_per_group(G):
        groups = []
        for n in split(N, G):
            envs = gym.vector.SyncVectorEnv([lambda: _env(a.steps) for _ in range(n)],
                                            autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
            ag = None
            if not name.startswith("env"):
                ag = Agent(_models()[1], num_envs=n, target_return=3600, state_mean=mean, state_std=std,
                           mode=mode, backend=backend)
            groups.append((envs, ag))

        def run(group, stop):
            envs, ag = group
            obs, _ = envs.reset(seed=0)
            if ag is None:
                start.wait()
                for _ in range(steps):
                    obs, *_ = envs.step(envs.action_space.sample())
                return time.perf_counter() - t0[0]
            for _ in range(25):                                # past the first K steps: full windows
                obs, r, te, tr, _ = envs.step(ag.act(obs))
                ag.observe(r, te | tr)
            start.wait()
            for _ in range(steps):
                obs, r, te, tr, _ = envs.step(ag.act(obs))
                ag.observe(r, te | tr)
            return time.perf_counter() - t0[0]

        dt = max(run_in_threads(run, groups))
    return {"env_steps_per_s": steps * N / dt}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--case")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--num-envs", type=int, default=50)
    p.add_argument("--steps", type=int, default=1000)
    a = p.parse_args()
    if a.case:
        print(json.dumps(case(a.case, a)))
        return
    from _harness import alternate, median

    extra = ["--num-envs", str(a.num_envs), "--steps", str(a.steps)]
    r = alternate(__file__, ["blog", "agent", "onnx", "cached", "env1"], a.reps, *extra)
    blog, agent, onnx, cached, env1 = (median(r[c], "ms_per_step") for c in ("blog", "agent", "onnx", "cached", "env1"))
    print(f"N=1, {a.steps}-step Hopper-v5 episode (median of {a.reps}):")
    print(f"  blog loop  {blog:6.3f} ms/step   peak RSS {median(r['blog'], 'peak_rss_mb'):.0f} MB")
    print(f"  our Agent  {agent:6.3f} ms/step   peak RSS {median(r['agent'], 'peak_rss_mb'):.0f} MB")
    print(f"  env alone  {env1:6.3f} ms/step")
    print(f"  speed-up   {blog / agent:.2f}x  (goal >= 5x)")
    print(f"  Agent, backend=onnxruntime {onnx:6.3f} ms/step: {blog / onnx:.2f}x the blog loop   "
          f"peak RSS {median(r['onnx'], 'peak_rss_mb'):.0f} MB")
    print(f"  APPROXIMATE cached mode {cached:6.3f} ms/step: {blog / cached:.2f}x the blog loop")
    from _harness import run_case
    r1 = run_case(__file__, "interleaved", *extra)
    print(f"  same process, 50-step turns: blog {r1['blog_ms_median']:.3f}, Agent {r1['torch_ms_median']:.3f}, "
          f"onnxruntime {r1['onnxruntime_ms_median']:.3f} ms/step; per-turn ratio medians "
          f"{r1['torch_ratio_median']:.2f}x and {r1['onnxruntime_ratio_median']:.2f}x")
    r = alternate(__file__, ["envN", "env2N", "agentN", "onnxN", "pipeN", "onnxpipeN", "cachedN"], a.reps, *extra)
    m = {c: median(r[c], "env_steps_per_s") for c in r}
    envN, env2N = m["envN"], m["env2N"]
    print(f"N={a.num_envs} batched, exact semantics (median of {a.reps}):")
    print(f"  envs alone, one thread        {envN:8.0f} env-steps/s")
    print(f"  envs alone, 2 groups/threads  {env2N:8.0f} env-steps/s")
    print(f"  Agent+envs {m['agentN']:8.0f} env-steps/s   peak RSS {median(r['agentN'], 'peak_rss_mb'):.0f} MB")
    print(f"  fraction   {m['agentN'] / envN:.0%} of raw env stepping (goal >= 40%)")
    print(f"  backend=onnxruntime {m['onnxN']:8.0f} env-steps/s = {m['onnxN'] / envN:.0%} of raw env stepping")
    for c, label in (("pipeN", "PyTorch"), ("onnxpipeN", "onnxruntime")):
        print(f"  2 env groups in 2 threads, {label:11s} {m[c]:8.0f} env-steps/s = {m[c] / envN:.0%} of raw "
              f"one-thread stepping, {m[c] / env2N:.0%} of raw 2-thread stepping")
    print(f"  APPROXIMATE cached mode {m['cachedN']:8.0f} env-steps/s = {m['cachedN'] / envN:.0%} of raw env stepping")

if __name__ == "__main__":
    main()
