"""Plots: the sweep of achieved vs target return (paper Fig. 4), atomically written PNGs."""

from __future__ import annotations

import os
from pathlib import Path


def sweep_plot(results: list[dict], path, dataset_best: float | None = None, title: str = "") -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    t = [r["target_return"] for r in results]
    m = [r["return_mean"] for r in results]
    lo = [r["return_ci95"][0] for r in results]
    hi = [r["return_ci95"][1] for r in results]
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    ax.plot(t, m, "o-", color="tab:blue", label="achieved (mean)")
    ax.fill_between(t, lo, hi, color="tab:blue", alpha=0.2, label="95% CI of the mean")
    span = [min(t + m), max(t + m)]
    ax.plot(span, span, "--", color="grey", label="achieved = target")
    if dataset_best is not None:
        ax.axhline(dataset_best, color="tab:red", ls=":", label=f"best episode in dataset ({dataset_best:.0f})")
    ax.set_xlabel("target return")
    ax.set_ylabel("achieved return")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return path
