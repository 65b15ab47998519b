"""Peak memory of training on a 500k-step Atari dataset: frames stay uint8, never copied as floats.

Writes a synthetic Atari-shaped Minari dataset once (STEPS frames of (1, 84, 84) uint8, episodes
of ~2,000 steps, `frame_stack: 4`; random pixels, so nothing compresses), then, in a fresh
process, loads it, builds the sampler (4-frame stacks rebuilt per batch) and runs a few training
steps of the paper's Atari model, and reports the peak resident memory (VmHWM: this process
image only; ru_maxrss would count the writer's peak, which Linux carries across fork + exec)
beside the frames' own size.

    python bench/pixel_memory.py [--steps 500000] [--train-steps 3] [--dir /tmp/pixel-memory]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ENV = "ALE/Breakout-v5"


def write(d: Path, steps: int) -> None:
    import numpy as np

    from decision_transformer.data.datasets import Episode
    from decision_transformer.suite.collect import write_minari
    rng = np.random.default_rng(0)
    eps, left = [], steps
    while left > 0:
        T = min(left, int(rng.integers(1500, 2500)))
        frames = rng.integers(0, 256, size=(T + 1, 1, 84, 84), dtype=np.uint8)
        eps.append(Episode.from_steps(list(frames), list(rng.integers(0, 4, T)), list(rng.random(T).round()),
                                      [False] * (T - 1) + [True], [False] * T))
        left -= T
    write_minari("bench/atari-memory-v0", d, eps, ENV, 1.0, 30.0, "bench/pixel_memory.py", True)


def _hwm_gb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / 1e9
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6     # not Linux


def measure(d: Path, train_steps: int) -> dict:
    import torch

    from decision_transformer.training.trainer import TrainConfig, Trainer
    torch.set_num_threads(1)
    t0 = time.time()
    cfg = TrainConfig.from_sources("atari", {"dataset": str(d), "output": str(d.parent / "run"), "batch_size": 32,
                                             "steps": 10 ** 6, "num_threads": 1})
    import shutil
    shutil.rmtree(cfg.output, ignore_errors=True)
    tr = Trainer(cfg, progress=False, log=lambda *a: None)
    load_s = time.time() - t0
    tr.model.train()
    for _ in range(train_steps):
        loss = tr.loss_on(tr.sampler.sample())
        tr.opt.zero_grad()
        loss.backward()
        tr.opt.step()
    return {"steps": tr.ds.num_steps, "frames_gb": tr.ds.observations.nbytes / 1e9, "load_s": round(load_s, 1),
            "peak_rss_gb": _hwm_gb(),
            "state_shape": list(tr.model.config.state_shape), "batch": cfg.batch_size, "K": cfg.context_length}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=500_000)
    p.add_argument("--train-steps", type=int, default=3)
    p.add_argument("--dir", default="/tmp/pixel-memory")
    p.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    d = Path(a.dir) / f"atari-{a.steps}"
    if a.measure:
        print(json.dumps(measure(d, a.train_steps)))
        return
    if not (d / "data" / "metadata.json").is_file():
        t0 = time.time()
        write(d, a.steps)
        print(f"wrote {d} in {time.time() - t0:.0f} s")
    out = subprocess.run([sys.executable, __file__, "--measure", "--steps", str(a.steps), "--dir", a.dir,
                          "--train-steps", str(a.train_steps)], capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    if out.returncode:
        raise SystemExit(out.stderr[-2000:])
    r = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{r['steps']:,} frames of (1, 84, 84) uint8 = {r['frames_gb']:.2f} GB; loaded in {r['load_s']} s; "
          f"peak RSS {r['peak_rss_gb']:.2f} GB after {a.train_steps} training steps "
          f"(atari preset, batch {r['batch']}, K {r['K']}, states {r['state_shape']})")


if __name__ == "__main__":
    main()
