"""`dt train --compile` (torch.compile of the training forward) vs eager, on this machine.

Two fresh `dt train` runs of the paper config (batch 64, dropout 0.1) on one thread; steps/s is
the median of the logged rates after the first interval, which holds the compilation. Also
prints how long the first interval took (compilation included).

    python bench/compile.py [--dataset dt/hopper/medium-v0] [--steps 300]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(out: Path, extra: list[str], dataset: str, steps: int) -> tuple[float, float]:
    t0 = time.time()
    subprocess.run([sys.executable, "-m", "decision_transformer", "train", "--dataset", dataset, "--preset", "paper",
                    "--steps", str(steps), "--log-every", "50", "--checkpoint-every", "100000", "--num-threads", "1",
                    "--device", "cpu", "--quiet", "--output", str(out), *extra], check=True, capture_output=True,
                   env={**os.environ, "OMP_NUM_THREADS": "1"})
    wall = time.time() - t0
    rows = [r.split(",") for r in (out / "metrics.csv").read_text().splitlines()[1:] if r.split(",")[3]]
    return statistics.median(float(r[3]) for r in rows[1:]), wall


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--dataset", default="dt/hopper/medium-v0")
    p.add_argument("--steps", type=int, default=300)
    a = p.parse_args()
    d = Path(tempfile.mkdtemp(prefix="bench-compile-"))
    try:
        eager, we = run(d / "eager", [], a.dataset, a.steps)
        comp, wc = run(d / "compiled", ["--compile"], a.dataset, a.steps)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    print(f"paper config, 1 thread, {a.steps} steps, {a.dataset}")
    print(f"eager     {eager:6.2f} steps/s  (whole run {we:5.0f} s)")
    print(f"compiled  {comp:6.2f} steps/s  (whole run {wc:5.0f} s, compilation included)  {comp / eager:.2f}x")


if __name__ == "__main__":
    main()
