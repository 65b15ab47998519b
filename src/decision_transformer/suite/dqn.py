"""DQN behaviour policies for pixel and discrete-action datasets, logging their replay stream.

DQN-Replay (the Decision Transformer paper's Atari data) is the replay stream of a DQN run: every
transition the agent saw while it learned, from the first epsilon-greedy steps to the last. We
make the same here: `train_dqn` trains DQN and writes the stream as it goes, and `replay_dataset` samples a dataset from that stream the
way the paper sampled DQN-Replay (see there).

A run directory, resumable after a kill at any moment:

    RUN/progress.json            env steps done, wall time, settings
    RUN/state/model.zip          the learner (SB3 format, our own file: trusted)
    RUN/state/replay.pkl         its replay buffer (our own file)
    RUN/stream/<start>.npz       the replay stream, one file per chunk of steps, in order
    RUN/snapshots/<step>.zip     the learner after each chunk
    RUN/evals.jsonl              per chunk: greedy-policy return (mean, std), epsilon, wall time

Stream files hold each frame once, as stored by datasets (envs.stored_frame: Atari keeps the
newest frame of the stack), uint8, with actions, raw rewards, terminations, truncations and
the observation after each episode's last step. A chunk is written only once complete, with
the learner's state, so after a kill the stream and the learner agree: the steps of an
unfinished chunk are rerun.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from decision_transformer.envs import family, make_env, stored_frame
from decision_transformer.fileio import atomic_path
from decision_transformer.suite.behaviour import save_chunk

# Stable-Baselines3's DQN: on this CPU, one thread, it steps 1.2x faster than sbx's on MinAtar and
# 10x faster on Atari (bench/dqn_libs.py, docs/pixels.md). MinAtar: the MinAtar paper's settings
# (Young & Tian, 2019) with Adam, a 2x256 MLP on the flat binary frame and, for CPU time, one
# update per 4 steps (Nature DQN's period) instead of every step; Atari: rl-zoo's DQN settings,
# learning from 20k steps, epsilon decayed over 250k.
HYPERS = {
    "minatar": dict(policy="MlpPolicy", buffer_size=100_000, learning_starts=5_000, batch_size=32,
                    learning_rate=2.5e-4, gamma=0.99, target_update_interval=1_000, train_freq=4,
                    gradient_steps=1, exploration_initial_eps=1.0, exploration_final_eps=0.1,
                    exploration_steps=100_000),
    "atari": dict(policy="CnnPolicy", buffer_size=100_000, learning_starts=20_000, batch_size=32,
                  learning_rate=1e-4, gamma=0.99, target_update_interval=1_000, train_freq=4,
                  gradient_steps=1, exploration_initial_eps=1.0, exploration_final_eps=0.01,
                  exploration_steps=250_000, optimize_memory_usage=True),
}


def one_thread() -> None:
    """JAX (XLA) on one thread, set before jax is imported."""
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")


def make_dqn(env_id: str, env, total_steps: int, seed: int, lib: str = "sb3"):
    """A fresh DQN learner with the family's settings."""
    one_thread()
    if lib == "sbx":
        import sbx as libmod
    else:
        import stable_baselines3 as libmod
    kw = dict(HYPERS[family(env_id)])
    policy = kw.pop("policy")
    kw["exploration_fraction"] = min(1.0, kw.pop("exploration_steps") / total_steps)
    if lib == "sbx":
        kw.pop("optimize_memory_usage", None)            # sbx's DQN has no such option
    if lib == "sb3" and kw.get("optimize_memory_usage"):
        kw["replay_buffer_kwargs"] = {"handle_timeout_termination": False}
    return libmod.DQN(policy, env, seed=seed, verbose=0, **kw)


class StreamLog:
    """A callback body: records every transition the learner takes, in order (module docstring)."""

    def __init__(self, env_id: str):
        self.env_id = env_id
        self.clear()

    def clear(self) -> None:
        self.obs, self.act, self.rew, self.term, self.trunc, self.final = [], [], [], [], [], {}

    def __len__(self):
        return len(self.rew)

    def record(self, model, loc: dict) -> None:
        """From an off-policy learner's rollout locals (one env): the observation the action was
        taken in is still `model._last_obs` when callbacks run."""
        info = loc["infos"][0]
        done = bool(loc["dones"][0])
        trunc = done and bool(info.get("TimeLimit.truncated", False))
        self.obs.append(stored_frame(self.env_id, np.asarray(model._last_obs[0], dtype=np.uint8)))
        self.act.append(int(np.asarray(loc["actions"]).reshape(-1)[0]))
        self.rew.append(float(loc["rewards"][0]))
        self.term.append(done and not trunc)
        self.trunc.append(trunc)
        if done:
            self.final[len(self.rew) - 1] = stored_frame(self.env_id, np.asarray(info["terminal_observation"], np.uint8))

    def save(self, path: Path) -> None:
        ends = np.array(sorted(self.final), dtype=np.int64)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, observations=np.stack(self.obs), actions=np.array(self.act, np.int64),
                                    rewards=np.array(self.rew, np.float32), terminations=np.array(self.term),
                                    truncations=np.array(self.trunc), final_index=ends,
                                    final_observations=np.stack([self.final[i] for i in ends]) if len(ends)
                                    else np.zeros((0, *self.obs[0].shape), np.uint8))


# Evaluation epsilon: MinAtar greedy; Atari 0.01 (Dopamine's is 0.001, Nature DQN's 0.05), so a
# policy that never serves the ball does not play the whole 27,000-step limit of every episode.
EVAL_EPSILON = {"minatar": 0.0, "atari": 0.01}


def greedy_returns(model, env_id: str, episodes: int, seed: int) -> list[float]:
    """Returns of the learner's greedy policy (epsilon = EVAL_EPSILON, seeded) over fresh episodes."""
    eps = EVAL_EPSILON.get(family(env_id), 0.0)
    rng = np.random.default_rng(seed)
    probe = make_env(env_id)
    n = probe.action_space.n
    probe.close()

    def act(obs):
        if eps and rng.random() < eps:
            return int(rng.integers(n))
        return int(np.asarray(model.predict(obs[None], deterministic=True)[0]).reshape(-1)[0])
    from decision_transformer.suite.policies import evaluate
    return evaluate(act, env_id, episodes, seed)


def train_dqn(env_id: str, run_dir, total_steps: int = 1_000_000, chunk: int = 50_000, eval_episodes: int = 10,
              seed: int = 0, log=print) -> dict:
    """Train (or resume) DQN on env_id, logging the replay stream; returns progress.json's dict."""
    import torch
    from stable_baselines3 import DQN
    from stable_baselines3.common.callbacks import BaseCallback

    torch.set_num_threads(1)

    run = Path(run_dir)
    for d in ("state", "stream", "snapshots"):
        (run / d).mkdir(parents=True, exist_ok=True)
    prog_path = run / "progress.json"
    env = make_env(env_id, sticky=True)                  # Atari: DQN-Replay's sticky actions; MinAtar: its own
    if prog_path.exists():
        prog = json.loads(prog_path.read_text())
        if prog["env_id"] != env_id:
            raise ValueError(f"{run} holds a DQN run on {prog['env_id']}, not {env_id}")
        model = DQN.load(run / "state" / "model.zip", env=env)
        model.load_replay_buffer(run / "state" / "replay.pkl")
        model.set_random_seed(seed + prog["steps"])
        prog.setdefault("resumed_at", []).append(prog["steps"])   # the episode under way was cut here
        log(f"resumed {env_id} DQN at {prog['steps']} steps")
    else:
        prog = {"env_id": env_id, "algo": "dqn (stable-baselines3)", "seed": seed, "steps": 0, "wall": 0.0,
                "schedule_steps": total_steps, "hypers": HYPERS[family(env_id)]}
        model = make_dqn(env_id, env, total_steps, seed)
    prog["total_steps"] = total_steps              # may grow on resume; epsilon keeps its first schedule
    stream = StreamLog(env_id)

    class Log(BaseCallback):
        """Records each step. learn() runs one chunk; its progress (which drives the epsilon
        schedule) is measured against the whole run, not the chunk."""

        def _on_training_start(self) -> None:
            self.model._total_timesteps = prog["schedule_steps"]

        def _on_step(self) -> bool:
            stream.record(self.model, self.locals)
            return True

    while prog["steps"] < total_steps:
        t0 = time.time()
        stream.clear()
        start = prog["steps"]
        model.learn(total_timesteps=min(chunk, total_steps - start), reset_num_timesteps=start == 0,
                    callback=Log(), progress_bar=False)
        prog["steps"] = int(model.num_timesteps)
        prog["wall"] += time.time() - t0
        rets = greedy_returns(model, env_id, eval_episodes, seed=10_000 + prog["steps"])
        stream.save(run / "stream" / f"{start:09d}.npz")
        rec = {"steps": prog["steps"], "mean": float(np.mean(rets)), "std": float(np.std(rets)),
               "epsilon": float(model.exploration_rate), "stream_mean": _stream_return(stream),
               "wall": round(prog["wall"], 1)}
        save_chunk(run, model, prog, prog_path, run / "snapshots" / f"{prog['steps']:09d}.zip", rec)
        log(f"{env_id} dqn steps={rec['steps']} greedy return={rec['mean']:.1f}±{rec['std']:.1f} "
            f"eps={rec['epsilon']:.2f} wall={rec['wall']:.0f}s ({(prog['steps'] - start) / (time.time() - t0):.0f} "
            "steps/s incl. eval)")
    env.close()
    return prog


def _stream_return(s: StreamLog) -> float | None:
    """Mean return of the episodes that ended in the chunk (their earlier steps may be in the last one)."""
    ends = sorted(s.final)
    if not ends:
        return None
    r = np.asarray(s.rew, np.float64)
    starts = [0] + [e + 1 for e in ends[:-1]]
    return float(np.mean([r[a:b + 1].sum() for a, b in zip(starts, ends)][1:] or [r[:ends[0] + 1].sum()]))


# ---------------------------------------------------------------------------------------------
# Datasets from the stream, DQN-Replay style
# ---------------------------------------------------------------------------------------------

def read_stream(run_dir) -> list[list]:
    """The stream's episodes, per stream file (the "buffers"): a list, per file, of the episodes
    that start in it (data.Episode, final observation included). An episode cut by a resume of
    the run, or by the end of the stream, ends truncated there."""
    from decision_transformer.data.datasets import Episode
    run = Path(run_dir)
    prog = json.loads((run / "progress.json").read_text())
    files = sorted((run / "stream").glob("*.npz"))
    if not files:
        raise ValueError(f"{run}: no replay stream (stream/*.npz); train it with `dt suite dqn`")
    parts = []
    for f in files:
        with np.load(f, allow_pickle=False) as z:
            parts.append({k: z[k] for k in z.files} | {"start": int(f.stem)})
    cut = {int(x) - 1 for x in prog.get("resumed_at", [])} | {parts[-1]["start"] + len(parts[-1]["rewards"]) - 1}
    buffers, cur = [], None
    for p in parts:
        eps = []
        final = dict(zip(p["final_index"].tolist(), p["final_observations"]))
        n = len(p["rewards"])
        i = 0
        while i < n:
            if cur is None:
                cur = {"owner": eps, "obs": [], "act": [], "rew": [], "term": [], "trunc": []}
            j = i
            while j < n and not (p["terminations"][j] or p["truncations"][j] or p["start"] + j in cut):
                j += 1
            stop = min(j, n - 1)
            for k, src in (("obs", "observations"), ("act", "actions"), ("rew", "rewards"),
                           ("term", "terminations"), ("trunc", "truncations")):
                cur[k].append(p[src][i:stop + 1])
            if j < n:                                     # the episode ends at step j
                term, trunc = np.concatenate(cur["term"]), np.concatenate(cur["trunc"])
                if not (term[-1] or trunc[-1]):
                    trunc[-1] = True                      # cut by a resume or the stream's end
                last = final.get(j, p["observations"][j])   # cut: no final observation; repeat the last
                cur["owner"].append(Episode(np.concatenate(cur["obs"]), np.concatenate(cur["act"]),
                                            np.concatenate(cur["rew"]).astype(np.float64), term, trunc, last))
                cur = None
            i = stop + 1
        buffers.append(eps)
    return buffers


def replay_dataset(run_dir, transitions: int, seed: int = 0, trajectories: int = 10) -> tuple[list, dict]:
    """Episodes sampled from a DQN run's stream the way the paper sampled DQN-Replay: pick a random
    buffer (here: a stream file, one chunk of training), take the next `trajectories` episodes
    that start in it, and repeat until `transitions` steps (whole episodes). The result mixes the
    policies of the whole run, from random to the last. Returns (episodes in stream order, recipe)."""
    buffers = read_stream(run_dir)
    rng = np.random.default_rng(seed)
    cursor = [0] * len(buffers)
    picked, n = [], 0
    while n < transitions:
        open_ = [b for b in range(len(buffers)) if cursor[b] < len(buffers[b])]
        if not open_:
            break
        b = open_[int(rng.integers(len(open_)))]
        take = buffers[b][cursor[b]:cursor[b] + trajectories]
        cursor[b] += len(take)
        picked += [(b, cursor[b] - len(take) + k) for k in range(len(take))]
        n += sum(len(e) for e in take)
    picked.sort()
    recipe = {"transitions": n, "episodes": len(picked), "buffers": len(buffers), "seed": seed,
              "trajectories_per_pick": trajectories,
              "episodes_per_buffer": [sum(1 for b, _ in picked if b == i) for i in range(len(buffers))]}
    return [buffers[b][k] for b, k in picked], recipe
