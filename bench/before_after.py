"""The same benchmark cases on two source trees, alternating: did a change make anything slower?

    python bench/before_after.py [--before 6bb270b] [--reps 5] [--threads 1]

`--before` is a commit (checked out into a temporary git worktree) or a source tree. Each case
runs in a fresh process, the before tree's bench script with that tree's package first on
PYTHONPATH, then the current tree's, alternating (the order flips every repetition), so a drift
in the machine's speed hits both sides alike. Reported: each side's median and after/before
(times: < 1 is faster; rates: > 1 is faster). The cases:
  train_step ours    one paper-config training step (bench/train_step.py), ms
  rollout agent      our Agent, N=1, exact, over a Hopper-v5 episode (bench/rollout.py), ms/step
  rollout onnx       the same with backend="onnxruntime", ms/step
  rollout agentN     our Agent batched over N envs, env-steps/s
Run it on an idle machine: the numbers are timings.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASES = [("train_step.py", "ours", "ms_per_step", ["--steps", "30"]),
         ("rollout.py", "agent", "ms_per_step", ["--steps", "500"]),
         ("rollout.py", "onnx", "ms_per_step", ["--steps", "500"]),
         ("rollout.py", "agentN", "env_steps_per_s", ["--steps", "200", "--num-envs", "50"])]


def run(tree: Path, script: str, case: str, args: list[str], threads: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree / "src"), "OMP_NUM_THREADS": str(threads),
           "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    out = subprocess.run([sys.executable, str(tree / "bench" / script), "--case", case, *args], env=env,
                         capture_output=True, text=True, cwd=tree)
    if out.returncode != 0:
        raise SystemExit(f"{tree.name}: {script} --case {case} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--before", default="6bb270b", help="a commit or a source tree (default: 6bb270b, "
                   "the commit issue #10 was filed against)")
    p.add_argument("--reps", type=int, default=5, help="repetitions per case and side (default 5)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per case (default 1)")
    p.add_argument("--cases", nargs="+", metavar="SCRIPT:CASE", help="a subset, e.g. rollout:onnx (default: all)")
    a = p.parse_args()
    cases = [c for c in CASES if not a.cases or f"{c[0][:-3]}:{c[1]}" in a.cases]
    if not cases:
        p.error(f"--cases: none of {a.cases} is one of " + ", ".join(f"{c[0][:-3]}:{c[1]}" for c in CASES))
    tmp = None
    before = Path(a.before)
    if not before.is_dir():
        tmp = tempfile.mkdtemp(prefix="dt-before-")
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", tmp, a.before], check=True)
        before = Path(tmp)
    try:
        sides = {"before": before, "after": ROOT}
        print(f"before: {a.before}; after: {subprocess.run(['git', '-C', str(ROOT), 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True).stdout.strip()} (working tree); "
              f"{a.threads} thread(s), median of {a.reps}")
        for script, case, key, args in cases:
            got = {s: [] for s in sides}
            for r in range(a.reps):
                for s in (("before", "after") if r % 2 == 0 else ("after", "before")):
                    got[s].append(run(sides[s], script, case, args, a.threads)[key])
            b, f = statistics.median(got["before"]), statistics.median(got["after"])
            unit = "ms" if key == "ms_per_step" else "env-steps/s"
            faster = f < b if key == "ms_per_step" else f > b
            print(f"  {script[:-3]:10s} {case:7s} before {b:9.3f} {unit}, after {f:9.3f} {unit}: after/before "
                  f"{f / b:.3f} ({'faster' if faster else 'slower'})")
    finally:
        if tmp:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", tmp], check=False)


if __name__ == "__main__":
    main()
