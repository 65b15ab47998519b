"""Behaviour-policy training for the dataset suite: resumable, checkpointed often.

A run directory holds everything needed to continue after being killed at any moment:

    RUN/state/model.zip        the learner (sbx format, our own file: trusted)
    RUN/state/replay.pkl       its replay buffer (our own file: trusted)
    RUN/state/progress.json    env steps done, wall time, RNG seed
    RUN/snapshots/<step>.zip   the learner at every evaluation (for picking "medium")
    RUN/evals.jsonl            one line per evaluation: step, mean/std return of the mean action,
                               sample_mean/sample_std of the policy's own samples (SAC), wall time
    RUN/state/finished.json    written once the run has reached its steps or its stop return

Every file is written to a temporary name and renamed, so a kill leaves the previous
checkpoint intact. Resuming loads model + buffer and continues the step count.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from decision_transformer.fileio import Locked, atomic_path, try_lock, write_json_atomic

ALGOS = ("td3", "sac")

# rl-zoo style hyper-parameters for MuJoCo locomotion.
HYPERS = {
    "td3": dict(learning_starts=10_000, batch_size=256, learning_rate=1e-3, train_freq=1, gradient_steps=1),
    "sac": dict(learning_starts=10_000, batch_size=256, learning_rate=3e-4, train_freq=1, gradient_steps=1),
}


def _make(algo: str, env, seed: int, train_freq: int = 1, gradient_steps: int = 1):
    """Every `train_freq` env steps, `gradient_steps` gradient steps (update-to-data ratio G/K).
    The suite's v1 medium runs use K = 8, G = 1: the learner reaches the medium level after several
    times more env steps, so its replay buffer up to that point is D4RL-sized (>= 200k steps), at a
    fraction of the cost. K = G > 1 keeps one update per env step in blocks, as D4RL's rlkit SAC
    did (1000 env steps, then 1000 updates); sbx runs a block's updates in one compiled call."""
    import sbx
    from stable_baselines3.common.noise import NormalActionNoise

    kw = dict(HYPERS[algo], train_freq=train_freq, gradient_steps=gradient_steps)
    if algo == "td3":
        n = env.action_space.shape[0]
        kw["action_noise"] = NormalActionNoise(np.zeros(n), 0.1 * np.ones(n))
        return sbx.TD3("MlpPolicy", env, seed=seed, verbose=0, **kw)
    return sbx.SAC("MlpPolicy", env, seed=seed, verbose=0, **kw)


def evaluate_policy_returns(model, env_id: str, episodes: int, seed: int, deterministic: bool = True) -> list[float]:
    """Returns of the learner's policy over fresh episodes: its mean action (deterministic), or
    actions sampled from it (SAC's own stochastic policy, the one the v1 datasets are made of)."""
    from decision_transformer.suite.policies import evaluate
    return evaluate(lambda obs: model.predict(obs, deterministic=deterministic)[0], env_id, episodes, seed)


def save_chunk(run: Path, model, prog: dict, prog_path: Path, snapshot: Path, rec: dict) -> None:
    """A learner's state after a training chunk, each file atomic: a policy snapshot, the model
    and replay buffer to resume from, the progress file, and one evals.jsonl line."""
    with atomic_path(snapshot) as tmp:
        model.save(str(tmp))
    with atomic_path(run / "state" / "model.zip") as tm, atomic_path(run / "state" / "replay.pkl") as tr:
        model.save(str(tm))
        model.save_replay_buffer(str(tr))
    write_json_atomic(prog_path, prog)
    with open(run / "evals.jsonl", "a") as f:
        f.write(json.dumps(rec) + "\n")


def train_behaviour(env_id: str, run_dir: str | Path, algo: str = "td3", total_steps: int = 1_000_000,
                    chunk: int = 10_000, eval_episodes: int = 5, seed: int = 0, train_freq: int = 1,
                    gradient_steps: int = 1, stop_return: float | None = None, log=print) -> None:
    """Train (or resume) a behaviour policy, checkpointing and evaluating every `chunk` steps.
    stop_return: stop once the mean action's evaluation reaches it (a medium run need not go on)."""
    import gymnasium as gym
    import sbx

    if algo not in ALGOS:
        raise ValueError(f"unknown algorithm {algo!r}: choose one of {', '.join(ALGOS)}")
    run = Path(run_dir)
    (run / "state").mkdir(parents=True, exist_ok=True)
    (run / "snapshots").mkdir(exist_ok=True)
    prog_path = run / "state" / "progress.json"
    try:                                  # one writer per run: a second worker on it skips it
        lock = try_lock(run / "state" / "lock", f"behaviour {env_id} {algo}")
    except Locked as e:
        log(f"{run} is being trained by {e.holder}: skipped")
        return
    env = gym.make(env_id)
    cls = {"td3": sbx.TD3, "sac": sbx.SAC}[algo]
    if prog_path.exists():
        prog = json.loads(prog_path.read_text())
        if (prog.get("train_freq", 1), prog.get("gradient_steps", 1)) != (train_freq, gradient_steps):
            raise ValueError(f"{run} was trained with --train-freq {prog.get('train_freq', 1)} --gradient-steps "
                             f"{prog.get('gradient_steps', 1)}, not {train_freq} and {gradient_steps}")
        model = cls.load(run / "state" / "model.zip", env=env)
        model.load_replay_buffer(run / "state" / "replay.pkl")
        log(f"resumed {env_id} {algo} at {prog['steps']} steps")
    else:
        prog = {"env_id": env_id, "algo": algo, "seed": seed, "train_freq": train_freq,
                "gradient_steps": gradient_steps, "steps": 0, "wall": 0.0}
        model = _make(algo, env, seed, train_freq, gradient_steps)
    while prog["steps"] < total_steps and not prog.get("stopped_at_return"):
        t0 = time.time()
        model.learn(total_timesteps=chunk, reset_num_timesteps=prog["steps"] == 0, progress_bar=False)
        prog["steps"] = int(model.num_timesteps)
        prog["wall"] += time.time() - t0
        rets = evaluate_policy_returns(model, env_id, eval_episodes, seed=10_000 + prog["steps"])
        rec = {"steps": prog["steps"], "mean": float(np.mean(rets)), "std": float(np.std(rets)),
               "wall": round(prog["wall"], 1)}
        if algo == "sac":                     # a stochastic policy: its own samples too
            srets = evaluate_policy_returns(model, env_id, eval_episodes, seed=20_000 + prog["steps"], deterministic=False)
            rec.update(sample_mean=float(np.mean(srets)), sample_std=float(np.std(srets)))
        if stop_return is not None and rec["mean"] >= stop_return:
            prog["stopped_at_return"] = stop_return
        save_chunk(run, model, prog, prog_path, run / "snapshots" / f"{prog['steps']:08d}.zip", rec)
        sampled = f"sampled={rec['sample_mean']:.0f}±{rec['sample_std']:.0f} " if "sample_mean" in rec else ""
        log(f"{env_id} {algo} steps={rec['steps']} return={rec['mean']:.0f}±{rec['std']:.0f} {sampled}"
            f"wall={rec['wall']:.0f}s ({chunk / (time.time() - t0):.0f} steps/s incl. eval)")
    write_json_atomic(run / "state" / "finished.json", prog)
    lock.close()


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser(description="train/resume a behaviour policy")
    p.add_argument("--env", required=True)
    p.add_argument("--algo", default="td3", choices=ALGOS)
    p.add_argument("--steps", type=int, default=1_000_000)
    p.add_argument("--chunk", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-freq", type=int, default=1, help="update every K env steps")
    p.add_argument("--gradient-steps", type=int, default=1, help="gradient steps per update")
    p.add_argument("--stop-return", type=float, default=None,
                   help="stop once the mean action's evaluation return reaches this")
    p.add_argument("--run-dir", required=True)
    a = p.parse_args()
    train_behaviour(a.env, a.run_dir, a.algo, a.steps, a.chunk, seed=a.seed, train_freq=a.train_freq, gradient_steps=a.gradient_steps,
                    stop_return=a.stop_return,
                    log=lambda s: print(time.strftime("%H:%M:%S"), s, flush=True))
