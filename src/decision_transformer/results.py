"""`dt results`: the results campaign, one resumable command.

    dt results run       # train, evaluate, sweep and publish whatever is not done yet
    dt results report    # regenerate docs/results.md, the figures and the model cards
    dt results status    # what is done, running and left

The campaign is data: a config object (`CampaignConfig`: datasets, budgets, seeds, episodes)
and the task list `plan()` makes from it, each task a Campaign method with its arguments, the
files it writes and the tasks it needs. `run` goes down the list and does the first task that is not done, whose needs are
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

import numpy as np

from decision_transformer.errors import DTError, Interrupted, RunBusy
from decision_transformer.fileio import Locked, atomic_path, try_lock, write_json_atomic
from decision_transformer.rundir import RunDir, read_metrics

# The published checkpoints live in the checkout's models/ (DT_MODELS_DIR points elsewhere).
MODELS = Path(os.environ.get("DT_MODELS_DIR") or Path(__file__).resolve().parents[2] / "models")
GIF_SIZE, GIF_EVERY, GIF_COLORS = 128, 4, 32   # replay.gif: 128x128, every 4th step, 32 colours (< 2 MB)


@dataclass(frozen=True)
class SuiteConfig:
    """What both campaigns share: the MuJoCo datasets and how a run is checkpointed and evaluated."""
    envs: dict = field(default_factory=lambda: {"hopper": "Hopper-v5", "walker2d": "Walker2d-v5",
                                                "halfcheetah": "HalfCheetah-v5"})
    presets: dict = field(default_factory=lambda: {"hopper": "hopper", "walker2d": "walker2d",
                                                   "halfcheetah": "halfcheetah"})  # paper config + targets
    levels: tuple = ("medium", "medium-replay", "expert", "medium-expert")
    checkpoint_every: int = 5_000
    curve_episodes: int = 20          # per target, per checkpoint of a learning curve
    eval_episodes: int = 100          # per target, per evaluated checkpoint
    eval_seed: int = 0                # env seeds of an evaluation: eval_seed + i; sweeps from eval_seed + 1
    sweep_levels: tuple = ("medium-replay", "medium-expert")
    sweep_points: int = 10
    sweep_episodes: int = 20
    # '<env>-<level>' -> a dataset (Minari id or path) used instead of the suite's: a campaign on
    # data of one's own, and the tests' toy plans
    datasets: dict = field(default_factory=dict)
    poll_seconds: float = 30.0        # how often a worker looks again when other workers hold what is left
    # the DT evaluations' inference backend: onnxruntime is the faster one for 1000-step episodes, but
    # exporting the graph costs ~0.3 s per evaluation, which toy plans (the tests') spend for nothing
    eval_backend: str = "onnxruntime"


@dataclass(frozen=True)
class CampaignConfig(SuiteConfig):
    """The first campaign (suite v0): DT seed 0, BC and %BC, at one budget; MinAtar and Atari."""
    plan_order: tuple = ("medium", "medium-replay", "medium-expert", "expert")   # medium-expert early: a demo candidate
    budget: int = 20_000              # gradient steps per run (docs/results-v0.md: chosen from the curve)
    curve: tuple = ("hopper", "medium-replay", 100_000)   # the paper-budget learning-curve run
    baseline_seeds: tuple = (0, 1, 2)
    top_pct: float = 10.0             # %BC
    publish_levels: tuple = ("expert", "medium", "medium-replay")      # the nine Hub checkpoints, x 3 envs
    demo_candidates: tuple = (("hopper", "medium-replay"), ("hopper", "medium-expert"))  # published: `dt demo`'s sweep
    # Pixels and discrete actions: MinAtar games on DQN-Replay-style datasets (suite/pixels.py).
    # DT, BC and %BC with 3 seeds each, the minatar preset, the last checkpoint; one target: the
    # dataset's best episode return (the paper's Atari targets are of that order); one sweep per game.
    games: dict = field(default_factory=lambda: {"minatar-breakout": "MinAtar/Breakout-v1",
                                                 "minatar-spaceinvaders": "MinAtar/SpaceInvaders-v1"})
    game_level: str = "replay"
    game_preset: str = "minatar"
    game_budget: int = 10_000
    game_checkpoint_every: int = 2_500
    game_seeds: tuple = (0, 1, 2)
    # Atari: one end-to-end run per game on its DQN-Replay-style dataset: the paper's model
    # (--preset atari) at a CPU-sized batch and budget, one seed, evaluated as the paper did (10
    # episodes, its target, no sticky actions), episodes cut at atari_max_steps; a replay GIF. The
    # report gives the time each stage took.
    atari: dict = field(default_factory=lambda: {"atari-breakout": ("ALE/Breakout-v5", 90.0)})  # env id, target
    atari_preset: str = "atari"
    atari_budget: int = 2_000
    atari_checkpoint_every: int = 500
    atari_batch: int = 32
    atari_episodes: int = 10
    atari_max_steps: int = 10_000
    atari_video_steps: int = 2_000

    def published(self, env: str, level: str) -> bool:
        return level in self.publish_levels or (env, level) in self.demo_candidates

    def env_id(self, env: str) -> str:
        return self.atari[env][0] if env in self.atari else self.games.get(env) or self.envs[env]

    @property
    def pbc(self) -> str:
        """%BC's run-name prefix: pbc10."""
        return f"pbc{self.top_pct:g}"


def dataset_id(env_id: str, level: str) -> str:
    """The suite's Minari id of an env id (`dt suite build`; suite/ids.py's rule)."""
    from decision_transformer.suite.ids import dataset_id as suite_id
    return suite_id(env_id, level)


def run_name(model: str, env: str, level: str, seed: int) -> str:
    """dt-hopper-medium-s0, bc-hopper-medium-s1, pbc10-hopper-medium-s2"""
    return f"{model}-{env}-{level}-s{seed}"


def ckpt_name(step: int) -> str:
    return f"{step:08d}"


# Every campaign evaluation steps this many envs at once: env i starts on env seed eval_seed + i, and
# its later episodes follow from its own RNG (deterministic: evaluation/evaluate.py, run_episodes).
EVAL_ENVS = 50


def env_seeds_phrase(episodes: int, base: int = 0) -> str:
    """How a campaign evaluation's episodes are seeded, in words."""
    n = min(episodes, EVAL_ENVS)
    return (f"env seeds {base}-{base + n - 1}" + ("" if episodes <= EVAL_ENVS else
            f" on {EVAL_ENVS} parallel envs, each env's later episodes following from its own RNG"))


def return_histogram(returns: np.ndarray, lengths: np.ndarray, bins: int = 50) -> dict | None:
    """A dataset's episode returns in `bins` equal bins from its lowest to its highest: the bins'
    edges, and the episodes and steps in each (what a sweep's targets are read against)."""
    if not len(returns):
        return None
    eps, edges = np.histogram(returns, bins=bins)
    steps, _ = np.histogram(returns, bins=edges, weights=lengths)
    return {"edges": edges.tolist(), "episodes": eps.tolist(), "steps": steps.astype(np.int64).tolist()}


@dataclass
class Task:
    """One step of a campaign, as data: the Campaign method that does it and its arguments
    (strings and numbers, so that a task can be sent to another process or machine), what it
    writes, and what must exist first."""
    name: str                                    # unique: logs, lock files, --only
    action: str                                  # the Campaign method that does it
    args: dict                                   # its keyword arguments
    outputs: list[Path]                          # done when they all exist
    needs: list[str] = field(default_factory=list)       # tasks done first
    after: list[Path] = field(default_factory=list)      # files another task writes (a checkpoint), besides `needs`
    suite_env: str | None = None                 # the suite must have this env's policies (its data can be built)
    run: str | None = None                       # the run directory it trains or reads
    step: int | None = None                      # train: the step it trains to; an evaluation: its checkpoint
    stamped: bool = False                        # done only if its output records checkpoint_step == step
    feeds: list["Task"] = field(default_factory=list)   # the tasks that use its outputs (set by the plan)

    def done(self) -> bool:
        """Its outputs exist, or every task that uses them is done: a training whose evaluations,
        sweep and publication are committed is not redone on a machine without its checkpoints."""
        ok = all(p.exists() for p in self.outputs)
        if ok and self.stamped:                  # done for the current budget: a raised one redoes it
            ok = _json_field(self.outputs[0], "checkpoint_step") == self.step
        return ok or (bool(self.feeds) and all(t.done() for t in self.feeds))


def link(tasks: list[Task]) -> list[Task]:
    """Set every task's `feeds` from the others' `needs`."""
    by_name = {t.name: t for t in tasks}
    for t in tasks:
        for nd in t.needs:
            by_name[nd].feeds.append(t)
    return tasks


def select_tasks(plan: list, only: str | None) -> tuple[list, dict]:
    """(the tasks whose names contain `only` (all: None) and every task they need, transitively, in
    plan order: their needs and the tasks that write the files they wait for (`after`, e.g. the
    checkpoint a fine-tuning starts from); every task of the plan by name, so a need outside `only`
    still holds its task back)."""
    by_name = {t.name: t for t in plan}
    writer = {Path(p): t.name for t in plan for p in t.outputs}
    writer.update({Path(p).parent: t.name for t in plan if t.action == "train" for p in t.outputs})  # a checkpoint's
    keep = {n for n in by_name if only is None or only in n}                                     # EMA weights with it
    todo = list(keep)
    while todo:
        t = by_name[todo.pop()]
        waits = [next((writer[q] for q in (Path(p), *Path(p).parents) if q in writer), None) for p in t.after]
        for need in [*t.needs, *(w for w in waits if w)]:
            if need in by_name and need not in keep:
                keep.add(need)
                todo.append(need)
    return [t for t in plan if t.name in keep], by_name


class Campaign:
    Config = CampaignConfig

    def __init__(self, runs="runs/results", results="results", models=MODELS, log=print, config=None):
        self.runs, self.results, self.models, self.log = Path(runs), Path(results), Path(models), log
        self.config = config or self.Config()

    # -- the plan ------------------------------------------------------------------------------
    def plan(self) -> list[Task]:
        c, tasks = self.config, []
        for env in c.envs:
            for level in c.levels:
                tasks.append(self._data_task(env, level))
        env, level, steps = c.curve
        curve = run_name("dt", env, level, 0)
        for s in range(c.checkpoint_every, steps + 1, c.checkpoint_every):
            tasks.append(Task(f"curve-eval:{curve}@{s}", "curve_eval", {"run": curve, "step": s},
                              [self.results / curve / "curve" / f"{ckpt_name(s)}.json"], after=[self._ck(curve, s)],
                              run=curve, step=s))
        tasks.append(self._train_task(curve, env, level, "dt", 0, steps, name=f"curve-train:{curve}"))
        tasks[-1].feeds = [t for t in tasks if t.action == "curve_eval"]     # via `after`
        for env in c.envs:
            for level in sorted(c.levels, key=lambda lv: c.plan_order.index(lv) if lv in c.plan_order else 99):
                dt = run_name("dt", env, level, 0)
                tasks.append(self._train_task(dt, env, level, "dt", 0, c.budget))
                tasks.append(self._eval_task(dt, c.budget, c.eval_episodes))
                if c.published(env, level):
                    tasks.append(Task(f"publish:{env}-{level}", "publish",
                                      {"run": dt, "env": env, "level": level, "step": c.budget},
                                      [self.models / f"{env}-{level}" / f for f in ("model.safetensors", "replay.gif")],
                                      needs=[f"eval:{dt}"], run=dt))
                if level in c.sweep_levels:
                    tasks.append(self._sweep_task(dt, env, level, c.budget))
                for model in ("bc", c.pbc):
                    for seed in c.baseline_seeds:
                        r = run_name(model, env, level, seed)
                        tasks.append(self._train_task(r, env, level, model, seed, c.budget))
                        tasks.append(self._eval_task(r, c.budget, c.eval_episodes))
        for game in c.games:                               # last: run them with `--only minatar` on a free core
            tasks.append(self._data_task(game, c.game_level, suite_env=game))
            for model in ("dt", "bc", c.pbc):
                for seed in c.game_seeds:
                    r = run_name(model, game, c.game_level, seed)
                    tasks.append(self._train_task(r, game, c.game_level, model, seed, c.game_budget,
                                                  needs=[f"data:{game}-{c.game_level}"]))
                    tasks.append(self._eval_task(r, c.game_budget, c.eval_episodes))
            tasks.append(self._sweep_task(run_name("dt", game, c.game_level, 0), game, c.game_level, c.game_budget))
        for game in c.atari:                               # last: `--only atari`
            tasks.append(self._data_task(game, c.game_level, suite_env=game))
            dt = run_name("dt", game, c.game_level, 0)
            tasks.append(self._train_task(dt, game, c.game_level, "dt", 0, c.atari_budget,
                                          needs=[f"data:{game}-{c.game_level}"]))
            tasks.append(self._eval_task(dt, c.atari_budget, c.atari_episodes, max_episode_steps=c.atari_max_steps))
            tasks.append(Task(f"video:{dt}", "video", {"run": dt, "step": c.atari_budget},
                              [self.results / dt / "video.json"], needs=[f"train:{dt}"], run=dt))
        return link(tasks)

    def _ck(self, run: str, step: int, ema: bool = False) -> Path:
        from decision_transformer.training.trainer import EMA_DIR
        ck = self.runs / run / "checkpoints" / ckpt_name(step)
        return (ck / EMA_DIR if ema else ck) / "model.safetensors"

    def _data_task(self, env: str, level: str, suite_env: str | None = None) -> Task:
        return Task(f"data:{env}-{level}", "dataset_stats", {"env": env, "level": level},
                    [self.results / "datasets" / f"{env}-{level}.json"], suite_env=suite_env)

    def _eval_task(self, run: str, step: int, episodes: int, max_episode_steps: int | None = None) -> Task:
        return Task(f"eval:{run}", "evaluate", {"run": run, "step": step, "episodes": episodes,
                                                 "max_episode_steps": max_episode_steps},
                    [self.results / run / "eval.json"], needs=[f"train:{run}"], run=run, step=step, stamped=True)

    def _sweep_task(self, run: str, env: str, level: str, step: int) -> Task:
        return Task(f"sweep:{run}", "sweep", {"run": run, "env": env, "level": level, "step": step},
                    [self.results / run / "sweep.json"], needs=[f"train:{run}", f"data:{env}-{level}"],
                    run=run, step=step, stamped=True)

    def _train_task(self, run: str, env: str, level: str, model: str, seed: int, steps: int, name=None,
                    needs=()) -> Task:
        return Task(name or f"train:{run}", "train",
                    {"run": run, "env": env, "level": level, "model": model, "seed": seed, "steps": steps},
                    [self._ck(run, steps)], needs=list(needs), run=run, step=steps)

    def suite_has(self, env: str) -> bool:
        """The data of `env` can be built: the suite's manifest has its policies (a game: its replay.npz)."""
        from decision_transformer.suite.policies import SUITE
        mp = SUITE / "manifest.json"
        return mp.is_file() and self.config.env_id(env) in json.loads(mp.read_text())

    def ready(self, task: Task) -> bool:
        """Besides its needs: the files it reads exist, and its data can be built."""
        if task.suite_env is not None and not any(k.startswith(f"{task.suite_env}-") for k in self.config.datasets) \
                and not self.suite_has(task.suite_env):
            return False
        return all(p.exists() for p in task.after)

    def env_id(self, env: str) -> str:
        return self.config.env_id(env)

    def execute(self, task: Task) -> None:
        """Do one task: its action with its arguments."""
        getattr(self, task.action)(**task.args)

    def lock_path(self, name: str) -> Path:
        """The lock file a worker holds while it does the task `name` (RUNS/.locks/, shared by all workers)."""
        return _mk(self.runs / ".locks") / f"{_safe(name)}.lock"

    def attempt(self, name: str, action: str, args: dict) -> str:
        """Do one task under its lock, as a worker on another process or machine does (ray_worker.py):
        'ran', or 'held' when another worker holds the task or its run directory."""
        try:
            lock = try_lock(self.lock_path(name), name)
        except Locked:
            return "held"
        try:
            getattr(self, action)(**args)
            return "ran"
        except RunBusy:
            return "held"
        finally:
            lock.close()

    # -- the tasks -----------------------------------------------------------------------------
    def train_config(self, run: str, env: str, level: str, model: str, seed: int, steps: int):
        from decision_transformer.training.trainer import TrainConfig
        c = self.config
        game = env in c.games
        over = {"dataset": self.dataset_id(env, level), "output": str(self.runs / run), "steps": steps,
                "checkpoint_every": c.game_checkpoint_every if game else c.checkpoint_every, "num_threads": 1,
                "seed": seed}
        if game:
            d = json.loads((self.results / "datasets" / f"{env}-{level}.json").read_text())
            over.update(env_id=c.games[env], target_returns=[float(d["return_max"])])
        if env in c.atari:
            over.update(env_id=c.atari[env][0], target_returns=[c.atari[env][1]], batch_size=c.atari_batch,
                        checkpoint_every=c.atari_checkpoint_every)
            return TrainConfig.from_sources(c.atari_preset, over)
        if model != "dt":
            over["model"] = "bc"
            if model.startswith("pbc"):
                over["top_pct"] = float(model[3:])
                over["top_unit"] = "episodes"          # the v0 campaign's rule (its results were made so)
        return TrainConfig.from_sources(c.game_preset if game else c.presets[env], over)

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
        for f in ("config.json", "metrics.csv", "sessions.jsonl"):
            if (self.runs / run / f).exists():
                with atomic_path(out / f) as tmp:
                    shutil.copyfile(self.runs / run / f, tmp)

    def _load(self, run: str, step: int, ema: bool = False):
        from decision_transformer.models.checkpoint import from_pretrained
        from decision_transformer.training.trainer import EMA_DIR
        ck = self.runs / run / "checkpoints" / ckpt_name(step)
        return from_pretrained(ck / EMA_DIR if ema else ck)

    def dataset_id(self, env: str, level: str) -> str:
        return self.config.datasets.get(f"{env}-{level}") or dataset_id(self.env_id(env), level)

    def build_dataset(self, env: str, level: str) -> None:
        from decision_transformer.suite.build import build
        build([self.env_id(env)], [level], progress=False, log=self.log)

    @staticmethod
    def build_unit(env: str, level: str) -> str:
        """What one build makes, and the lock it holds meanwhile: here one level."""
        return f"build_{env}-{level}"

    def dataset(self, env: str, level: str):
        """The suite dataset, built first if this machine lacks it (`dt suite build`, deterministic).
        RunBusy while another worker builds it: the worker does other tasks meanwhile instead of
        waiting on the build's lock."""
        from decision_transformer.data.datasets import (
            MissingDataset,
            load_dataset,
        )
        did = self.dataset_id(env, level)
        try:
            return load_dataset(did)
        except MissingDataset:
            try:
                lock = try_lock(_mk(self.runs / ".locks") / f"{self.build_unit(env, level)}.lock", "dt suite build")
            except Locked as e:
                raise RunBusy(f"its data ({did}) are being built by {e.holder.split(' (')[0]}") from None
            with lock:
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
            "normalized_mean_x100": norm(float(r.mean())), "normalized_max_x100": norm(float(r.max())),
            "actions_at_bounds": ds.action_saturation(),
            "return_histogram": return_histogram(r, ds.lengths)})

    def _evaluate(self, run: str, step: int, targets, episodes: int, seed: int | None = None, ema: bool = False,
                  dataset_returns=None, **kw) -> dict:
        """evaluation_record (the one schema of eval and sweep files) plus the campaign's fields.
        targets None: the checkpoint's own (BC, which ignores them: the first); "first": the first."""
        from decision_transformer.evaluation.evaluate import evaluation_record
        model = self._load(run, step, ema)
        dt = model.config.architecture == "dt"
        if targets is None or targets == "first":
            targets = model.config.target_returns[:1] if targets == "first" or not dt else model.config.target_returns
        seed = self.config.eval_seed if seed is None else seed
        out = evaluation_record(model, model.config.env_id, targets, episodes, seed=seed, num_envs=EVAL_ENVS, threads=1,
                                backend=self.config.eval_backend if dt else "torch", dataset_returns=dataset_returns, **kw)
        out.update(run=run, checkpoint_step=step, top_pct=(model.config.extra or {}).get("top_pct", 100.0),
                   mode="exact", weights="ema" if ema else "raw")
        return out

    def evaluate(self, run: str, step: int, episodes: int, max_episode_steps: int | None = None) -> None:
        """The LAST checkpoint of the budget (`step`), `episodes` at each paper target. BC ignores the
        target: it is evaluated once, at the first target. Atari: the paper's protocol, episodes
        cut at `max_episode_steps`."""
        model = self._load(run, step)
        targets = model.config.target_returns
        if model.config.architecture != "dt":
            targets = targets[:1]
        kw = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}
        out = self._evaluate(run, step, targets, episodes, **kw)
        if max_episode_steps is not None:
            out["max_episode_steps"] = max_episode_steps
        self._copy_run_files(run)
        write_json_atomic(_mk(self.results / run) / "eval.json", out)

    def curve_eval(self, run: str, step: int) -> None:
        model = self._load(run, step)
        out = self._evaluate(run, step, model.config.target_returns, self.config.curve_episodes)
        self._copy_run_files(run)
        write_json_atomic(_mk(self.results / run / "curve") / f"{ckpt_name(step)}.json", out)

    def sweep(self, run: str, env: str, level: str, step: int, ema: bool = False) -> None:
        """Achieved vs target return at checkpoint `step`: targets across the dataset's returns
        (evaluate.sweep_targets), env seeds from eval_seed + 1 (not the evaluation's)."""
        from decision_transformer.evaluation.evaluate import sweep_targets
        c = self.config
        d = json.loads((self.results / "datasets" / f"{env}-{level}.json").read_text())
        targets = sweep_targets(d["return_min"], d["return_max"], c.sweep_points)
        out = self._evaluate(run, step, targets, c.sweep_episodes, seed=c.eval_seed + 1, ema=ema,
                             dataset_returns=(d["return_min"], d["return_max"]))
        write_json_atomic(_mk(self.results / run) / "sweep.json", out)

    def video(self, run: str, step: int) -> None:
        """An Atari run's replay GIF at its target (results/<run>/replay.gif) and how long it took."""
        from decision_transformer.evaluation.video import record
        model = self._load(run, step)
        t0 = time.time()
        n_max = self.config.atari_video_steps
        path, ret, n = record(model, model.config.env_id, model.config.target_returns[0],
                              self.results / run / "replay.gif", max_steps=n_max, fps=30,
                              gif_every=GIF_EVERY, gif_colors=GIF_COLORS)
        write_json_atomic(_mk(self.results / run) / "video.json",
                          {"file": path.name, "return": ret, "steps": n, "seconds": round(time.time() - t0, 1),
                           "max_steps": n_max, "seed": 0})

    def publish(self, run: str, env: str, level: str, step: int) -> None:
        """models/<env>-<level>/: the budget checkpoint (config.json + model.safetensors) and a
        replay GIF at the first paper target. The card and results.json come from `report`."""
        self.publish_model(self._load(run, step), self.models / f"{env}-{level}")

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
                lk = try_lock(self.lock_path(t.name))
                lk.close()
                out.append((t.name, "todo"))
            except Locked as e:
                out.append((t.name, f"running ({e.holder.split(' (')[0]}{self._progress(t)})"))
        return out

    def _progress(self, task: Task) -> str:
        """', step N of M' for a training task: N from its run's metrics, M its target."""
        if task.action != "train":
            return ""
        rd = RunDir(self.runs / task.run)
        try:
            rows = read_metrics(rd.metrics)
            return f", step {rows[-1]['step']:,} of {task.step:,}" if rows else ""
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
        """Do tasks until none is left (or none can be done by this worker); returns how many. With
        `only`, the tasks whose names contain it and the tasks they need (select_tasks), in plan order."""
        import torch
        torch.set_num_threads(1)
        failed, n, said = set(), 0, None
        while max_tasks is None or n < max_tasks:
            tasks, by_name = select_tasks(self.plan(), only)
            pending = [t for t in tasks if t.name not in failed and not t.done()]
            if not pending:
                break
            did = busy = others = False   # others: another worker holds a task we wait for
            why = None                    # the first task held back, and why: logged once per wait
            for t in pending:
                if held := [nd for nd in t.needs if nd in by_name and not by_name[nd].done()]:
                    busy, why = True, why or f"{t.name} needs {held[0]}"
                    continue
                if not self.ready(t):
                    missing = [p for p in t.after if not Path(p).exists()]
                    busy, why = True, why or (f"{t.name} waits for {missing[0]}" if missing else
                                              f"{t.name} waits for its data's behaviour policies")
                    continue
                try:
                    lock = try_lock(self.lock_path(t.name), t.name)
                except Locked:
                    busy = others = True
                    why = why or f"{t.name} is held by another worker"
                    continue
                try:
                    if t.done():
                        continue
                    self.log(f"[{_now()}] {t.name} ...")
                    t0 = time.time()
                    self.execute(t)
                    self.log(f"[{_now()}] {t.name} " + (f"done in {time.time() - t0:.0f} s" if t.done() else
                                                        f"continues ({time.time() - t0:.0f} s){self._progress(t)}"))
                    n += 1
                    did = True
                except Interrupted as e:    # SIGTERM / Ctrl-C in a training: it saved a checkpoint; the worker stops
                    self.log(f"[{_now()}] {t.name}: {e}; this worker stops")
                    raise
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
                    if why != said:
                        self.log(f"[{_now()}] waiting for other workers: {why}")
                        said = why
                    time.sleep(self.config.poll_seconds)
                    continue
                break
            said = None
        if failed:
            raise DTError(f"{len(failed)} task(s) failed: {', '.join(sorted(failed))}")
        return n


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
