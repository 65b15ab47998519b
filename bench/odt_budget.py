"""What an Online DT fine-tuning run costs on this CPU, per model size: the measurement that sizes
`dt finetune --preset cpu-hopper` (training/presets/finetune/) and its pretraining preset.

    python bench/odt_budget.py [--updates 20] [--steps 300] [--dataset dt/hopper/medium-v1]

On one torch thread (a campaign runs one job per core), for each model size:
  update     one gradient step of `dt finetune`: a batch of windows sampled from the data, the ODT's
             loss (NLL - alpha x entropy), backward, clip, the optimiser (AdamW and LAMB both)
  explore    one env step of exploration on Hopper-v5: the exact Agent drawing from the policy at
             the exploration context (5, the paper's, and the checkpoint's K), plus the env's step
Then the core-hours of a fine-tuning run of ONLINE env steps with U updates per env step:
ONLINE x (explore + U x update), for the paper's ratio (300 updates per ~1000-step episode: 0.3)
and smaller ones. The paper's size is priced from the same measurement.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

SIZES = {            # name: hidden, layers, heads, batch
    "paper (512/4/4, batch 256)": (512, 4, 4, 256),
    "DT paper (128/3/1, batch 64)": (128, 3, 1, 64),
    "small (64/3/1, batch 64)": (64, 3, 1, 64),
    "small (64/2/1, batch 32)": (64, 2, 1, 32),
}


def _model(ds, hidden, layers, heads):
    from decision_transformer import OnlineDecisionTransformer, OnlineDecisionTransformerConfig
    mean, std = ds.state_stats()
    cfg = OnlineDecisionTransformerConfig(state_dim=ds.state_shape[0], act_dim=ds.actions.shape[1], hidden_size=hidden,
                                          n_layer=layers, n_head=heads, context_length=20, max_ep_len=1000,
                                          return_scale=1000.0, state_mean=mean.tolist(), state_std=std.tolist(),
                                          env_id="Hopper-v5", target_returns=[3600.0])
    return OnlineDecisionTransformer(cfg)


def time_update(ds, model, batch, optimizer, n):
    from decision_transformer.data.sampler import WindowSampler
    from decision_transformer.training.optim import make_optimizer
    from decision_transformer.training.trainer import action_losses
    mc = model.config
    sampler = WindowSampler(ds, K=mc.context_length, batch_size=batch, scale=1000.0, max_ep_len=1000, seed=0,
                            state_mean=mc.state_mean, state_std=mc.state_std, anchor=model.window_anchor)
    opt = make_optimizer(optimizer, model.param_groups(), 1e-4, 5e-4)
    model.train()
    times = []
    warm = 1 if batch * model.config.hidden_size >= 2**17 else 3              # warm-up steps (the paper's size: 1)
    for i in range(n + warm):
        t0 = time.perf_counter()
        loss = action_losses(model, sampler.sample()).mean()          # what dt finetune's update computes
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
        opt.step()
        loss.item()
        if i >= warm:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def time_explore(model, context, steps):
    from decision_transformer.envs import make_env
    from decision_transformer.inference.agent import Agent
    import gymnasium as gym
    env = gym.wrappers.TimeLimit(make_env("Hopper-v5").unwrapped, max_episode_steps=10**9)
    agent = Agent(model.eval(), num_envs=1, target_return=7200.0, deterministic=False, seed=0, context_length=context)
    obs, _ = env.reset(seed=0)
    t0, n = time.perf_counter(), 0
    while n < steps:
        a = agent.act(obs[None].astype(np.float32))[0]
        obs, r, term, trunc, _ = env.step(a)
        agent.observe(np.array([r]), np.array([term or trunc]))
        n += 1
        if term or trunc:
            obs, _ = env.reset(seed=n)
    return (time.perf_counter() - t0) / steps


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--updates", type=int, default=20, help="timed gradient steps per case")
    ap.add_argument("--steps", type=int, default=300, help="timed env steps per case")
    ap.add_argument("--dataset", default="dt/hopper/medium-v1")
    ap.add_argument("--online", type=int, default=200_000, help="env steps of the priced run")
    ap.add_argument("--only", default="", help="the sizes whose name contains this text")
    a = ap.parse_args()
    torch.set_num_threads(1)
    from decision_transformer.data.datasets import load_dataset
    ds = load_dataset(a.dataset)
    import platform
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")),
               platform.processor())
    flags = open("/proc/cpuinfo").read()
    print(f"# {cpu}, {'AVX-512' if 'avx512f' in flags else 'AVX2'}; one torch thread; {a.dataset}")
    print("| model | update, AdamW | update, LAMB | explore step, K=5 | explore step, K=20 | "
          f"core-h for {a.online:,} env steps at 0.3 / 0.1 / 0.03 updates per env step (LAMB, K=5) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, (h, layers, heads, batch) in SIZES.items():
        if a.only not in name:
            continue
        torch.manual_seed(0)
        model = _model(ds, h, layers, heads)
        n = max(2, a.updates // 10) if h >= 512 else a.updates
        up = {o: time_update(ds, model, batch, o, n) for o in ("adamw", "lamb")}
        ex = {k: time_explore(model, k, a.steps) for k in (5, 20)}
        hours = [a.online * (ex[5] + u * up["lamb"]) / 3600 for u in (0.3, 0.1, 0.03)]
        print(f"| {name} | {up['adamw'] * 1e3:.0f} ms | {up['lamb'] * 1e3:.0f} ms | {ex[5] * 1e3:.2f} ms | "
              f"{ex[20] * 1e3:.2f} ms | {' / '.join(f'{x:.1f}' for x in hours)} |", flush=True)


if __name__ == "__main__":
    main()
