"""What clipped actions do to the Online DT: the same data twice, once as recorded and once with its
largest action components pushed to +-1 (as clipping a deterministic policy plus noise to the box
makes them), the same pretraining on each, then episodes with the mean action and with sampled
actions (what `dt finetune` explores with).

    python bench/odt_clipped.py [--dataset dt/hopper/medium-v1] [--share 0.28] [--steps 3000]

The states, rewards and episodes are the same in both arms; only the share `--share` of action
components with the largest magnitudes differs (set to their sign), so the clipped arm's actions
differ little from what produced its rewards. Each arm: `dt train --model odt --preset odt-cpu` for
`--steps` gradient steps on the first `--data-steps` steps of the data (one thread, seed 0), then
`--episodes` episodes each way at the target, on env seeds 0.. (the exact Agent, context 5 as the
fine-tuning presets). It prints, per arm: the share of components at +-1, the head's mean std on
windows of its data, and the returns and episode lengths of both ways of acting.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def make_arms(dataset: str, data_steps: int, share: float, out: Path) -> dict[str, Path]:
    from decision_transformer.data.datasets import load_dataset
    ds = load_dataset(dataset)
    n = int(ds.offsets[min(int(np.searchsorted(ds.offsets, data_steps)), ds.num_episodes)])   # whole episodes
    cols = dict(observations=ds.observations[:n], rewards=ds.rewards[:n], terminations=ds.terminations[:n],
                truncations=ds.truncations[:n])
    a = ds.actions[:n]
    q = np.quantile(np.abs(a), 1.0 - share)
    arms = {"as recorded": a, f"largest {share:.0%} at +-1": np.where(np.abs(a) >= q, np.sign(a), a).astype(np.float32)}
    paths = {}
    for i, (name, acts) in enumerate(arms.items()):
        paths[name] = out / f"arm{i}.npz"
        np.savez(paths[name], actions=acts, **cols)
    return paths


def head_std(run: Path, data: Path) -> float:
    """The Gaussian head's mean std (before tanh) at every real step of 64 windows of the data."""
    import torch
    from decision_transformer.data.datasets import load_dataset
    from decision_transformer.data.sampler import WindowSampler
    from decision_transformer.models.checkpoint import from_pretrained
    m = from_pretrained(run).eval()
    mc = m.config
    b = WindowSampler(load_dataset(str(data)), K=mc.context_length, batch_size=64, scale=mc.return_scale or 1.0,
                      max_ep_len=mc.max_ep_len, seed=0, state_mean=mc.state_mean, state_std=mc.state_std,
                      anchor=m.window_anchor).sample()
    with torch.no_grad():
        pred = m.forward_actions(b["states"], b["actions"], b["returns_to_go"], b["timesteps"], b["attention_mask"])
    log_std = pred.chunk(2, dim=-1)[1][b["attention_mask"].bool()]
    return float(log_std.exp().mean())


def episodes(run: Path, env_id: str, target: float, n: int, deterministic: bool) -> tuple[np.ndarray, np.ndarray]:
    """n episodes at once (env seeds 0..n-1): their returns and lengths."""
    from decision_transformer.envs import make_env
    from decision_transformer.inference.agent import Agent
    from decision_transformer.models.checkpoint import from_pretrained
    envs = [make_env(env_id) for _ in range(n)]
    agent = Agent(from_pretrained(run).eval(), num_envs=n, target_return=target, deterministic=deterministic, seed=0,
                  context_length=5)
    obs = np.stack([e.reset(seed=i)[0] for i, e in enumerate(envs)]).astype(np.float32)
    live, ret, length = np.ones(n, bool), np.zeros(n), np.zeros(n, int)
    while live.any():
        acts, rews = agent.act(obs), np.zeros(n)
        for i in np.flatnonzero(live):
            o, r, term, trunc, _ = envs[i].step(acts[i])
            obs[i], rews[i] = o, r
            ret[i] += r
            length[i] += 1
            live[i] = not (term or trunc)
        agent.observe(rews, np.zeros(n, bool))
    return ret, length


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="dt/hopper/medium-v1")
    ap.add_argument("--env", default="Hopper-v5")
    ap.add_argument("--target", type=float, default=3600.0)
    ap.add_argument("--share", type=float, default=0.28, help="share of action components pushed to +-1")
    ap.add_argument("--data-steps", type=int, default=300_000, help="the data's first steps (whole episodes)")
    ap.add_argument("--steps", type=int, default=3000, help="pretraining gradient steps per arm")
    ap.add_argument("--episodes", type=int, default=10)
    a = ap.parse_args()
    import torch
    torch.set_num_threads(1)
    flags = open("/proc/cpuinfo").read()
    cpu = next((ln.split(":", 1)[1].strip() for ln in flags.splitlines() if ln.startswith("model name")), "?")
    print(f"# {cpu}, {'AVX-512' if 'avx512f' in flags else 'AVX2'}; one torch thread; {a.dataset}, first "
          f"{a.data_steps:,} steps; `--preset odt-cpu`, {a.steps:,} steps, seed 0; {a.episodes} episodes per way "
          f"at target {a.target:g}, context 5")
    print("| actions | at +-1 | head std | mean action: return (length) | sampled: return (length) |")
    print("| --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in make_arms(a.dataset, a.data_steps, a.share, Path(tmp)).items():
            run = Path(tmp) / f"{data.stem}-run"
            subprocess.run([sys.executable, "-m", "decision_transformer", "train", "--dataset", str(data), "--env",
                            a.env, "--preset", "odt-cpu", "--steps", str(a.steps), "--warmup-steps",
                            str(max(1, a.steps // 10)), "--target-return", str(a.target), "--checkpoint-every",
                            str(a.steps), "--output", str(run), "--num-threads", "1", "--quiet"], check=True,
                           stdout=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})
            sat = float((np.abs(np.load(data)["actions"]) >= 0.999).mean())
            cells = []
            for det in (True, False):
                r, L = episodes(run, a.env, a.target, a.episodes, det)
                cells.append(f"{r.mean():.0f} ± {r.std():.0f} ({L.mean():.0f})")
            print(f"| {name} | {sat:.0%} | {head_std(run, data):.2f} | {cells[0]} | {cells[1]} |", flush=True)


if __name__ == "__main__":
    main()
