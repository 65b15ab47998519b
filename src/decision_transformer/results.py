"""`dt results`: the results campaign, one resumable command.

    dt results run       # train, evaluate, sweep and publish whatever is not done yet
    dt results report    # regenerate docs/results.md, the figures and the model cards
    dt results status    # what is done, running and left

The campaign is a list of tasks (`plan()`), each with the files it writes and the tasks it
needs. `run` goes down the list and does the first task that is not done, whose needs are
done and that no other worker holds, then starts again from the top, so finished work is
skipped and an interrupted training run is resumed from its last checkpoint. Every task holds
a lock file while it runs (`RUNS/.locks/`), so several workers can share the list: start one
per free core (`dt results run` twice). Each worker uses one thread: a 2-thread training step
takes 3-4x as long when another process keeps one of the two cores busy.

Two places:
- RUNS (default `runs/results/`, not committed): run directories with every checkpoint;
- RESULTS (default `results/`, committed): what the report is made from, small files only:
  `datasets/<data>.json`, `<run>/{config.json, metrics.csv, eval.json, sweep.json}`,
  `<curve run>/curve/<step>.json`.
The nine published checkpoints are written to `models/<env>-<level>/` (`publish` tasks).

The budget: DT's learning-rate schedule (linear warm-up, then constant) does not depend on the
number of steps, and the sampler and dropout RNGs are consumed step by step, so the checkpoint
at step B of a longer run is bit-identical to the last checkpoint of a run of B steps. The
learning-curve run (hopper medium-replay, 100k steps, a checkpoint every 5k) therefore also
provides that dataset's budget-B result, and a budget can be raised later by resuming.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from decision_transformer.errors import DTError, RunBusy
from decision_transformer.fileio import Locked, atomic_path, try_lock, write_json_atomic
from decision_transformer.rundir import RunDir, read_metrics

# The published checkpoints live in the checkout's models/ (DT_MODELS_DIR points elsewhere).
MODELS = Path(os.environ.get("DT_MODELS_DIR") or Path(__file__).resolve().parents[2] / "models")
ENVS = {"hopper": "Hopper-v5", "walker2d": "Walker2d-v5", "halfcheetah": "HalfCheetah-v5"}
PRESETS = {"hopper": "hopper", "walker2d": "walker2d", "halfcheetah": "halfcheetah"}   # paper config + targets
LEVELS = ("medium", "medium-replay", "expert", "medium-expert")
PLAN_ORDER = ("medium", "medium-replay", "medium-expert", "expert")   # medium-expert early: a demo candidate
BUDGET = 20_000                   # gradient steps per run (docs/results.md: chosen from the curve)
CHECKPOINT_EVERY = 5_000
CURVE = ("hopper", "medium-replay", 100_000)     # the paper-budget learning-curve run
CURVE_EPISODES = 20               # per target, per checkpoint of the curve
EVAL_EPISODES = 100               # per target, the last checkpoint of every run
BASELINE_SEEDS = (0, 1, 2)
TOP_PCT = 10.0                    # %BC
SWEEP_LEVELS = ("medium-replay", "medium-expert")
SWEEP_POINTS, SWEEP_EPISODES = 10, 20
PUBLISH_LEVELS = ("expert", "medium", "medium-replay")      # the nine Hub checkpoints, x 3 envs
DEMO_CANDIDATES = (("hopper", "medium-replay"), ("hopper", "medium-expert"))   # published too: `dt demo`'s sweep


# Pixels and discrete actions: MinAtar games on DQN-Replay-style datasets (suite/pixels.py).
# DT, BC and %BC with 3 seeds each, the minatar preset, the last checkpoint; one target: the
# dataset's best episode return (the paper's Atari targets are of that order); one sweep per game.
GAMES = {"minatar-breakout": "MinAtar/Breakout-v1", "minatar-spaceinvaders": "MinAtar/SpaceInvaders-v1"}
GAME_LEVEL = "replay"
GAME_PRESET = "minatar"
GAME_BUDGET, GAME_CHECKPOINT_EVERY = 10_000, 2_500
GAME_SEEDS = (0, 1, 2)
ATARI_PRESET = "atari"
# Atari: one end-to-end run per game on its DQN-Replay-style dataset: the paper's model
# (--preset atari) at a CPU-sized batch and budget, one seed, evaluated as the paper did (10
# episodes, its target, no sticky actions), episodes cut at ATARI_MAX_STEPS; a replay GIF. The
# report gives the time each stage took.
ATARI = {"atari-breakout": ("ALE/Breakout-v5", 90.0)}       # env id, the paper's target return
ATARI_BUDGET, ATARI_CHECKPOINT_EVERY, ATARI_BATCH = 2_000, 500, 32
ATARI_EPISODES, ATARI_MAX_STEPS, ATARI_VIDEO_STEPS = 10, 10_000, 2_000


def published(env: str, level: str) -> bool:
    return level in PUBLISH_LEVELS or (env, level) in DEMO_CANDIDATES
EVAL_SEED = 0
GIF_SIZE, GIF_EVERY, GIF_COLORS = 128, 4, 32   # replay.gif: 128x128, every 4th step, 32 colours (< 2 MB)


def dataset_id(env: str, level: str) -> str:
    """The suite's Minari id (`dt suite build`; suite/ids.py's rule)."""
    from decision_transformer.suite.ids import dataset_id as suite_id
    return suite_id(Campaign.env_id(env), level)


def run_name(model: str, env: str, level: str, seed: int) -> str:
    """dt-hopper-medium-s0, bc-hopper-medium-s1, pbc10-hopper-medium-s2"""
    return f"{model}-{env}-{level}-s{seed}"


def ckpt_name(step: int) -> str:
    return f"{step:08d}"


@dataclass
class Task:
    name: str
    outputs: list[Path]                          # done when they all exist
    action: Callable[[], None]
    needs: list[str] = field(default_factory=list)
    done_check: Callable[[], bool] | None = None
    ready: Callable[[], bool] | None = None      # besides `needs`: e.g. a checkpoint another task writes
    feeds: list["Task"] = field(default_factory=list)   # the tasks that use its outputs (set by plan())

    def done(self) -> bool:
        """Its outputs exist, or every task that uses them is done: a training whose evaluations,
        sweep and publication are committed is not redone on a machine without its checkpoints."""
        if self.done_check is not None:
            ok = self.done_check()
        else:
            ok = all(p.exists() for p in self.outputs)
        return ok or (bool(self.feeds) and all(t.done() for t in self.feeds))


class Campaign:
    poll_seconds = 30                      # how often a worker looks again when other workers hold what is left

    def __init__(self, runs="runs/results", results="results", models=MODELS, log=print):
        self.runs, self.results, self.models, self.log = Path(runs), Path(results), Path(models), log

    # -- the plan ------------------------------------------------------------------------------
    def plan(self) -> list[Task]:
        tasks = []
        for env in ENVS:
            for level in LEVELS:
                tasks.append(Task(f"data:{env}-{level}", [self.results / "datasets" / f"{env}-{level}.json"],
                                  lambda e=env, lv=level: self.dataset_stats(e, lv)))
        env, level, steps = CURVE
        curve = run_name("dt", env, level, 0)
        for s in range(CHECKPOINT_EVERY, steps + 1, CHECKPOINT_EVERY):
            out = self.results / curve / "curve" / f"{ckpt_name(s)}.json"
            ck = self.runs / curve / "checkpoints" / ckpt_name(s) / "model.safetensors"
            tasks.append(Task(f"curve-eval:{curve}@{s}", [out], lambda s=s: self.curve_eval(curve, s),
                              ready=ck.exists))
        tasks.append(self._train_task(curve, env, level, "dt", 0, steps, name=f"curve-train:{curve}"))
        tasks[-1].feeds = [t for t in tasks if t.name.startswith(f"curve-eval:{curve}@")]   # via `ready`
        for env in ENVS:
            for level in sorted(LEVELS, key=lambda lv: PLAN_ORDER.index(lv) if lv in PLAN_ORDER else len(PLAN_ORDER)):
                dt = run_name("dt", env, level, 0)
                tasks.append(self._train_task(dt, env, level, "dt", 0, BUDGET))
                tasks.append(Task(f"eval:{dt}", [self.results / dt / "eval.json"], lambda r=dt: self.evaluate(r),
                                  needs=[f"train:{dt}"]))
                if published(env, level):
                    tasks.append(Task(f"publish:{env}-{level}",
                                      [self.models / f"{env}-{level}" / f for f in ("model.safetensors", "replay.gif")],
                                      lambda r=dt, e=env, lv=level: self.publish(r, e, lv), needs=[f"eval:{dt}"]))
                if level in SWEEP_LEVELS:
                    tasks.append(Task(f"sweep:{dt}", [self.results / dt / "sweep.json"],
                                      lambda r=dt, e=env, lv=level: self.sweep(r, e, lv),
                                      needs=[f"train:{dt}", f"data:{env}-{level}"]))
                for model in ("bc", f"pbc{TOP_PCT:g}"):
                    for seed in BASELINE_SEEDS:
                        r = run_name(model, env, level, seed)
                        tasks.append(self._train_task(r, env, level, model, seed, BUDGET))
                        tasks.append(Task(f"eval:{r}", [self.results / r / "eval.json"], lambda r=r: self.evaluate(r),
                                          needs=[f"train:{r}"]))
        for game in GAMES:                                 # last: run them with `--only minatar` on a free core
            ready = lambda g=game: self._game_committed(g)
            tasks.append(Task(f"data:{game}-{GAME_LEVEL}", [self.results / "datasets" / f"{game}-{GAME_LEVEL}.json"],
                              lambda g=game: self.dataset_stats(g, GAME_LEVEL), ready=ready))
            for model in ("dt", "bc", f"pbc{TOP_PCT:g}"):
                for seed in GAME_SEEDS:
                    r = run_name(model, game, GAME_LEVEL, seed)
                    tasks.append(self._train_task(r, game, GAME_LEVEL, model, seed, GAME_BUDGET,
                                                  needs=[f"data:{game}-{GAME_LEVEL}"]))
                    tasks.append(Task(f"eval:{r}", [self.results / r / "eval.json"], lambda r=r: self.evaluate(r),
                                      needs=[f"train:{r}"]))
            dt = run_name("dt", game, GAME_LEVEL, 0)
            tasks.append(Task(f"sweep:{dt}", [self.results / dt / "sweep.json"],
                              lambda r=dt, g=game: self.sweep(r, g, GAME_LEVEL), needs=[f"train:{dt}"]))
        for game in ATARI:                                 # last: `--only atari`
            data = f"data:{game}-{GAME_LEVEL}"
            tasks.append(Task(data, [self.results / "datasets" / f"{game}-{GAME_LEVEL}.json"],
                              lambda g=game: self.dataset_stats(g, GAME_LEVEL), ready=lambda g=game: self._game_committed(g)))
            dt = run_name("dt", game, GAME_LEVEL, 0)
            tasks.append(self._train_task(dt, game, GAME_LEVEL, "dt", 0, ATARI_BUDGET, needs=[data]))
            tasks.append(Task(f"eval:{dt}", [self.results / dt / "eval.json"], lambda r=dt: self.evaluate(r),
                              needs=[f"train:{dt}"]))
            tasks.append(Task(f"video:{dt}", [self.results / dt / "video.json"], lambda r=dt: self.video(r),
                              needs=[f"train:{dt}"]))
        by_name = {t.name: t for t in tasks}
        for t in tasks:
            for nd in t.needs:
                by_name[nd].feeds.append(t)
            kind, run = t.name.split(":", 1)
            if kind in ("eval", "sweep"):          # done for the current budget: a raised one redoes them
                t.done_check = lambda p=t.outputs[0], b=self.budget(run): _json_field(p, "checkpoint_step") == b
        return tasks

    def _train_task(self, run: str, env: str, level: str, model: str, seed: int, steps: int, name=None,
                    needs=()) -> Task:
        ck = self.runs / run / "checkpoints" / ckpt_name(steps) / "model.safetensors"
        return Task(name or f"train:{run}", [ck], lambda: self.train(run, env, level, model, seed, steps),
                    needs=list(needs))

    @staticmethod
    def _game_committed(game: str) -> bool:
        """A game's dataset can be built: its replay.npz is in the suite's manifest."""
        from decision_transformer.suite.policies import SUITE
        mp = SUITE / "manifest.json"
        return mp.is_file() and Campaign.env_id(game) in json.loads(mp.read_text())

    @staticmethod
    def budget(run: str) -> int:
        g = _game_of(run)
        return ATARI_BUDGET if g in ATARI else GAME_BUDGET if g else BUDGET

    @staticmethod
    def env_id(env: str) -> str:
        return ATARI[env][0] if env in ATARI else GAMES.get(env) or ENVS[env]

    # -- the tasks -----------------------------------------------------------------------------
    def train_config(self, run: str, env: str, level: str, model: str, seed: int, steps: int):
        from decision_transformer.training.trainer import TrainConfig
        game = env in GAMES
        over = {"dataset": self.dataset_id(env, level), "output": str(self.runs / run), "steps": steps,
                "checkpoint_every": GAME_CHECKPOINT_EVERY if game else CHECKPOINT_EVERY, "num_threads": 1, "seed": seed}
        if game:
            d = json.loads((self.results / "datasets" / f"{env}-{level}.json").read_text())
            over.update(env_id=GAMES[env], target_returns=[float(d["return_max"])])
        if env in ATARI:
            over.update(env_id=ATARI[env][0], target_returns=[ATARI[env][1]], batch_size=ATARI_BATCH,
                        checkpoint_every=ATARI_CHECKPOINT_EVERY)
            return TrainConfig.from_sources(ATARI_PRESET, over)
        if model != "dt":
            over["model"] = "bc"
            if model.startswith("pbc"):
                over["top_pct"] = float(model[3:])
                over["top_unit"] = "episodes"          # the v0 campaign's rule (its results were made so)
        return TrainConfig.from_sources(GAME_PRESET if game else PRESETS[env], over)

    def train(self, run, env, level, model, seed, steps) -> None:
        from decision_transformer.training.trainer import train
        cfg = self.train_config(run, env, level, model, seed, steps)
        rd = RunDir(self.runs / run)
        holder = rd.busy_by()                  # cheap check before loading the dataset; the trainer locks for real
        if holder:
            raise RunBusy(f"{rd.path} is in use by {holder}")
        if not self._dataset_exists(env, level):   # built here if missing (a fresh clone has results/datasets/)
            self.dataset(env, level)
        resume = rd.last.exists()
        # one checkpoint interval per call: the worker then looks at the list again, so evaluations
        # and publications do not wait an hour behind a training (resuming is exact: same weights)
        current = int(rd.last.resolve().name) if resume else 0
        every = cfg.checkpoint_every
        cfg.steps = min(steps, (current // every + 1) * every)
        train(cfg, resume="auto", progress=False, log=lambda *a: None)   # decided under the run's lock
        self._copy_run_files(run)

    def _copy_run_files(self, run: str) -> None:
        out = self.results / run
        out.mkdir(parents=True, exist_ok=True)
        for f in ("config.json", "metrics.csv"):
            if (self.runs / run / f).exists():
                with atomic_path(out / f) as tmp:
                    shutil.copyfile(self.runs / run / f, tmp)

    def _load(self, run: str, step: int, ema: bool = False):
        from decision_transformer.models.checkpoint import from_pretrained
        from decision_transformer.training.trainer import EMA_DIR
        ck = self.runs / run / "checkpoints" / ckpt_name(step)
        return from_pretrained(ck / EMA_DIR if ema else ck)

    @staticmethod
    def dataset_id(env: str, level: str) -> str:
        return dataset_id(env, level)

    def build_dataset(self, env: str, level: str) -> None:
        from decision_transformer.suite.build import build
        build([self.env_id(env)], [level], progress=False, log=self.log)

    @staticmethod
    def build_unit(env: str, level: str) -> str:
        """What one build makes, and the lock it holds meanwhile: here one level."""
        return f"build_{env}-{level}"

    def dataset(self, env: str, level: str):
        """The suite dataset, built first if this machine lacks it (`dt suite build`, deterministic)."""
        from decision_transformer.data.datasets import (
            MissingDataset,
            load_dataset,
        )
        did = self.dataset_id(env, level)
        try:
            return load_dataset(did)
        except MissingDataset:
            with try_lock(_mk(self.runs / ".locks") / f"{self.build_unit(env, level)}.lock", "dt suite build", wait=True):
                try:
                    return load_dataset(did)      # another worker built it meanwhile
                except MissingDataset:
                    self.build_dataset(env, level)
                    return load_dataset(did)

    def _dataset_exists(self, env: str, level: str) -> bool:
        """Cheap: is the dataset on disk (without loading it; the trainer loads it once)."""
        did = self.dataset_id(env, level)
        if Path(did).exists():
            return True
        from minari.storage import get_dataset_path
        return (Path(get_dataset_path(did)) / "data").is_dir()

    def dataset_stats(self, env: str, level: str) -> None:
        ds = self.dataset(env, level)
        r = ds.episode_returns()
        md = ds.metadata
        lo, hi = md.get("ref_min_score"), md.get("ref_max_score")
        from decision_transformer.evaluation.stats import normalized
        norm = (lambda x: normalized(x, lo, hi)) if lo is not None and hi is not None else (lambda x: None)
        write_json_atomic(_mk(self.results / "datasets") / f"{env}-{level}.json", {
            "dataset": self.dataset_id(env, level), "env_id": self.env_id(env), "episodes": ds.num_episodes, "steps": ds.num_steps,
            "return_mean": float(r.mean()), "return_std": float(r.std()), "return_min": float(r.min()),
            "return_max": float(r.max()), "ref_min_score": lo, "ref_max_score": hi,
            "normalized_mean_x100": norm(float(r.mean())), "normalized_max_x100": norm(float(r.max()))})

    def _evaluate(self, run: str, step: int, targets, episodes: int, seed: int = EVAL_SEED, ema: bool = False,
                  dataset_returns=None, **kw) -> dict:
        """evaluation_record (the one schema of eval and sweep files) plus the campaign's fields.
        targets None: the checkpoint's own (BC, which ignores them: the first); "first": the first."""
        from decision_transformer.evaluation.evaluate import evaluation_record
        model = self._load(run, step, ema)
        dt = model.config.architecture == "dt"
        if targets is None or targets == "first":
            targets = model.config.target_returns[:1] if targets == "first" or not dt else model.config.target_returns
        out = evaluation_record(model, model.config.env_id, targets, episodes, seed=seed, num_envs=50, threads=1,
                                backend="onnxruntime" if dt else "torch", dataset_returns=dataset_returns, **kw)
        out.update(run=run, checkpoint_step=step, top_pct=(model.config.extra or {}).get("top_pct", 100.0),
                   mode="exact", weights="ema" if ema else "raw")
        return out

    def evaluate(self, run: str) -> None:
        """The LAST checkpoint of the budget (step BUDGET), 100 episodes at each paper target.
        BC ignores the target: it is evaluated once, at the first target."""
        budget = self.budget(run)
        model = self._load(run, budget)
        targets = model.config.target_returns
        if model.config.architecture != "dt":
            targets = targets[:1]
        if _game_of(run) in ATARI:                          # the paper's protocol: 10 episodes
            out = self._evaluate(run, budget, targets, ATARI_EPISODES, max_episode_steps=ATARI_MAX_STEPS)
            out["max_episode_steps"] = ATARI_MAX_STEPS
        else:
            out = self._evaluate(run, budget, targets, EVAL_EPISODES)
        self._copy_run_files(run)
        write_json_atomic(_mk(self.results / run) / "eval.json", out)

    def curve_eval(self, run: str, step: int) -> None:
        model = self._load(run, step)
        out = self._evaluate(run, step, model.config.target_returns, CURVE_EPISODES)
        self._copy_run_files(run)
        write_json_atomic(_mk(self.results / run / "curve") / f"{ckpt_name(step)}.json", out)

    def sweep(self, run: str, env: str, level: str, step: int | None = None, ema: bool = False,
              points: int | None = None, episodes: int | None = None) -> None:
        """Achieved vs target return (the budget's checkpoint unless `step`): targets across the
        dataset's returns (evaluate.sweep_targets), env seeds from EVAL_SEED + 1 (not the evaluation's)."""
        from decision_transformer.evaluation.evaluate import sweep_targets
        d = json.loads((self.results / "datasets" / f"{env}-{level}.json").read_text())
        targets = sweep_targets(d["return_min"], d["return_max"], points or SWEEP_POINTS)
        out = self._evaluate(run, self.budget(run) if step is None else step, targets, episodes or SWEEP_EPISODES,
                             seed=EVAL_SEED + 1, ema=ema, dataset_returns=(d["return_min"], d["return_max"]))
        write_json_atomic(_mk(self.results / run) / "sweep.json", out)

    def video(self, run: str) -> None:
        """An Atari run's replay GIF at its target (results/<run>/replay.gif) and how long it took."""
        from decision_transformer.evaluation.video import record
        model = self._load(run, self.budget(run))
        t0 = time.time()
        path, ret, n = record(model, model.config.env_id, model.config.target_returns[0],
                              self.results / run / "replay.gif", max_steps=ATARI_VIDEO_STEPS, fps=30,
                              gif_every=GIF_EVERY, gif_colors=GIF_COLORS)
        write_json_atomic(_mk(self.results / run) / "video.json",
                          {"file": path.name, "return": ret, "steps": n, "seconds": round(time.time() - t0, 1),
                           "max_steps": ATARI_VIDEO_STEPS, "seed": 0})

    def publish(self, run: str, env: str, level: str) -> None:
        """models/<env>-<level>/: the budget checkpoint (config.json + model.safetensors) and a
        replay GIF at the first paper target. The card and results.json come from `report`."""
        self.publish_model(self._load(run, BUDGET), self.models / f"{env}-{level}")

    def publish_model(self, model, dest: Path) -> None:
        """dest/: config.json + model.safetensors, and replay.gif, one episode at the first target."""
        from decision_transformer.models.checkpoint import save_pretrained
        from decision_transformer.evaluation.video import record
        save_pretrained(model, dest)
        gif = dest / "replay.gif"
        os.environ.setdefault("MUJOCO_GL", "egl")
        record(model, model.config.env_id, model.config.target_returns[0], gif, max_steps=1000, fps=30,
               size=GIF_SIZE, gif_every=GIF_EVERY, gif_colors=GIF_COLORS)
        if gif.stat().st_size > 2_000_000:
            size = gif.stat().st_size
            gif.unlink()                   # not done: the task reruns once the settings are fixed
            raise DTError(f"{gif} was {size / 1e6:.1f} MB, over the 2 MB budget: lower GIF_SIZE or GIF_COLORS")

    # -- the worker ----------------------------------------------------------------------------
    def status(self) -> list[tuple[str, str]]:
        out = []
        for t in self.plan():
            if t.done():
                out.append((t.name, "done"))
                continue
            try:
                lk = try_lock(_mk(self.runs / ".locks") / f"{_safe(t.name)}.lock")
                lk.close()
                out.append((t.name, "todo"))
            except Locked as e:
                out.append((t.name, f"running ({e.holder.split(' (')[0]}{self._progress(t)})"))
        return out

    def _progress(self, task: Task) -> str:
        """', step N of M' for a training task: N from its run's metrics, M its target."""
        if "train:" not in task.name:
            return ""
        rd = RunDir(self.runs / task.name.split(":", 1)[1].split("@")[0])
        try:
            rows = read_metrics(rd.metrics)
            return f", step {rows[-1]['step']:,} of {int(task.outputs[0].parent.name):,}" if rows else ""
        except (OSError, ValueError):
            return ""

    def _others_working(self) -> bool:
        for f in (self.runs / ".locks").glob("*.lock"):
            try:
                try_lock(f).close()
            except Locked:
                return True
        return False

    def run(self, only: str | None = None, wait: bool = True, max_tasks: int | None = None) -> int:
        """Do tasks until none is left (or none can be done by this worker); returns how many."""
        import torch
        torch.set_num_threads(1)
        failed, n = set(), 0
        while max_tasks is None or n < max_tasks:
            tasks = [t for t in self.plan() if only is None or only in t.name]
            by_name = {t.name: t for t in tasks}
            pending = [t for t in tasks if t.name not in failed and not t.done()]
            if not pending:
                break
            did = busy = others = False   # others: another worker holds a task we wait for
            for t in pending:
                if any(nd in by_name and not by_name[nd].done() for nd in t.needs):
                    busy = True
                    continue
                if t.ready is not None and not t.ready():
                    busy = True
                    continue
                try:
                    lock = try_lock(_mk(self.runs / ".locks") / f"{_safe(t.name)}.lock", t.name)
                except Locked:
                    busy = others = True
                    continue
                try:
                    if t.done():
                        continue
                    self.log(f"[{_now()}] {t.name} ...")
                    t0 = time.time()
                    t.action()
                    self.log(f"[{_now()}] {t.name} " + (f"done in {time.time() - t0:.0f} s" if t.done() else
                                                        f"continues ({time.time() - t0:.0f} s){self._progress(t)}"))
                    n += 1
                    did = True
                except RunBusy as e:        # its run directory is held by another worker's task
                    self.log(f"[{_now()}] {t.name}: {e}; later")
                    busy = others = True
                    continue
                except DTError as e:
                    self.log(f"[{_now()}] {t.name} FAILED: {e}")
                    failed.add(t.name)
                    continue
                except Exception:                 # a bug: log it whole, keep the worker on the other tasks
                    import traceback
                    self.log(f"[{_now()}] {t.name} FAILED with a bug:\n{traceback.format_exc()}")
                    failed.add(t.name)
                    continue
                finally:
                    lock.close()
                break
            if not did:
                if busy and wait and (others or self._others_working()):
                    time.sleep(self.poll_seconds)
                    continue
                break
        if failed:
            raise DTError(f"{len(failed)} task(s) failed: {', '.join(sorted(failed))}")
        return n


def _game_of(run: str) -> str | None:
    """The MinAtar/Atari game of a run name, or None (MuJoCo)."""
    return next((g for g in (*GAMES, *ATARI) if f"-{g}-" in f"-{run}-"), None)


def _json_field(path: Path, key: str):
    """`key` of the JSON file at path, or None if the file is missing or unreadable."""
    try:
        return json.loads(path.read_text()).get(key)
    except (OSError, ValueError):
        return None


def _mk(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def _safe(name: str) -> str:
    return name.replace(":", "_").replace("@", "_").replace("/", "_")


def _now() -> str:
    return datetime.datetime.now().strftime("%H:%M:%S")
