"""Ours against the peers on the same work: `transformers` (its DecisionTransformerModel, with the
blog's evaluation loop) and d3rlpy (its DecisionTransformer, the real package).

    python bench/peers.py [--reps 3] [--train-steps 60] [--d3rlpy-episodes 3]

d3rlpy pins gymnasium 1.0.0, which this project's environment does not take, so its cases run in
a virtual environment of their own (.venv-peers, made on first use: torch==2.13.0, then d3rlpy and
gymnasium[mujoco]); `--peers-python` points at another one. Every case runs in a fresh process,
one at a time, cases alternating; each prints one JSON line.

The same configuration: K=20, 3 layers, 1 head, width 128, dropout 0.1, batch 64, AdamW (lr 1e-4,
weight decay 1e-4), gradient clip 0.25, states standardised, returns scaled by 1/1000. d3rlpy
embeds states with an MLP (VectorEncoderFactory), not the paper's linear layer: hidden_units [128]
without the last activation is one Linear, the closest it offers.

The same data: Hopper-v5 medium of the suite (dt/hopper/medium-v0, built by `dt suite build`),
written once as flat arrays that both environments read.

Measures, on one torch thread unless stated:
  train      one training step as each library's own loop takes it: a batch of 64 windows sampled
             from the dataset, forward, loss, backward, clip, AdamW, the loss read back (ours: the
             trainer's sampler and update; transformers: our sampler feeding its model; d3rlpy:
             sample_trajectory_batch + update, what its fit() loop runs)
  episode    one 1000-step Hopper episode with exact semantics (the last K steps in full every step),
             on a Hopper that does not end when it falls (terminate_when_unhealthy=False), so every
             policy, trained or not, plays all 1000 steps: our Agent, the blog's loop
             (transformers), d3rlpy's StatefulTransformerWrapper
  eval100    100 such episodes: our batched Agent (dt eval's defaults: 50 envs in each of 2 threads'
             groups, 2 cores) against d3rlpy's wrapper, one episode after another (d3rlpy has no
             batched evaluation for transformers: its evaluate_transformer_with_environment steps
             one env); d3rlpy plays --d3rlpy-episodes of them and its time for 100 is that rate x 100
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
K, B, H, LAYERS, HEADS, DROPOUT, LR, WD, CLIP, SCALE = 20, 64, 128, 3, 1, 0.1, 1e-4, 1e-4, 0.25, 1000.0
TARGET, EP_STEPS = 3600.0, 1000
DATASET = "dt/hopper/medium-v0"
NOFALL = "HopperNoFall-v5"


# ------------------------------------------------------------------ shared by every case (both venvs)

def _register_nofall():
    import gymnasium as gym
    if NOFALL not in gym.registry:
        gym.register(NOFALL, entry_point="gymnasium.envs.mujoco.hopper_v5:HopperEnv", max_episode_steps=EP_STEPS,
                     kwargs={"terminate_when_unhealthy": False})


def _flat(path):
    import numpy as np
    z = np.load(path)
    return {k: z[k] for k in z.files}


def _timed(fn, warmup: int, n: int) -> float:
    """Median seconds of fn() over n calls after warmup calls."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


# ------------------------------------------------------------------ ours and transformers

def _trainer(data, out):
    from decision_transformer.training.trainer import Trainer, TrainConfig
    cfg = TrainConfig.from_sources(None, dict(
        dataset=data, env_id="Hopper-v5", output=out, context_length=K, hidden_size=H, n_layer=LAYERS, n_head=HEADS,
        dropout=DROPOUT, lr=LR, weight_decay=WD, grad_clip=CLIP, batch_size=B, return_scale=SCALE, max_ep_len=1000,
        warmup_steps=10_000, num_threads=1, device="cpu", target_returns=[TARGET]))
    return Trainer(cfg, progress=False, log=lambda *a: None)


def case_train_ours(a):
    tr = _trainer(a.flat, a.tmp)
    tr.model.train()

    def step():
        loss = tr.loss_on(tr.sampler.sample())
        tr._update(loss)
        loss.item()
    return {"s_per_step": _timed(step, 10, a.train_steps)}


def case_profile_ours(a):
    """Where our step's time goes: the share of matrix products (mm, addmm, bmm) in it."""
    from torch.profiler import ProfilerActivity, profile
    tr = _trainer(a.flat, a.tmp)
    tr.model.train()
    for _ in range(5):
        tr._update(tr.loss_on(tr.sampler.sample()))
    with profile(activities=[ProfilerActivity.CPU]) as p:
        for _ in range(10):
            loss = tr.loss_on(tr.sampler.sample())
            tr._update(loss)
            loss.item()
    ev = p.key_averages()
    total = sum(e.self_cpu_time_total for e in ev)
    mm = sum(e.self_cpu_time_total for e in ev if e.key in ("aten::mm", "aten::addmm", "aten::bmm"))
    return {"matmul_share": mm / total}


def case_train_transformers(a):
    import torch
    from transformers import DecisionTransformerConfig, DecisionTransformerModel
    tr = _trainer(a.flat, a.tmp)                   # our sampler: the same windows
    torch.manual_seed(0)
    hf = DecisionTransformerModel(DecisionTransformerConfig(
        state_dim=11, act_dim=3, hidden_size=H, max_ep_len=1000, n_layer=LAYERS, n_head=HEADS,
        resid_pdrop=DROPOUT, embd_pdrop=DROPOUT, attn_pdrop=DROPOUT)).train()
    opt = torch.optim.AdamW(hf.parameters(), lr=LR, weight_decay=WD)

    def step():
        b = tr.sampler.sample()
        _, pred, _ = hf(states=b["states"], actions=b["actions"], rewards=None, returns_to_go=b["returns_to_go"],
                        timesteps=b["timesteps"], attention_mask=b["attention_mask"], return_dict=False)
        m = b["attention_mask"].bool()
        loss = torch.mean((pred[m] - b["actions"][m]) ** 2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(hf.parameters(), CLIP)
        opt.step()
        loss.item()
    return {"s_per_step": _timed(step, 10, a.train_steps)}


def _our_model(a):
    import numpy as np
    import torch

    from decision_transformer import DecisionTransformer, DecisionTransformerConfig
    d = _flat(a.flat)
    torch.manual_seed(0)
    return DecisionTransformer(DecisionTransformerConfig(
        state_dim=11, act_dim=3, hidden_size=H, max_ep_len=1000, n_layer=LAYERS, n_head=HEADS, context_length=K,
        return_scale=SCALE, state_mean=d["observations"].mean(0).tolist(),
        state_std=(d["observations"].std(0) + 1e-6).tolist(), env_id="Hopper-v5", target_returns=[TARGET])).eval(), np


def case_episode_ours(a):
    return _our_episode(a, "torch")


def _our_episode(a, backend: str) -> dict:
    import gymnasium as gym

    from decision_transformer.inference.agent import Agent
    model, np = _our_model(a)
    _register_nofall()
    env = gym.make(NOFALL)
    t = time.perf_counter()                         # ONNX: its ~0.3 s export is counted
    agent = Agent(model, num_envs=1, target_return=TARGET, backend=backend)
    obs, _ = env.reset(seed=0)
    n, done = 0, False
    while not done:
        obs, r, term, trunc, _ = env.step(agent.act(obs[None])[0])
        agent.observe([r], [term or trunc])
        n, done = n + 1, term or trunc
    return {"s": time.perf_counter() - t, "steps": n}


def case_episode_ours_onnx(a):
    """The same, on the ONNX Runtime backend (dt eval --backend onnxruntime)."""
    return _our_episode(a, "onnxruntime")


def case_episode_blog(a):
    import gymnasium as gym
    import torch
    from transformers import DecisionTransformerModel

    from decision_transformer.inference.reference import BlogEpisode
    model, np = _our_model(a)
    with tempfile.TemporaryDirectory() as d:
        model.save_pretrained(d)
        hf = DecisionTransformerModel.from_pretrained(d).eval()
    _register_nofall()
    env = gym.make(NOFALL)
    cfg = model.config
    t = time.perf_counter()
    ep = BlogEpisode(hf, np.array(cfg.state_mean), np.array(cfg.state_std), TARGET, SCALE, K, 11, 3)
    obs, _ = env.reset(seed=0)
    n, done = 0, False
    with torch.no_grad():
        while not done:
            obs, r, term, trunc, _ = env.step(ep.act(obs))
            ep.observe(r)
            n, done = n + 1, term or trunc
    return {"s": time.perf_counter() - t, "steps": n}


def case_eval100_ours(a):
    from decision_transformer.evaluation.evaluate import run_episodes
    model, np = _our_model(a)
    _register_nofall()
    t = time.perf_counter()
    returns, lengths = run_episodes(model, NOFALL, TARGET, episodes=100, num_envs=100, seed=0, threads=2)
    return {"s": time.perf_counter() - t, "steps": int(np.sum(lengths)), "episodes": 100}


# ------------------------------------------------------------------ d3rlpy (in the peers' venv)

def _d3rlpy_algo(a):
    import d3rlpy
    import numpy as np
    from d3rlpy.logging import NoopAdapterFactory
    d = _flat(a.flat)
    terminals = d["terminations"].astype(np.float32)           # d3rlpy: never both at one step; a step
    timeouts = (d["truncations"] & ~d["terminations"]).astype(np.float32)   # that is both ended the episode
    dataset = d3rlpy.dataset.MDPDataset(d["observations"], d["actions"], d["rewards"], terminals, timeouts)
    algo = d3rlpy.algos.DecisionTransformerConfig(
        batch_size=B, context_size=K, learning_rate=LR, num_heads=HEADS, num_layers=LAYERS, max_timestep=1000,
        attn_dropout=DROPOUT, resid_dropout=DROPOUT, embed_dropout=DROPOUT, activation_type="relu",
        encoder_factory=d3rlpy.models.VectorEncoderFactory(hidden_units=[H], exclude_last_activation=True),
        optim_factory=d3rlpy.optimizers.AdamWFactory(
            weight_decay=WD, clip_grad_norm=CLIP,
            lr_scheduler_factory=d3rlpy.optimizers.WarmupSchedulerFactory(warmup_steps=10_000)),
        observation_scaler=d3rlpy.preprocessing.StandardObservationScaler(),
        reward_scaler=d3rlpy.preprocessing.MultiplyRewardScaler(1.0 / SCALE),
    ).create(device="cpu:0")
    # one fit step builds the model and fits the scalers, as a user's fit() does
    algo.fit(dataset, n_steps=1, n_steps_per_epoch=1, logger_adapter=NoopAdapterFactory(), show_progress=False)
    return algo, dataset


def case_train_d3rlpy(a):
    algo, dataset = _d3rlpy_algo(a)

    def step():
        algo.update(dataset.sample_trajectory_batch(B, length=K))       # returns floats: the loss read back
    return {"s_per_step": _timed(step, 10, a.train_steps)}


def _d3rlpy_episodes(a, episodes: int) -> dict:
    import gymnasium as gym
    algo, _ = _d3rlpy_algo(a)
    _register_nofall()
    env = gym.make(NOFALL)
    t, n = time.perf_counter(), 0
    for e in range(episodes):
        wrapper = algo.as_stateful_wrapper(target_return=TARGET)
        obs, _ = env.reset(seed=e)
        r, done = 0.0, False
        while not done:
            obs, r, term, trunc, _ = env.step(wrapper.predict(obs, r))
            n, done = n + 1, term or trunc
    return {"s": time.perf_counter() - t, "steps": n, "episodes": episodes}


def case_episode_d3rlpy(a):
    return _d3rlpy_episodes(a, 1)


def case_eval100_d3rlpy(a):
    out = _d3rlpy_episodes(a, a.d3rlpy_episodes)
    out["s_for_100"] = out["s"] * 100 / a.d3rlpy_episodes
    return out


CASES = {n[5:].replace("_", "-"): f for n, f in list(globals().items()) if n.startswith("case_")}
PEER_CASES = {c for c in CASES if c.endswith("d3rlpy")}


# ------------------------------------------------------------------ the driver

def _peers_python(path: str | None) -> str:
    if path:
        return path
    venv = ROOT / ".venv-peers"
    py = venv / "bin" / "python"
    if not py.exists():
        print(f"making {venv} (torch==2.13.0, d3rlpy, gymnasium[mujoco]) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "pip"), "install", "-q"]
        subprocess.run(pip + ["torch==2.13.0"], check=True)             # first: the CPU wheel, never a CUDA build
        subprocess.run(pip + ["d3rlpy", "gymnasium[mujoco]"], check=True)
    return str(py)


def _run(case: str, a, peers_py: str) -> dict:
    py = peers_py if case in PEER_CASES else sys.executable
    env = {**os.environ, "OMP_NUM_THREADS": "1" if not case.startswith("eval100") else os.environ.get("OMP_NUM_THREADS", "2")}
    cmd = [py, __file__, "--case", case, "--flat", a.flat, "--train-steps", str(a.train_steps),
           "--d3rlpy-episodes", str(a.d3rlpy_episodes)]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    if r.returncode:
        raise SystemExit(f"case {case} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _write_flat(path: Path) -> None:
    import numpy as np

    from decision_transformer.data.datasets import load_dataset
    ds = load_dataset(DATASET)
    np.savez(path, observations=ds.observations.astype(np.float32), actions=ds.actions.astype(np.float32),
             rewards=ds.rewards.astype(np.float32), terminations=ds.terminations, truncations=ds.truncations)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--case", choices=sorted(CASES))
    p.add_argument("--flat", help="the dataset as flat arrays (.npz); made from dt/hopper/medium-v0 if not given")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--train-steps", type=int, default=60)
    p.add_argument("--d3rlpy-episodes", type=int, default=3)
    p.add_argument("--peers-python", help="a python with d3rlpy installed (default: .venv-peers, made if missing)")
    p.add_argument("--only", nargs="+", choices=("train", "episode", "eval100"), default=["train", "episode", "eval100"])
    a = p.parse_args()
    if a.case:
        import torch
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        with tempfile.TemporaryDirectory() as tmp:
            a.tmp = str(Path(tmp) / "run")
            print(json.dumps(CASES[a.case](a)))
        return
    peers_py = _peers_python(a.peers_python)
    with tempfile.TemporaryDirectory() as tmp:
        if not a.flat:
            a.flat = str(Path(tmp) / "hopper-medium.npz")
            _write_flat(Path(a.flat))
        groups = {"train": ["train-ours", "train-transformers", "train-d3rlpy"],
                  "episode": ["episode-ours", "episode-ours-onnx", "episode-blog", "episode-d3rlpy"],
                  "eval100": ["eval100-ours", "eval100-d3rlpy"]}
        import platform
        print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; {DATASET}; "
              f"{a.reps} rep(s), cases alternating, each in a fresh process")
        for g in a.only:
            cases, res = groups[g], {c: [] for c in groups[g]}
            for r in range(a.reps):
                for c in (cases if r % 2 == 0 else cases[::-1]):
                    res[c].append(_run(c, a, peers_py))
            if g == "train":
                ms = {c: 1000 * statistics.median(x["s_per_step"] for x in res[c]) for c in cases}
                print("training step, ms (median over reps of the median step): " +
                      ", ".join(f"{c[6:]} {v:.1f}" for c, v in ms.items()))
                print(f"  ours vs transformers {ms['train-transformers'] / ms['train-ours']:.2f}x, "
                      f"ours vs d3rlpy {ms['train-d3rlpy'] / ms['train-ours']:.2f}x (goal >= 1.5x)")
                share = _run("profile-ours", a, peers_py)["matmul_share"]
                floor = share * ms["train-ours"]
                print(f"  {100 * share:.0f}% of our step is matrix products (mm, addmm, bmm: {floor:.0f} ms); with no other "
                      f"work at all ours would be {ms['train-d3rlpy'] / floor:.2f}x d3rlpy, "
                      f"{ms['train-transformers'] / floor:.2f}x transformers")
            elif g == "episode":
                s = {c: statistics.median(x["s"] for x in res[c]) for c in cases}
                assert all(x["steps"] == EP_STEPS for c in cases for x in res[c])
                print("one 1000-step episode, exact semantics, s: " + ", ".join(f"{c[8:]} {v:.2f}" for c, v in s.items()))
                for ours in ("episode-ours", "episode-ours-onnx"):
                    print(f"  {ours[8:]}: vs the blog loop (transformers) {s['episode-blog'] / s[ours]:.2f}x, "
                          f"vs d3rlpy {s['episode-d3rlpy'] / s[ours]:.2f}x (goal >= 1.5x)")
            else:
                ours = statistics.median(x["s"] for x in res["eval100-ours"])
                d3 = statistics.median(x["s_for_100"] for x in res["eval100-d3rlpy"])
                print(f"100 episodes (100,000 steps): ours batched {ours:.1f} s, d3rlpy's wrapper {d3:.1f} s "
                      f"(from {a.d3rlpy_episodes} episodes, one after another)")
                print(f"  ours vs d3rlpy {d3 / ours:.2f}x (goal >= 1.5x)")


if __name__ == "__main__":
    main()
