"""Peak memory of training on a 500k-step Atari dataset, frames packed (the default) vs raw.

The dataset is the suite's Breakout (`dt suite build --env ALE/Breakout-v5`: 500,927 steps of
(1, 84, 84) uint8, `frame_stack: 4`). For each of `pack_frames=True` (the loader's default:
every frame a zlib blob, data/frames.py) and `pack_frames=False` (one raw uint8 array), a fresh
process loads it, builds the sampler (4-frame stacks rebuilt per batch), times batches and runs
a few training steps of the paper's Atari model, and reports its peak resident memory (VmHWM:
this process image only; ru_maxrss would count the parent's peak, which Linux carries across
fork + exec). Printed side by side, with the ratios: packed / raw memory, batch time and step
time. `--synthetic` measures a random-pixel dataset instead (nothing compresses: the worst case).

    python bench/pixel_memory.py [--dataset dt/atari-breakout/replay-v0] [--train-steps 3] [--batches 20]
    python bench/pixel_memory.py --synthetic [--steps 500000] [--dir /tmp/pixel-memory]
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


def measure(dataset: str, pack: bool, train_steps: int, batches: int, out_dir: Path) -> dict:
    import shutil

    import torch

    import decision_transformer.data.datasets as datasets
    from decision_transformer.training.trainer import TrainConfig, Trainer
    torch.set_num_threads(1)
    load = datasets.load_dataset                         # the Trainer loads with pack_frames as asked
    datasets.load_dataset = lambda src, download=False, pack_frames=True: load(src, download, pack)
    t0 = time.time()
    cfg = TrainConfig.from_sources("atari", {"dataset": dataset, "output": str(out_dir / f"run-{pack}"),
                                             "batch_size": 32, "steps": 10 ** 6, "num_threads": 1})
    shutil.rmtree(cfg.output, ignore_errors=True)
    tr = Trainer(cfg, progress=False, log=lambda *a: None)
    load_s = time.time() - t0
    obs = tr.ds.observations
    t0 = time.perf_counter()
    for _ in range(batches):
        tr.sampler.sample()
    batch_s = (time.perf_counter() - t0) / batches
    tr.model.train()
    step_s = []
    for _ in range(train_steps):
        t0 = time.perf_counter()
        loss = tr.loss_on(tr.sampler.sample())
        tr.opt.zero_grad()
        loss.backward()
        tr.opt.step()
        step_s.append(time.perf_counter() - t0)
    shutil.rmtree(cfg.output, ignore_errors=True)
    return {"steps": tr.ds.num_steps, "frames_gb": obs.nbytes / 1e9,
            "held_gb": getattr(obs, "packed_nbytes", obs.nbytes) / 1e9, "load_s": round(load_s, 1),
            "batch_ms": 1e3 * batch_s, "step_ms": 1e3 * min(step_s[1:] or step_s), "peak_rss_gb": _hwm_gb(),
            "state_shape": list(tr.model.config.state_shape), "batch": cfg.batch_size, "K": cfg.context_length}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--dataset", default="dt/atari-breakout/replay-v0", help="a Minari Atari dataset id or directory")
    p.add_argument("--synthetic", action="store_true", help="a random-pixel dataset of --steps frames instead")
    p.add_argument("--steps", type=int, default=500_000)
    p.add_argument("--train-steps", type=int, default=3)
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--dir", default="/tmp/pixel-memory")
    p.add_argument("--measure", choices=["packed", "raw"], help=argparse.SUPPRESS)
    a = p.parse_args()
    dataset = a.dataset
    if a.synthetic:
        d = Path(a.dir) / f"atari-{a.steps}"
        if not (d / "data" / "metadata.json").is_file():
            t0 = time.time()
            write(d, a.steps)
            print(f"wrote {d} in {time.time() - t0:.0f} s")
        dataset = str(d)
    if a.measure:
        print(json.dumps(measure(dataset, a.measure == "packed", a.train_steps, a.batches, Path(a.dir))))
        return
    Path(a.dir).mkdir(parents=True, exist_ok=True)
    res = {}
    for mode in ("packed", "raw"):
        out = subprocess.run([sys.executable, __file__, "--measure", mode, "--dataset", dataset, "--dir", a.dir,
                              "--train-steps", str(a.train_steps), "--batches", str(a.batches)],
                             capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        if out.returncode:
            raise SystemExit(out.stderr[-2000:])
        res[mode] = r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{mode:>6}: {r['steps']:,} frames of (1, 84, 84) uint8 = {r['frames_gb']:.2f} GB, held as "
              f"{r['held_gb']:.2f} GB; loaded in {r['load_s']} s; batch {r['batch_ms']:.1f} ms; training step "
              f"{r['step_ms']:.0f} ms; peak RSS {r['peak_rss_gb']:.2f} GB after {a.train_steps} training steps "
              f"(atari preset, batch {r['batch']}, K {r['K']}, states {r['state_shape']})")
    pk, rw = res["packed"], res["raw"]
    print(f"packed / raw: peak RSS {pk['peak_rss_gb'] / rw['peak_rss_gb']:.2f}x, frames held "
          f"{pk['held_gb'] / rw['held_gb']:.3f}x, load time {pk['load_s'] / rw['load_s']:.2f}x, batch time "
          f"{pk['batch_ms'] / rw['batch_ms']:.2f}x, training step {pk['step_ms'] / rw['step_ms']:.2f}x "
          f"(the batch costs {100 * (pk['batch_ms'] - rw['batch_ms']) / rw['step_ms']:+.1f}% of a raw step)")


if __name__ == "__main__":
    main()
