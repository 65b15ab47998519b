"""Plots: the sweep of achieved vs target return (paper Fig. 4), the learning curve and the score
chart of docs/results.md. Every PNG is written atomically (`save`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save(fig, path, dpi: int = 110) -> Path:
    """Save a figure to a temp name beside `path`, then rename: never half a PNG."""
    from decision_transformer.fileio import atomic_path
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi)
    finally:
        _plt().close(fig)
    return path


def _sweep_axes(ax, results, dataset_best=None, title="", legend=True, hist=None):
    """A sweep: achieved against target return; `hist` (return_histogram in results.py): the
    data's episode returns behind it, as % of its episodes, on a right axis."""
    t = [r["target_return"] for r in results]
    m = [r["return_mean"] for r in results]
    lo = [r["return_ci95"][0] for r in results]
    hi = [r["return_ci95"][1] for r in results]
    ax.plot(t, m, "o-", color="tab:blue", label="achieved (mean)")
    ax.fill_between(t, lo, hi, color="tab:blue", alpha=0.2, label="95% CI of the mean")
    span = [min(t + m), max(t + m)]
    ax.plot(span, span, "--", color="grey", label="achieved = target")
    if dataset_best is not None:
        ax.axhline(dataset_best, color="tab:red", ls=":", label=f"best episode in dataset ({dataset_best:.0f})")
    ax.set_xlabel("target return")
    ax.set_ylabel("achieved return")
    ax.set_title(title, fontsize=9)
    handles = ax.get_legend_handles_labels()
    if hist is not None:
        edges, eps = np.asarray(hist["edges"]), np.asarray(hist["episodes"], dtype=np.float64)
        ax2 = ax.twinx()
        ax2.bar(edges[:-1], 100 * eps / eps.sum(), width=np.diff(edges), align="edge", color="tab:green",
                alpha=0.25, label="data's episode returns (% of episodes, right)")
        ax2.set_ylabel("% of the data's episodes", fontsize=8)
        ax.set_zorder(ax2.get_zorder() + 1)       # the sweep over the bars
        ax.patch.set_visible(False)
        handles = [a + b for a, b in zip(handles, ax2.get_legend_handles_labels())]
    if legend:
        ax.legend(*handles, fontsize=7)


def sweep_plot(results: list[dict], path, dataset_best: float | None = None, title: str = "", hist=None) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    _sweep_axes(ax, results, dataset_best, title, hist=hist)
    fig.tight_layout()
    return save(fig, path)


def sweep_grid(panels: list[tuple], path, cols: int = 3) -> Path:
    """Several sweeps side by side: panels are (title, results, dataset best return[, return histogram])."""
    plt = _plt()
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.6 * rows), squeeze=False)
    for ax, (title, res, best, *hist) in zip(axes.flat, panels):
        _sweep_axes(ax, res, best, title, legend=ax is axes.flat[0], hist=hist[0] if hist else None)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    return save(fig, path)


def return_histogram(returns, path, title: str = "") -> Path:
    """Histogram of episode returns (`dt data info --plot`)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(returns, bins=min(50, max(5, len(returns) // 5)), color="tab:blue")
    ax.set_xlabel("episode return")
    ax.set_ylabel("episodes")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return save(fig, path, dpi=100)


def curve_plot(steps, series: dict[str, tuple[list, list, list]], path, title: str = "",
               ylabel: str = "normalised return (x100)", mark: int | None = None, xmax: int | None = None,
               hlines: dict[str, float] | None = None, xlabel: str = "gradient steps") -> Path:
    """Lines with 95% CI bands: series name -> (means, lows, highs) at `steps`; `hlines` are
    labelled reference levels (e.g. the dataset's mean)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, y in (hlines or {}).items():
        ax.axhline(y, color="black", lw=1, ls="--", alpha=0.6, label=name)
    if xmax:
        ax.set_xlim(0, xmax * 1.02)
    for name, (m, lo, hi) in series.items():
        line, = ax.plot(steps, m, "o-", label=name)
        ax.fill_between(steps, lo, hi, alpha=0.2, color=line.get_color())
    if mark is not None:
        ax.axvline(mark, color="grey", ls=":", label=f"chosen budget ({mark:,} steps)")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save(fig, path)


def score_bars(groups: list[str], methods: dict[str, list], path, marks: dict[str, list] | None = None,
               title: str = "") -> Path:
    """Grouped bars: methods name -> per group (mean, lo, hi) or None (not run yet); marks name ->
    per group a value drawn as a marker (e.g. the dataset's mean return)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(7, 0.85 * len(groups)), 4.8))
    x = np.arange(len(groups))
    w = 0.8 / max(1, len(methods))
    for i, (name, vals) in enumerate(methods.items()):
        xs = x - 0.4 + w * (i + 0.5)
        have = [j for j, v in enumerate(vals) if v is not None]
        m = [vals[j][0] for j in have]
        err = [[vals[j][0] - vals[j][1] for j in have], [vals[j][2] - vals[j][0] for j in have]]
        ax.bar(xs[have], m, w, yerr=err, capsize=2, label=name)
    for (name, vals), style in zip((marks or {}).items(), (("_", 14), ("x", 7), ("+", 8))):
        have = [j for j, v in enumerate(vals) if v is not None]
        ax.plot(x[have], [vals[j] for j in have], style[0], color="black" if style[0] == "_" else "dimgrey",
                markersize=style[1], mew=2, ls="none", label=name)
    ax.set_xticks(x)
    ax.set_xticklabels(groups, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("normalised return (x100)")
    ax.axhline(0, color="black", lw=0.5)
    ax.set_title(title, fontsize=9)
    ax.set_ylim(top=ax.get_ylim()[1] * 1.25)                 # room for the legend above the bars
    ax.legend(fontsize=8, ncol=5, loc="upper left")
    fig.tight_layout()
    return save(fig, path)
