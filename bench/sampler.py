"""Window sampler speed: our vectorised sampler vs a per-sample loop like the official get_batch.

    python bench/sampler.py [--reps 5]

Both draw batch 64, K=20 from the committed Hopper-v5 medium-replay data (70k steps, ~870
episodes) with the same semantics (length-weighted episodes, uniform start, RTG, left padding,
normalised states). Also reported: the sampler's time as a share of one paper-config training
step (bench/train_step.py measures ~69 ms for ours on this machine; measured again here).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def official_style_get_batch(ds, rtg, mean, std, rng, B=64, K=20, max_ep_len=1000):
    """The official code's structure: a Python loop over samples, concatenating padded pieces."""
    p = ds.lengths / ds.num_steps
    eps = rng.choice(ds.num_episodes, size=B, p=p)
    s, a, r, t, m = [], [], [], [], []
    for ep in eps:
        lo, hi = ds.offsets[ep], ds.offsets[ep + 1]
        si = rng.integers(0, hi - lo)
        obs = ds.observations[lo + si:lo + si + K][None]
        act = ds.actions[lo + si:lo + si + K][None]
        rt = rtg[lo + si:lo + si + K][None, :, None]
        ts = np.minimum(np.arange(si, si + obs.shape[1]), max_ep_len - 1)[None]
        tlen = obs.shape[1]
        s.append(np.concatenate([np.zeros((1, K - tlen, obs.shape[2])), (obs - mean) / std], axis=1))
        a.append(np.concatenate([np.zeros((1, K - tlen, act.shape[2])), act], axis=1))
        r.append(np.concatenate([np.zeros((1, K - tlen, 1)), rt], axis=1))
        t.append(np.concatenate([np.zeros((1, K - tlen), dtype=np.int64), ts], axis=1))
        m.append(np.concatenate([np.zeros((1, K - tlen)), np.ones((1, tlen))], axis=1))
    return {"states": torch.from_numpy(np.concatenate(s)).float(), "actions": torch.from_numpy(np.concatenate(a)).float(),
            "returns_to_go": torch.from_numpy(np.concatenate(r)).float(), "timesteps": torch.from_numpy(np.concatenate(t)),
            "attention_mask": torch.from_numpy(np.concatenate(m)).float()}


def main():
    sys.path.insert(0, str(ROOT / "bench"))
    from decision_transformer.data.datasets import load_dataset
    from decision_transformer.data.sampler import WindowSampler
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    manifest = json.loads((ROOT / "suite" / "manifest.json").read_text())
    ds = load_dataset(ROOT / "suite" / manifest["Hopper-v5"]["medium-replay"]["file"])
    sp = WindowSampler(ds, K=20, batch_size=64, seed=0)
    rng = np.random.default_rng(0)
    n = 200
    ours, loop = [], []
    for _ in range(a.reps):
        t0 = time.perf_counter()
        for _ in range(n):
            sp.sample()
        ours.append((time.perf_counter() - t0) / n * 1e3)
        t0 = time.perf_counter()
        for _ in range(n):
            official_style_get_batch(ds, sp.rtg, sp.state_mean, sp.state_std, rng)
        loop.append((time.perf_counter() - t0) / n * 1e3)
    from train_step import _batch, _model  # one training step of ours, same process
    model, batch = _model("ours"), _batch()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    keys = ("states", "actions", "returns_to_go", "timesteps", "attention_mask")
    def step():
        loss = ((model.forward_actions(*(batch[k] for k in keys)) - batch["actions"]) ** 2).mean()
        opt.zero_grad(); loss.backward(); opt.step()
    for _ in range(3):
        step()
    t0 = time.perf_counter()
    for _ in range(10):
        step()
    step_ms = (time.perf_counter() - t0) / 10 * 1e3
    o, l = float(np.median(ours)), float(np.median(loop))
    print(f"batch 64, K=20, {ds.num_episodes} episodes / {ds.num_steps} steps (median of {a.reps})")
    print(f"  per-sample loop (official style) {l:7.3f} ms/batch")
    print(f"  ours (vectorised)                {o:7.3f} ms/batch   {l / o:.1f}x faster (goal >= 10x)")
    print(f"  one training step of ours        {step_ms:7.1f} ms: the sampler is {o / step_ms:.1%} of it (goal < 5%)")


if __name__ == "__main__":
    main()
