"""SB3 (PyTorch) vs sbx (JAX) for training the suite's behaviour policies, on this machine.

Same algorithm, same hyper-parameters (rl-zoo MuJoCo settings of behaviour.HYPERS, 256-256
actor and critics for both libraries), same env (Hopper-v5), one thread each. Same algorithm
and hyper-parameters mean the same sample efficiency in expectation, so what decides which
library "gets there fastest" is learner throughput: env steps/s once learning has started
(one gradient step per env step). Each case runs in a fresh process; cases alternate.

    python bench/behaviour_libs.py [--steps 4000] [--reps 1] [--algos td3 sac]

Prints steps/s per case and the sbx/SB3 ratio per algorithm; `--case` runs one case.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

ENV = "Hopper-v5"
WARMUP = 1_000  # random-action steps before learning (not timed)


def one_case(lib: str, algo: str, steps: int) -> dict:
    os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    import gymnasium as gym
    import numpy as np
    import torch
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.noise import NormalActionNoise

    from decision_transformer.suite.behaviour import HYPERS

    torch.set_num_threads(1)
    if lib == "sbx":
        import sbx as libmod
    else:
        import stable_baselines3 as libmod
    env = gym.make(ENV)
    kw = dict(HYPERS[algo])
    kw["learning_starts"] = WARMUP
    kw["policy_kwargs"] = {"net_arch": [256, 256]}
    if algo == "td3":
        n = env.action_space.shape[0]
        kw["action_noise"] = NormalActionNoise(np.zeros(n), 0.1 * np.ones(n))
    cls = {"td3": libmod.TD3, "sac": libmod.SAC}[algo]
    model = cls("MlpPolicy", env, seed=0, verbose=0, **kw)

    marks: dict[int, float] = {}

    class Clock(BaseCallback):
        def _on_step(self) -> bool:
            # first timed step: after warm-up plus a few hundred steps (JIT compile, caches)
            if self.num_timesteps in (WARMUP + 300, WARMUP + 300 + steps):
                marks[self.num_timesteps] = time.perf_counter()
            return True

    model.learn(total_timesteps=WARMUP + 300 + steps, callback=Clock())
    t = marks[WARMUP + 300 + steps] - marks[WARMUP + 300]
    return {"lib": lib, "algo": algo, "steps": steps, "seconds": t, "steps_per_s": steps / t}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--case")
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--reps", type=int, default=1)
    p.add_argument("--algos", nargs="+", default=["td3", "sac"])
    a = p.parse_args()
    if a.case:
        lib, algo = a.case.split("-")
        print(json.dumps(one_case(lib, algo, a.steps)))
        return
    from _harness import alternate, median

    cases = [f"{lib}-{algo}" for algo in a.algos for lib in ("sb3", "sbx")]
    res = alternate(__file__, cases, a.reps, "--steps", str(a.steps))
    print(f"{ENV}, {a.steps} learning steps per case, 1 thread, median of {a.reps}")
    print(f"{'case':10} {'steps/s':>9} {'peak MB':>8}")
    for c in cases:
        print(f"{c:10} {median(res[c], 'steps_per_s'):9.1f} {median(res[c], 'peak_rss_mb'):8.0f}")
    for algo in a.algos:
        r = median(res[f"sbx-{algo}"], "steps_per_s") / median(res[f"sb3-{algo}"], "steps_per_s")
        print(f"{algo}: sbx / SB3 throughput = {r:.2f}x")


if __name__ == "__main__":
    main()
