"""BC's history length on HalfCheetah's expert data: the official code's MLP (`dt train --model bc`)
on the last K states, K = 20 (the official default, what the campaign's BC and 10%BC use) against
K = 1 (the current state only, as CORL's and d3rlpy's BC), everything else the same.

    python bench/bc_context.py [--dataset dt/halfcheetah/expert-v1] [--steps 20000] [--episodes 10]

Each arm: `dt train --model bc --preset <env> --context-length K` for `--steps` gradient steps (one
thread, seed 0), then `--episodes` episodes at the preset's first target on env seeds 0.. (the
exact Agent; BC ignores the target). It prints, per K: the final training loss, and the return
(mean ± std, min / median / max) and its normalised score with the dataset's references. docs/results.md's
findings cite it: on suite v1's halfcheetah the campaign's 10%BC (K = 20) stands still.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="dt/halfcheetah/expert-v1")
    ap.add_argument("--preset", default="halfcheetah")
    ap.add_argument("--contexts", default="20,1", help="the K of each arm, comma-separated")
    ap.add_argument("--steps", type=int, default=20_000, help="gradient steps per arm (the campaign's BC: 20k)")
    ap.add_argument("--episodes", type=int, default=10)
    a = ap.parse_args()
    import torch
    torch.set_num_threads(1)
    from decision_transformer.evaluation.evaluate import evaluate
    from decision_transformer.models.checkpoint import from_pretrained
    flags = open("/proc/cpuinfo").read()
    cpu = next((ln.split(":", 1)[1].strip() for ln in flags.splitlines() if ln.startswith("model name")), "?")
    print(f"# {cpu}, {'AVX-512' if 'avx512f' in flags else 'AVX2'}; one torch thread; {a.dataset}; `dt train "
          f"--model bc --preset {a.preset}`, {a.steps:,} steps, seed 0; {a.episodes} episodes, env seeds from 0")
    print("| K (states the MLP sees) | final loss | return: mean ± std | min / median / max | normalised |")
    print("| --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for k in (int(x) for x in a.contexts.split(",")):
            run = Path(tmp) / f"bc-k{k}"
            subprocess.run([sys.executable, "-m", "decision_transformer", "train", "--dataset", a.dataset, "--model",
                            "bc", "--preset", a.preset, "--context-length", str(k), "--steps", str(a.steps),
                            "--checkpoint-every", str(a.steps), "--output", str(run), "--num-threads", "1", "--quiet"],
                           check=True, stdout=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})
            with open(run / "metrics.csv") as f:
                loss = float(list(csv.DictReader(f))[-1]["loss"])
            model = from_pretrained(run).eval()
            res = evaluate(model, model.config.env_id, model.config.target_returns[:1], episodes=a.episodes,
                           num_envs=a.episodes, threads=1)[0]
            r = np.asarray(res["returns"], dtype=np.float64)
            print(f"| {k} | {loss:.4f} | {r.mean():.0f} ± {r.std():.0f} | {r.min():.0f} / {np.median(r):.0f} / "
                  f"{r.max():.0f} | {res['normalized_x100']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
