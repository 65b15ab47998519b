"""SB3 (PyTorch) vs sbx (JAX) DQN for the pixel/discrete behaviour policies, on this machine.

Same algorithm and settings (suite/dqn.py HYPERS: MinAtar 2x256 MLP, one update per step; Atari
Nature CNN, one update per 4 steps), same env, one thread each. Equal settings mean equal sample
efficiency in expectation, so learner throughput decides: env steps/s once learning has started.
Each case runs in a fresh process; cases alternate.

    python bench/dqn_libs.py [--steps 3000] [--reps 1] [--envs MinAtar/Breakout-v1 ALE/Breakout-v5]

Prints steps/s per case and the sbx/SB3 ratio per env; `--case LIB@ENV` runs one case.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

WARMUP = 1_000  # steps before learning (not timed)


def one_case(lib: str, env_id: str, steps: int) -> dict:
    os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    import torch
    from stable_baselines3.common.callbacks import BaseCallback

    from decision_transformer.envs import make_env
    from decision_transformer.suite.dqn import make_dqn

    torch.set_num_threads(1)
    env = make_env(env_id, sticky=True)
    model = make_dqn(env_id, env, total_steps=10 * steps, seed=0, lib=lib)
    model.learning_starts = WARMUP
    marks: dict[int, float] = {}

    class Clock(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps in (WARMUP + 200, WARMUP + 200 + steps):   # after JIT compile, caches
                marks[self.num_timesteps] = time.perf_counter()
            return True

    model.learn(total_timesteps=WARMUP + 200 + steps, callback=Clock())
    t = marks[WARMUP + 200 + steps] - marks[WARMUP + 200]
    return {"lib": lib, "env": env_id, "steps": steps, "seconds": t, "steps_per_s": steps / t}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--case")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--reps", type=int, default=1)
    p.add_argument("--envs", nargs="+", default=["MinAtar/Breakout-v1", "ALE/Breakout-v5"])
    a = p.parse_args()
    if a.case:
        lib, env_id = a.case.split("@")
        print(json.dumps(one_case(lib, env_id, a.steps)))
        return
    from _harness import alternate, median

    cases = [f"{lib}@{e}" for e in a.envs for lib in ("sb3", "sbx")]
    res = alternate(__file__, cases, a.reps, "--steps", str(a.steps))
    print(f"DQN, {a.steps} learning steps per case, 1 thread, median of {a.reps}")
    print(f"{'case':28} {'steps/s':>9} {'peak MB':>8}")
    for c in cases:
        print(f"{c:28} {median(res[c], 'steps_per_s'):9.1f} {median(res[c], 'peak_rss_mb'):8.0f}")
    for e in a.envs:
        r = median(res[f"sbx@{e}"], "steps_per_s") / median(res[f"sb3@{e}"], "steps_per_s")
        print(f"{e}: sbx / SB3 throughput = {r:.2f}x")


if __name__ == "__main__":
    main()
