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
10 fresh evaluation episodes (seeds 0-9), sha256 of each file. That is suite v0 (TD3 actors, data
collected with Gaussian action noise).

Suite v1 follows D4RL's recipe: `export_v1(expert_run, medium_run, env_id)` reads two
sbx SAC runs (`behaviour.py --algo sac`; the medium run updates once per 8 env steps, so it reaches
the medium level late and its replay buffer up to there is D4RL-sized) and writes `suite/v1/<env>/`:
random.safetensors (the SAC actor as initialised), medium.safetensors, expert.safetensors (SAC
actors with their Gaussian heads: the datasets are the policies' own samples, no added noise) and
medium_replay.npz, recorded in `suite/v1/manifest.json` with each level's collection recipe.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import time
from pathlib import Path

import numpy as np

from decision_transformer.errors import DTError
from decision_transformer.fileio import atomic_path, write_json_atomic
from decision_transformer.suite.collect import reference_min_score  # noqa: F401  (demo, tests use it from here)
from decision_transformer.suite.ids import dataset_id
from decision_transformer.fileio import sha256_file as sha256
from decision_transformer.suite.policies import SUITE, MLPActor, evaluate

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


MIN_REPLAY = 200_000      # v1: medium-replay holds at least this many steps (D4RL's: 202k-402k)


PICK_SEED = 100                 # env seeds of the medium snapshots' re-evaluation (export_v1)


def pick_levels_v1(expert_evals: list[dict], medium_evals: list[dict], min_replay: int = MIN_REPLAY,
                   rescore=None) -> dict[str, dict]:
    """Suite v1's levels, judged by the policies' own samples (`sample_mean`: what the data are made
    of). expert: the expert run's best evaluation. medium: in the medium run, among the evaluations
    before it first reached 2/3 of that expert return and at >= min_replay env steps (so that its
    replay buffer, medium-replay, is D4RL-sized), the one closest to expert / 3. `rescore(candidates)`
    -> {steps: sampled mean}: the candidates judged again on more episodes than the training run's
    5 (their sample_mean is replaced), since a medium policy's return varies widely between episodes."""
    expert = max(expert_evals, key=lambda r: (r["sample_mean"], r["steps"]))
    early = []
    for r in medium_evals:
        if r["sample_mean"] >= 2 / 3 * expert["sample_mean"]:
            break
        early.append(r)
    late = [r for r in early if r["steps"] >= min_replay]
    if not late:
        last = early[-1]["steps"] if early else 0
        raise DTError(f"the medium run has no evaluation at >= {min_replay:,} steps before it reached 2/3 of the "
                      f"expert's return (its last such evaluation is at {last:,} steps): train it further, or "
                      "with a lower update ratio (--train-freq)")
    if rescore is not None:
        again = rescore(late)
        late = [dict(r, sample_mean=again[r["steps"]], training_sample_mean=r["sample_mean"]) for r in late]
    medium = min(late, key=lambda r: abs(r["sample_mean"] - expert["sample_mean"] / 3))
    return {"expert": expert, "medium": medium}


def _replay_prefix(run: Path, steps: int) -> dict[str, np.ndarray]:
    """The first `steps` transitions of the run's SB3 replay buffer (our own file: trusted)."""
    with open(run / "state" / "replay.pkl", "rb") as f:
        buf = pickle.load(f)  # noqa: S301 - written by behaviour.py on this machine, never downloaded
    if (buf.full and buf.pos != 0) or (not buf.full and buf.pos < steps):   # full at pos 0: nothing overwritten yet
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
    with atomic_path(rp) as tmp:
        np.savez_compressed(tmp, **replay)
    entry["medium-replay"] = {"file": f"{env_id}/{rp.name}", "sha256": sha256(rp), "algorithm": f"sbx-{prog['algo']}",
                              "env_steps": med, "seed": prog["seed"], "transitions": med,
                              "episodes": int((replay["terminations"] | replay["truncations"]).sum()),
                              "note": "replay buffer of the medium policy's training run, steps 0..env_steps"}
    log(f"{env_id} medium-replay: {med} transitions, {rp.stat().st_size / 1e6:.1f} MB")
    entry["training"] = {"total_env_steps": prog["steps"], "wall_seconds": round(prog["wall"], 1),
                         "eval_curve_5ep": [[r["steps"], round(r["mean"], 1)] for r in _evals(run)]}
    manifest[env_id] = entry
    write_json_atomic(manifest_path, manifest)
    return entry


SUITE_V1 = SUITE / "v1"
V1_COLLECT = {"random": {"steps": 1_000_000, "noise": "sample", "seed": 0},      # D4RL: 1M steps per level
              "medium": {"steps": 1_000_000, "noise": "sample", "seed": 1},
              "expert": {"steps": 1_000_000, "noise": "sample", "seed": 2}}
V1_EVAL_EPISODES = 20


def _sampled_returns(actor, env_id: str, episodes: int, seed: int = 0) -> list[float]:
    """Returns of the policy's own samples (rng seeded with `seed`), env seeds seed, seed+1, ..."""
    rng = np.random.default_rng(seed)
    return evaluate(lambda obs: actor.sample(obs, rng), env_id, episodes, seed=seed)


def _compact_replay(replay: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The replay prefix without next_observations: within an episode s'_t = s_{t+1}, so only each
    episode's final observation is kept (`final_observations`, one row per episode end, the
    trailing partial episode included). Half the bytes of the v0 layout.

    A resumed behaviour run resets its env (SB3's learn() does on a fresh process), abandoning the
    episode in progress without a done flag: there s'_t != s_{t+1}, and the episode is marked
    truncated at t (`restart_cuts` counts them)."""
    from decision_transformer.data.datasets import episode_bounds
    obs, nxt = replay["observations"], replay["next_observations"]
    trunc = replay["truncations"].copy()
    cont = ~(replay["terminations"] | trunc)[:-1]
    cuts = np.flatnonzero(cont & ~np.all(nxt[:-1] == obs[1:], axis=tuple(range(1, obs.ndim))))
    trunc[cuts] = True
    bounds, _ = episode_bounds(replay["terminations"], trunc)
    return {"observations": obs, "actions": replay["actions"], "rewards": replay["rewards"],
            "terminations": replay["terminations"], "truncations": trunc,
            "final_observations": nxt[bounds[1:] - 1], "restart_cuts": np.asarray(cuts, np.int64)}


def export_v1(expert_run, medium_run, env_id: str, suite_dir=SUITE_V1, min_replay: int = MIN_REPLAY,
              log=print) -> dict:
    """Suite v1's levels from two sbx SAC runs (module docstring), into suite_dir/<env>/ and
    suite_dir/manifest.json."""
    import gymnasium as gym
    import sbx

    from decision_transformer.suite.behaviour import HYPERS
    runs = {"expert": Path(expert_run), "medium": Path(medium_run)}
    progs = {k: json.loads((r / "state" / "progress.json").read_text()) for k, r in runs.items()}
    for k, pr in progs.items():
        if pr["algo"] != "sac" or pr["env_id"] != env_id:
            raise DTError(f"{runs[k]}: a {pr['algo']} run on {pr['env_id']}; suite v1 needs sbx SAC runs on {env_id}")
    evals = {k: _evals(r) for k, r in runs.items()}

    def rescore(candidates):                  # env seeds PICK_SEED+: not the ones the manifest reports
        return {r["steps"]: float(np.mean(_sampled_returns(
            MLPActor.from_sbx(runs["medium"] / "snapshots" / f"{r['steps']:08d}.zip", env_id=env_id, algo="sac"),
            env_id, V1_EVAL_EPISODES, seed=PICK_SEED))) for r in candidates}
    levels = pick_levels_v1(evals["expert"], evals["medium"], min_replay, rescore=rescore)
    out = Path(suite_dir) / env_id
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = Path(suite_dir) / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    env = gym.make(env_id)
    fresh = sbx.SAC("MlpPolicy", env, seed=progs["expert"]["seed"], verbose=0, **HYPERS["sac"])
    actors = {"random": MLPActor.from_sbx_model(fresh, env_id=env_id, algo="sac", level="random", env_steps=0)}
    for level, rec in levels.items():
        snap = runs[level] / "snapshots" / f"{rec['steps']:08d}.zip"
        actors[level] = MLPActor.from_sbx(snap, env_id=env_id, algo="sac", level=level, env_steps=rec["steps"])
    entry = {"version": "v1"}
    for level, actor in actors.items():
        path = out / f"{level}.safetensors"
        actor.save(path)
        srets = _sampled_returns(actor, env_id, V1_EVAL_EPISODES)
        mrets = evaluate(actor, env_id, EVAL_EPISODES, seed=0)
        src = levels.get(level)
        entry[level] = {"file": f"{env_id}/{path.name}", "sha256": sha256(path), "algorithm": "sbx-sac",
                        "env_steps": src["steps"] if src else 0, "seed": progs[level if src else "expert"]["seed"],
                        "train_freq": progs[level if src else "expert"].get("train_freq", 1),
                        "gradient_steps": progs[level if src else "expert"].get("gradient_steps", 1),
                        "eval_episodes": V1_EVAL_EPISODES,
                        "return_mean": round(float(np.mean(srets)), 2), "return_std": round(float(np.std(srets)), 2),
                        "mean_action_eval_episodes": EVAL_EPISODES,
                        "mean_action_return_mean": round(float(np.mean(mrets)), 2),
                        "mean_action_return_std": round(float(np.std(mrets)), 2),
                        "collect": V1_COLLECT[level]}
        if src:
            entry[level]["training_eval_5ep"] = {"sampled": round(src.get("training_sample_mean", src["sample_mean"]), 2),
                                                 "mean_action": round(src["mean"], 2)}
        if src and "training_sample_mean" in src:
            entry[level]["picked_by"] = (f"of the snapshots from {min_replay:,} env steps on, before its samples reached 2/3 "
                                         f"of the expert's, the one whose {V1_EVAL_EPISODES} sampled episodes (env seeds "
                                         f"{PICK_SEED}+) came closest to the expert's third: {src['sample_mean']:.0f}")
        log(f"{env_id} {level}: step {entry[level]['env_steps']}, sampled return {np.mean(srets):.0f} ± {np.std(srets):.0f}"
            f" ({V1_EVAL_EPISODES} episodes), mean action {np.mean(mrets):.0f} ± {np.std(mrets):.0f} ({EVAL_EPISODES})")
    med = levels["medium"]["steps"]
    replay = _compact_replay(_replay_prefix(runs["medium"], med))
    rp = out / "medium_replay.npz"
    with atomic_path(rp) as tmp:
        np.savez_compressed(tmp, **replay)
    entry["medium-replay"] = {"file": f"{env_id}/{rp.name}", "sha256": sha256(rp), "algorithm": "sbx-sac",
                              "env_steps": med, "seed": progs["medium"]["seed"], "transitions": med,
                              "episodes": int(len(replay["final_observations"])),
                              "restart_cuts": int(len(replay["restart_cuts"])),
                              "note": "replay buffer of the medium policy's training run, steps 0..env_steps"}
    log(f"{env_id} medium-replay: {med} transitions, {rp.stat().st_size / 1e6:.1f} MB")
    entry["training"] = {k: {"total_env_steps": progs[k]["steps"], "wall_seconds": round(progs[k]["wall"], 1),
                             "train_freq": progs[k].get("train_freq", 1), "gradient_steps": progs[k].get("gradient_steps", 1),
                             "eval_curve_5ep": [[r["steps"], round(r["mean"], 1), round(r.get("sample_mean", np.nan), 1)]
                                                for r in evals[k]]} for k in runs}
    manifest[env_id] = entry
    write_json_atomic(manifest_path, manifest)
    return entry


# ---------------------------------------------------------------------------------------------
# Building the datasets from the committed policies
# ---------------------------------------------------------------------------------------------

LEVELS = ("random", "medium", "medium-replay", "expert", "medium-expert")
# env steps per collected level: D4RL uses 1M; these rebuild in minutes on 2 cores
SIZES = {"random": 100_000, "medium": 200_000, "expert": 200_000}
NOISE = "gaussian:0.1"      # D4RL sampled stochastic SAC policies; ours are deterministic TD3 actors
NUM_ENVS = 8
SEEDS = {"random": 0, "medium": 1, "expert": 2}


# The actors run with numpy, whose OpenBLAS picks its matrix kernels by CPU at load time; the sums
# come out in another order on AVX-512 ('SkylakeX') than on AVX2 ('Haswell') kernels, and MuJoCo's
# chaos turns that last bit into different episodes (HalfCheetah medium: mean return 3,215 vs 3,165).
# The committed results were built on Haswell kernels, so builds run on them wherever the CPU has
# AVX2: in a child process started with OPENBLAS_CORETYPE set, when this one loaded others.
BLAS_CORE = "Haswell"


def blas_core() -> str | None:
    """The kernel set numpy's OpenBLAS runs in this process ('Haswell', 'SkylakeX', ...), None if unknown."""
    import ctypes
    try:
        with open("/proc/self/maps") as f:
            libs = {p for p in (line.split()[-1] for line in f) if "openblas" in Path(p).name.lower() and ".so" in p}
    except OSError:                                   # not Linux
        return None
    for path in sorted(libs):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for sym in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename", "openblas_get_corename"):
            fn = getattr(lib, sym, None)
            if fn is not None:
                fn.restype = ctypes.c_char_p
                return fn().decode()
    return None


def _cpu_has_avx2() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            return any(line.startswith("flags") and " avx2 " in f" {line.split(':', 1)[1].strip()} " for line in f)
    except OSError:
        return False





def _replay_episodes(path: Path) -> list:
    from decision_transformer.data.datasets import Episode, episode_bounds
    with np.load(path, allow_pickle=False) as z:
        d = {k: z[k] for k in z.files}            # NpzFile decompresses on every access: once
    bounds, truncs = episode_bounds(d["terminations"], d["truncations"])
    # v0 keeps every next observation, v1 only each episode's final one (_compact_replay)
    finals = d["final_observations"] if "final_observations" in d else d["next_observations"][bounds[1:] - 1]
    eps = []
    for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        eps.append(Episode(d["observations"][a:b], d["actions"][a:b], d["rewards"][a:b].astype(np.float64),
                           d["terminations"][a:b].astype(bool), truncs[a:b].astype(bool), finals[i]))
    return eps


def suite_dir(version: str) -> Path:
    """The committed policies of a suite version: v0 in suite/, v1 in suite/v1/."""
    return SUITE if version == "v0" else SUITE / version


def load_manifest(suite_dir=SUITE) -> dict:
    p = Path(suite_dir) / "manifest.json"
    if not p.is_file() and Path(suite_dir).resolve() == SUITE_V1.resolve():
        raise DTError(f"{p} not found: suite v1's policies are not committed yet (docs/suite.md says where they "
                      "stand); build suite v0 meanwhile (--version v0)")
    if not p.is_file():
        raise DTError(f"{p} not found: the suite's policies come with the source checkout; install it "
                      "with `pip install -e .` from the repository, or set DT_SUITE_DIR to a copy of suite/")
    return json.loads(p.read_text())


def build(envs=None, levels=None, suite_dir=SUITE, overwrite: bool = True, progress: bool = True, log=print,
          pin_blas: bool = True) -> dict:
    """Regenerate the suite's Minari datasets from the committed policies (no training).
    pin_blas: run the actors on OpenBLAS's BLAS_CORE kernels (in a child process if this one
    loaded others), so a build gives the same arrays on AVX2 and AVX-512 machines."""
    manifest = _check_args(envs, levels, suite_dir)    # bad arguments fail here, before any child starts
    core = blas_core()
    if pin_blas and core not in (None, BLAS_CORE):
        if _cpu_has_avx2():
            return _build_in_child(envs, levels, suite_dir, overwrite, progress, log)
        log(f"note: this CPU has no AVX2, so numpy runs OpenBLAS's {core} kernels, not {BLAS_CORE}: the "
            "policy levels may differ slightly from the committed results' datasets (docs/suite.md)")
    elif pin_blas and core is None:
        log("note: numpy's BLAS is not OpenBLAS here: the policy levels may differ slightly from the "
            "committed results' datasets (docs/suite.md)")
    out = _build(manifest, envs, levels, suite_dir, overwrite, progress, log)
    for v in out.values():
        v["blas_core"] = core
    return out


def _build_in_child(envs, levels, suite_dir, overwrite, progress, log) -> dict:
    """build() in a fresh interpreter whose OpenBLAS was loaded with OPENBLAS_CORETYPE=BLAS_CORE."""
    import subprocess
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        res = Path(tmp) / "out.json"
        args = {"envs": envs, "levels": levels, "suite_dir": str(suite_dir), "overwrite": overwrite,
                "progress": progress, "sizes": SIZES, "out": str(res)}
        code = "import sys; from decision_transformer.suite.build import _child_main; _child_main(sys.argv[1])"
        env = {**os.environ, "OPENBLAS_CORETYPE": BLAS_CORE}
        with subprocess.Popen([sys.executable, "-c", code, json.dumps(args)], env=env, stdout=subprocess.PIPE,
                              text=True) as p:
            for line in p.stdout:
                log(line.rstrip("\n"))
        out = json.loads(res.read_text()) if res.is_file() else {}
    if "error" in out:
        raise DTError(out["error"])
    if p.returncode != 0 or "datasets" not in out:
        raise DTError(f"the dataset build (a child process on OpenBLAS's {BLAS_CORE} kernels) failed with "
                      f"exit code {p.returncode}: its traceback is printed above")
    return out["datasets"]


def _child_main(arg: str) -> None:
    a = json.loads(arg)
    global SIZES
    SIZES = a["sizes"]
    try:
        out = {"datasets": build(a["envs"], a["levels"], a["suite_dir"], a["overwrite"], a["progress"],
                                 log=lambda m: print(m, flush=True), pin_blas=False)}
    except DTError as e:
        out = {"error": str(e)}
    Path(a["out"]).write_text(json.dumps(out))


def _check_args(envs, levels, suite_dir) -> dict:
    manifest = load_manifest(suite_dir)
    for e in envs or manifest:
        if e not in manifest:
            raise DTError(f"no committed policies for {e}: the suite has {', '.join(sorted(manifest))}")
    for lv in levels or ():
        if lv not in LEVELS + ("replay",):
            raise DTError(f"unknown level {lv!r}: choose from {', '.join(LEVELS + ('replay',))}")
    return manifest


def _build(manifest, envs, levels, suite_dir, overwrite, progress, log) -> dict:
    from decision_transformer.evaluation.stats import normalized
    from decision_transformer.suite.collect import (
        _dataset_id,
        rollout_episodes,
        write_minari,
    )
    envs = list(envs or manifest)
    out = {}
    for env_id in envs:
        entry = manifest[env_id]
        if entry.get("kind") == "dqn-replay":             # pixel / discrete: one level, from replay.npz
            if levels and "replay" not in levels:
                continue
            from decision_transformer.suite.pixels import build_replay
            out.update(build_replay(env_id, entry, suite_dir, overwrite, log))
            continue
        env_levels = [lv for lv in (levels or LEVELS) if lv != "replay"]
        version = entry.get("version", "v0")
        for lv in ("random", "medium", "expert"):
            if "file" in entry.get(lv, {}):
                f = Path(suite_dir) / entry[lv]["file"]
                if sha256(f) != entry[lv]["sha256"]:
                    raise DTError(f"{f}: checksum differs from {Path(suite_dir) / 'manifest.json'}; the policy file is corrupt")
        ref_max = float(entry["expert"]["return_mean"])
        t0 = time.time()
        ref_min = reference_min_score(env_id)
        log(f"{env_id}: reference scores random {ref_min:.1f}, expert {ref_max:.1f}")
        cache: dict[str, list] = {}

        def recipe_of(lv) -> dict:
            """How a level is collected: the manifest's `collect` (v1), else v0's constants."""
            v0 = {"steps": SIZES[lv], "seed": SEEDS[lv], "noise": None if lv == "random" else NOISE}
            return {**v0, **entry.get(lv, {}).get("collect", {})}

        def episodes_of(lv):
            if lv not in cache:
                if lv == "medium-replay":
                    cache[lv] = _replay_episodes(Path(suite_dir) / entry["medium-replay"]["file"])
                else:
                    c = recipe_of(lv)
                    pol = str(Path(suite_dir) / entry[lv]["file"]) if "file" in entry.get(lv, {}) else "random"
                    cache[lv], _ = rollout_episodes(env_id, pol, steps=c["steps"], num_envs=NUM_ENVS, seed=c["seed"],
                                                    noise=c["noise"], progress=progress)
            return cache[lv]

        def describe(lv) -> str:
            if lv == "medium-replay":
                return f"replay buffer of the medium policy's training run ({entry['medium-replay']['env_steps']} steps)"
            if lv == "medium-expert":
                return "medium + expert"
            c = recipe_of(lv)
            if "file" not in entry.get(lv, {}):
                return "uniform random actions"
            how = ", the policy's own samples" if c["noise"] == "sample" else f" with {c['noise']} noise"
            return f"suite/{version + '/' if version != 'v0' else ''}{entry[lv]['file']}{how}"
        for lv in env_levels:
            eps = episodes_of("medium") + episodes_of("expert") if lv == "medium-expert" else episodes_of(lv)
            did = dataset_id(env_id, lv, version)
            recipe = describe(lv)
            path = write_minari(did, _dataset_id(did)[1], eps, env_id, ref_min, ref_max,
                                f"dt suite build: {lv} ({recipe})", overwrite)
            steps = sum(len(e) for e in eps)
            rets = [e.episode_return for e in eps]
            out[did] = {"path": str(path), "episodes": len(eps), "steps": steps, "return_mean": float(np.mean(rets))}
            log(f"  {did}: {len(eps)} episodes, {steps} steps, return {np.mean(rets):.0f} "
                f"(normalised {normalized(float(np.mean(rets)), ref_min, ref_max):.1f})")
        log(f"{env_id}: built in {time.time() - t0:.0f} s")
    return out


if __name__ == "__main__":
    import argparse
    p = argparse.ArgumentParser(description="export a behaviour run's levels into suite/")
    p.add_argument("--env", required=True)
    p.add_argument("--run-dir", required=True)
    a = p.parse_args()
    export_run(a.run_dir, a.env)
