"""The D4RL-style suite's behaviour policies: pick levels from a training run, commit them small.

`export_run(run_dir, env_id)` reads a `behaviour.py` run directory and writes under `suite/<env>/`:
  expert.safetensors   the snapshot with the best evaluation return
  medium.safetensors   training "stopped at about one third of expert": among the snapshots before
                       the run first reached 2/3 of that expert return, the one whose evaluation is
                       closest to expert / 3 (D4RL's recipe)
  medium_replay.npz    the replay buffer up to the medium snapshot (every transition the learner
                       saw until it was stopped), compressed: obs, next_obs, actions, rewards,
                       terminations, truncations (float32 / bool)
and records each level in `suite/manifest.json`: algorithm, env steps, seed, return mean/std over
10 fresh evaluation episodes (seeds 0-9), sha256 of each file.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np

from .errors import DTError
from .policies import MLPActor, evaluate, sha256

SUITE = Path(__file__).resolve().parents[2] / "suite"
EVAL_EPISODES = 10


def _evals(run: Path) -> list[dict]:
    p = run / "evals.jsonl"
    if not p.is_file():
        raise DTError(f"{run}: no evals.jsonl; is this a behaviour.py run directory?")
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def pick_levels(evals: list[dict]) -> dict[str, dict]:
    expert = max(evals, key=lambda r: (r["mean"], r["steps"]))
    early = []
    for r in evals:
        if r["mean"] >= 2 / 3 * expert["mean"]:
            break
        early.append(r)
    if not early:
        raise DTError("the run reached 2/3 of its best return at its first evaluation: no medium snapshot")
    medium = min(early, key=lambda r: abs(r["mean"] - expert["mean"] / 3))
    return {"expert": expert, "medium": medium}


def _replay_prefix(run: Path, steps: int) -> dict[str, np.ndarray]:
    """The first `steps` transitions of the run's SB3 replay buffer (our own file: trusted)."""
    with open(run / "state" / "replay.pkl", "rb") as f:
        buf = pickle.load(f)  # noqa: S301 - written by behaviour.py on this machine, never downloaded
    if buf.full or buf.pos < steps:
        raise DTError(f"{run}: replay buffer holds {buf.pos} steps (full={buf.full}), need the first {steps}")
    obs, nxt = buf.observations[:steps, 0], buf.next_observations[:steps, 0]
    dones = buf.dones[:steps, 0].astype(bool)
    timeouts = buf.timeouts[:steps, 0].astype(bool)
    return {"observations": obs.astype(np.float32), "next_observations": nxt.astype(np.float32),
            "actions": buf.actions[:steps, 0].astype(np.float32), "rewards": buf.rewards[:steps, 0].astype(np.float32),
            "terminations": dones & ~timeouts, "truncations": timeouts}


def export_run(run_dir, env_id: str, suite_dir=SUITE, log=print) -> dict:
    run = Path(run_dir)
    prog = json.loads((run / "state" / "progress.json").read_text())
    levels = pick_levels(_evals(run))
    out = Path(suite_dir) / env_id
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = Path(suite_dir) / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    entry = {}
    for level, rec in levels.items():
        snap = run / "snapshots" / f"{rec['steps']:08d}.zip"
        actor = MLPActor.from_sbx(snap, env_id=env_id, algo=prog["algo"], level=level, env_steps=rec["steps"])
        path = out / f"{level}.safetensors"
        actor.save(path)
        rets = evaluate(actor, env_id, EVAL_EPISODES, seed=0)
        entry[level] = {"file": f"{env_id}/{path.name}", "sha256": sha256(path), "algorithm": f"sbx-{prog['algo']}",
                        "env_steps": rec["steps"], "seed": prog["seed"], "eval_episodes": EVAL_EPISODES,
                        "return_mean": round(float(np.mean(rets)), 2), "return_std": round(float(np.std(rets)), 2),
                        "training_eval_return_5ep": round(rec["mean"], 2)}
        log(f"{env_id} {level}: step {rec['steps']}, return {np.mean(rets):.0f} ± {np.std(rets):.0f} (10 episodes)")
    med = levels["medium"]["steps"]
    replay = _replay_prefix(run, med)
    rp = out / "medium_replay.npz"
    tmp = out / "medium_replay.tmp.npz"
    np.savez_compressed(tmp, **replay)
    os.replace(tmp, rp)
    entry["medium-replay"] = {"file": f"{env_id}/{rp.name}", "sha256": sha256(rp), "algorithm": f"sbx-{prog['algo']}",
                              "env_steps": med, "seed": prog["seed"], "transitions": med,
                              "episodes": int((replay["terminations"] | replay["truncations"]).sum()),
                              "note": "replay buffer of the medium policy's training run, steps 0..env_steps"}
    log(f"{env_id} medium-replay: {med} transitions, {rp.stat().st_size / 1e6:.1f} MB")
    entry["training"] = {"total_env_steps": prog["steps"], "wall_seconds": round(prog["wall"], 1),
                         "eval_curve_5ep": [[r["steps"], round(r["mean"], 1)] for r in _evals(run)]}
    manifest[env_id] = entry
    tmp = manifest_path.with_name("manifest.json.tmp")
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    os.replace(tmp, manifest_path)
    return entry


if __name__ == "__main__":
    import argparse
    p = argparse.ArgumentParser(description="export a behaviour run's levels into suite/")
    p.add_argument("--env", required=True)
    p.add_argument("--run-dir", required=True)
    a = p.parse_args()
    export_run(a.run_dir, a.env)
