"""sbx SAC on one pinned core: does batching the updates (K env steps, then K updates) help?

    taskset -c 0 python bench/sac_updates.py [--blocks 1 8 32] [--steps 2048]

One update per env step in blocks of K (rl-zoo's SAC hyper-parameters, Hopper-v5), each K in a
fresh process, timed over `--steps` env steps after learning has started. Run it pinned to one
core (taskset): this JAX runs two Eigen threads beside the Python one, and the suite's behaviour
runs are pinned one per core (the campaign's behaviour tasks, results_v1.py). Prints env steps/s = gradient steps/s.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time


def one(k: int, steps: int) -> float:
    import gymnasium as gym
    import sbx
    m = sbx.SAC("MlpPolicy", gym.make("Hopper-v5"), seed=0, verbose=0, learning_starts=500, batch_size=256,
                learning_rate=3e-4, train_freq=k, gradient_steps=k)
    m.learn(1000 + 4 * k)                               # past learning_starts, compiled
    t = time.time()
    m.learn(steps, reset_num_timesteps=False)
    return steps / (time.time() - t)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--blocks", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--steps", type=int, default=2048)
    p.add_argument("--one", type=int, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.one:
        print(f"{one(a.one, a.steps):.1f}")
        sys.exit(0)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for k in a.blocks:
        out = subprocess.run([sys.executable, __file__, "--one", str(k), "--steps", str(a.steps)], env=env,
                             capture_output=True, text=True, check=True).stdout.split()[-1]
        print(f"K = G = {k:>3}: {float(out):.0f} gradient steps/s")
