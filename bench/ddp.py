"""Training throughput: 2 processes under torchrun (gloo, one thread each, global batch 64) vs one
process with one and with two threads, at the paper config, on this machine.

    python bench/ddp.py [--dataset dt/hopper/medium-v0] [--steps 300]

Each case is a fresh `dt train` run; steps/s is the median of its logged rates after the first
interval (warm-up). Run it with nothing else on the machine: a busy core slows a 2-thread job
3-4x (DEVELOPERS.md).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

PAPER = ["--preset", "paper", "--batch-size", "64", "--log-every", "50", "--checkpoint-every", "100000", "--quiet",
         "--device", "cpu"]


def rate(run: Path) -> float:
    rows = [r.split(",") for r in (run / "metrics.csv").read_text().splitlines()[1:] if r.split(",")[3]]
    return statistics.median(float(r[3]) for r in rows[1:])


def case(name: str, cmd: list[str], threads: int, out: Path) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    subprocess.run(cmd + ["--output", str(out / name), "--num-threads", str(threads)], env=env, check=True,
                   capture_output=True)
    return rate(out / name)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--dataset", default="dt/hopper/medium-v0")
    p.add_argument("--steps", type=int, default=300)
    a = p.parse_args()
    base = ["--dataset", a.dataset, "--steps", str(a.steps), *PAPER]
    dt = [sys.executable, "-m", "decision_transformer", "train", *base]
    tr = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
          "-m", "decision_transformer", "train", *base]
    out = Path(tempfile.mkdtemp(prefix="bench-ddp-"))
    try:
        r1 = case("one-1t", dt, 1, out)
        r2 = case("one-2t", dt, 2, out)
        rd = case("ddp-2x1t", tr, 1, out)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    print(f"paper config, batch 64 (global), {a.steps} steps, {a.dataset}")
    print(f"1 process, 1 thread     {r1:7.2f} steps/s")
    print(f"1 process, 2 threads    {r2:7.2f} steps/s  ({r2 / r1:.2f}x)")
    print(f"2 processes x 1 thread  {rd:7.2f} steps/s  ({rd / r1:.2f}x; vs 2 threads {rd / r2:.2f}x)")


if __name__ == "__main__":
    main()
