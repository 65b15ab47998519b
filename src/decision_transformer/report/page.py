"""`dt results report`: docs/results-v0.md (the campaign on suite v0), its figures and the model
cards, from the run files. Suite v1's page, docs/results.md, is report/v1.py's.

Everything here is a function of the small JSON/CSV files the campaign (results.py) commits
under `results/`; no number is typed by hand except the paper's published scores (PAPER_*),
which are labelled as such. Runs that have not finished show as "pending", so the report can
be regenerated at any point of the campaign.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import numpy as np

from decision_transformer import results as C
from decision_transformer.evaluation.stats import bootstrap_ci, normalized, spearman
from decision_transformer.fileio import write_json_atomic, write_text_atomic
from decision_transformer.report import card as card_template
from decision_transformer.report import plots

# Chen et al. (2021), Table 2: D4RL v2 normalised scores (x100), last checkpoint; BC as reported there.
PAPER_DT = {("halfcheetah", "medium"): 42.6, ("halfcheetah", "medium-replay"): 36.6, ("halfcheetah", "medium-expert"): 86.8,
            ("hopper", "medium"): 67.6, ("hopper", "medium-replay"): 82.7, ("hopper", "medium-expert"): 107.6,
            ("walker2d", "medium"): 74.0, ("walker2d", "medium-replay"): 66.6, ("walker2d", "medium-expert"): 108.1}
PAPER_BC = {("halfcheetah", "medium"): 43.1, ("hopper", "medium"): 63.9, ("walker2d", "medium"): 77.3,
            ("hopper", "medium-replay"): 27.6, ("halfcheetah", "medium-expert"): 59.9,
            ("hopper", "medium-expert"): 79.6, ("walker2d", "medium-expert"): 36.6}
# D4RL's reference returns (random, expert) for its gym locomotion datasets (d4rl/infos.py): what the
# paper's scores are normalised with, and what its evaluation targets were chosen against.
D4RL_REFS = {"halfcheetah": (-280.178953, 12135.0), "hopper": (-20.272305, 3234.3), "walker2d": (1.629008, 4592.3)}
# Atari Breakout, raw scores: the DT paper's on 1% of DQN-Replay (Chen et al. 2021, Table 1) and
# the Nature DQN's after 50M frames (Mnih et al. 2015, Extended Data Table 2).
PAPER_ATARI_DT = {"atari-breakout": 76.9}
NATURE_DQN = {"atari-breakout": 401.2}
def methods(cfg) -> dict[str, str]:
    """Run-name prefix -> the method's name on the page."""
    return {"dt": "DT", "bc": "BC", cfg.pbc: f"{cfg.top_pct:g}%BC"}


def _read(p: Path):
    return json.loads(p.read_text()) if p.is_file() else None


def _norm(x, refs):
    return normalized(x, refs["min"], refs["max"])


def _stat(scores) -> dict:
    s = np.asarray(scores, dtype=np.float64)
    lo, hi = bootstrap_ci(s)
    return {"mean": float(s.mean()), "std": float(s.std()), "ci": [lo, hi], "n": int(len(s))}


def _fmt(st, ci=True) -> str:
    if st is None:
        return "pending"
    out = f"{st['mean']:.1f} ± {st['std']:.1f}"
    return out + (f" [{st['ci'][0]:.1f}, {st['ci'][1]:.1f}]" if ci else "")


class Collected:
    """Everything the report needs, read from RESULTS."""

    def __init__(self, camp):
        R = camp.results
        self.camp, self.cfg = camp, camp.config
        self.data = {(e, lv): _read(R / "datasets" / f"{e}-{lv}.json") for e in self.cfg.envs for lv in self.cfg.levels}
        self.evals = {}
        for e in self.cfg.envs:
            for lv in self.cfg.levels:
                for m in methods(self.cfg):
                    seeds = (0,) if m == "dt" else self.cfg.baseline_seeds
                    for s in seeds:
                        self.evals[(m, e, lv, s)] = _read(R / C.run_name(m, e, lv, s) / "eval.json")

    def score(self, method: str, env: str, level: str, target_index: int = 0) -> dict | None:
        """Normalised episode scores pooled over the method's seeds (all must be done), at the
        target with this index (BC ignores the target: its one evaluation)."""
        seeds = (0,) if method == "dt" else self.cfg.baseline_seeds
        evs = [self.evals[(method, env, level, s)] for s in seeds]
        if any(ev is None for ev in evs):
            return None
        per_seed, pooled = [], []
        for ev in evs:
            r = ev["results"][min(target_index, len(ev["results"]) - 1)]
            sc = _norm(r["returns"], r["refs"])
            per_seed.append(float(sc.mean()))
            pooled.extend(sc.tolist())
        st = _stat(pooled)
        st["seed_means"] = per_seed
        st["target"] = evs[0]["results"][min(target_index, len(evs[0]["results"]) - 1)]["target_return"]
        return st


def _verdict(a, b) -> str:
    if a is None or b is None:
        return "pending"
    if a["ci"][0] > b["ci"][1]:
        return "DT above BC"
    if a["ci"][1] < b["ci"][0]:
        return "BC above DT"
    return "no clear difference"


def _paper_verdict(dt, bc, margin=5.0) -> str | None:
    if dt is None or bc is None:
        return None
    return "DT above BC" if dt - bc > margin else "BC above DT" if bc - dt > margin else "no clear difference"


def curve_section(col: Collected, figs: Path) -> tuple[list[str], list[Path]]:
    env, level, steps = col.cfg.curve
    run = C.run_name("dt", env, level, 0)
    files = sorted((col.camp.results / run / "curve").glob("*.json"))
    evs = [json.loads(f.read_text()) for f in files]
    lines = ["## 1. How long to train: the learning curve", ""]
    if not evs:
        return lines + [f"Pending: the {steps:,}-step run on {col.camp.dataset_id(env, level)} has no evaluated checkpoint yet.", ""], []
    xs = [ev["checkpoint_step"] for ev in evs]
    targets = [r["target_return"] for r in evs[0]["results"]]
    series, table = {}, {}
    for i, t in enumerate(targets):
        sts = [_stat(_norm(ev["results"][i]["returns"], ev["results"][i]["refs"])) for ev in evs]
        series[f"target {t:g}"] = ([s["mean"] for s in sts], [s["ci"][0] for s in sts], [s["ci"][1] for s in sts])
        table[t] = sts
    data = col.data[(env, level)]
    path = plots.curve_plot(xs, series, figs / "curve.png", mark=col.cfg.budget, xmax=steps,
                            hlines={"dataset mean": data["normalized_mean_x100"]} if data else None,
                            title=f"DT on {col.camp.dataset_id(env, level)}, seed 0: {col.cfg.curve_episodes} episodes per target "
                                  "per checkpoint")
    lines += [f"One paper-budget run ({steps:,} gradient steps, batch 64, lr 1e-4, 10k warm-up, seed 0) on "
              f"`{col.camp.dataset_id(env, level)}`, a checkpoint every {col.cfg.checkpoint_every:,} steps, each evaluated with "
              f"{col.cfg.curve_episodes} episodes at both paper targets (exact mode, env seeds 0-{col.cfg.curve_episodes - 1}). "
              f"Measured so far: {len(xs)} of {steps // col.cfg.checkpoint_every} checkpoints (up to step {max(xs):,}).", "",
              "![learning curve](figures/curve.png)", "",
              "| step | " + " | ".join(f"target {t:g}: normalised mean ± std [95% CI]" for t in targets) + " |",
              "| --- | " + " | ".join("---" for _ in targets) + " |"]
    for j, x in enumerate(xs):
        lines.append(f"| {x:,} | " + " | ".join(_fmt(table[t][j]) for t in targets) + " |")
    lines += ["", "**The budget.** " + _budget_text(xs, table, targets, steps, col.cfg.budget), ""]
    return lines, [path]


def _budget_text(xs, table, targets, steps, B: int) -> str:
    done = max(xs) >= steps
    tail = [j for j, x in enumerate(xs) if x > max(xs) - 20_000 and x > B]
    parts = []
    at_b = [j for j, x in enumerate(xs) if x == B]
    for t in targets:
        b = table[t][at_b[0]]["mean"] if at_b else None
        if tail and b is not None:
            final = float(np.mean([table[t][j]["mean"] for j in tail]))
            parts.append(f"at target {t:g}, {b:.1f} at step {B:,} against a mean of {final:.1f} over steps "
                         f"{xs[tail[0]]:,}-{xs[tail[-1]]:,}" + (f" ({100 * b / final:.0f}%)" if final > 0 else ""))
    txt = (f"Every other run trains for {B:,} gradient steps and is evaluated at that LAST checkpoint (not the best). "
           "The published curves (d3rlpy-benchmarks, 10 seeds; min-decision-transformer, 3 seeds) put DT at 85-100% of "
           "its final D4RL score by 20k steps on all three medium datasets. ")
    if parts:
        txt += "Here, " + "; ".join(parts) + ". "
    if done:
        after = [j for j, x in enumerate(xs) if x >= B]
        flat = True
        for t in targets:
            m = np.array([table[t][j]["mean"] for j in after])
            x = np.array([xs[j] for j in after], dtype=np.float64)
            slope = float(np.polyfit(x, m, 1)[0]) * 10_000 if len(after) > 1 else 0.0
            flat &= abs(slope) * (x[-1] - x[0]) / 10_000 < m.std()     # the trend moves less than the spread
            txt += (f"Over steps {B:,}-{steps:,} at target {t:g}, the checkpoint means range from {m.min():.1f} to "
                    f"{m.max():.1f} (mean {m.mean():.1f}, std {m.std():.1f}; linear trend {slope:+.1f} per 10k steps). ")
        if flat:
            txt += (f"Past {B:,} steps the trend moves the score less than one checkpoint differs from the next: "
                    "training longer does not make the last checkpoint better, only differently placed in the "
                    f"swings, so the budget stays at {B:,} steps (and seeds, not steps, are what would narrow a "
                    "result on this dataset).")
        else:
            txt += (f"Past {B:,} steps the trend is larger than the checkpoint-to-checkpoint spread: the "
                    f"{B:,}-step budget understates what longer training reaches on this dataset.")
    else:
        txt += (f"The {steps:,}-step run is still training, so this comparison is provisional: the budget is "
                "re-examined when the curve is complete. The learning-rate schedule has no decay, so raising the "
                "budget later means resuming every run, not retraining it.")
    return txt


def table_section(col: Collected, figs: Path) -> tuple[list[str], list[Path]]:
    lines = ["## 2. Scores: DT, BC and %BC on the 12 datasets", "",
             f"Normalised score = 100 x (R - R_random) / (R_expert - R_random), per env: R_random is the mean return "
             "of 100 uniform-random episodes and R_expert the suite expert's 10-episode mean (both in each dataset's "
             "metadata, listed below). Every run is evaluated at its LAST checkpoint "
             f"(step {col.cfg.budget:,}), {col.cfg.eval_episodes} episodes per target, exact mode, "
             f"{C.env_seeds_phrase(col.cfg.eval_episodes)}. DT: seed 0, at the paper's first (higher) target; its second target is in "
             f"the next table. BC and {col.cfg.top_pct:g}%BC: {len(col.cfg.baseline_seeds)} seeds, "
             f"{col.cfg.eval_episodes} episodes each, pooled (mean ± std over episodes, 95% bootstrap CI of the mean); "
             "they ignore the target. Dataset: mean and max normalised episode return.", "",
             "| dataset | data mean / max | DT | BC | " + f"{col.cfg.top_pct:g}%BC | DT vs BC | paper DT | paper BC |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    groups, bars = [], {v: [] for v in methods(col.cfg).values()}
    marks = {"dataset mean": [], "paper DT (D4RL: another suite)": []}
    verdicts, pct = {}, {}
    for e in col.cfg.envs:
        for lv in col.cfg.levels:
            d = col.data[(e, lv)]
            sc = {m: col.score(m, e, lv) for m in methods(col.cfg)}
            v = _verdict(sc["dt"], sc["bc"])
            verdicts[(e, lv)] = (v, _paper_verdict(PAPER_DT.get((e, lv)), PAPER_BC.get((e, lv))))
            pct[(e, lv)] = _verdict(sc["dt"], sc[f"pbc{col.cfg.top_pct:g}"]).replace("BC", f"{col.cfg.top_pct:g}%BC")
            dd = f"{d['normalized_mean_x100']:.1f} / {d['normalized_max_x100']:.1f}" if d else "pending"
            p = lambda x: f"{x:.1f}" if x is not None else "-"
            lines.append(f"| {col.camp.dataset_id(e, lv)} | {dd} | {_fmt(sc['dt'])} | {_fmt(sc['bc'])} | "
                         f"{_fmt(sc[f'pbc{col.cfg.top_pct:g}'])} | {v} | {p(PAPER_DT.get((e, lv)))} | {p(PAPER_BC.get((e, lv)))} |")
            groups.append(f"{e}-{lv}")
            for m, name in methods(col.cfg).items():
                s = sc[m]
                bars[name].append((s["mean"], s["ci"][0], s["ci"][1]) if s else None)
            marks["dataset mean"].append(d["normalized_mean_x100"] if d else None)
            marks["paper DT (D4RL: another suite)"].append(PAPER_DT.get((e, lv)))
    lines += ["", "The paper's columns are D4RL v2 numbers (Chen et al. 2021, Table 2) on a **different suite**: "
              "D4RL's datasets (1M steps, SAC behaviour policies, v2 envs). Ours are v5 envs, our own TD3 behaviour "
              "policies and 200k-step datasets (medium-replay: the replay buffer up to the medium policy), so only "
              "the pattern can be compared, not the numbers. '-': not reported there.", ""]
    path = plots.score_bars(groups, bars, figs / "results.png", marks,
                             title=f"last checkpoint ({col.cfg.budget:,} steps), {col.cfg.eval_episodes} episodes per run, "
                                   "95% CI; DT at the first paper target")
    lines += ["![scores](figures/results.png)", ""]
    lines += _statement(verdicts, pct, col.cfg.top_pct)
    lines += _second_target(col)
    refs = ["", "Reference returns (from the datasets' metadata):", "",
            "| env | R_random | R_expert |", "| --- | --- | --- |"]
    for e, eid in col.cfg.envs.items():
        d = next((col.data[(e, lv)] for lv in col.cfg.levels if col.data[(e, lv)]), None)
        if d:
            refs.append(f"| {eid} | {d['ref_min_score']:.1f} | {d['ref_max_score']:.1f} |")
    return lines + refs + [""], [path]


def _statement(verdicts, pct, top_pct: float) -> list[str]:
    by = {}
    for k, (v, _) in verdicts.items():
        by.setdefault(v, []).append(f"{k[0]} {k[1]}")
    out = ["**Where DT beats BC.** A difference counts when the two 95% CIs do not overlap. "]
    for v in ("DT above BC", "BC above DT", "no clear difference", "pending"):
        if by.get(v):
            out[-1] += f"{v}: {', '.join(by[v])} ({len(by[v])}). "
    agree = [(k, v, pv) for k, (v, pv) in verdicts.items() if pv is not None and v != "pending"]
    if agree:
        same = [f"{k[0]} {k[1]}" for k, v, pv in agree if v == pv]
        diff = [f"{k[0]} {k[1]} (ours: {v}; paper: {pv})" for k, v, pv in agree if v != pv]
        out[-1] += (f"Against the paper's pattern (there, a gap over 5 points counts): on the {len(agree)} datasets "
                    f"finished here that the paper reports, {len(same)} agree" +
                    (f" ({', '.join(same)})" if same else "") + (f" and {len(diff)} differ: {'; '.join(diff)}" if diff else "") +
                    ". The paper found DT about equal to BC on medium data, far above it on medium-replay "
                    "(hopper 82.7 vs 27.6) and above it on medium-expert.")
    by = {}
    for k, v in pct.items():
        if v != "pending":
            by.setdefault(v, []).append(f"{k[0]} {k[1]}")
    if by:
        out[-1] += f" Against {top_pct:g}%BC (BC on the best episodes only): " + " ".join(
            f"{v}: {', '.join(names)}." for v, names in sorted(by.items()))
    return out + [""]


def _second_target(col) -> list[str]:
    out = ["DT at both paper targets (normalised, mean ± std [95% CI]):", "",
           "| dataset | first target | second target |", "| --- | --- | --- |"]
    for e in col.cfg.envs:
        for lv in col.cfg.levels:
            a, b = col.score("dt", e, lv, 0), col.score("dt", e, lv, 1)
            if a is None:
                out.append(f"| {col.camp.dataset_id(e, lv)} | pending | pending |")
            else:
                out.append(f"| {col.camp.dataset_id(e, lv)} | {a['target']:g}: {_fmt(a)} | {b['target']:g}: {_fmt(b)} |")
    return out


def sweep_section(col: Collected, figs: Path) -> tuple[list[str], list[Path]]:
    lines = ["## 3. Return conditioning (the paper's Figure 4)", "",
             f"`dt sweep` of the DT checkpoints ({col.cfg.budget:,} steps) on the medium-replay and medium-expert datasets: "
             f"{col.cfg.sweep_points} targets from the dataset's lowest episode return (0 if negative) to 1.2x its best, "
             f"{col.cfg.sweep_episodes} episodes each (env seeds 1-{col.cfg.sweep_episodes}). Spearman's rho is the rank "
             "correlation of target and achieved mean: 1 means achieved return rises with every step of the target.", "",
             "| dataset | achieved at lowest → highest target | best achieved (target) | dataset best | rho |",
             "| --- | --- | --- | --- | --- |"]
    paths, panels = [], []
    for e in col.cfg.envs:
        for lv in col.cfg.sweep_levels:
            run = C.run_name("dt", e, lv, 0)
            sw = _read(col.camp.results / run / "sweep.json")
            if sw is None:
                lines.append(f"| {col.camp.dataset_id(e, lv)} | pending | | | |")
                continue
            res = sw["results"]
            t = [r["target_return"] for r in res]
            m = [r["return_mean"] for r in res]
            best = int(np.argmax(m))
            rho = spearman(t, m)
            title = f"{col.cfg.envs[e]} {lv}"
            paths.append(plots.sweep_plot(res, figs / f"sweep-{e}-{lv}.png", sw["dataset_return_max"],
                                           title=f"DT on {col.camp.dataset_id(e, lv)} ({col.cfg.budget:,} steps)"))
            panels.append((title, res, sw["dataset_return_max"]))
            lines.append(f"| {col.camp.dataset_id(e, lv)} | {m[0]:.0f} ({t[0]:.0f}) → {m[-1]:.0f} ({t[-1]:.0f}) | "
                         f"{m[best]:.0f} ({t[best]:.0f}) | {sw['dataset_return_max']:.0f} | {rho:.2f} |")
    if panels:
        paths.append(plots.sweep_grid(panels, figs / "sweeps.png", cols=2))       # a row per env: medium-replay, medium-expert
        lines += ["", "![return conditioning](figures/sweeps.png)", "",
                  "One figure per dataset: " + ", ".join(f"[{p.stem}](figures/{p.name})" for p in paths[:-1]) + "."]
    return lines + [""], paths


def games_section(col: Collected, figs: Path) -> tuple[list[str], list[Path]]:
    """MinAtar: DT vs BC vs %BC, 3 seeds each, normalised and raw; one sweep per game."""
    R = col.camp.results
    lines = ["## 4. Pixels and discrete actions: MinAtar", "",
             "Datasets: DQN-Replay-style samples of our own DQN runs (`dt suite dqn`, `dt suite replay`; "
             "docs/pixels.md): frames (C, 10, 10), discrete actions. Models: the `minatar` preset "
             f"({col.cfg.game_budget:,} steps, the last checkpoint), BC and {col.cfg.top_pct:g}%BC with the same conv encoder "
             f"and width; seeds {', '.join(map(str, col.cfg.game_seeds))}, {col.cfg.eval_episodes} episodes each "
             f"({C.env_seeds_phrase(col.cfg.eval_episodes)}), greedy actions. DT's target is the dataset's best episode return. "
             "Normalised = 100 x (R - random) / (best DQN - random): the references are the uniform random "
             "policy and the best DQN snapshot (greedy), 100 episodes each, from the dataset's metadata.", "",
             "| game | method | normalised (pooled seeds) | raw return | seed means (raw) | dataset mean / max (raw) |",
             "| --- | --- | --- | --- | --- | --- |"]
    paths, panels, verdicts = [], [], []
    for g, env_id in col.cfg.games.items():
        d = _read(R / "datasets" / f"{g}-{col.cfg.game_level}.json")
        dtxt = f"{d['return_mean']:.1f} / {d['return_max']:.0f}" if d else "pending"
        stats = {}
        for m, label in methods(col.cfg).items():
            evs = [_read(R / C.run_name(m, g, col.cfg.game_level, s) / "eval.json") for s in col.cfg.game_seeds]
            if any(ev is None for ev in evs):
                lines.append(f"| {env_id} | {label} | pending | | | {dtxt} |")
                continue
            raw = np.concatenate([ev["results"][0]["returns"] for ev in evs])
            refs = evs[0]["results"][0]["refs"]
            seeds = " / ".join(f"{np.mean(ev['results'][0]['returns']):.1f}" for ev in evs)
            stats[m] = _stat(_norm(raw, refs))
            lines.append(f"| {env_id} | {label} | {_fmt(stats[m])} | {_fmt(_stat(raw))} | {seeds} | {dtxt} |")
        if "dt" in stats:
            vs = [(_verdict(stats["dt"], stats[m]).replace("BC", label), label) for m, label in methods(col.cfg).items()
                  if m != "dt" and m in stats]
            if vs:
                verdicts.append(f"{env_id}: " + "; ".join(f"against {label}, {v}" for v, label in vs))
    if verdicts:
        lines += ["", "**DT against the baselines** (a difference counts when the two 95% CIs of the pooled "
                      "normalised mean do not overlap). " + ". ".join(verdicts) + "."]
    for g, env_id in col.cfg.games.items():
        sw = _read(R / C.run_name("dt", g, col.cfg.game_level, 0) / "sweep.json")
        if sw is not None:
            res = sw["results"]
            paths.append(plots.sweep_plot(res, figs / f"sweep-{g}.png", sw["dataset_return_max"],
                                          title=f"DT on {col.camp.dataset_id(g, col.cfg.game_level)} ({col.cfg.game_budget:,} steps)"))
            panels.append((env_id, res, sw["dataset_return_max"]))
    if panels:
        paths.append(plots.sweep_grid(panels, figs / "sweeps-minatar.png", cols=len(panels)))
        lines += ["", f"Return conditioning: DT seed 0, {col.cfg.sweep_points} targets from the dataset's lowest "
                      f"return to 1.2x its best, {col.cfg.sweep_episodes} episodes each. Spearman's rho (target vs "
                      "achieved mean): " + ", ".join(f"{t} {spearman([r['target_return'] for r in res], [r['return_mean'] for r in res]):.2f}"
                                                    for t, res, _ in panels) + ".", "",
                  "![MinAtar return conditioning](figures/sweeps-minatar.png)"]
    return lines + [""], paths


def _train_seconds(metrics: Path) -> float | None:
    """Training time from metrics.csv: the sum of each logged interval's steps / its steps per second."""
    from decision_transformer.rundir import read_metrics
    if not metrics.is_file():
        return None
    total, prev = 0.0, 0
    for row in read_metrics(metrics):
        if row["steps_per_s"] is not None:
            sps = row["steps_per_s"]
            total += (row["step"] - prev) / sps if sps > 0 else 0.0
            prev = row["step"]
    return total


def atari_section(col: Collected, figs: Path) -> tuple[list[str], list[Path]]:
    """Atari: one end-to-end run per game, with the time each stage took."""
    from decision_transformer.suite.policies import SUITE
    R = col.camp.results
    mp = SUITE / "manifest.json"
    manifest = json.loads(mp.read_text()) if mp.is_file() else {}
    lines = ["## 5. Atari end to end", "",
             f"The paper's Atari model (`--preset atari`: 6 layers, 8 heads, width 128, K = 30) on a DQN-Replay-style "
             f"dataset of our own DQN run, trained for {col.cfg.atari_budget:,} steps at batch {col.cfg.atari_batch} (the paper: "
             f"batch 128, about 20k steps; this is what one CPU core affords), seed 0, the last checkpoint, "
             f"evaluated as the paper did: {col.cfg.atari_episodes} episodes at its target, no sticky actions "
             f"(episodes cut at {col.cfg.atari_max_steps:,} steps). Normalised = 100 x (R - random) / (best DQN - random).", ""]
    figures = []
    for g, (env_id, target) in col.cfg.atari.items():
        run = C.run_name("dt", g, col.cfg.game_level, 0)
        entry = manifest.get(env_id)
        d = _read(R / "datasets" / f"{g}-{col.cfg.game_level}.json")
        ev, vid = _read(R / run / "eval.json"), _read(R / run / "video.json")
        secs = _train_seconds(R / run / "metrics.csv")
        rows = ["| stage | what | time |", "| --- | --- | --- |"]
        if entry:
            tr = entry["training"]
            best = max(tr["eval_curve_10ep"], key=lambda x: x[1]) if tr.get("eval_curve_10ep") else None
            rows.append(f"| behaviour DQN (`dt suite dqn`) | {tr['total_env_steps']:,} env steps; best evaluation "
                        f"{best[1]:.1f} at step {best[0]:,}; reference random {entry['references']['ref_min_score']:.1f}, "
                        f"best DQN {entry['references']['ref_max_score']:.1f} (100 episodes) | "
                        f"{tr['wall_seconds'] / 3600:.1f} h |" if best else "")
        else:
            rows.append("| behaviour DQN (`dt suite dqn`) | pending | |")
        rows.append(f"| dataset (`dt suite replay`) | {d['steps']:,} steps, {d['episodes']:,} episodes, return "
                    f"{d['return_mean']:.1f} (max {d['return_max']:.0f}) | |" if d else "| dataset | pending | |")
        rows.append(f"| training (`dt train --preset atari`) | {col.cfg.atari_budget:,} steps | {secs / 60:.0f} min |"
                    if secs and ev else "| training | pending | |")
        if ev:
            r = ev["results"][0]
            norm = f", normalised {r['normalized_x100']:.1f}" if "normalized_x100" in r else ""
            rows.append(f"| evaluation | target {r['target_return']:g}: return {r['return_mean']:.1f} ± "
                        f"{r['return_std']:.1f} [{r['return_ci95'][0]:.1f}, {r['return_ci95'][1]:.1f}]{norm}, "
                        f"mean length {r['length_mean']:.0f} | {ev['eval_seconds'] / 60:.1f} min |")
        else:
            rows.append("| evaluation | pending | |")
        rows.append(f"| video | [{vid['file']}](../results/{run}/{vid['file']}): return {vid['return']:.0f} in "
                    f"{vid['steps']} steps | {vid['seconds']:.0f} s |" if vid else "| video | pending | |")
        lines += [f"**{env_id}**", ""] + [x for x in rows if x] + [""]
        cap = ev.get("max_episode_steps") if ev else None
        if cap and ev["results"][0]["length_mean"] >= cap:
            lines += [f"All {ev['results'][0]['episodes']} evaluation episodes ran to the {cap:,}-step cap. In "
                      f"Breakout an episode ends only when the last ball is lost, and a new ball is served only "
                      f"on FIRE: a policy that stops pressing FIRE after losing a ball leaves the game waiting, "
                      f"its score frozen (the replay GIF shows what this one does). The cap ends such episodes; "
                      f"the official evaluation's is 108,000 frames (27,000 steps).", ""]
        if entry and entry["training"].get("eval_curve_10ep"):
            tr, refs = entry["training"], entry["references"]
            xs, ys = zip(*tr["eval_curve_10ep"])
            fig = plots.curve_plot(list(xs), {"DQN, greedy (eps 0.01), 10 episodes": (ys, ys, ys)},
                                   figs / f"{g}-dqn.png", title=f"{env_id}: the behaviour DQN's learning curve",
                                   ylabel="return (raw)", xlabel="env steps (4 frames each)",
                                   hlines={"random": refs["ref_min_score"]})
            figures.append(fig)
            lines += [f"![{g} DQN]({fig.relative_to(figs.parent).as_posix()})", ""]
            weak = [f"**The behaviour policy is weak, and so is the data.** The DQN trained here for "
                    f"{tr['total_env_steps']:,} env steps ({4 * tr['total_env_steps'] / 1e6:.1f}M frames, "
                    f"{tr['wall_seconds'] / 3600:.1f} h on one CPU core) reaches {refs['ref_max_score']:.1f} "
                    f"(its best snapshot, 100 episodes)"]
            if g in NATURE_DQN:
                weak.append(f", where the Nature DQN scored {NATURE_DQN[g]:g} after 50M frames (Mnih et al. 2015) "
                            f"and DQN-Replay's buffers come from such runs")
            if d:
                weak.append(f". Our dataset's episodes return {d['return_mean']:.1f} on average "
                            f"(best {d['return_max']:.0f}), so the target {target:g} lies far above anything in it")
            if d and ev:
                weak.append(f". The DT returns {ev['results'][0]['return_mean']:.1f} at that target, against "
                            f"the dataset's mean {d['return_mean']:.1f}")
            if g in PAPER_ATARI_DT:
                weak.append(f". The paper's DT scored {PAPER_ATARI_DT[g]:g} on 1% of DQN-Replay at batch 128 and "
                            f"about 20k steps; the score here measures the pipeline end to end on CPU, not the "
                            f"method at the paper's scale")
            lines += ["".join(weak) + ".", ""]
    return lines, figures


def status_section(camp) -> list[str]:
    """Tasks done, by kind, from the result files alone (no lock is looked at: the page is a
    function of what is committed)."""
    st = [(t.name, t.done()) for t in camp.plan()]
    done = sum(ok for _, ok in st)
    kinds = {}
    for name, ok in st:
        k = name.split(":")[0]
        kinds.setdefault(k, [0, 0])
        kinds[k][0] += ok
        kinds[k][1] += 1
    return ["## Campaign status", "",
            f"{done} of {len(st)} tasks done when this page was generated (" +
            ", ".join(f"{k} {a}/{b}" for k, (a, b) in kinds.items()) + "). `dt results status` lists the rest.", ""]


def model_cards(col: Collected) -> list[Path]:
    out = []
    for e in col.cfg.envs:
        for lv in col.cfg.levels:
            if not col.cfg.published(e, lv):
                continue
            d = col.camp.models / f"{e}-{lv}"
            ev = col.evals[("dt", e, lv, 0)]
            if ev is None or not (d / "model.safetensors").is_file():
                continue
            cfg = json.loads((d / "config.json").read_text())["decision_transformer"]
            if not str((cfg.get("extra") or {}).get("dataset", "-v0")).endswith("-v0"):
                continue                           # published by a later campaign (report/v1.py writes its card)
            data = col.data[(e, lv)]
            r0 = ev["results"][0]
            res = {"env_id": ev["env_id"], "dataset": ev["dataset"],
                   "dataset_return_mean": data["return_mean"] if data else None,
                   "dataset_return_max": data["return_max"] if data else None,
                   "checkpoint_step": ev["checkpoint_step"],
                   "target_return": r0["target_return"], "mean_reward": r0["return_mean"], "std_reward": r0["return_std"],
                   "n_eval_episodes": r0["episodes"], "normalized_score_x100": r0["normalized_x100"],
                   "normalized_ci95": r0["normalized_ci95"], "refs": r0["refs"], "is_deterministic": True,
                   "eval_datetime": ev["eval_date"],
                   "all_targets": [{k: r[k] for k in ("target_return", "return_mean", "return_std", "return_ci95",
                                                      "episodes", "normalized_x100")} for r in ev["results"]]}
            sw = _read(col.camp.results / C.run_name("dt", e, lv, 0) / "sweep.json")
            if sw is not None:                     # how well achieved return follows the target
                t = [r["target_return"] for r in sw["results"]]
                m = [r["return_mean"] for r in sw["results"]]
                res["return_conditioning"] = {"targets": t, "achieved_mean": m, "spearman_rho": spearman(t, m),
                                              "episodes_per_target": sw["episodes_per_target"]}
            write_json_atomic(d / "results.json", res)
            tc = json.loads((col.camp.results / C.run_name("dt", e, lv, 0) / "config.json").read_text())
            write_text_atomic(d / "README.md", card_template.card(e, lv, cfg, res, data, tc))
            out += [d / "results.json", d / "README.md"]
    return out


def protocol_section(col: Collected) -> list[str]:
    env, level, _ = col.cfg.curve
    tc = _read(col.camp.results / C.run_name("dt", env, level, 0) / "config.json")
    lines = ["## Protocol", "",
             "- Data: the suite's datasets (`dt suite build`, docs/suite.md): v5 envs, behaviour policies trained here "
             "(sbx TD3), 200k-step medium and expert levels, medium-replay = the replay buffer up to the medium policy, "
             "medium-expert = both; the policies' actions are computed on OpenBLAS's Haswell kernels wherever the CPU has AVX2, "
             "so a build gives the same arrays on AVX2 and AVX-512 machines (docs/suite.md).",
             f"- Runs: DT seed 0; BC and {col.cfg.top_pct:g}%BC (BC on the top {col.cfg.top_pct:g}% of episodes by return, the "
             f"official code's MLP on the last K states, trained on windows that end at a uniformly drawn step; the "
             f"official sampler starts windows there, so the first K-1 steps of an episode are never a BC target) "
             f"seeds {', '.join(map(str, col.cfg.baseline_seeds))}; every run "
             f"{col.cfg.budget:,} gradient steps, one CPU thread each, and evaluated at its last checkpoint."]
    if tc:
        lines.append(f"- Hyper-parameters (the paper's, from `results/{C.run_name('dt', env, level, 0)}/config.json`): "
                     f"K = {tc['context_length']}, {tc['n_layer']} layers, {tc['n_head']} head, width {tc['hidden_size']}, "
                     f"dropout {tc['dropout']:g}, AdamW lr {tc['lr']:g}, weight decay {tc['weight_decay']:g}, "
                     f"{tc['warmup_steps']:,} linear warm-up steps then constant, gradient clip {tc['grad_clip']:g}, "
                     f"batch {tc['batch_size']}, returns-to-go / {tc['return_scale']:g}.")
    lines += [f"- Evaluation: {col.cfg.eval_episodes} episodes per target, deterministic actions, exact evaluation semantics "
              f"(the blog's loop), {C.env_seeds_phrase(col.cfg.eval_episodes)}; 95% CIs by bootstrap of the mean.",
              "- Reproduce everything: `make results` (resumable, one one-thread worker per core), then this page "
              "regenerates with `dt results report`; `dt results status` shows what is left.", ""]
    return lines


def write_report(camp, docs="docs") -> list[Path]:
    docs = Path(docs)
    figs = docs / "figures"
    col = Collected(camp)
    head = ["# Results on suite v0: Decision Transformer on the first dt suite", "",
            "The first campaign, on suite v0 (TD3 actors + Gaussian action noise, 100-200k steps per level, DT with "
            "one seed; docs/suite.md). An audit found where it departs from the paper's recipe; its successor on "
            "suite v1 is [results.md](results.md). The checkpoints in `models/` are still this campaign's until "
            "suite v1's are published.", "",
            "Generated by `dt results report --version v0` from the files under `results/`, which "
            "`dt results run --version v0` writes. Do not edit by hand. Datasets: `dt suite build --version v0`. "
            f"Generated {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC.", ""]
    written = []
    body = []
    for section in (curve_section, table_section, sweep_section, games_section, atari_section):
        lines, paths = section(col, figs)
        body += lines
        written += paths
    md = head + status_section(camp) + protocol_section(col) + body
    p = write_text_atomic(docs / "results-v0.md", "\n".join(md) + "\n")
    return [p] + written + model_cards(col)

