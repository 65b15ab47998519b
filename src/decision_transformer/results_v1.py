"""`dt results run --version v1`: the campaign on suite v1, on results.py's machinery.

Stage 1, the recipe A/Bs (this plan): on hopper medium-replay and medium-expert of suite v1,
3 seeds each, 100 episodes per evaluation:
- budget: one 100k-step DT run per seed (the `transformers` initialisation), its 20k, 50k and
  100k checkpoints evaluated (the checkpoint at step B of a longer run is the last checkpoint of a
  B-step run: results.py's docstring says why);
- EMA: the same runs keep an exponential moving average of the weights (--ema-decay 0.999),
  evaluated beside the raw weights at those steps, and both at every 5k checkpoint with 20 episodes
  (checkpoint-to-checkpoint stability);
- initialisation: 20k-step runs with the official code's initialisation (--init official),
  against the budget runs' 20k checkpoints (same seeds, same data); the timestep embedding's
  arm (20k-step runs without it) likewise, screened on seed 0 (config.screen: seeds 1 and 2 only
  if seed 0 comes within a margin of the budget runs' on one A/B dataset);
- last vs best: the best 5k checkpoint by its 20-episode score, evaluated again on 100 fresh
  episodes (env seeds from best_seed), so the "best" number is not the selection's own noise.

Stage 1 decides by itself (stage2 "auto", `stage2_recipe`): budgets in order while each next one
beats the one before (paired by seed, 95% CI above 0 on one A/B dataset, below on none:
`beats`), no leg trained past one not yet evaluated nor past the first that does not win;
then the EMA at that budget, and each other recipe against the `transformers` one. Stage 2, the
campaign with the chosen recipe (12 datasets x 3 seeds, BC, %BC, sweeps, the republished
checkpoints), is then planned; `estimate()` prices both stages from measured step and
evaluation times.

The Online DT (`dt results run --version v1 --only odt`): on odt_datasets, per seed, an ODT
pretrained offline (`dt train --preset odt-cpu`, the LAST checkpoint evaluated: the starting
point), then fine-tuned online from it once per online optimiser (`dt finetune --preset
cpu-<env>`, LAMB as the paper and AdamW: the A/B), each run's last checkpoint evaluated with
100 episodes; fine-tuning runs one checkpoint interval per call, like training. The other
datasets (odt_more_datasets) get the one arm the A/B chose (odt_recipe), on suite v0's data
where suite v1 has no policies for the env yet (odt_fallback: levels named `medium-v0`), unless
that data's actions are clipped beyond what the ODT's head models (odt_unfit): then on suite v1.

RUNS default `runs/results-v1/`, RESULTS `results/v1/`: `datasets/<data>.json`, and per run
`config.json`, `metrics.csv`, `eval-<step>[-ema].json`, `curve/<step>[-ema].json`, `eval-best[-<step>].json`.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from decision_transformer.fileio import write_json_atomic
from decision_transformer.results import MODELS, Campaign, RunBusy, SuiteConfig, Task, _mk, ckpt_name, link, run_name

VERSION = "v1"
PUBLISH_RULE = ("of the {n} seeds, the one whose last checkpoint's mean score at the first target is the median "
                "(the representative run, neither the luckiest nor the unluckiest)")


@dataclass(frozen=True)
class CampaignV1Config(SuiteConfig):
    """Stage 1 (the recipe A/Bs) and, once it has decided, stage 2 (the campaign)."""
    seeds: tuple = (0, 1, 2)
    ab_datasets: tuple = (("hopper", "medium-replay"), ("hopper", "medium-expert"))
    ema_decay: float = 0.999
    best_seed: int = 1_000            # env seeds of the best checkpoint's re-evaluation
    # run-name prefix -> how the DT is trained (the model is always the paper's DT): its
    # initialisation, whether it embeds the timestep (default: yes), its length and the
    # checkpoints evaluated with eval_episodes
    recipes: dict = field(default_factory=lambda: {
        "dt": {"init": "transformers", "steps": 100_000, "evals": (20_000, 50_000, 100_000)},
        "dtoff": {"init": "official", "steps": 20_000, "evals": (20_000,)},
        "dtnt": {"init": "transformers", "timestep_embedding": False, "steps": 20_000, "evals": (20_000,)}})
    # Recipes screened on the first seed (recipe -> margin, normalised x100): the recipe's other
    # seeds are trained only if its first seed's last checkpoint (raw weights, first target) comes
    # within the margin of the budget runs' first seed at the same step on at least one A/B
    # dataset (screened_out). For the arms the issue does not ask for (the timestep embedding's):
    # a clear loser's other seeds would cost ~4.5 core-hours that stage 2 needs more.
    screen: dict = field(default_factory=lambda: {"dtnt": 15.0})
    # Stage 2's size, for the estimate: every level of every env, DT x 3 seeds at the chosen
    # budget, BC and %BC x 3 seeds at baseline_steps.
    campaign_budgets: tuple = (20_000, 50_000, 100_000)
    baseline_steps: int = 20_000
    baselines: tuple = ("bc", "pbc10")    # BC, and %BC at 10% of the timesteps (the paper's)
    # The order stage 2 trains in, after the seed (every dataset's first seed first): the levels with
    # a bar (the issue's "done when") before expert, which has none.
    stage2_level_order: tuple = ("medium-expert", "medium-replay", "medium", "expert")
    # Stage 2's recipe: "auto", the one stage 1's A/Bs choose by the rule of stage2_recipe() once
    # they have finished; or set by hand, e.g. {"budget": 20_000, "model": "dt", "ema": False}
    # (model: a recipe above, e.g. "dt", "dtoff", "dtnt"); None: stage 2 is not planned.
    stage2: dict | str | None = "auto"
    # The longest DT budget an "auto" stage 2 trains here, on the CPU: a longer budget that stage 1
    # chooses is recorded as the decision ("chosen_budget", on the page) and left to a GPU session,
    # and stage 2 trains at this one (36 runs of 50k steps would cost ~110 core-hours; of 20k,
    # ~45). None: no cap.
    stage2_max_budget: int | None = 20_000
    # The Online DT: its pretraining variants (run-name prefix -> preset in training/presets/:
    # the first with the DT's timestep embedding, the second without, as the paper's model), the
    # fine-tuning preset per env (training/presets/finetune/), the online optimisers compared, each
    # with its overrides of the preset (the first is the paper's, LAMB; AdamW at the learning rate
    # that matched LAMB's 1e-3 in pretraining pilots: docs/performance.md). A fine-tuned run is
    # named <variant><optimiser>, e.g. odtlamb, odtntadamw.
    # odt_datasets hold the A/B (every variant x every optimiser); odt_more_datasets, the issue's
    # other datasets, get the one arm the A/B chose, odt_recipe = (variant, optimiser), or "auto":
    # the A/B's arm with the largest mean gain once every arm has finished (chosen_odt_arm), or
    # None: none. An env of odt_more_datasets whose suite v1 policies are not committed yet runs on
    # suite odt_fallback's data instead (the issue: "suite v1 if it exists by then, else v0"): its
    # level is marked with the suite (`medium-v0`, in run names, data tasks and results files);
    # None: it waits for suite v1. Fallback data with clipped actions (odt_unfit) is set aside.
    # Suite v1's behaviour policies (docs/suite.md): per env, its medium and expert runs (sbx SAC,
    # suite/behaviour.py: env steps, updates every train_freq env steps, stop once the mean action
    # reaches stop_return), then their export into suite/v1/ (suite/build.py: export_v1). Planned
    # for the envs suite/v1/manifest.json does not have yet; `dt results run --only behaviour`.
    behaviour: dict = field(default_factory=lambda: {
        env: {"medium": {"steps": steps, "train_freq": 8, "stop_return": stop}, "expert": {"steps": 500_000}}
        for env, steps, stop in (("hopper", 510_000, 1780.0), ("walker2d", 1_000_000, 2000.0),
                                 ("halfcheetah", 1_000_000, 5050.0))})
    odt_datasets: tuple = (("hopper", "medium"),)
    odt_more_datasets: tuple = (("hopper", "medium-replay"), ("walker2d", "medium"), ("walker2d", "medium-replay"),
                                ("halfcheetah", "medium"), ("halfcheetah", "medium-replay"))
    odt_recipe: tuple | str | None = "auto"
    odt_fallback: str | None = "v0"
    odt_pretrain: dict = field(default_factory=lambda: {"odt": "odt-cpu", "odtnt": "odt-cpu-notime"})
    odt_finetune: dict = field(default_factory=lambda: {"hopper": "cpu-hopper", "walker2d": "cpu-walker2d",
                                                        "halfcheetah": "cpu-halfcheetah"})
    odt_optimizers: dict = field(default_factory=lambda: {"lamb": {"lr": 1e-3}, "adamw": {"lr": 1e-4}})

    @property
    def ab_steps(self) -> int:
        return self.recipes["dt"]["steps"]

    @property
    def ab_eval_steps(self) -> tuple:
        return self.recipes["dt"]["evals"]

    @property
    def init_ab_steps(self) -> int:
        return self.recipes["dtoff"]["steps"]


def _suffix(ema: bool) -> str:
    return "-ema" if ema else ""


def suite_level(level: str) -> tuple[str, str]:
    """("medium", "v0") for a level marked with another suite ("medium-v0"), (level, "v1") otherwise."""
    base, _, version = level.rpartition("-")
    return (base, version) if base and version[:1] == "v" and version[1:].isdigit() else (level, VERSION)


class CampaignV1(Campaign):
    version = VERSION
    Config = CampaignV1Config

    def __init__(self, runs="runs/results-v1", results="results/v1", models=MODELS, log=print, config=None):
        super().__init__(runs=runs, results=results, models=models, log=log, config=config)

    def dataset_id(self, env: str, level: str) -> str:
        from decision_transformer.suite.ids import dataset_id
        return self.config.datasets.get(f"{env}-{level}") or dataset_id(self.env_id(env), *suite_level(level))

    def env_id(self, env: str) -> str:
        return self.config.envs[env]

    def build_dataset(self, env: str, level: str) -> None:
        """Every level of the env in one build: medium-expert reuses the medium and expert episodes
        (1M steps each) instead of collecting them again."""
        from decision_transformer.suite.build import SUITE_V1, build
        base, version = suite_level(level)
        if version != VERSION:                   # another suite's level (odt_fallback): that one level
            return super().build_dataset(env, base)
        build([self.env_id(env)], None, suite_dir=SUITE_V1, progress=False, log=self.log)

    @staticmethod
    def build_unit(env: str, level: str) -> str:
        if suite_level(level)[1] != VERSION:
            return f"build_{env}-{level}"
        return f"build_{env}"                    # one build per env: two workers never build it twice

    def suite_has(self, env: str) -> bool:
        """Suite v1 has this env's policies (suite/v1/manifest.json)."""
        from decision_transformer.suite.build import SUITE_V1
        mp = SUITE_V1 / "manifest.json"
        return mp.is_file() and self.env_id(env) in json.loads(mp.read_text())

    # -- the plan ------------------------------------------------------------------------------
    def plan(self) -> list[Task]:
        """Data (every level of every env), then every evaluation (each ready once its checkpoint exists, so a worker does it
        as soon as it can), then the trainings breadth-first: every run to 20k steps (seed by seed,
        the init and timestep-embedding A/Bs' runs included), then every run to 50k, then to 100k. A session that runs out
        of time leaves the most complete comparison so far, and 20k vs 50k is settled before 100k."""
        c = self.config
        ab = list(c.ab_datasets)
        tasks: list[Task] = [self._data_task(env, level, suite_env=env)   # every dataset, once its policies are in
                             for env, level in [*ab, *((e, lv) for e in c.envs for lv in c.levels if (e, lv) not in ab)]]
        trains = []
        budget, cap = self.budget_decision()
        for seed in c.seeds:
            for env, level in ab:
                for model, rec in self.stage1_recipes(cap).items():
                    if seed != c.seeds[0] and self.screened_out(model):
                        continue
                    evals, train = self._run_tasks(run_name(model, env, level, seed), env, level, model, seed, rec,
                                                   best=model != "dt" or budget is not None)   # over the final curve
                    tasks += evals
                    trains += train
        later = []
        if (st := self.stage2_recipe()) is not None:                 # its evaluations before any training too
            more, later = self._stage2_tasks(st, {t.name for t in tasks + trains})
            tasks += more
        # stable sorts: seed, dataset order kept. Stage 1's legs longer than stage 2's budget (the
        # budget A/B's, which stage 2 no longer waits for) train after stage 2's runs.
        longer = [t for t in trains if st is not None and t.step > st["budget"]]
        tasks += sorted((t for t in trains if t not in longer), key=lambda t: t.step)
        tasks += self._behaviour_tasks()                             # before stage 2 needs their data
        tasks += sorted(later, key=lambda t: t.step)
        tasks += sorted(longer, key=lambda t: t.step)
        tasks += self._odt_tasks()                                   # last: `--only odt` runs them
        link(tasks)
        by_name = {t.name: t for t in tasks}
        by_run_step = {(t.run, t.step): t for t in tasks if t.action == "train"}
        for t in tasks:              # a sweep feeds its run's training (stage 1's too), a publication
            if t.action == "sweep":  # the training of the seed it publishes, once every seed is evaluated
                by_run_step[(t.run, t.step)].feeds.append(t)
            if t.action == "publish_v1" and not t.done() and all(p.exists() for nd in t.needs
                                                                 for p in by_name[nd].outputs):
                seed, _ = self.publish_seed(t.args["env"], t.args["level"])
                ev = next(by_name[nd] for nd in t.needs if by_name[nd].run == run_name(
                    st["model"], t.args["env"], t.args["level"], seed))
                t.after = list(ev.after)             # its checkpoint: trained again if its run directory was lost
                by_run_step[(ev.run, ev.step)].feeds.append(t)
        return tasks

    def _run_tasks(self, run: str, env: str, level: str, model: str, seed: int, rec: dict, best: bool = True,
                   weights: tuple = (False, True), best_upto: int | None = None):
        """A run's evaluations and curve (each ready when its checkpoint exists) of the raw and/or EMA
        weights (`weights`: ema flags) and the re-evaluation of its best checkpoint (where `best`; chosen
        on the curve of the first of `weights`, up to step `best_upto` where given: then its own task
        and file, eval-best-<step>.json); its training in stages (train:RUN@STEPS for each
        evaluated budget, each done in checkpoint-sized chunks, results.py), every stage done when its
        evaluations are."""
        c, out, data = self.config, self.results / run, f"data:{env}-{level}"
        evals, curve = [], []
        for s in rec["evals"]:
            for ema in weights:
                evals.append(Task(f"eval:{run}@{s}{_suffix(ema)}", "evaluate_at", {"run": run, "step": s, "ema": ema},
                                  [out / f"eval-{ckpt_name(s)}{_suffix(ema)}.json"], needs=[data],
                                  after=[self._ck(run, s, ema)], run=run, step=s))
        for s in range(c.checkpoint_every, rec["steps"] + 1, c.checkpoint_every):
            for ema in weights:
                curve.append(Task(f"curve-eval:{run}@{s}{_suffix(ema)}", "curve_eval_at",
                                  {"run": run, "step": s, "ema": ema},
                                  [out / "curve" / f"{ckpt_name(s)}{_suffix(ema)}.json"], needs=[data],
                                  after=[self._ck(run, s, ema)], run=run, step=s))
        upto = "" if best_upto is None else f"@{best_upto}"
        chosen_from = [t for t in curve if t.args["ema"] == weights[0] and t.step <= (best_upto or t.step)]
        # its checkpoints: the last one it chooses from stands for all (a run keeps every checkpoint);
        # they may be missing though the curve is committed (a run directory lost and trained again)
        best_task = Task(f"best:{run}{upto}", "evaluate_best", {"run": run, "ema": weights[0], "upto": best_upto},
                         [out / best_file(best_upto)], run=run, needs=[t.name for t in chosen_from],
                         after=[self._ck(run, max(t.step for t in chosen_from), weights[0])],
                         step=max(t.step for t in chosen_from))
        trains = []
        for s in rec["evals"]:
            t = self._train_task(run, env, level, model, seed, s, name=f"train:{run}@{s}", needs=[data])
            t.feeds = [x for x in evals + curve + [best_task] * best if x.step <= s]   # done when they are
                                                                                          # (a clone without runs/)
            trains.append(t)
        return evals + curve + ([best_task] if best else []), trains

    def _stage2_tasks(self, st: dict, have: set[str]) -> tuple[list[Task], list[Task]]:
        """Every level of every env: DT x 3 seeds with stage 2's recipe `st` (stage 1's runs reused
        where they are the same run), BC and %BC x 3 seeds, sweeps of the medium-replay and
        medium-expert DTs (every seed): (evaluations, trainings), placed by plan(). A new run evaluates
        only the weights stage 2 reports (its last checkpoint, curve and best checkpoint): the page
        reads no other."""
        c = self.config
        budget, model, ema = st["budget"], st["model"], st.get("ema", False)
        rec = {"init": c.recipes[model]["init"], "steps": budget, "evals": (budget,)}
        evals, trains = [], []
        for env in c.envs:
            for level in c.levels:
                data = f"data:{env}-{level}"
                if data not in have:
                    evals.append(self._data_task(env, level, suite_env=env))
                for seed in c.seeds:
                    run = run_name(model, env, level, seed)
                    ev, tr = self._run_tasks(run, env, level, model, seed, rec, weights=(ema,), best_upto=budget)
                    evals += [t for t in ev if t.name not in have]     # stage 1's runs are reused as they are
                    trains += [t for t in tr if t.name not in have]
                    if level in c.sweep_levels:
                        evals.append(Task(f"sweep:{run}", "sweep", {"run": run, "env": env, "level": level,
                                                                     "step": budget, "ema": ema},
                                          [self.results / run / "sweep.json"], needs=[data],
                                          after=[self._ck(run, budget, ema)], run=run, step=budget))
                    for base in c.baselines:
                        r, b = run_name(base, env, level, seed), c.baseline_steps
                        evals.append(Task(f"eval:{r}@{b}", "evaluate_at", {"run": r, "step": b, "ema": False},
                                          [self.results / r / f"eval-{ckpt_name(b)}.json"], needs=[data],
                                          after=[self._ck(r, b)], run=r, step=b))
                        t = self._train_task(r, env, level, base, seed, b, name=f"train:{r}@{b}", needs=[data])
                        t.feeds = [evals[-1]]
                        trains.append(t)
            for level in c.levels:                         # the published checkpoints, one per dataset
                evals.append(Task(f"publish:{env}-{level}", "publish_v1", {"env": env, "level": level},
                                  [self.results / "published" / f"{env}-{level}.json"],
                                  needs=[f"eval:{run_name(model, env, level, s)}@{budget}{_suffix(ema)}"
                                         for s in c.seeds]))
        # seed-major: every dataset's first seed before any dataset's second, so that each bar shows
        # early how its dataset goes; within a seed, the levels in stage2_level_order
        order = {lv: i for i, lv in enumerate(c.stage2_level_order)}
        trains.sort(key=lambda t: (c.seeds.index(t.args["seed"]), order.get(t.args["level"], len(order))))
        return evals, trains

    # -- suite v1's behaviour policies ----------------------------------------------------------
    def _behaviour_tasks(self) -> list[Task]:
        """Per env of config.behaviour that the suite lacks: its medium and expert runs, then their
        export (named behaviour...: `--only behaviour` runs them all)."""
        out = []
        for env, runs in self.config.behaviour.items():
            if env not in self.config.envs or self.suite_has(env):
                continue
            names = []
            for level in runs:
                run = f"sac-{env}-{level}"
                out.append(Task(f"behaviour:{env}-{level}", "behaviour", {"env": env, "level": level},
                                [self.runs / run / "state" / "finished.json"], run=run))
                names.append(out[-1].name)
            out.append(Task(f"behaviour-export:{env}", "export_behaviour", {"env": env},
                            [self.results / "behaviour" / f"{env}.json"], needs=names))
        return out

    def behaviour(self, env: str, level: str) -> None:
        """One behaviour run (config.behaviour[env][level]) to its end, resumed where it stopped: in a
        child process whose JAX keeps to one thread (XLA_FLAGS; the worker's core pinning is
        inherited) and that dies with the worker; its log in the run's train.log."""
        import os
        import subprocess
        import sys
        spec, run = self.config.behaviour[env][level], _mk(self.runs / f"sac-{env}-{level}")
        cmd = [sys.executable, "-m", "decision_transformer.suite.behaviour", "--env", self.env_id(env), "--algo", "sac",
               "--steps", str(spec["steps"]), "--train-freq", str(spec.get("train_freq", 1)), "--run-dir", str(run)]
        if spec.get("stop_return") is not None:
            cmd += ["--stop-return", str(spec["stop_return"])]
        env_vars = {**os.environ, "OMP_NUM_THREADS": "1",
                    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"}
        with open(run / "train.log", "a") as log:
            rc = subprocess.run(cmd, env=env_vars, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
                                check=False).returncode
        if rc != 0:
            from decision_transformer.errors import DTError
            raise DTError(f"the behaviour run {run} exited with {rc}: see {run / 'train.log'}")

    def _progress(self, task: Task) -> str:
        if task.action == "behaviour":                     # ', N of M env steps' from the run's progress.json
            try:
                done = json.loads((self.runs / task.run / "state" / "progress.json").read_text())["steps"]
            except (OSError, ValueError, KeyError):
                return ""
            return f", {done:,} of {self.config.behaviour[task.args['env']][task.args['level']]['steps']:,} env steps"
        return super()._progress(task)

    def export_behaviour(self, env: str) -> None:
        """Suite v1's levels of the env from its two runs (export_v1: suite/v1/<env>/ and the
        manifest), and results/v1/behaviour/<env>.json: what was exported, for the record."""
        from decision_transformer.suite.build import SUITE_V1, export_v1
        entry = export_v1(self.runs / f"sac-{env}-expert", self.runs / f"sac-{env}-medium", self.env_id(env),
                          suite_dir=SUITE_V1, log=self.log)
        write_json_atomic(_mk(self.results / "behaviour") / f"{env}.json",
                          {"env_id": self.env_id(env), "manifest": "suite/v1/manifest.json",
                           "levels": {lv: {k: e[k] for k in ("file", "env_steps", "return_mean", "mean_action_return_mean")
                                           if k in e} for lv, e in entry.items() if isinstance(e, dict) and "file" in e}})

    # -- stage 1's decisions (stage2 "auto") ---------------------------------------------------
    def paired_gain(self, a: tuple, b: tuple, env: str, level: str) -> tuple[float, float, float] | None:
        """Run recipe b's score minus a's, each (model, step, ema), at the first target, paired by
        seed (the same training seed and data): (mean over seeds of the per-seed difference, 95% CI
        low, high), normalised x100, the CI resampling the seeds together and each side's episodes
        (paired_seed_ci); None until both sides have every seed evaluated."""
        from decision_transformer.evaluation.stats import paired_seed_ci
        sides: tuple[list, list] = ([], [])
        for seed in self.config.seeds:
            for side, (model, step, ema) in zip(sides, (a, b)):
                x = self.eval_scores(model, env, level, seed, step, ema)
                if x is None:
                    return None
                side.append(x)
        lo, hi = paired_seed_ci(*sides)
        return float(np.mean([y.mean() - x.mean() for x, y in zip(*sides)])), lo, hi

    def beats(self, a: tuple, b: tuple) -> bool | None:
        """The A/B rule: b beats a when, on at least one A/B dataset, the 95% CI of b's paired gain
        over a lies above 0, and on none below it. None until every seed of both is evaluated."""
        gains = [self.paired_gain(a, b, env, level) for env, level in self.config.ab_datasets]
        if any(g is None for g in gains):
            return None
        return any(lo > 0 for _, lo, _ in gains) and not any(hi < 0 for _, _, hi in gains)

    def budget_decision(self) -> tuple[int | None, int]:
        """(the budget stage 1 chose, None while undecided; the step the budget runs train to here).
        From the first evaluated budget, each next one is taken while it beats the one before
        (raw weights, `beats`); the first that does not ends the search, and no later leg is
        trained on this machine (a GPU session may run it: docs/results.md). While a leg is not
        yet evaluated, nothing beyond it is trained."""
        trail = self.budget_trail()
        chosen, b, won = trail[-1] if trail else (self.config.ab_eval_steps[0], None, True)
        if won is None:
            return None, b
        return (chosen, b) if not won else (b or chosen, self.config.ab_steps)

    def budget_trail(self) -> list[tuple[int, int, bool | None]]:
        """The budget comparisons made so far, in order: (the budget kept, the next one, whether
        it beats it; None while not evaluated), up to the first that is undecided or does not win."""
        c, out = self.config, []
        chosen = c.ab_eval_steps[0]
        for b in c.ab_eval_steps[1:]:
            won = self.beats(("dt", chosen, False), ("dt", b, False))
            out.append((chosen, b, won))
            if not won:
                break
            chosen = b
        return out

    def stage1_recipes(self, cap: int | None = None) -> dict:
        """config.recipes, the budget runs' cut at the step budget_decision() trains them to (`cap`)."""
        cap = self.budget_decision()[1] if cap is None else cap
        dt = self.config.recipes["dt"]
        return {**self.config.recipes, "dt": {**dt, "steps": cap, "evals": tuple(s for s in dt["evals"] if s <= cap)}}

    def eval_scores(self, model: str, env: str, level: str, seed: int, step: int, ema: bool = False) -> np.ndarray | None:
        """One run's evaluation at `step`: its episodes' normalised scores at the first target, or
        None until it exists."""
        p = self.results / run_name(model, env, level, seed) / f"eval-{ckpt_name(step)}{_suffix(ema)}.json"
        return episode_scores(json.loads(p.read_text())) if p.is_file() else None

    def first_seed_score(self, model: str, env: str, level: str, step: int) -> float | None:
        """The normalised mean at the first target of `model`'s first seed at `step` (raw weights)."""
        x = self.eval_scores(model, env, level, self.config.seeds[0], step)
        return None if x is None else float(x.mean())

    def screened_out(self, model: str) -> list[tuple[float, float]] | None:
        """Where `model` failed its screen (config.screen): per A/B dataset, (the budget runs' first
        seed's score, this recipe's) at its step, the recipe trailing by more than the margin on
        every one; None where it passed, is not screened, or its first seed is not evaluated yet."""
        margin = self.config.screen.get(model)
        if margin is None or model == "dt":
            return None
        step = self.config.recipes[model]["steps"]
        pairs = []
        for env, level in self.config.ab_datasets:
            a, b = (self.first_seed_score(m, env, level, step) for m in ("dt", model))
            if a is None or b is None:
                return None
            pairs.append((a, b))
        return pairs if all(b < a - margin for a, b in pairs) else None

    def stage2_recipe(self) -> dict | None:
        """Stage 2's recipe: config.stage2 where it is set by hand; "auto": once stage 1 has decided,
        {"budget": budget_decision()'s, at most stage2_max_budget (then "chosen_budget" is the
        decision), "ema": whether the EMA beats the raw weights at that budget,
        "model": "dt", or the initialisation/timestep-embedding recipe that beats it at its step
        (the larger mean gain over the A/B datasets where both do)}; None until then. Where the
        cap is the first budget evaluated, no decision can move it: stage 2 does not wait for the
        budget A/B ("chosen_budget" appears once that is decided, if it chose a longer one)."""
        c = self.config
        if c.stage2 != "auto":
            return c.stage2
        chosen, _ = self.budget_decision()
        cap = c.stage2_max_budget
        if chosen is None and (cap is None or cap > c.ab_eval_steps[0]):
            return None
        budget = min(chosen or cap, cap or chosen)
        ema = self.beats(("dt", budget, False), ("dt", budget, True))
        model = self.challenger()
        if ema is None or model is None:
            return None
        return {"budget": budget, "model": model, "ema": ema,
                **({"chosen_budget": chosen} if chosen is not None and chosen != budget else {})}

    def challengers(self) -> list[tuple[str, int]]:
        """(recipe, step) of each other stage-1 recipe, compared with the budget runs at its last
        step (one they evaluate); not those screened out on the first seed."""
        c = self.config
        return [(m, rec["steps"]) for m, rec in c.recipes.items()
                if m != "dt" and rec["steps"] in c.recipes["dt"]["evals"] and not self.screened_out(m)]

    def challenger(self) -> str | None:
        """"dt", or the stage-1 recipe that beats the budget runs at its step (the larger mean
        paired gain where several do); None until all are evaluated."""
        wins = {}
        for model, step in self.challengers():
            won = self.beats(("dt", step, False), (model, step, False))
            if won is None:
                return None
            if won:
                wins[model] = np.mean([self.paired_gain(("dt", step, False), (model, step, False), *d)[0]
                                       for d in self.config.ab_datasets])
        return max(wins, key=wins.get) if wins else "dt"

    def odt_arms(self, env: str, level: str) -> list[tuple[str, str]]:
        """(pretraining variant, online optimiser) pairs run on a dataset: every pair on the A/B's
        datasets, the chosen one (odt_recipe) on the others once it is set, none otherwise."""
        c, level = self.config, suite_level(level)[0]
        if (env, level) in c.odt_datasets:
            return [(v, o) for v in c.odt_pretrain for o in c.odt_optimizers]
        chosen = self.chosen_odt_arm()
        if (env, level) in c.odt_more_datasets and chosen is not None:
            return [chosen]
        return []

    def odt_gains(self) -> dict[tuple[str, str], list[float]]:
        """{arm: per seed, the online score minus the offline one (returns, last checkpoints, paired by
        seed)} of the A/B's arms (first odt_dataset) whose every seed is evaluated on both sides."""
        c, out = self.config, {}
        if not c.odt_datasets:
            return out
        env, level = c.odt_datasets[0]

        def mean(path: Path) -> float | None:
            return float(np.mean(json.loads(path.read_text())["results"][0]["returns"])) if path.is_file() else None
        for v in c.odt_pretrain:
            steps = self.odt_pretrain_steps(v)
            offline = [mean(self.results / run_name(v, env, level, s) / f"eval-{ckpt_name(steps)}.json") for s in c.seeds]
            for o in c.odt_optimizers:
                online = [mean(self.results / run_name(f"{v}{o}", env, level, s) / "eval-last.json") for s in c.seeds]
                if None not in offline + online:
                    out[(v, o)] = [b - a for a, b in zip(offline, online)]
        return out

    def chosen_odt_arm(self) -> tuple[str, str] | None:
        """The arm the other ODT datasets run: odt_recipe as set, or with "auto" the A/B's arm with the
        largest mean gain (odt_gains) once every arm has finished, None before."""
        c = self.config
        if c.odt_recipe != "auto":
            return tuple(c.odt_recipe) if c.odt_recipe else None
        gains = self.odt_gains()
        if len(gains) < len(c.odt_pretrain) * len(c.odt_optimizers):
            return None
        return max(gains, key=lambda a: float(np.mean(gains[a])))

    def odt_all_datasets(self) -> list[tuple[str, str]]:
        """(env, level) of every ODT dataset, the level marked with its suite where it is not v1
        (odt_fallback: an odt_more_datasets env that suite v1 had no policies for when its runs
        started; they stay on that suite once one of them has begun, so that suite v1 arriving
        mid-way neither orphans nor redoes them). Fallback data the ODT cannot model (odt_unfit:
        clipped actions, measured by its data task) is set aside: the seeds begun on it finish and
        stay on the page as the evidence, and the dataset runs on suite v1, waiting for its data."""
        c, out = self.config, []
        for env, level in (*c.odt_datasets, *c.odt_more_datasets):
            if env not in c.envs:
                continue
            if (env, level) in c.odt_datasets or not c.odt_fallback:
                out.append((env, level))
                continue
            old = f"{level}-{c.odt_fallback}"
            begun, unfit = self._odt_begun(env, old), self.odt_unfit(env, old) is not None
            fallback = begun or (not self.suite_has(env) and not unfit)
            if fallback:
                out.append((env, old))
            if unfit or not fallback:
                out.append((env, level))
        return out

    def odt_unfit(self, env: str, level: str) -> float | None:
        """The fraction of a fallback dataset's action components at +-1, where it is above what the
        ODT's tanh-Gaussian head models (models/odt.py: SATURATION_WARN; the dataset's data task
        measures it), else None (also before the data task has run)."""
        from decision_transformer.models.odt import SATURATION_WARN
        if suite_level(level)[1] == VERSION:
            return None
        p = self.results / "datasets" / f"{env}-{level}.json"
        sat = json.loads(p.read_text()).get("actions_at_bounds") if p.is_file() else None
        return sat if sat is not None and sat > SATURATION_WARN else None

    def odt_seeds(self, env: str, level: str) -> list[int]:
        """The seeds an ODT dataset runs: all, or on data set aside (odt_unfit) those begun on it."""
        c = self.config
        if self.odt_unfit(env, level) is None:
            return list(c.seeds)
        return [s for s in c.seeds if any((root / run_name(v, env, level, s)).exists()
                                          for v in c.odt_pretrain for root in (self.runs, self.results))]

    def _odt_begun(self, env: str, level: str) -> bool:
        """Some ODT run on this dataset has a run directory here or files under results/."""
        pattern = f"odt*-{env}-{level}-s*"
        return any(True for root in (self.runs, self.results) for _ in root.glob(pattern))

    def _odt_tasks(self) -> list[Task]:
        """Per odt dataset, per pretraining variant of its arms (odt_arms): each seed's pretraining
        (train action) and the evaluation of its last checkpoint, then the fine-tunings from it,
        optimiser by optimiser across the seeds, each with the evaluation of its last checkpoint.
        The workers take them in this order: the A/B's datasets dataset by dataset, then the others
        seed by seed (every dataset's seed 0, then every dataset's seed 1, ...), so that each env
        shows its offline -> online result as early as one seed can."""
        c, ab, more = self.config, [], []
        for env, level in self.odt_all_datasets():
            arms = self.odt_arms(env, level)
            if not arms:
                continue
            data, head, keyed = f"data:{env}-{level}", [], []     # keyed: (seed, task), dataset-major order
            if suite_level(level)[1] != VERSION:           # another suite's data: its policies are committed
                head.append(self._data_task(env, level))
            elif (env, level) not in c.ab_datasets and level not in c.levels:   # plan() has the others' first
                head.append(self._data_task(env, level, suite_env=env))
            seeds = self.odt_seeds(env, level)
            for variant in dict.fromkeys(v for v, _ in arms):
                steps, trains = self.odt_pretrain_steps(variant), {}
                for seed in seeds:
                    pre = run_name(variant, env, level, seed)
                    train = self._train_task(pre, env, level, variant, seed, steps, name=f"train:{pre}@{steps}",
                                             needs=[data])
                    ev = Task(f"eval:{pre}@{steps}", "evaluate_odt", {"run": pre, "step": steps, "env": env},
                              [self.results / pre / f"eval-{ckpt_name(steps)}.json"], needs=[data],
                              after=[self._ck(pre, steps)], run=pre, step=steps)
                    keyed += [(seed, ev), (seed, train)]
                    train.feeds = [ev]             # and the fine-tunings: done when all of them are
                    trains[seed] = train
                for opt in (o for v, o in arms if v == variant):
                    for seed in seeds:
                        pre, ft = run_name(variant, env, level, seed), run_name(f"{variant}{opt}", env, level, seed)
                        tune = Task(f"finetune:{ft}", "finetune", {"run": ft, "pretrained": pre, "step": steps,
                                                                  "env": env, "level": level, "seed": seed,
                                                                  "optimizer": opt},
                                    [self.results / ft / "finetune.json"], needs=[data], after=[self._ck(pre, steps)],
                                    run=ft)
                        keyed += [(seed, tune), (seed, Task(f"eval:{ft}", "evaluate_odt",
                                                            {"run": ft, "step": None, "env": env},
                                                            [self.results / ft / "eval-last.json"],
                                                            needs=[tune.name], run=ft))]
                        trains[seed].feeds.append(tune)
            if (env, suite_level(level)[0]) in c.odt_datasets:
                ab += head + [t for _, t in keyed]
            else:
                more.append((head, keyed))
        tasks = ab
        for i, seed in enumerate(c.seeds):
            for head, keyed in more:
                tasks += (head if i == 0 else []) + [t for s, t in keyed if s == seed]
        return tasks

    def odt_pretrain_steps(self, variant: str = "odt") -> int:
        from decision_transformer.options import read_preset
        from decision_transformer.training.trainer import PRESETS
        return int(read_preset(self.config.odt_pretrain[variant], PRESETS)["steps"])

    def odt_pretrain_overrides(self, env: str) -> dict:
        """What the campaign sets over the pretraining preset, per env: the checkpoint's target is the
        fine-tuning preset's evaluation target, so its offline and online scores share one target."""
        return {"target_returns": [float(self.odt_finetune_preset(env)["eval_return"])]}

    def odt_finetune_preset(self, env: str) -> dict:
        """The env's fine-tuning preset (training/presets/finetune/), as its file holds it."""
        from decision_transformer.options import read_preset
        from decision_transformer.training.finetune import PRESETS
        return read_preset(self.config.odt_finetune[env], PRESETS, "fine-tuning")

    def odt_finetune_config(self, run: str, pretrained: str, step: int, env: str, level: str, seed: int,
                            optimizer: str):
        from decision_transformer.training.finetune import FinetuneConfig
        return FinetuneConfig(**{**self.odt_finetune_preset(env), "checkpoint": str(self._ck(pretrained, step).parent),
                                 "env_id": self.env_id(env), "dataset": self.dataset_id(env, level),
                                 "output": str(self.runs / run), "seed": seed, "optimizer": optimizer,
                                 **self.config.odt_optimizers[optimizer], "num_threads": 1})

    def finetune(self, run: str, pretrained: str, step: int, env: str, level: str, seed: int, optimizer: str) -> None:
        """One checkpoint interval of `dt finetune` (exact resume); finetune.json once the run has its
        preset's online steps."""
        from decision_transformer.rundir import RunDir
        from decision_transformer.training.finetune import Finetuner
        cfg = self.odt_finetune_config(run, pretrained, step, env, level, seed, optimizer)
        rd = RunDir(self.runs / run)
        holder = rd.busy_by()
        if holder:
            raise RunBusy(f"{rd.path} is in use by {holder}")
        if not self._dataset_exists(env, level):   # its buffer is seeded from it: built here if missing
            self.dataset(env, level)
        total, resume = cfg.online_steps, rd.last.exists()
        current = int(rd.last.resolve().name) if resume else 0
        if current < total:
            cfg.online_steps = min(total, (current // cfg.checkpoint_every + 1) * cfg.checkpoint_every)
            Finetuner(cfg, resume=resume, progress=False, log=lambda *a: None).run()
            current = int(rd.last.resolve().name)
        self._copy_run_files(run)
        if current >= total:
            write_json_atomic(_mk(self.results / run) / "finetune.json",
                              {"run": run, "pretrained": pretrained, "pretrained_step": step, "online_steps": total,
                               "env_steps": current, "optimizer": optimizer, "preset": self.config.odt_finetune[env]})

    def evaluate_odt(self, run: str, step: int | None, env: str) -> None:
        """100 episodes at the fine-tuning preset's evaluation target and context: a pretrained
        checkpoint (`step`), or a fine-tuned run's last one (step None: eval-last.json)."""
        preset = self.odt_finetune_preset(env)
        if step is None:
            step = int(json.loads((self.results / run / "finetune.json").read_text())["env_steps"])
            name = "eval-last.json"
        else:
            name = f"eval-{ckpt_name(step)}.json"
        out = self._evaluate(run, step, [preset["eval_return"]], self.config.eval_episodes,
                             context_length=preset.get("eval_context"))
        out["context_length"] = preset.get("eval_context")
        out["conditioning"] = self._conditioning(run, step)
        self._copy_run_files(run)
        write_json_atomic(_mk(self.results / run) / name, out)

    def publish_seed(self, env: str, level: str) -> tuple[int, list[float]]:
        """PUBLISH_RULE: the seed whose last-checkpoint mean at the first target is the median."""
        st, seeds, means = self.stage2_recipe(), self.config.seeds, []
        for s in seeds:
            ev = json.loads((self.results / run_name(st["model"], env, level, s) /
                             f"eval-{ckpt_name(st['budget'])}{_suffix(st.get('ema', False))}.json").read_text())
            means.append(float(np.mean(ev["results"][0]["returns"])))
        order = sorted(range(len(seeds)), key=lambda i: (means[i], seeds[i]))
        return seeds[order[(len(order) - 1) // 2]], means

    def publish_v1(self, env: str, level: str) -> None:
        """models/<env>-<level>/ from the seed PUBLISH_RULE picks; the card and results.json come from
        the report, results/v1/published/<env>-<level>.json records the choice."""
        st, seeds = self.stage2_recipe(), self.config.seeds
        seed, means = self.publish_seed(env, level)
        run = run_name(st["model"], env, level, seed)
        self.publish_model(self._load(run, st["budget"], st.get("ema", False)), self.models / f"{env}-{level}")
        write_json_atomic(_mk(self.results / "published") / f"{env}-{level}.json",
                          {"run": run, "seed": seed, "checkpoint_step": st["budget"],
                           "weights": "ema" if st.get("ema") else "raw", "rule": PUBLISH_RULE.format(n=len(seeds)),
                           "seed_return_means_first_target": dict(zip(map(str, seeds), means))})

    def train_config(self, run: str, env: str, level: str, model: str, seed: int, steps: int):
        from decision_transformer.training.trainer import TrainConfig
        over = {"dataset": self.dataset_id(env, level), "output": str(self.runs / run), "steps": steps,
                "checkpoint_every": self.config.checkpoint_every, "num_threads": 1, "seed": seed}
        if model in self.config.odt_pretrain:                # an Online DT's pretraining
            return TrainConfig.from_sources(self.config.odt_pretrain[model], {**over, **self.odt_pretrain_overrides(env)})
        if model in self.config.recipes:
            rec = self.config.recipes[model]
            over.update(init=rec["init"], ema_decay=self.config.ema_decay,
                        timestep_embedding=rec.get("timestep_embedding", True))
        else:                                                # stage 2's baselines: bc, pbc10
            over["model"] = "bc"
            if model.startswith("pbc"):
                over.update(top_pct=float(model[3:]), top_unit="timesteps")
        return TrainConfig.from_sources(self.config.presets[env], over)

    # -- the tasks -----------------------------------------------------------------------------
    def evaluate_at(self, run: str, step: int, ema: bool) -> None:
        """100 episodes at each paper target (BC: the first), the checkpoint of `step` (raw or EMA weights)."""
        out = self._evaluate(run, step, None, self.config.eval_episodes, ema=ema)       # the checkpoint's targets (BC: one)
        if out["architecture"] != "bc":                                    # BC has no return-to-go to read
            out["conditioning"] = self._conditioning(run, step, ema)
        self._copy_run_files(run)
        write_json_atomic(_mk(self.results / run) / f"eval-{ckpt_name(step)}{_suffix(ema)}.json", out)

    def _conditioning(self, run: str, step: int, ema: bool = False) -> dict:
        """How far the checkpoint's action moves when its return-to-go, or its timesteps, change, on
        windows of the data it was trained on (evaluation/conditioning.py): part of its evaluation
        record."""
        from decision_transformer.data.datasets import load_dataset
        from decision_transformer.evaluation.conditioning import conditioning
        model = self._load(run, step, ema)
        return conditioning(model, load_dataset(model.config.extra["dataset"]))

    def curve_eval_at(self, run: str, step: int, ema: bool) -> None:
        """20 episodes at the first (expert) target only: stability and the best checkpoint."""
        out = self._evaluate(run, step, "first", self.config.curve_episodes, ema=ema)
        self._copy_run_files(run)
        write_json_atomic(_mk(self.results / run / "curve") / f"{ckpt_name(step)}{_suffix(ema)}.json", out)

    def best_step(self, run: str, ema: bool = False, upto: int | None = None) -> int:
        """The checkpoint (up to step `upto` where given) whose 20-episode score at the first target
        is highest (raw or EMA weights)."""
        scores = {}
        for p in sorted((self.results / run / "curve").glob("*.json")):
            step = int(p.stem.removesuffix("-ema"))
            if p.stem.endswith("-ema") != ema or step > (upto or step):
                continue
            ev = json.loads(p.read_text())
            scores[step] = float(np.mean(ev["results"][0]["returns"]))
        return max(scores, key=lambda s: (scores[s], -s))

    def evaluate_best(self, run: str, ema: bool = False, upto: int | None = None) -> None:
        """The best checkpoint of these weights (best_step), evaluated again at the first target on fresh
        env seeds: what the page reports beside the last checkpoint."""
        step = self.best_step(run, ema, upto)
        c = self.config
        out = self._evaluate(run, step, "first", c.eval_episodes, seed=c.best_seed, ema=ema)
        out["selected_by"] = f"the highest {c.curve_episodes}-episode mean at the first target over the checkpoints " \
                             f"every {c.checkpoint_every:,} steps; evaluated again on env seeds {c.best_seed}+"
        write_json_atomic(_mk(self.results / run) / best_file(upto), out)

    # -- what is left, in core-hours -----------------------------------------------------------
    def estimate(self, v0_results=None) -> dict:
        """Core-hours of one thread left in stage 1, and stage 2's cost at each candidate budget,
        from measured times: DT and BC gradient steps/s from the runs' metrics.csv (v1 runs when
        they exist, else the v0 campaign's), and evaluation seconds per episode-step from the
        v0 campaign's eval.json files (episodes x mean length; DT's and, for BC and %BC, theirs)."""
        v0 = Path(v0_results) if v0_results else Path(self.results).parent
        v1_runs = sorted(p.parent for p in self.results.glob("dt*-*/metrics.csv"))        # dt, dtoff, dtnt: one model size
        newest = _newest_session_rate(v1_runs)
        dt_sps, dt_where = newest or (_steps_per_s([p / "metrics.csv" for p in v1_runs])
                                      or _steps_per_s(list(v0.glob("dt-*-s0/metrics.csv"))),
                                      "the median over the runs' log rows; they did not record their machine")
        bc_sps = _steps_per_s(list(v0.glob("bc-*/metrics.csv")))
        eval_s = _eval_seconds_per_step(list(v0.glob("dt-*/eval.json")))
        bc_eval_s = _eval_seconds_per_step([p for b in ("bc", *self.config.baselines) for p in v0.glob(f"{b}-*/eval.json")])
        if not (dt_sps and bc_sps and eval_s):
            return {}
        bc_eval_s = bc_eval_s or eval_s
        ep_steps = 1000                                  # priced at full-length episodes: an upper bound
        c = self.config

        def price(tasks) -> tuple[float, float]:
            """Seconds of training and of evaluation these tasks still need."""
            train = ev = 0.0
            trained: dict[str, int] = {}
            for t in sorted(tasks, key=lambda t: t.step if t.action == "train" else 0):
                if t.done():
                    continue
                if t.action == "train":          # stages of one run: count each step once
                    done = max(_last_step(self.runs / t.run), trained.get(t.run, 0))
                    train += max(0, t.step - done) / (dt_sps if t.args["model"] in c.recipes else bc_sps)
                    trained[t.run] = max(done, t.step)
                elif t.action in ("evaluate_at", "evaluate_best"):     # DT: 2 targets; its best, BC, %BC: one
                    dt = t.run.split("-")[0] in c.recipes
                    targets = 2 if t.action == "evaluate_at" and dt else 1
                    ev += targets * c.eval_episodes * ep_steps * (eval_s if dt else bc_eval_s)
                elif t.action == "sweep":
                    ev += c.sweep_points * c.sweep_episodes * ep_steps * eval_s
                elif t.action == "curve_eval_at":
                    ev += c.curve_episodes * ep_steps * eval_s
            return train, ev

        odt = {t.name for t in self._odt_tasks()}        # the Online DT's: priced apart (_odt_estimate)
        plan = [t for t in self.plan() if t.name not in odt]
        stage1 = {run_name(m, env, level, s) for m in c.recipes for env, level in c.ab_datasets for s in c.seeds}
        left_train, left_eval = price(t for t in plan if t.run in stage1)
        if (st := self.stage2_recipe()) is not None:     # planned: what its tasks still need
            stage2 = {st["budget"]: sum(price(t for t in plan if t.run and t.run not in stage1)) / 3600}
        else:                                            # at each candidate budget, stage 1's runs reused
            have = {t.name for t in plan}
            stage2 = {b: sum(price(sum(self._stage2_tasks({"budget": b, "model": "dt"}, have), []))) / 3600
                      for b in c.campaign_budgets}
        return {"dt_steps_per_s": dt_sps, "dt_measured": dt_where, "bc_steps_per_s": bc_sps, "eval_s_per_env_step": eval_s,
                "bc_eval_s_per_env_step": bc_eval_s,
                "stage1_train_h": left_train / 3600, "stage1_eval_h": left_eval / 3600, "stage2_h": stage2,
                **self._behaviour_estimate(), **self._odt_estimate(eval_s * ep_steps)}

    def _odt_estimate(self, eval_s_per_episode: float) -> dict:
        """{"odt_h": core-hours left in the Online DT's runs, "odt_pretrain_steps_per_s", "odt_finetune_ms_per_env_step"},
        priced from this campaign's own: pretraining gradient steps/s from the pretraining runs' metrics.csv,
        fine-tuning seconds per env step from the fine-tuning runs' sessions.jsonl (the campaign runs one
        checkpoint interval per call, so consecutive sessions time an interval each: the median), evaluation as
        the DT's; {} until both are measured."""
        from decision_transformer.rundir import read_sessions
        c = self.config
        pre_sps = _steps_per_s([p for v in c.odt_pretrain for p in sorted(self.results.glob(f"{v}-*/metrics.csv"))])
        per_step = []
        for f in sorted(self.results.glob("*/finetune.json")):
            ss = read_sessions(f.parent / "sessions.jsonl")
            for a, b in zip(ss, ss[1:]):
                if b["step"] > a["step"]:
                    dt = (datetime.datetime.fromisoformat(b["time"].replace("Z", "+00:00"))
                          - datetime.datetime.fromisoformat(a["time"].replace("Z", "+00:00"))).total_seconds()
                    per_step.append(dt / (b["step"] - a["step"]))
        if not (pre_sps and per_step):
            return {}
        ft_s, left = float(np.median(per_step)), 0.0
        for t in self._odt_tasks():
            if t.done():
                continue
            if t.action == "train":
                left += max(0, t.step - _last_step(self.runs / t.run)) / pre_sps
            elif t.action == "finetune":
                total = int(self.odt_finetune_preset(t.args["env"])["online_steps"])
                left += max(0, total - _last_step(self.runs / t.run)) * ft_s
            elif t.action == "evaluate_odt":
                left += c.eval_episodes * eval_s_per_episode
        return {"odt_h": left / 3600, "odt_pretrain_steps_per_s": pre_sps, "odt_finetune_ms_per_env_step": ft_s * 1e3}

    def _behaviour_estimate(self) -> dict:
        """{"behaviour_h": core-hours left in the behaviour runs, at their full length, "behaviour_rates":
        env steps/s per level, "behaviour_own": {run: env steps/s}}: a run under way at its own rate
        so far (its state/progress.json: env steps over wall seconds), the others at the committed
        envs' (suite/v1/manifest.json: each run's env steps over its wall time, the median over envs);
        {} where a run has neither."""
        from decision_transformer.suite.build import SUITE_V1
        mp = SUITE_V1 / "manifest.json"
        runs = [e["training"] for e in (json.loads(mp.read_text()).values() if mp.is_file() else ())
                if isinstance(e, dict) and "training" in e]
        rates = {lv: float(np.median([r[lv]["total_env_steps"] / r[lv]["wall_seconds"] for r in runs if lv in r]))
                 for lv in ("medium", "expert") if any(lv in r for r in runs)}
        left, own = 0.0, {}
        for t in self._behaviour_tasks():
            if t.action != "behaviour" or t.done():
                continue
            try:
                prog = json.loads((self.runs / t.run / "state" / "progress.json").read_text())
                done, wall = int(prog["steps"]), float(prog.get("wall") or 0)
            except (OSError, ValueError, KeyError, TypeError):
                done, wall = 0, 0.0
            if done and wall > 0:
                own[t.run] = done / wall
            rate = own.get(t.run) or rates.get(t.args["level"])
            if not rate:
                return {}
            left += max(0, self.config.behaviour[t.args["env"]][t.args["level"]]["steps"] - done) / rate
        return {"behaviour_h": left / 3600, "behaviour_rates": rates, "behaviour_own": own} if rates or own else {}


def best_file(upto: int | None = None) -> str:
    """The best checkpoint's evaluation: over the whole run (stage 1), or over the checkpoints up to
    a step (stage 2's budget, where a stage-1 run trains on past it)."""
    return "eval-best.json" if upto is None else f"eval-best-{ckpt_name(upto)}.json"


def episode_scores(ev: dict, target_index: int = 0) -> np.ndarray:
    """An evaluation record's episodes (eval or sweep file), normalised x100 with its references, at one
    target (the last where it has fewer)."""
    from decision_transformer.evaluation.stats import normalized
    r = ev["results"][min(target_index, len(ev["results"]) - 1)]
    return normalized(np.asarray(r["returns"], dtype=np.float64), r["refs"]["min"], r["refs"]["max"])


def _die_with_parent() -> None:
    """In a child process (preexec_fn): SIGTERM when the worker that started it dies (Linux)."""
    import ctypes
    import signal
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)      # PR_SET_PDEATHSIG
    except OSError:
        pass


def _newest_session_rate(runs: list[Path], min_rows: int = 10) -> tuple[float, str] | None:
    """(gradient steps/s, where it was measured): the median over the metrics.csv rows of the newest
    run session (sessions.jsonl) that logged at least `min_rows` rows: the speed the workers have
    now, not one from a time when other jobs shared the cores. None where no run records its sessions."""
    from decision_transformer.devices import machine_label
    from decision_transformer.rundir import read_metrics, read_sessions, session_of
    best = None
    for run in runs:
        sessions, by = read_sessions(run / "sessions.jsonl"), {}
        for r in read_metrics(run / "metrics.csv") if sessions else ():
            if r["steps_per_s"] is not None and (i := session_of(sessions, r["step"])) is not None:
                by.setdefault(i, []).append(r["steps_per_s"])
        for i, vals in by.items():
            if len(vals) >= min_rows and (best is None or sessions[i]["time"] > best[0]):
                best = (sessions[i]["time"], float(np.median(vals)), run.name, sessions[i], len(vals))
    if best is None:
        return None
    when, rate, run, s, n = best
    return rate, (f"the median of the newest run session's {n} log rows: {run} from step {s['step']:,}, started "
                  f"{when[:10]} on {machine_label(s['machine'])}")


def _steps_per_s(files: list[Path]) -> float | None:
    """Median of the steps_per_s column over the rows of these metrics.csv files."""
    from decision_transformer.rundir import read_metrics
    vals = [r["steps_per_s"] for f in files for r in read_metrics(f) if r["steps_per_s"] is not None]
    return float(np.median(vals)) if vals else None


def _eval_seconds_per_step(files: list[Path]) -> float | None:
    """Evaluation seconds per env step (one thread, 50 envs, ONNX Runtime) over these eval.json files."""
    rates = []
    for f in files:
        ev = json.loads(f.read_text())
        steps = sum(r["episodes"] * r["length_mean"] for r in ev["results"] if "length_mean" in r)
        if steps and ev.get("eval_seconds"):
            rates.append(ev["eval_seconds"] / steps)
    return float(np.median(rates)) if rates else None


def _last_step(run: Path) -> int:
    last = run / "checkpoints" / "last"
    try:
        return int(last.resolve().name) if last.exists() else 0
    except ValueError:
        return 0
