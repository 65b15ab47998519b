"""The pixel and discrete-action datasets: DQN-Replay-style samples of our own DQN runs.

`export_replay(run_dir)` reads a `dt suite dqn` run (suite/dqn.py) and writes under `suite/<env>/`:
  replay.npz          the dataset sampled from the run's replay stream (dqn.replay_dataset), small:
                      frames bit-packed (MinAtar frames are 0/1), actions, rewards, terminations,
                      truncations, episode offsets and each episode's final frame
  policy.zip          the run's best DQN policy (SB3 format: ours, written by this toolkit), for
                      acting: its Adam state is reset and the archive deflated (`slim_policy`), which
                      halves an Atari policy (27 -> ~13 MB); `DQN.load` reads it as any SB3 zip
and records the dataset in `suite/manifest.json`: the recipe (stream size, buffers, seed), the
reference scores (ref_min: the uniform random policy over 100 episodes; ref_max: the best
behaviour snapshot, greedy, over 100 episodes), the DQN's learning curve and checksums.
`dt suite build --env MinAtar/Breakout-v1` turns replay.npz into the Minari dataset
`dt/minatar-breakout/replay-v0`, frames uint8 (C, 10, 10), without rerunning anything.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np

from decision_transformer.errors import DTError, OptionError
from decision_transformer.fileio import atomic_path, write_json_atomic

REF_EPISODES = 100
REF_SEED = 12345


def dataset_id(env_id: str) -> str:
    """dt/minatar-breakout/replay-v0, dt/atari-breakout/replay-v0 (suite/ids.py's rule)."""
    from decision_transformer.suite.ids import dataset_id as suite_id
    return suite_id(env_id, "replay")


def pack_episodes(eps) -> dict[str, np.ndarray]:
    """Episodes -> flat arrays; 0/1 frames bit-packed (8x smaller before compression)."""
    obs = np.concatenate([e.observations for e in eps])
    final = np.stack([e.final_observation for e in eps])
    binary = obs.max() <= 1 and final.max() <= 1
    pack = (lambda x: np.packbits(x.reshape(len(x), -1), axis=1)) if binary else (lambda x: x)
    return {"observations": pack(obs), "final_observations": pack(final), "frame_shape": np.array(obs.shape[1:]),
            "packed": np.array(binary), "actions": np.concatenate([e.actions for e in eps]).astype(np.int64),
            "rewards": np.concatenate([e.rewards for e in eps]).astype(np.float32),
            "terminations": np.concatenate([e.terminations for e in eps]),
            "truncations": np.concatenate([e.truncations for e in eps]),
            "offsets": np.cumsum([0] + [len(e) for e in eps]).astype(np.int64)}


def unpack_episodes(path) -> list:
    from decision_transformer.data.datasets import Episode
    with np.load(path, allow_pickle=False) as z:
        d = {k: z[k] for k in z.files}
    shape = tuple(int(x) for x in d["frame_shape"])
    n = int(np.prod(shape))
    unpack = (lambda x: np.unpackbits(x, axis=1, count=n).reshape(len(x), *shape)) if bool(d["packed"]) \
        else (lambda x: x)
    obs, final, off = unpack(d["observations"]), unpack(d["final_observations"]), d["offsets"]
    return [Episode(obs[a:b], d["actions"][a:b], d["rewards"][a:b].astype(np.float64), d["terminations"][a:b],
                    d["truncations"][a:b], final[i]) for i, (a, b) in enumerate(zip(off[:-1], off[1:]))]


def _greedy(snapshot: Path, env_id: str, episodes: int, seed: int) -> list[float]:
    import torch
    from stable_baselines3 import DQN

    from decision_transformer.suite.dqn import greedy_returns
    torch.set_num_threads(1)
    return greedy_returns(DQN.load(snapshot, device="cpu"), env_id, episodes, seed)


def reference_scores(run: Path, env_id: str, log=print) -> dict:
    """ref_min: uniform random policy; ref_max: the best snapshot (by its training evaluation),
    greedy; both over REF_EPISODES episodes. Cached in RUN/references.json while the best
    snapshot stays the same (a run trained further may have a new one)."""
    evals = [json.loads(x) for x in (run / "evals.jsonl").read_text().splitlines() if x.strip()]
    best = max(evals, key=lambda r: (r["mean"], r["steps"]))
    cache = run / "references.json"
    if cache.is_file():
        refs = json.loads(cache.read_text())
        if refs["best_snapshot_steps"] == best["steps"]:
            return refs
    from decision_transformer.suite.collect import reference_min_score
    snap = run / "snapshots" / f"{best['steps']:09d}.zip"
    rets = _greedy(snap, env_id, REF_EPISODES, REF_SEED)
    refs = {"ref_min_score": reference_min_score(env_id, REF_EPISODES, REF_SEED), "ref_max_score": float(np.mean(rets)),
            "ref_max_std": float(np.std(rets)), "best_snapshot_steps": best["steps"], "episodes": REF_EPISODES,
            "seed": REF_SEED}
    write_json_atomic(cache, refs)
    log(f"{env_id}: random {refs['ref_min_score']:.2f}, best DQN (step {best['steps']}) "
        f"{refs['ref_max_score']:.2f} ± {refs['ref_max_std']:.2f} over {REF_EPISODES} episodes")
    return refs


def slim_policy(src, dst) -> None:
    """Copy an SB3 DQN zip with its optimizer state reset (Adam's step counts and moments set to
    zero, what a fresh optimizer starts from) and every member deflated. The network weights,
    online and target, are kept bit for bit, so the policy acts exactly as the snapshot did;
    SB3 writes its zips uncompressed and the moments are as large as the weights."""
    import torch
    with zipfile.ZipFile(src) as zin, atomic_path(Path(dst)) as tmp, \
            zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename == "policy.optimizer.pth":
                opt = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
                for st in opt["state"].values():
                    for v in st.values():
                        if torch.is_tensor(v):
                            v.zero_()
                buf = io.BytesIO()
                torch.save(opt, buf)
                data = buf.getvalue()
            zout.writestr(info.filename, data)


def export_replay(run_dir, transitions: int = 500_000, seed: int = 0, suite_dir=None, log=print) -> dict:
    from decision_transformer.suite.dqn import replay_dataset
    from decision_transformer.fileio import sha256_file as sha256
    from decision_transformer.suite.policies import SUITE
    run = Path(run_dir)
    if not (run / "progress.json").is_file():
        raise DTError(f"{run}: not a `dt suite dqn` run directory (no progress.json)")
    if transitions < 1:
        raise OptionError(f"{{transitions}} must be >= 1, got {transitions}")
    prog = json.loads((run / "progress.json").read_text())
    env_id = prog["env_id"]
    suite = Path(suite_dir or SUITE)
    out = suite / env_id
    out.mkdir(parents=True, exist_ok=True)
    refs = reference_scores(run, env_id, log)
    eps, recipe = replay_dataset(run, transitions, seed=seed)
    rp = out / "replay.npz"
    with atomic_path(rp) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **pack_episodes(eps))
    pp = out / "policy.zip"
    slim_policy(run / "snapshots" / f"{refs['best_snapshot_steps']:09d}.zip", pp)
    rets = np.array([e.episode_return for e in eps])
    evals = [json.loads(x) for x in (run / "evals.jsonl").read_text().splitlines() if x.strip()]
    entry = {"kind": "dqn-replay", "dataset_id": dataset_id(env_id),
             "replay": {"file": f"{env_id}/replay.npz", "sha256": sha256(rp), **recipe,
                        "return_mean": float(rets.mean()), "return_max": float(rets.max()),
                        "note": "DQN-Replay-style sample of the DQN run's replay stream (suite/dqn.py)"},
             "policy": {"file": f"{env_id}/policy.zip", "sha256": sha256(pp), "algorithm": prog["algo"],
                        "env_steps": refs["best_snapshot_steps"]},
             "references": refs,
             "training": {"total_env_steps": prog["steps"], "wall_seconds": round(prog["wall"], 1),
                          "seed": prog["seed"], "hypers": prog["hypers"],
                          "eval_curve_10ep": [[r["steps"], round(r["mean"], 2)] for r in evals]}}
    mp = suite / "manifest.json"
    manifest = json.loads(mp.read_text()) if mp.exists() else {}
    manifest[env_id] = entry
    write_json_atomic(mp, manifest)
    log(f"{env_id}: {recipe['episodes']} episodes, {recipe['transitions']} steps from {recipe['buffers']} buffers, "
        f"return {rets.mean():.2f} (max {rets.max():.0f}); {rp} {rp.stat().st_size / 1e6:.1f} MB")
    return entry


def build_replay(env_id: str, entry: dict, suite_dir, overwrite: bool = True, log=print) -> dict:
    """The Minari dataset of a committed replay.npz."""
    from decision_transformer.suite.collect import _dataset_id, write_minari
    from decision_transformer.suite.policies import sha256
    f = Path(suite_dir) / entry["replay"]["file"]
    if sha256(f) != entry["replay"]["sha256"]:
        raise DTError(f"{f}: checksum differs from suite/manifest.json; the dataset file is corrupt")
    eps = unpack_episodes(f)
    did, refs = entry["dataset_id"], entry["references"]
    path = write_minari(did, _dataset_id(did)[1], eps, env_id, refs["ref_min_score"], refs["ref_max_score"],
                        f"dt suite build: DQN-Replay-style sample of a DQN run ({entry['replay']['transitions']} steps "
                        f"from {entry['replay']['buffers']} buffers)", overwrite)
    steps = sum(len(e) for e in eps)
    log(f"  {did}: {len(eps)} episodes, {steps} steps")
    return {did: {"path": str(path), "episodes": len(eps), "steps": steps}}
