"""docs/results.md: the campaign on suite v1 (results_v1.py), from the files it commits.

Like page.py (suite v0's page), every number is read from `results/v1/` or the suite's manifest, or
computed from them; runs not finished show as "pending". Scores are normalised x100 with the
references stored in each dataset (`dt suite build --version v1`), and every table gives two CIs:
across episodes (the pooled episodes' bootstrap) and across seeds (a hierarchical bootstrap: seeds
drawn with replacement, then episodes within each), so a result carried by one lucky seed shows.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import numpy as np

from decision_transformer import results as R
from decision_transformer.evaluation.conditioning import WINDOWS as CONDITIONING_WINDOWS, describe
from decision_transformer.evaluation.stats import bootstrap_ci, hierarchical_ci, normalized, spearman
from decision_transformer.fileio import replace_block, write_text_atomic
from decision_transformer.report import card as card_template
from decision_transformer.report.page import _read, status_section
from decision_transformer.results_v1 import VERSION as R_V1, best_file, episode_scores, suite_level


def pooled(evals: list[dict | None], target_index: int = 0) -> dict | None:
    """Normalised scores of one evaluation per seed, at one target: None until every seed has one."""
    if not evals or any(e is None for e in evals):
        return None
    per_seed = [episode_scores(ev, target_index) for ev in evals]
    allx = np.concatenate(per_seed)
    return {"mean": float(allx.mean()), "std": float(allx.std()), "ci_episodes": bootstrap_ci(allx),
            "ci_seeds": hierarchical_ci(per_seed), "seed_means": [float(x.mean()) for x in per_seed],
            "n": int(len(allx)), "target": evals[0]["results"][min(target_index, len(evals[0]["results"]) - 1)]["target_return"]}


def fmt(st: dict | None) -> str:
    if st is None:
        return "pending"
    return (f"{st['mean']:.1f} ± {st['std']:.1f} [{st['ci_episodes'][0]:.1f}, {st['ci_episodes'][1]:.1f}] "
            f"[{st['ci_seeds'][0]:.1f}, {st['ci_seeds'][1]:.1f}] ({', '.join(f'{x:.1f}' for x in st['seed_means'])})")


COLUMNS = "mean ± std [95% CI, episodes] [95% CI, seeds] (seed means)"


def cell(evals: list[dict | None], target_index: int = 0, seeds=None, screened: bool = False) -> str:
    """fmt(pooled(...)) once every seed is evaluated; before, the seeds done so far, each one's
    normalised mean, so the page shows a campaign's progress ("pending (so far: seed 0 43.9)").
    `screened`: a recipe stopped after its first seed (`evals` holds that seed's only)."""
    st = pooled(evals, target_index)
    if screened:
        return "pending" if st is None else (f"{st['mean']:.1f} ± {st['std']:.1f} [{st['ci_episodes'][0]:.1f}, "
                                             f"{st['ci_episodes'][1]:.1f}] (seed {seeds[0]} only: screened out)")
    if st is not None or not any(evals):
        return fmt(st)
    so_far = [f"seed {seeds[i] if seeds else i} {float(episode_scores(ev, target_index).mean()):.1f}"
              for i, ev in enumerate(evals) if ev is not None]
    return f"pending (so far: {', '.join(so_far)})"


def _evals(camp, model: str, env: str, level: str, name: str, seeds=None) -> list[dict | None]:
    return [_read(camp.results / R.run_name(model, env, level, s) / name) for s in seeds or camp.config.seeds]


def _screen(camp, model: str) -> tuple[bool, tuple]:
    """(whether `model` was screened out on its first seed, the seeds it has results for)."""
    out = camp.screened_out(model) is not None
    return out, tuple(camp.config.seeds[:1] if out else camp.config.seeds)


def _targets(camp, env: str, level: str) -> list[float]:
    for s in camp.config.seeds:
        ev = _read(camp.results / R.run_name("dt", env, level, s) / f"eval-{R.ckpt_name(camp.config.ab_eval_steps[0])}.json")
        if ev:
            return [r["target_return"] for r in ev["results"]]
    return []


def budget_ema_section(camp) -> list[str]:
    out = ["## 2. A/B: budget and weight averaging", "",
           f"One {camp.config.ab_steps:,}-step DT run per seed (seeds {', '.join(map(str, camp.config.seeds))}; the `transformers` "
           f"initialisation; an exponential moving average of the weights with decay {camp.config.ema_decay} kept beside them), "
           f"its checkpoints at {', '.join(f'{s:,}' for s in camp.config.ab_eval_steps)} steps evaluated with "
           f"{camp.config.eval_episodes} episodes per seed and target ({R.env_seeds_phrase(camp.config.eval_episodes, camp.config.eval_seed)}), raw weights and "
           f"EMA. Normalised x100, the {len(camp.config.seeds)} seeds pooled: {COLUMNS}.", ""]
    budget, cap = camp.budget_decision()
    for env, level in camp.config.ab_datasets:
        targets = _targets(camp, env, level) or [None]
        for ti, tr in enumerate(targets):
            out += [f"**{camp.dataset_id(env, level)}**" + (f", target {tr:g}" if tr is not None else ""), "",
                    "| steps | raw weights | EMA |", "| --- | --- | --- |"]
            for s in camp.config.ab_eval_steps:
                if s > cap:
                    out.append(f"| {s:,} | " + (f"trained only if {cap // 1000}k beats the budget before it (section "
                                                "4's rule)" if budget is None else f"not trained here ({cap // 1000}k "
                                                f"did not beat {budget // 1000}k: section 4's rule)") + " | |")
                    continue
                raw = cell(_evals(camp, "dt", env, level, f"eval-{R.ckpt_name(s)}.json"), ti, camp.config.seeds)
                ema = cell(_evals(camp, "dt", env, level, f"eval-{R.ckpt_name(s)}-ema.json"), ti, camp.config.seeds)
                out.append(f"| {s:,} | {raw} | {ema} |")
            out.append("")
        out += stability_lines(camp, env, level)
    return out


def curves_lines(camp, figs: Path) -> tuple[list[str], list[Path]]:
    """The A/B runs' learning curves (the checkpoints every checkpoint_every steps, curve_episodes
    episodes at the first target), a figure per A/B dataset: per recipe, raw and EMA weights, the
    mean over the seeds that reached each step with a band from the lowest to the highest seed."""
    from decision_transformer.report import plots
    c, lines, paths = camp.config, [], []
    for env, level in c.ab_datasets:
        series = {}
        for model, rec in camp.stage1_recipes().items():
            seeds = _screen(camp, model)[1]
            for ema in (False, True):
                pts = []
                for step in range(c.checkpoint_every, rec["steps"] + 1, c.checkpoint_every):
                    evs = [e for e in _evals(camp, model, env, level, f"curve/{R.ckpt_name(step)}{'-ema' if ema else ''}.json",
                                             seeds) if e is not None]
                    if evs:
                        m = [float(episode_scores(e).mean()) for e in evs]
                        pts.append((step, float(np.mean(m)), min(m), max(m)))
                if pts:
                    series[f"{recipe_name(c.recipes[model])}, {'EMA' if ema else 'raw'}"] = pts
        if not series:
            continue
        steps = sorted({p[0] for pts in series.values() for p in pts})
        full = {k: tuple([dict((p[0], p[i]) for p in pts).get(s, np.nan) for s in steps] for i in (1, 2, 3))
                for k, pts in series.items()}
        paths.append(plots.curve_plot(steps, full, figs / f"v1-curves-{env}-{level}.png",
                                      title=f"{camp.dataset_id(env, level)}: the A/B runs at the first target "
                                            "(seed mean and range)"))
    if paths:
        lines = [f"Learning curves of the A/B runs: every {c.checkpoint_every:,}-step checkpoint, {c.curve_episodes} episodes at "
                 "the first target, normalised; the mean over the seeds that reached the step, the band from the lowest "
                 "seed to the highest: " + ", ".join(f"[{p.stem}](figures/{p.name})" for p in paths) + ".", "",
                 *(f"![{p.stem}](figures/{p.name})" for p in paths), ""]
    return lines, paths


def stability_lines(camp, env: str, level: str) -> list[str]:
    """Checkpoint-to-checkpoint swings from 20k steps on: the std of the 20-episode means of
    consecutive checkpoints at the first target, per seed, raw vs EMA."""
    rows = []
    for ema in (False, True):
        per_seed = []
        for s in camp.config.seeds:
            d = camp.results / R.run_name("dt", env, level, s) / "curve"
            xs = []
            for step in range(camp.config.ab_eval_steps[0], camp.config.ab_steps + 1, camp.config.checkpoint_every):
                ev = _read(d / f"{R.ckpt_name(step)}{'-ema' if ema else ''}.json")
                if ev is None:
                    break
                xs.append(float(episode_scores(ev).mean()))
            per_seed.append(xs)
        n = min(len(x) for x in per_seed)
        if n < 2:
            rows.append(f"| {'EMA' if ema else 'raw'} | pending | pending |")
            continue
        stds = [float(np.std(x[:n])) for x in per_seed]
        jumps = [float(np.mean(np.abs(np.diff(x[:n])))) for x in per_seed]
        rows.append(f"| {'EMA' if ema else 'raw'} | {np.mean(stds):.1f} ({', '.join(f'{x:.1f}' for x in stds)}) | "
                    f"{np.mean(jumps):.1f} ({', '.join(f'{x:.1f}' for x in jumps)}) |")
    return [f"Stability on {camp.dataset_id(env, level)}: the {camp.config.curve_episodes}-episode normalised means of the "
            f"checkpoints every {camp.config.checkpoint_every:,} steps from {camp.config.ab_eval_steps[0]:,} on, at the first target; "
            "mean over seeds (per seed).", "",
            "| weights | std across checkpoints | mean jump between consecutive checkpoints |", "| --- | --- | --- |",
            *rows, ""]


def recipe_name(rec: dict) -> str:
    """"transformers", "official", "transformers, no timestep embedding": a stage-1 recipe."""
    return rec["init"] + (", no timestep embedding" if rec.get("timestep_embedding", True) is False else "")


def init_section(camp) -> list[str]:
    c = camp.config
    arms = [m for m, rec in c.recipes.items() if c.init_ab_steps in rec["evals"]]
    out = ["## 3. A/B: initialisation and timestep embedding", "",
           f"{c.init_ab_steps:,} steps, same seeds and data: the official code's initialisation (`--init official`: "
           "N(0, 0.02) in the GPT-2 trunk only, PyTorch's defaults in the embeddings and heads, no position row) "
           f"against `transformers`' (every layer N(0, 0.02); the budget runs' {c.init_ab_steps:,}-step checkpoints), "
           "and `transformers`' without the timestep embedding (`--no-timestep-embedding`: the model knows its place "
           "in the episode from the return-to-go alone, as the Online DT's). "
           f"{c.eval_episodes} episodes per seed and target, raw weights. {COLUMNS}.", ""]
    for env, level in c.ab_datasets:
        targets = _targets(camp, env, level) or [None]
        out += [f"**{camp.dataset_id(env, level)}**", "",
                "| recipe | " + " | ".join(f"target {t:g}" if t is not None else "score" for t in targets)
                + " | action moved by: return-to-go x2 / timesteps +100 (per seed) |",
                "| --- |" + " --- |" * (len(targets) + 1)]
        for model in arms:
            screened, seeds = _screen(camp, model)
            evs = _evals(camp, model, env, level, f"eval-{R.ckpt_name(c.init_ab_steps)}.json", seeds)
            cells = [cell(evs, ti, seeds, screened) for ti in range(len(targets))]
            out.append(f"| {recipe_name(c.recipes[model])} | " + " | ".join(cells) + f" | {_moved(evs)} |")
        out.append("")
    return out + [MOVED_NOTE, ""]


def last_best_section(camp) -> list[str]:
    out = ["## 4. Last and best checkpoint", "",
           f"The headline is always the LAST checkpoint. \"Best\", as CORL and d3rlpy also report it: the checkpoint "
           f"(every {camp.config.checkpoint_every:,} steps) with the highest {camp.config.curve_episodes}-episode mean at the first target, "
           f"evaluated again on {camp.config.eval_episodes} fresh episodes at that target ({R.env_seeds_phrase(camp.config.eval_episodes, camp.config.best_seed)}), so its number is not the "
           f"selection's own luck. {COLUMNS}.", "",
           "| dataset | run | last checkpoint | best checkpoint (steps per seed) |", "| --- | --- | --- | --- |"]
    for env, level in camp.config.ab_datasets:
        for model, rec in camp.stage1_recipes().items():
            screened, seeds = _screen(camp, model)
            last = cell(_evals(camp, model, env, level, f"eval-{R.ckpt_name(rec['steps'])}.json", seeds), 0, seeds,
                        screened)
            bevs = _evals(camp, model, env, level, "eval-best.json", seeds)
            best = pooled(bevs)
            steps = ", ".join(f"{e['checkpoint_step']:,}" for e in bevs) if best else ""
            out.append(f"| {camp.dataset_id(env, level)} | {model} ({rec['steps']:,} steps) | {last} | "
                       f"{cell(bevs, 0, seeds, screened) if screened else fmt(best)}{' (' + steps + ')' if steps else ''} |")
    return out + [""] + decisions_lines(camp)


def _gain(g) -> str:
    return "pending" if g is None else f"{g[0]:+.1f} [{g[1]:+.1f}, {g[2]:+.1f}]"


def decisions_lines(camp) -> list[str]:
    """Stage 1's decisions, each with the paired gains it is taken on (results_v1: beats)."""
    c = camp.config
    rows = []

    def row(what, a, b, verdict):
        gains = [_gain(camp.paired_gain(a, b, env, level)) for env, level in c.ab_datasets]
        rows.append(f"| {what} | " + " | ".join(gains) + f" | {verdict} |")
    for chosen, b, won in camp.budget_trail():
        row(f"budget: {b // 1000}k against {chosen // 1000}k steps (raw weights)", ("dt", chosen, False), ("dt", b, False),
            "pending" if won is None else f"{b // 1000}k wins" if won else f"{chosen // 1000}k kept")
    budget, _ = camp.budget_decision()
    cap = c.stage2_max_budget
    early = cap is not None and cap <= c.ab_eval_steps[0]      # stage 2 takes the CPU's cap without the budget A/B
    for step in dict.fromkeys([*([cap] if early else []), *([budget] if budget is not None else [])]):
        won = camp.beats(("dt", step, False), ("dt", step, True))
        row(f"weights: EMA against raw at {step // 1000}k" + (" (stage 2's budget on the CPU)" if early and step == cap
                                                              and budget != cap else ""),
            ("dt", step, False), ("dt", step, True), "pending" if won is None else "EMA wins" if won else "raw kept")
    for model, margin in c.screen.items():
        if (pairs := camp.screened_out(model)) is not None:
            rows.append(f"| recipe: {recipe_name(c.recipes[model])} against {recipe_name(c.recipes['dt'])}, seed "
                        f"{c.seeds[0]} at {c.recipes[model]['steps'] // 1000}k (the screen) | "
                        + " | ".join(f"{b - a:+.1f} ({b:.1f} vs {a:.1f})" for a, b in pairs)
                        + f" | screened out: more than {margin:g} behind on every dataset; its other seeds are not run |")
    for model, step in camp.challengers():
        won = camp.beats(("dt", step, False), (model, step, False))
        row(f"recipe: {recipe_name(c.recipes[model])} against {recipe_name(c.recipes['dt'])} at {step // 1000}k",
            ("dt", step, False), (model, step, False), "pending" if won is None else "wins" if won else "not better")
    st = camp.stage2_recipe()
    if c.stage2 != "auto":
        verdict = f"Stage 2's recipe is set by hand (`stage2`): {st}." if st else "Stage 2 is not planned (`stage2` None)."
    elif st is None:
        verdict = ("Stage 2's recipe: pending until every row above is decided." if not early else
                   f"Stage 2's recipe: pending until the rows at {cap // 1000}k are decided (the weights and the recipes; "
                   "it does not wait for the budget A/B, whose first budget is the CPU's cap).")
    else:
        chosen = camp.budget_decision()[0]
        pending = "" if chosen is not None else " (the CPU campaign's; the budget A/B: pending)"
        verdict = (f"Stage 2's recipe, so decided: {st.get('chosen_budget', st['budget']):,} steps{pending}, "
                   f"{recipe_name(c.recipes[st['model']])}, {'EMA' if st['ema'] else 'raw'} weights.")
        if "chosen_budget" in st or chosen is None:
            verdict += (f" Stage 2 trains at {st['budget']:,} steps here, the longest budget this CPU campaign affords "
                        f"(`stage2_max_budget`; the EMA and the initialisation decided at that budget), so it does not "
                        "wait for the budget A/B, whose longer legs train after it"
                        + (f"; the {st['chosen_budget']:,}-step budget is left to a GPU session." if "chosen_budget" in st
                           else "."))
    return ["### Stage 1's decisions", "",
            "Each row: the second recipe's score minus the first's at the first target, normalised x100, paired by "
            "seed (the same training seed and data); the mean over seeds and the 95% CI that resamples the seeds "
            "together and each side's episodes, per A/B dataset. The rule: the second wins when its CI lies above 0 on at least one dataset "
            "and below 0 on none. Budgets are taken in order while each next one wins; the first that does not "
            "ends the search, and no longer leg is trained on the CPU (a GPU session may run it). Then the EMA at "
            "the chosen budget, and each other recipe against the `transformers` one at its step (where several win, "
            "the larger mean gain)." + _screen_rule(camp), "",
            "| decision | " + " | ".join(camp.dataset_id(e, lv) for e, lv in c.ab_datasets) + " | verdict |",
            "| --- |" + " --- |" * (len(c.ab_datasets) + 1), *rows, "", verdict, ""]


def _screen_rule(camp) -> str:
    c = camp.config
    if not c.screen:
        return ""
    names = ", ".join(f"{recipe_name(c.recipes[m])} (margin {g:g})" for m, g in c.screen.items())
    return (f" Screened on seed {c.seeds[0]} first, as an arm the issue does not ask for: {names}; its other seeds run "
            f"only if its seed-{c.seeds[0]} score at the first target comes within the margin of the "
            f"`transformers` run's seed {c.seeds[0]} on at least one dataset (the screen's row shows the two scores).")


def _stage2_evals(camp, method: str, env: str, level: str) -> list[dict | None]:
    """The last-checkpoint evaluations of a stage-2 method (`dt` = the config's stage2 DT), one per seed."""
    if method in camp.config.baselines:
        return _evals(camp, method, env, level, f"eval-{R.ckpt_name(camp.config.baseline_steps)}.json")
    st = camp.stage2_recipe()
    return _evals(camp, st["model"], env, level, f"eval-{R.ckpt_name(st['budget'])}{'-ema' if st.get('ema') else ''}.json")


def _stage2_best(camp, env: str, level: str) -> str:
    """The stage-2 DT's best checkpoint (up to its budget, the reported weights), seeds pooled, with each
    seed's step."""
    st = camp.stage2_recipe()
    evs = _evals(camp, st["model"], env, level, best_file(st["budget"]))
    steps = ", ".join(f"{e['checkpoint_step']:,}" for e in evs) if all(evs) else ""
    return cell(evs, 0, camp.config.seeds) + (f" ({steps})" if steps else "")


def _pooled_sweep(camp, env: str, level: str) -> tuple[list[int], list[float], list[list[np.ndarray]], float] | None:
    """The stage-2 DT's sweeps on one dataset, pooled over the seeds that have one: (those seeds, the
    targets, each target's per-seed returns, the dataset's best return); None before any seed has a sweep."""
    sws = dict(zip(camp.config.seeds, _evals(camp, camp.stage2_recipe()["model"], env, level, "sweep.json")))
    have = [s for s, sw in sws.items() if sw is not None]
    if not have:
        return None
    t = [r["target_return"] for r in sws[have[0]]["results"]]
    return (have, t, [[np.asarray(sws[s]["results"][i]["returns"], dtype=np.float64) for s in have] for i in range(len(t))],
            float(sws[have[0]]["dataset_return_max"]))


def share_at_or_above(hist: dict, ret: float) -> float:
    """The share of a dataset's episodes that return at least `ret`, from its return histogram
    (`return_histogram` in results.py): whole bins above, and the part of ret's bin above it."""
    edges, eps = np.asarray(hist["edges"], dtype=np.float64), np.asarray(hist["episodes"], dtype=np.float64)
    cum = np.concatenate([[0.0], np.cumsum(eps)])              # episodes below each edge
    return float(1.0 - np.interp(ret, edges, cum) / cum[-1])


def _sweep_rho(camp, env: str, level: str) -> float | None:
    """Spearman's rho of the pooled mean achieved return against the target (the bar's); None until
    every seed's sweep exists."""
    sw = _pooled_sweep(camp, env, level)
    if sw is None or len(sw[0]) < len(camp.config.seeds):
        return None
    return spearman(sw[1], [float(np.concatenate(r).mean()) for r in sw[2]])


def _sweep_at_expert(camp, env: str, level: str) -> tuple[float, float] | None:
    """(the sweep's target nearest the expert reference (the normalisation's 100), the normalised mean there,
    seeds pooled), or None until every seed's sweep exists."""
    sws = _evals(camp, camp.stage2_recipe()["model"], env, level, "sweep.json")
    if any(x is None for x in sws):
        return None
    res = sws[0]["results"]
    i = int(np.argmin([abs(r["target_return"] - r["refs"]["max"]) for r in res]))
    return float(res[i]["target_return"]), float(np.mean(np.concatenate([episode_scores(sw, i) for sw in sws])))


def scores_section(camp) -> list[str]:
    from decision_transformer.report.page import PAPER_BC, PAPER_DT
    st = camp.stage2_recipe()
    if st is None:
        return ["## 5. Scores on suite v1 (stage 2)", "",
                "Not started: stage 2 runs once the A/Bs above have chosen the recipe (budget, initialisation, "
                "timestep embedding, raw or averaged weights; section 4's decisions).", ""]
    out = ["## 5. Scores on suite v1 (stage 2)", "",
           f"DT: {st['budget']:,} steps, recipe {recipe_name(camp.config.recipes[st['model']])} (initialisation), "
           f"{'averaged (EMA)' if st.get('ema') else 'raw'} weights, the LAST checkpoint, at the paper's first target; "
           f"beside it, labelled as such, the BEST checkpoint of the same weights (section 4's rule, the checkpoints "
           f"every {camp.config.checkpoint_every:,} steps up to {st['budget']:,}; each seed's step in brackets); "
           f"BC and 10%BC (the official MLP, docs/baselines.md; 10%BC: the best episodes holding 10% of the timesteps): "
           f"{camp.config.baseline_steps:,} steps. "
           f"{len(camp.config.seeds)} seeds x {camp.config.eval_episodes} episodes each, pooled: {COLUMNS}.", "",
           "| dataset | data mean / max | DT (last) | DT (best checkpoint) | BC | 10%BC | paper DT | paper BC |",
           "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for env in camp.config.envs:
        for level in camp.config.levels:
            d = _read(camp.results / "datasets" / f"{env}-{level}.json")
            dd = f"{d['normalized_mean_x100']:.1f} / {d['normalized_max_x100']:.1f}" if d else "pending"
            cells = [cell(_stage2_evals(camp, m, env, level), 0, camp.config.seeds) for m in ("dt", *camp.config.baselines)]
            cells.insert(1, _stage2_best(camp, env, level))
            out.append(f"| {camp.dataset_id(env, level)} | {dd} | " + " | ".join(cells) +
                       f" | {PAPER_DT.get((env, level), '-')} | {PAPER_BC.get((env, level), '-')} |")
    return out + [""] + bars_section(camp)


def sweeps_section(camp, figs: Path) -> tuple[list[str], list[Path]]:
    """Return conditioning on suite v1 (the paper's Figure 4; the rho bar's evidence): every seed's
    sweep of the stage-2 DT on the medium-replay and medium-expert datasets, seeds pooled, a table
    row and a figure per dataset (the seeds so far while some are missing); ([], []) before stage 2."""
    from decision_transformer.report import plots
    st, c = camp.stage2_recipe(), camp.config
    if st is None:
        return [], []
    lines = ["### Return conditioning (the paper's Figure 4)", "",
             f"`dt sweep` of every seed's DT ({st['budget']:,} steps, {'EMA' if st.get('ema') else 'raw'} weights) on the "
             f"medium-replay and medium-expert datasets: {c.sweep_points} targets from the dataset's lowest episode return "
             f"to 1.2x its best, {c.sweep_episodes} episodes per seed and target, the seeds pooled (the mean and the 95% CI "
             "over the pooled episodes). rho: Spearman's rank correlation of the target and the pooled mean achieved "
             "return (the bar's), then each seed's own. Beside the best achieved return: the share of the data's episodes "
             "that return at least as much; behind each figure, the data's episode returns (histogram, % of its "
             "episodes, right axis; `return_histogram` in results/v1/datasets/), to set where the data lies beside "
             "where the DT follows its target.", "",
             "| dataset | seeds | achieved at lowest → highest target | best achieved (target) | data's episodes returning >= the best achieved | dataset best | rho (per seed) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    paths, panels = [], []
    for env in c.envs:
        for level in c.sweep_levels:
            sw = _pooled_sweep(camp, env, level)
            if sw is None:
                lines.append(f"| {camp.dataset_id(env, level)} | none yet | pending | | | | |")
                continue
            have, t, per, data_best = sw
            pooled_res = [{"target_return": t[i], "return_mean": float(np.concatenate(per[i]).mean()),
                           "return_ci95": bootstrap_ci(np.concatenate(per[i]))} for i in range(len(t))]
            m = [r["return_mean"] for r in pooled_res]
            best = int(np.argmax(m))
            hist = (_read(camp.results / "datasets" / f"{env}-{level}.json") or {}).get("return_histogram")
            rhos = ", ".join(f"{spearman(t, [float(per[i][k].mean()) for i in range(len(t))]):.2f}" for k in range(len(have)))
            seeds = ", ".join(map(str, have)) + ("" if len(have) == len(c.seeds) else " so far")
            title = f"DT on {camp.dataset_id(env, level)} ({st['budget']:,} steps; seeds {seeds})"
            paths.append(plots.sweep_plot(pooled_res, figs / f"v1-sweep-{env}-{level}.png", data_best, title=title,
                                          hist=hist))
            panels.append((f"{env} {level} (seeds {seeds})", pooled_res, data_best, hist))
            share = f"{100 * share_at_or_above(hist, m[best]):.1f}%" if hist else "-"
            lines.append(f"| {camp.dataset_id(env, level)} | {seeds} | {m[0]:.0f} ({t[0]:.0f}) → {m[-1]:.0f} ({t[-1]:.0f}) | "
                         f"{m[best]:.0f} ({t[best]:.0f}) | {share} | {data_best:.0f} | {spearman(t, m):.2f} ({rhos}) |")
    if panels:
        paths.append(plots.sweep_grid(panels, figs / "v1-sweeps.png", cols=len(c.sweep_levels)))
        lines += ["", "![return conditioning on suite v1](figures/v1-sweeps.png)", "",
                  "One figure per dataset: " + ", ".join(f"[{p.stem}](figures/{p.name})" for p in paths[:-1]) + "."]
    return lines + [""], paths


def bars_section(camp) -> list[str]:
    """The bars the suite-v1 campaign is judged by, each with the numbers it is judged on."""
    rows = []

    def row(what, value, ok):
        rows.append(f"| {what} | {value} | {'pending' if ok is None else 'met' if ok else 'MISSED'} |")

    def dt(env, level):
        return pooled(_stage2_evals(camp, "dt", env, level))
    for env in camp.config.envs:
        x, near = dt(env, "medium-expert"), _sweep_at_expert(camp, env, "medium-expert")
        row(f"{camp.dataset_id(env, 'medium-expert')}: DT >= 90 at the expert target",
            (f"{x['mean']:.1f}" if x else "pending")
            + (f" (the sweep's target nearest the expert's return, {near[0]:.0f}: {near[1]:.1f})" if near else ""),
            None if x is None else x["mean"] >= 90)
    for env in camp.config.envs:
        x, d = dt(env, "medium"), _read(camp.results / "datasets" / f"{env}-medium.json")
        ok = None if x is None or d is None else x["mean"] >= d["normalized_mean_x100"]
        row(f"{camp.dataset_id(env, 'medium')}: DT >= the data's mean",
            f"{x['mean']:.1f} vs {d['normalized_mean_x100']:.1f}" if x and d else "pending", ok)
    for env in [e for e in ("hopper", "walker2d") if e in camp.config.envs]:
        x, b = dt(env, "medium-replay"), pooled(_stage2_evals(camp, "bc", env, "medium-replay"))
        row(f"{camp.dataset_id(env, 'medium-replay')}: DT >= BC + 10",
            f"{x['mean']:.1f} vs {b['mean']:.1f} + 10" if x and b else "pending",
            None if x is None or b is None else x["mean"] >= b["mean"] + 10)
    for env in camp.config.envs:
        for level in camp.config.sweep_levels:
            rho = _sweep_rho(camp, env, level)
            row(f"{camp.dataset_id(env, level)}: sweep rho >= 0.8", "pending" if rho is None else f"{rho:.2f}",
                None if rho is None else rho >= 0.8)
    below, n, pending = [], 0, 0
    for env in camp.config.envs:
        for level in camp.config.levels:
            x = _published_vs_data(camp, env, level)
            if x is None:
                pending += 1
                continue
            n += 1
            if x[0] < x[1]:
                below.append(f"models/{env}-{level} {x[0]:.0f} < {x[1]:.0f}")
    row("no published checkpoint below its dataset's mean return at its first target",
        f"{n} published" + (f", {pending} pending" if pending else "") + (f"; below: {', '.join(below)}" if below else ""),
        False if below else None if pending else True)
    return ["### The bars", "", "| bar | measured | verdict |", "| --- | --- | --- |", *rows, ""]


def _published_vs_data(camp, env: str, level: str) -> tuple[float, float] | None:
    """(the published run's mean return at its first target, its dataset's mean return), from
    results/v1/published/ and datasets/; None until both exist."""
    pub, data = (_read(camp.results / d / f"{env}-{level}.json") for d in ("published", "datasets"))
    if pub is None or data is None:
        return None
    ev = _read(camp.results / pub["run"] / f"eval-{R.ckpt_name(pub['checkpoint_step'])}"
                                            f"{'-ema' if pub['weights'] == 'ema' else ''}.json")
    return None if ev is None else (float(np.mean(ev["results"][0]["returns"])), float(data["return_mean"]))


# Zheng, Zhang and Grover (ICML 2022), Table 1: ODT's normalised score (x100) on D4RL v2 after offline
# pretraining and after 200k online samples. Their model (4 layers, 4 heads, width 512, batch 256) and
# budget, and D4RL's data: a different suite and budget from ours.
PAPER_ODT = {("hopper", "medium"): (66.95, 97.54)}
# The paper's recipe per dataset as this toolkit's presets hold it (training/presets/, its finetune/).
PAPER_ODT_PRESETS = {("hopper", "medium"): ("odt-hopper-medium", "hopper-medium"),
                     ("hopper", "medium-replay"): ("odt-hopper-medium-replay", "hopper-medium-replay"),
                     ("walker2d", "medium"): ("odt-walker2d", "walker2d"),
                     ("walker2d", "medium-replay"): ("odt-walker2d", "walker2d"),
                     ("halfcheetah", "medium"): ("odt-halfcheetah", "halfcheetah"),
                     ("halfcheetah", "medium-replay"): ("odt-halfcheetah", "halfcheetah")}


def _preset_differences(ours: dict, paper: dict) -> str:
    """"hidden_size 64 (paper 512), ...": the keys where two presets differ, with the defaults
    filling what one of them leaves out."""
    keys = sorted(k for k in set(ours) | set(paper) if ours.get(k) != paper.get(k))
    return ", ".join(f"{k} {json.dumps(ours.get(k))} (paper {json.dumps(paper.get(k))})" for k in keys)


def paper_recipe_lines(camp, env: str, level: str, arms) -> list[str]:
    """What this campaign's recipe changes in the paper's, read from the presets: the pretraining
    presets of the arms' variants against the paper's, the fine-tuning preset against the paper's
    (each over the options' defaults, so an omitted key compares as its default)."""
    from dataclasses import asdict

    from decision_transformer.options import read_preset
    from decision_transformer.training import finetune as F
    from decision_transformer.training import trainer as T
    base, version = suite_level(level)
    names = PAPER_ODT_PRESETS.get((env, base))
    if names is None:
        return []
    c = camp.config
    pre = lambda name, over={}: asdict(T.TrainConfig.from_sources(name, {"dataset": "-", **over}))  # noqa: E731
    fin = lambda d: asdict(F.FinetuneConfig(checkpoint="-", **d))                  # noqa: E731
    paper_pre = pre(names[0])
    paper_ft = fin(read_preset(names[1], F.PRESETS, "fine-tuning"))
    out = [f"What this recipe changes in the paper's (`dt train --preset {names[0]}`, `dt finetune --preset "
           f"{names[1]}`; besides the data, suite {version} here and D4RL v2 there):", ""]
    for v in dict.fromkeys(v for v, _ in arms):
        ours = pre(c.odt_pretrain[v], camp.odt_pretrain_overrides(env))        # as the campaign runs it
        out.append(f"- pretraining, `--preset {c.odt_pretrain[v]}`: {_preset_differences(ours, paper_pre)}")
    ours_ft = camp.odt_finetune_preset(env)
    for opt in dict.fromkeys(o for _, o in arms):
        arm = fin({**ours_ft, "optimizer": opt, **c.odt_optimizers[opt]})
        out.append(f"- fine-tuning, `--preset {c.odt_finetune[env]}` with {_arm(c, opt)}: "
                   f"{_preset_differences(arm, paper_ft)}")
    return out + [""]


def _finetune_rows(camp, run: str) -> list[dict]:
    """The rows of a fine-tuning run's metrics.csv (finetune.FINETUNE_COLUMNS, as text); none if missing."""
    import csv
    p = camp.results / run / "metrics.csv"
    if not p.is_file():
        return []
    with open(p, newline="") as f:
        return list(csv.DictReader(f))


def _odt_curve(camp, run: str, refs: dict, every: int) -> dict[int, float]:
    """The fine-tuning run's periodic evaluations (its metrics.csv), normalised, by interval: a run
    evaluates in the first round that ends past each multiple of `every` env steps (a round ends
    with its episodes), so each evaluation is keyed by the multiple it passed and the seeds line up."""
    return {every * (int(r["env_steps"]) // every): float(normalized(float(r["eval_return_mean"]), refs["min"], refs["max"]))
            for r in _finetune_rows(camp, run) if r.get("eval_return_mean")}


def _last_temperature(camp, run: str) -> float | None:
    """The entropy weight alpha at the fine-tuning run's last logged round (its metrics.csv)."""
    rows = [r for r in _finetune_rows(camp, run) if r.get("temperature")]
    return float(rows[-1]["temperature"]) if rows else None


def _opt_name(opt: str) -> str:
    return "LAMB" if opt == "lamb" else "AdamW"


ODT_BAR = 15        # the bar: online minus offline, normalised points, seeds pooled


def odt_figures(camp, env: str, level: str, variant: str = "odt"):
    """(offline evaluations per seed, offline pooled, {optimiser: online pooled}, {optimiser: the gain
    per seed}) of one pretraining variant: the last checkpoints, pooled once every seed has one (None
    before), the gain paired by seed and present once both sides are."""
    c, steps, seeds = camp.config, camp.odt_pretrain_steps(variant), camp.odt_seeds(env, level)
    offline_evs = _evals(camp, variant, env, level, f"eval-{R.ckpt_name(steps)}.json", seeds)
    offline = pooled(offline_evs)
    online = {opt: pooled(_evals(camp, f"{variant}{opt}", env, level, "eval-last.json", seeds))
              for opt in c.odt_optimizers}
    gains = {opt: [b - a for a, b in zip(offline["seed_means"], on["seed_means"])]
             for opt, on in online.items() if on and offline}
    return offline_evs, offline, online, gains


def set_aside_lines(camp, env: str, level: str, arms) -> list[str]:
    """Why a fallback dataset was set aside (odt_unfit): its clipped actions, measured by its data
    task, and what they did to exploration, from its fine-tuning runs' metrics.csv."""
    sat = camp.odt_unfit(env, level)
    if sat is None:
        return []
    from decision_transformer.models.odt import SATURATION_WARN
    rows = [r for v, o in arms for s in camp.odt_seeds(env, level)
            for r in _finetune_rows(camp, R.run_name(f"{v}{o}", env, level, s))]
    explore = [float(r["explore_return_mean"]) for r in rows if r.get("explore_return_mean")]
    evals = [float(r["eval_return_mean"]) for r in rows if r.get("eval_return_mean")]
    runs = (f" Over the fine-tuning runs' {len(rows)} evaluations, the exploration episodes of the round before "
            f"returned {np.mean(explore):.0f} on average (raw, `metrics.csv`), the mean action {np.mean(evals):.0f}: "
            f"sampled, the policy keeps {np.mean(explore) / np.mean(evals):.0%} of its mean action's return."
            if explore and evals else "")
    return [f"Set aside: {sat:.0%} of this dataset's action components lie at +-1 (`results/v1/datasets/"
            f"{env}-{level}.json`; suite {suite_level(level)[1]}'s data is a deterministic actor plus Gaussian noise, "
            "clipped to the box). The ODT's tanh-Gaussian head can only place such actions with a wide std, so its "
            f"samples, which exploration uses, swing between the bounds (`bench/odt_clipped.py` measures it on the "
            f"same data with and without clipping: docs/suite.md).{runs} Above {SATURATION_WARN:.0%} "
            "(`models/odt.py`), the campaign starts no more seeds on such data, and the dataset runs on suite v1, "
            "whose actions are a stochastic policy's own samples, once suite v1 has the env's data; `dt train "
            "--model odt` and `dt finetune` warn about such data.", ""]


MOVED_NOTE = (f"\"Action moved by\": how far the model's mean action moves (mean absolute change, action units, at "
              f"the last step of {CONDITIONING_WINDOWS} training windows of its data) when every return-to-go in the "
              "window is doubled, and when every timestep is 100 later (`evaluation/conditioning.py`), per seed where "
              "the evaluation recorded it. A model that hardly moves with its return-to-go follows no target: a higher "
              "target cannot steer it, nor can hindsight-relabelled returns teach it (the Online DT's mechanism).")


def _optimizer_ab_lines(c, gains: dict, online: dict, variant: str, preset_opt: str, preset: str) -> list[str]:
    """The LAMB/AdamW A/B on the first pretraining variant, once both arms have every seed, and
    the optimiser the fine-tuning preset now uses (the larger mean gain)."""
    opts = list(c.odt_optimizers)
    if not all((variant, o) in gains for o in opts):
        return []
    arms = ", ".join(f"{_opt_name(o)} {np.mean(gains[(variant, o)]):+.1f}" for o in opts)
    won = max(opts, key=lambda o: np.mean(gains[(variant, o)]))
    cis = [online[(variant, o)]["ci_seeds"] for o in opts]
    overlap = all(a[0] <= b[1] and b[0] <= a[1] for a in cis for b in cis)
    return [f"The optimiser A/B, from `{c.odt_pretrain[variant]}` ({len(c.seeds)} seeds each, mean gain): {arms}; "
            f"the online scores' 95% CIs across seeds {'overlap' if overlap else 'do not overlap'}. "
            f"`--preset {preset}` fine-tunes with {_opt_name(preset_opt)}"
            + (", the arm with the larger mean gain." if preset_opt == won else
               f", not the arm with the larger mean gain ({_opt_name(won)})."), ""]


def _chosen_arm_lines(camp) -> list[str]:
    """Which arm the other ODT datasets run, and why (`odt_recipe`)."""
    c, arm = camp.config, camp.chosen_odt_arm()
    if arm is None or not any(env in c.envs for env, _ in c.odt_more_datasets):
        return []
    why = ("the A/B's arm with the largest mean gain, chosen once every arm had finished (`odt_recipe` \"auto\")"
           if c.odt_recipe == "auto" else "as `odt_recipe` sets it")
    env, level = c.odt_datasets[0]
    final = {(v, o): on["mean"] for v in c.odt_pretrain for o, on in odt_figures(camp, env, level, v)[2].items() if on}
    top = max(final, key=final.get) if final else arm
    other = (f" The arm with the highest online score is another, {_opt_name(top[1])} from `--preset "
             f"{c.odt_pretrain[top[0]]}` ({final[top]:.1f} against {final[arm]:.1f}): it started higher offline and "
             "gained less." if top != arm and arm in final else "")
    return [f"The other datasets below run {_opt_name(arm[1])} from `--preset {c.odt_pretrain[arm[0]]}`: {why}.{other} "
            "They run seed by seed: every dataset's seed 0, then every dataset's seed 1, and so on.", ""]


def _moved(evals: list[dict | None]) -> str:
    """"0.004 / 0.059, ...": each evaluation's conditioning record (return-to-go x2 / timesteps +100)."""
    return ", ".join(describe(e["conditioning"]) for e in evals if e and e.get("conditioning"))


def odt_verdict(gains: dict, arms) -> tuple[str, object]:
    """("met" | "MISSED" | "pending", the finished arm with the largest mean gain, or None): met as
    soon as one finished arm (every seed evaluated) reaches the bar, which arms still running can
    only confirm; MISSED once every arm has finished below it."""
    if not gains:
        return "pending", None
    best = max(gains, key=lambda a: np.mean(gains[a]))
    if np.mean(gains[best]) >= ODT_BAR:
        return "met", best
    return ("MISSED" if len(gains) == len(arms) else "pending"), best


def _arm(c, opt: str) -> str:
    """LAMB, or AdamW (lr 0.0001): an online optimiser and what it changes in the fine-tuning preset."""
    over = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in c.odt_optimizers[opt].items())
    return _opt_name(opt) + (f" ({over})" if over else "")


def _variant_changes(c) -> dict[str, str]:
    """Each pretraining variant after the first: what its preset changes in the first's, e.g.
    {"odtnt": "timestep_embedding false"}; the first: ""."""
    from decision_transformer.options import read_preset
    from decision_transformer.training.trainer import PRESETS
    names = list(c.odt_pretrain)
    first = read_preset(c.odt_pretrain[names[0]], PRESETS)
    out = {names[0]: ""}
    for v in names[1:]:
        d = read_preset(c.odt_pretrain[v], PRESETS)
        out[v] = ", ".join(f"{k} {json.dumps(d.get(k))}" for k in sorted(set(d) | set(first)) if d.get(k) != first.get(k))
    return out


def _arm_label(c, variant: str, opt: str | None = None) -> str:
    """"LAMB", "AdamW, from odt-cpu-notime": a row or column of section 6."""
    first = variant == next(iter(c.odt_pretrain))
    pre = "" if first else f"`{c.odt_pretrain[variant]}`"
    if opt is None:
        return pre or f"`{c.odt_pretrain[variant]}`"
    return _opt_name(opt) + ("" if first else f", from {pre}")


def odt_section(camp) -> list[str]:
    """Offline -> online: each seed's pretrained ODT (last checkpoint, per pretraining variant) and
    the same seed fine-tuned with each online optimiser (last checkpoint), 100 episodes each; the
    gain paired by seed. Data set aside (clipped actions, odt_unfit) shows its begun seeds and the
    evidence."""
    from decision_transformer.training import finetune as F
    from decision_transformer.training import trainer as T
    c = camp.config
    if not c.odt_datasets:
        return []
    from dataclasses import asdict
    variants = list(c.odt_pretrain)
    first = c.odt_pretrain[variants[0]]
    pre = asdict(T.TrainConfig.from_sources(first, {"dataset": "-"}))       # the preset over the defaults
    changes = _variant_changes(c)
    others = "".join(f" Beside it, `--preset {c.odt_pretrain[v]}`: the same with {changes[v]}"
                     + (" (`--no-timestep-embedding`: no timestep embedding, as in the paper's model, which knows "
                        "its place in the episode from the return-to-go alone)" if "timestep_embedding" in changes[v]
                        else "") + "." for v in variants[1:])
    out = ["## 6. Online fine-tuning: the Online Decision Transformer", "",
           f"Per seed ({', '.join(map(str, c.seeds))}): an ODT (`--model odt`) pretrained offline with `--preset "
           f"{first}` ({pre['hidden_size']} wide, {pre['n_layer']} layers, {pre['n_head']} attention head{'s' if pre['n_head'] > 1 else ''}, K = "
           f"{pre['context_length']}, batch {pre['batch_size']}, {pre['steps']:,} steps, {_opt_name(pre['optimizer'])} lr "
           f"{pre['lr']:g}).{others} Each is then fine-tuned online from its last checkpoint by `dt finetune` with each optimiser "
           f"({', '.join(_arm(c, o) for o in c.odt_optimizers)}; the first is the paper's). "
           "The sizes are this CPU's, chosen by measurement (`bench/odt_budget.py`; docs/performance.md prices the "
           "paper's model beside them). Scores: the LAST checkpoint, "
           f"{c.eval_episodes} episodes per seed at the fine-tuning preset's evaluation target and context, "
           f"normalised x100, seeds pooled: {COLUMNS}. The gain is paired by seed (online minus offline, seed by seed).", ""]
    for env, level in camp.odt_all_datasets():
        arms = camp.odt_arms(env, level)
        version, seeds = suite_level(level)[1], camp.odt_seeds(env, level)
        if camp.odt_unfit(env, level) is not None:
            other = f" (suite {version}'s data, set aside after seed{'s' if len(seeds) > 1 else ''} " \
                    f"{', '.join(map(str, seeds))}: below the table)"
        elif version != R_V1:
            other = f" (suite {version}'s data: suite v1 has no behaviour policies for {env} yet, section 1)"
        elif not camp.suite_has(env):
            unfit = camp.odt_unfit(env, f"{level}-{c.odt_fallback}") if c.odt_fallback else None
            other = (f" (waits for suite v1's data: its {env} behaviour policies are not committed yet, section 1"
                     + (f"; suite {c.odt_fallback}'s `{camp.dataset_id(env, level + '-' + c.odt_fallback)}`, with "
                        f"{unfit:.0%} of its action components at +-1, is set aside" if unfit else "") + ")")
        else:
            other = ""
        if not arms:
            how = ("the largest mean gain, once every arm has finished" if c.odt_recipe == "auto"
                   else "`odt_recipe`, not set")
            out += [f"**{camp.dataset_id(env, level)}**{other}: planned with the arm the A/B on "
                    f"{', '.join(camp.dataset_id(*d) for d in c.odt_datasets)} chooses ({how})"
                    + ("" if other or camp.suite_has(env) else f"; suite v1 has no data for {env} yet (its behaviour "
                       "policies are not committed: section 1)") + ".", ""]
            continue
        ft = asdict(F.FinetuneConfig(checkpoint="-", **camp.odt_finetune_preset(env)))
        paper = PAPER_ODT.get((env, suite_level(level)[0]))
        out += [f"**{camp.dataset_id(env, level)}**{other}: fine-tuning `--preset {c.odt_finetune[env]}`: {ft['online_steps']:,} "
                f"online env steps, {ft['num_envs']} exploration episode(s) per round at target "
                f"{ft['explore_return']:g}, " + (f"{ft['updates_per_round']} updates per round" if ft.get("updates_per_env_step")
                                                 is None else f"{ft['updates_per_env_step']:g} updates per env step collected")
                + f" (batch {ft['batch_size']}, "
                f"{_opt_name(ft['optimizer'])} lr {ft['lr']:g} unless the arm says otherwise), "
                f"a replay buffer of {ft['buffer_size']:,} trajectories, evaluation at {ft['eval_return']:g} with context "
                f"{ft.get('eval_context') or pre['context_length']}.", "",
                "| weights | score | gain over offline (per seed) | entropy weight alpha at the end (per seed) | "
                "action moved by: return-to-go x2 / timesteps +100 (per seed) |",
                "| --- | --- | --- | --- | --- |"]
        gains, onlines, refs = {}, {}, None
        for v in dict.fromkeys(v for v, _ in arms):
            offline_evs, offline, online, g = odt_figures(camp, env, level, v)
            onlines.update({(v, o): x for o, x in online.items()})
            refs = refs or next((e["results"][0]["refs"] for e in offline_evs if e), None)
            out.append(f"| offline, {_arm_label(c, v)} (pretrained, {camp.odt_pretrain_steps(v):,} steps) | "
                       f"{cell(offline_evs, 0, seeds)} | | | {_moved(offline_evs)} |")
            for opt in (o for w, o in arms if w == v):
                if opt in g:
                    gains[(v, opt)] = g[opt]
                gain = f"{np.mean(g[opt]):+.1f} ({', '.join(f'{x:+.1f}' for x in g[opt])})" if opt in g else "pending"
                alphas = [_last_temperature(camp, run) for run in (R.run_name(f"{v}{opt}", env, level, s) for s in c.seeds)
                          if (camp.results / run / "eval-last.json").is_file()]        # finished runs only
                alpha = ", ".join(f"{a:.2g}" for a in alphas if a is not None)
                on_evs = _evals(camp, f"{v}{opt}", env, level, "eval-last.json", seeds)
                out.append(f"| online, {_arm_label(c, v, opt)} ({ft['online_steps']:,} env steps) | "
                           f"{cell(on_evs, 0, seeds)} | {gain} | {alpha} | {_moved(on_evs)} |")
        if paper:
            out.append(f"| paper: offline -> 200k online steps (D4RL v2, their model and budget) | {paper[0]:.1f} -> "
                       f"{paper[1]:.1f} | {paper[1] - paper[0]:+.1f} | | |")
        out.append("")
        out += set_aside_lines(camp, env, level, arms)
        out += paper_recipe_lines(camp, env, level, arms)
        if (env, level) in c.odt_datasets:             # the A/B's dataset: the bar, the optimiser's choice
            verdict, best = odt_verdict(gains, arms)
            out += [f"The bar (a gain of at least {ODT_BAR} points, {len(c.seeds)} seeds): {verdict}"
                    + (f", {np.mean(gains[best]):+.1f} with {_arm_label(c, *best)}" if best else "")
                    + (" (the best finished arm so far)" if best and verdict == "pending" else "") + ".", "",
                    *_optimizer_ab_lines(c, gains, onlines, variants[0], ft["optimizer"], c.odt_finetune[env]),
                    *_chosen_arm_lines(camp)]
        out += ["alpha, the weight of the entropy bonus, starts at the pretrained model's and falls while the "
                "policy's entropy is above its target (-|A|). It takes Adam's step at the arm's learning rate under "
                "either optimiser (no trust ratio under LAMB): the arm with the higher rate drives it down faster.", "",
                MOVED_NOTE, ""]
        if refs:
            curves = {a: [_odt_curve(camp, R.run_name(f"{a[0]}{a[1]}", env, level, s), refs, ft["eval_every"])
                          for s in c.seeds] for a in arms}
            xs = sorted({x for cs in curves.values() for cv in cs for x in cv})
            if xs:
                out += [f"Learning curve: the runs' periodic evaluations ({ft['eval_episodes']} episodes each, in the "
                        f"first round past every {ft['eval_every']:,} env steps), normalised, mean over the seeds that "
                        "reached that point (per seed).", "",
                        "| env steps | " + " | ".join(_arm_label(c, *a) for a in arms) + " |",
                        "| --- |" + " --- |" * len(arms)]
                for x in xs:
                    cells = []
                    for a in arms:
                        v = [cv[x] for cv in curves[a] if x in cv]
                        cells.append(f"{np.mean(v):.1f} ({', '.join(f'{y:.1f}' for y in v)})" if v else "")
                    out.append(f"| {x:,} | " + " | ".join(cells) + " |")
                out.append("")
    return out


def model_cards_v1(camp) -> list[Path]:
    """models/<env>-<level>/results.json and README.md of every checkpoint stage 2 published, from
    results/v1/ (the run's evaluation, its dataset, the choice in published/<env>-<level>.json)."""
    from decision_transformer.fileio import write_json_atomic
    out = []
    for pub in sorted((camp.results / "published").glob("*.json")):
        env, level = pub.stem.split("-", 1)
        p = json.loads(pub.read_text())
        d = camp.models / pub.stem
        sfx = "-ema" if p["weights"] == "ema" else ""
        ev = _read(camp.results / p["run"] / f"eval-{R.ckpt_name(p['checkpoint_step'])}{sfx}.json")
        data = _read(camp.results / "datasets" / f"{pub.stem}.json")
        if ev is None or data is None or not (d / "config.json").is_file():
            continue
        cfg = json.loads((d / "config.json").read_text())["decision_transformer"]
        tc = json.loads((camp.results / p["run"] / "config.json").read_text())
        r0 = ev["results"][0]
        check = (f"dt eval models/{pub.stem} --episodes {r0['episodes']} --num-envs {R.EVAL_ENVS} --seed {ev['seed']} "
                 f"--backend {ev['backend']} --threads 1")                  # the campaign's settings, spelt out
        res = {"env_id": ev["env_id"], "dataset": ev["dataset"], "dataset_return_mean": data["return_mean"],
               "dataset_return_max": data["return_max"], "checkpoint_step": ev["checkpoint_step"],
               "weights": p["weights"], "seed": p["seed"], "selection_rule": p["rule"],
               "target_return": r0["target_return"], "mean_reward": r0["return_mean"], "std_reward": r0["return_std"],
               "n_eval_episodes": r0["episodes"], "normalized_score_x100": r0["normalized_x100"],
               "normalized_ci95": r0["normalized_ci95"], "refs": r0["refs"], "is_deterministic": True,
               "eval_datetime": ev["eval_date"], "eval_command": check,
               "at_or_above_dataset_mean": r0["return_mean"] >= data["return_mean"],
               "all_targets": [{k: r[k] for k in ("target_return", "return_mean", "return_std", "return_ci95",
                                                  "episodes", "normalized_x100")} for r in ev["results"]]}
        sw = _read(camp.results / p["run"] / "sweep.json")
        if sw is not None:
            t = [r["target_return"] for r in sw["results"]]
            m = [r["return_mean"] for r in sw["results"]]
            res["return_conditioning"] = {"targets": t, "achieved_mean": m, "spearman_rho": spearman(t, m),
                                          "episodes_per_target": sw["episodes_per_target"]}
        write_json_atomic(d / "results.json", res)
        means = ", ".join(f"seed {k}: {v:.1f}" for k, v in p["seed_return_means_first_target"].items())
        card = dict(card_template.V1_CARD, rule=f"\nPublished run: seed {p['seed']} ({p['weights']} weights), chosen by a rule fixed "
                                  f"before the results: {p['rule']} (mean returns at the first target: {means}).\n",
                    check=f"\nCheck it: `{check}` evaluates these weights with the campaign's own settings (50 envs "
                          "batched, env seeds from the one given, one thread, the same backend) and gives this table "
                          "episode for episode on the same software; other settings give the same figures within the "
                          "episodes' spread.\n")
        write_text_atomic(d / "README.md", card_template.card(env, level, cfg, res, data, {**tc, "ema": tc.get("ema_decay", 0)}, card))
        out += [d / "results.json", d / "README.md"]
    return out


def datasets_section(camp) -> list[str]:
    """Each level's return beside its behaviour policy's (suite/v1/manifest.json; the data from
    results/v1/datasets/, which the campaign's data tasks write after `dt suite build`)."""
    from decision_transformer.data.datasets import SATURATION_TOL
    from decision_transformer.suite.build import SUITE_V1
    mp = SUITE_V1 / "manifest.json"
    man = json.loads(mp.read_text()) if mp.is_file() else {}
    out = ["## 1. The datasets", "",
           "Suite v1 (docs/suite.md). Returns are undiscounted episode returns; normalised x100 with the dataset's "
           "references. The policy columns: the behaviour policy's own samples (what the data are made of; 20 "
           "episodes) and its mean action (10 episodes), from suite/v1/manifest.json. At +-1: the share of action "
           f"components within {SATURATION_TOL:g} of the bound (clipped actions, which the Online DT's head cannot fit: "
           "docs/suite.md).",
           "",
           "| dataset | episodes | steps | return mean / max | normalised mean / max | at +-1 | policy: sampled | "
           "policy: mean action |",
           "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for env in camp.config.envs:
        entry = man.get(camp.config.envs[env], {})
        for level in camp.config.levels:
            d = _read(camp.results / "datasets" / f"{env}-{level}.json")
            pol = entry.get(level, {}) if level in ("medium", "expert") else {}
            ps = f"{pol['return_mean']:.0f} ± {pol['return_std']:.0f}" if "return_mean" in pol else "-"
            pm = f"{pol['mean_action_return_mean']:.0f} ± {pol['mean_action_return_std']:.0f}" \
                if "mean_action_return_mean" in pol else "-"
            if d is None:
                out.append(f"| {camp.dataset_id(env, level)} | pending | | | | | {ps} | {pm} |")
                continue
            sat = f"{d['actions_at_bounds']:.1%}" if d.get("actions_at_bounds") is not None else "-"
            out.append(f"| {camp.dataset_id(env, level)} | {d['episodes']:,} | {d['steps']:,} | {d['return_mean']:.0f} / "
                       f"{d['return_max']:.0f} | {d['normalized_mean_x100']:.1f} / {d['normalized_max_x100']:.1f} | "
                       f"{sat} | {ps} | {pm} |")
    return out + [""] + targets_lines(camp)


def targets_lines(camp) -> list[str]:
    """The paper's evaluation targets against this suite's expert reference and against D4RL's: how far
    above the expert the DT is asked to go (the presets keep the paper's targets)."""
    from decision_transformer.report.page import D4RL_REFS
    from decision_transformer.training.trainer import PRESETS, read_preset
    rows = []
    for env in camp.config.envs:
        d = _read(camp.results / "datasets" / f"{env}-expert.json")
        if d is None or env not in D4RL_REFS:
            continue
        t = read_preset(camp.config.presets[env], PRESETS)["target_returns"]
        rows.append((env, t, d["ref_max_score"], d["return_max"], t[0] / d["ref_max_score"], t[0] / D4RL_REFS[env][1]))
    if not rows:
        return []
    out = ["The evaluation targets are the paper's (`--preset <env>`). The paper chose them against D4RL's experts; "
           "against this suite's, the first target asks for more where the suite's expert is weaker than D4RL's "
           "(expert reference: the expert policy's sampled return, docs/suite.md; D4RL's: d4rl/infos.py):", "",
           "| env | targets | suite v1's expert reference (its data's best episode) | first target / that reference | "
           "first target / D4RL's expert reference |", "| --- | --- | --- | --- | --- |"]
    for env, t, ref, best, ours, theirs in rows:
        out.append(f"| {env} | {' / '.join(f'{x:.0f}' for x in t)} | {ref:.0f} ({best:.0f}) | {ours:.2f} | {theirs:.2f} |")
    far = [(env, ours, theirs) for env, _, _, _, ours, theirs in rows if ours > theirs + 0.2]
    if far:
        out += ["", "On " + " and ".join(f"{env} ({ours:.2f}x against {theirs:.2f}x)" for env, ours, theirs in far)
                + " the first target lies further above the expert than in the paper: the DT extrapolates its "
                "return-to-go further past its data. The sweeps (section 5) evaluate targets from the data's lowest "
                "return to 1.2x its best, so they show the score near the expert's own level too (section 5's bars)."]
    return out + [""]


def suite_lines(camp) -> list[str]:
    from decision_transformer.suite.build import SUITE_V1
    mp = SUITE_V1 / "manifest.json"
    have = json.loads(mp.read_text()) if mp.is_file() else {}
    envs = list(camp.config.envs.values())
    done = [e for e in envs if e in have]
    return [f"Suite v1's behaviour policies are committed for {len(done)} of {len(envs)} envs"
            + (f" ({', '.join(done)})" if done else "")
            + ("; docs/suite.md describes them." if len(done) == len(envs) else "; docs/suite.md says where the others stand."),
            ""]


def _total_line(camp, est: dict) -> list[str]:
    """All that is left at the budget stage 2 trains on this CPU, in core-hours and in wall hours for two
    one-thread workers (this machine's two cores), where every part is priced."""
    st, cap = camp.stage2_recipe(), camp.config.stage2_max_budget
    budget = st["budget"] if st is not None else cap
    if budget not in est["stage2_h"]:
        return []
    parts = [est["stage1_train_h"], est["stage1_eval_h"], est.get("behaviour_h", 0.0), est.get("odt_h", 0.0),
             est["stage2_h"][budget]]
    total = sum(parts)
    return [f"- in all, with stage 2 at {budget // 1000}k steps: {total:.0f} core-hours, {total / 2:.0f} hours of wall time "
            "for two one-thread workers" + ("" if "odt_h" in est else " (the Online DT's runs not priced yet)") + "."]


def estimate_lines(camp) -> list[str]:
    est = camp.estimate()
    if not est:
        return ["Compute estimate: no measured step times found (the v0 campaign's results/ files)."]
    s2 = "; ".join(f"{b // 1000}k steps: {h:.0f}" for b, h in est["stage2_h"].items())
    leg = len(camp.config.seeds) * len(camp.config.ab_datasets) * (camp.config.ab_steps - camp.config.ab_eval_steps[-2]) / est["dt_steps_per_s"] / 3600
    return [f"Compute left, in core-hours of one thread (priced from measured times: DT {est['dt_steps_per_s']:.2f} "
            f"gradient steps/s ({est['dt_measured']}), BC {est['bc_steps_per_s']:.1f}/s, evaluation "
            f"{est['eval_s_per_env_step'] * 1e3:.2f} ms per env step (BC's {est['bc_eval_s_per_env_step'] * 1e3:.2f}) with "
            "full-length episodes):",
            f"- stage 1 (the A/Bs below): training {est['stage1_train_h']:.1f}, evaluation {est['stage1_eval_h']:.1f};",
            *([f"- suite v1's missing behaviour policies: {est['behaviour_h']:.1f} (sbx SAC at full length, "
               + "".join(f"`{run}` at its own rate so far, {r:.0f} env steps/s, " for run, r in est["behaviour_own"].items())
               + ("the others " if est["behaviour_own"] else "") + "priced from the committed envs' runs: "
               + ", ".join(f"{lv} {r:.0f} env steps/s" for lv, r in est["behaviour_rates"].items())
               + "; a medium run ends sooner once its mean action reaches its stop return);"]
              if est.get("behaviour_h") else []),
            *([f"- the Online DT's runs (section 6): {est['odt_h']:.1f} (pretraining at "
               f"{est['odt_pretrain_steps_per_s']:.1f} gradient steps/s, fine-tuning at "
               f"{est['odt_finetune_ms_per_env_step']:.0f} ms per env step, the medians of this campaign's runs);"]
              if "odt_h" in est else []),
            f"- stage 2 (12 datasets x {len(camp.config.seeds)} seeds of DT, BC and 10%BC at {camp.config.baseline_steps // 1000}k "
            f"baseline steps, evaluations, sweeps; stage 1's runs of the chosen recipe reused, not priced again), "
            + (f"as planned: {s2}." if camp.stage2_recipe() is not None else f"by DT budget: {s2}."),
            *_total_line(camp, est), "",
            "The plan, in order: stage 1 on hopper's data, the behaviour policies suite v1 still lacks (`--only "
            "behaviour`: each env's medium and expert SAC runs, then their export) and those envs' data, stage 2; "
            "the Online DT's runs (`--only odt`, section 6) beside them; one-thread workers (`dt results run`), one "
            "per core. Stage 1 trains breadth-first: every run to "
            f"{camp.config.ab_eval_steps[0] // 1000}k steps (the initialisation and timestep-embedding A/Bs' runs with them), then every run to "
            f"{camp.config.ab_eval_steps[1] // 1000}k, then to {camp.config.ab_steps // 1000}k, each checkpoint evaluated as soon as "
            f"it exists; no run trains past a leg before that leg is evaluated. If {camp.config.ab_eval_steps[1] // 1000}k does not "
            f"beat {camp.config.ab_eval_steps[0] // 1000}k (section 4's rule), the {camp.config.ab_steps // 1000}k leg ({leg:.0f} "
            "core-hours) is not trained here (left to a GPU session). Stage 2 is planned by itself once stage 1 has "
            "decided (section 4), and runs on the CPU at " + (f"{camp.config.stage2_max_budget // 1000}k steps at most "
            "(`stage2_max_budget`: a longer budget stage 1 chooses is recorded as the decision and left to a GPU "
            "session)" + (f"; as that is the first budget, stage 2 waits only for the {camp.config.ab_eval_steps[0] // 1000}k "
                          "legs (the weights' and the initialisation's decisions), and the budget A/B's longer legs "
                          "train after it." if camp.config.stage2_max_budget <= camp.config.ab_eval_steps[0] else ".")
            if camp.config.stage2_max_budget else "the budget stage 1 chooses.")]


def protocol_lines(camp) -> list[str]:
    return ["## Protocol", "",
            "- Data: suite v1 (docs/suite.md): D4RL's recipe on the v5 envs: sbx SAC trained online; random, medium and "
            "expert = 1M steps each of a SAC actor's own samples (randomly initialised; stopped at about 1/3 of the "
            "expert's return; the expert), medium-replay = the medium run's replay buffer up to the medium policy "
            "(>= 200k steps), medium-expert = medium + expert.",
            "- DT: the paper's hyper-parameters (`--preset hopper|walker2d|halfcheetah`: K = 20, 3 layers, 1 head, width "
            "128, dropout 0.1, AdamW lr 1e-4, weight decay 1e-4, 10k warm-up steps, clip 0.25, batch 64, returns-to-go "
            "/ 1000), one CPU thread per run, 3 seeds.",
            "- Evaluation: exact semantics (the blog's loop), deterministic actions, the paper's targets, "
            f"{camp.config.eval_episodes} episodes per target ({R.env_seeds_phrase(camp.config.eval_episodes, camp.config.eval_seed)}); "
            "the headline is the last checkpoint.",
            "- Reproduce: `dt results run` (one one-thread worker per core, resumable), then `dt results report`.", ""]


README_BLOCK = "odt"      # README.md's `<!-- generated: odt ... -->` block: odt_readme_lines


def _online_so_far(camp, variant: str, opt: str, env: str, level: str, seeds, offline_evs) -> str:
    """"pending (so far: seed 0 46.3 (+1.5))": the fine-tuned seeds evaluated before all are, each with its
    gain over its own offline checkpoint; "pending" before any."""
    on = _evals(camp, f"{variant}{opt}", env, level, "eval-last.json", seeds)
    mean = lambda ev: float(episode_scores(ev).mean())                               # noqa: E731
    so_far = [f"seed {s} {mean(b):.1f}" + (f" ({mean(b) - mean(a):+.1f})" if a is not None else "")
              for s, a, b in zip(seeds, offline_evs, on) if b is not None]
    return f"pending (so far: {', '.join(so_far)})" if so_far else "pending"


def odt_readme_lines(camp) -> list[str]:
    """The README's measured offline -> online figures, per ODT dataset a line per pretraining
    variant and the bar's verdict, from the same files as section 6 of the page."""
    from decision_transformer.training import finetune as F
    c, out, waiting = camp.config, [], []
    for env, level in camp.odt_all_datasets():
        arms = camp.odt_arms(env, level)
        if not arms:
            continue
        figs = {v: odt_figures(camp, env, level, v) for v, _ in arms}      # per pretraining variant
        if (env, level) not in c.odt_datasets and not any(any(f[0]) for f in figs.values()):
            waiting.append(f"`{camp.dataset_id(env, level)}`")        # nothing measured yet: one line for all
            continue
        ft, seeds = F.FinetuneConfig(checkpoint="-", **camp.odt_finetune_preset(env)), camp.odt_seeds(env, level)
        done = max(sum(e is not None for e in f[0]) for f in figs.values())
        out += [f"Measured on `{camp.dataset_id(env, level)}` ({len(seeds)} seed{'s' if len(seeds) > 1 else ''}"
                + (f", {done} evaluated so far" if done < len(seeds) else "") + f", last checkpoint, {c.eval_episodes} "
                f"episodes per seed, normalised x100; {ft.online_steps:,} online env steps of `--preset "
                f"{c.odt_finetune[env]}`; tables and the learning curve in [docs/results.md](docs/results.md), "
                "section 6):", ""]
        gains = {}
        for v, (offline_evs, offline, online, g) in figs.items():
            gains.update({(v, o): x for o, x in g.items()})
            cells = ", ".join(f"{_opt_name(o)} {online[o]['mean']:.1f} ({np.mean(g[o]):+.1f})" if o in g
                              else f"{_opt_name(o)} {_online_so_far(camp, v, o, env, level, seeds, offline_evs)}"
                              for w, o in arms if w == v)
            out.append(f"- pretrained with `--preset {c.odt_pretrain[v]}`: offline "
                       + (f"{offline['mean']:.1f}" if offline else cell(offline_evs, seeds=seeds)) + f" -> {cells}")
        paper = PAPER_ODT.get((env, suite_level(level)[0]))
        if (env, level) in c.odt_datasets:
            verdict, best = odt_verdict(gains, arms)
            out.append(f"- the bar, a gain of +{ODT_BAR}: {verdict}"
                       + (f" ({np.mean(gains[best]):+.1f}, {_opt_name(best[1])} from `--preset {c.odt_pretrain[best[0]]}`"
                          + (", the best finished arm so far" if verdict == "pending" else "") + ")" if best else ""))
        if camp.odt_unfit(env, level) is not None:
            out.append(f"- set aside: {camp.odt_unfit(env, level):.0%} of its action components lie at +-1 (clipped), "
                       "which the ODT's tanh-Gaussian head fits with a wide std, so its exploration swings between the bounds; the "
                       f"dataset runs on suite v1 instead (docs/results.md, section 6)")
        if paper:
            out.append(f"- the paper, with its model on D4RL v2 and 200k steps: {paper[0]:.1f} -> {paper[1]:.1f}")
        out.append("")
    arm = camp.chosen_odt_arm()
    if waiting and arm:
        out += [f"Planned or under way with {_opt_name(arm[1])} from `--preset {c.odt_pretrain[arm[0]]}`, the arm the A/B chose: "
                f"{', '.join(waiting)} (the id names the suite: v0's data where suite v1 had no behaviour policies "
                "for the env when its runs began; v1's wait for its data; docs/results.md, section 6, follows them "
                "run by run).", ""]
    return out[:-1]


def write_report_v1(camp, docs="docs") -> list[Path]:
    docs = Path(docs)
    docs.mkdir(parents=True, exist_ok=True)
    md = ["# Results: Decision Transformer on suite v1", "",
          "Generated by `dt results report` from the files under `results/v1/`, which `dt results run` writes. "
          "Do not edit by hand. The first campaign, on suite v0, is in [results-v0.md](results-v0.md). "
          f"Generated {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC.", ""]
    st = status_section(camp)
    md += st[:-1] + [""] + suite_lines(camp) + estimate_lines(camp) + [""]
    md += protocol_lines(camp) + ["Stage 1 (sections 2-4): the recipe A/Bs on hopper medium-replay and medium-expert. "
                              "Stage 2 (section 5): the whole campaign with the recipe they choose (12 datasets x 3 "
                              "seeds, BC and 10%BC, sweeps, the republished checkpoints).", ""]
    md += datasets_section(camp)
    curves, curve_figures = curves_lines(camp, docs / "figures")
    md += budget_ema_section(camp) + curves + init_section(camp) + last_best_section(camp) + scores_section(camp)
    sweeps, figures = sweeps_section(camp, docs / "figures")
    md += sweeps + odt_section(camp)
    out = [write_text_atomic(docs / "results.md", "\n".join(md) + "\n"), *curve_figures, *figures] + model_cards_v1(camp)
    readme = docs.parent / "README.md"        # its generated block, where it has one
    if camp.config.odt_datasets and readme.is_file() and replace_block(readme, README_BLOCK, odt_readme_lines(camp)):
        out.append(readme)
    return out
