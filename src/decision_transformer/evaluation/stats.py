"""The statistics every number on the results pages goes through, in one place: normalised
scores, bootstrap confidence intervals (over episodes; over seeds and episodes) and rank
correlation."""

from __future__ import annotations

import numpy as np


def bootstrap_ci(x, n: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """A 95% bootstrap confidence interval of the mean of x (resampled n times, seeded)."""
    x = np.asarray(x, dtype=np.float64)
    if len(x) < 2:
        return float(x.mean()), float(x.mean())
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(n, len(x)))].mean(axis=1)
    lo, hi = np.percentile(means, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return float(lo), float(hi)


def normalized(returns, ref_min: float, ref_max: float):
    """The normalised score x100: 100 x (R - ref_min) / (ref_max - ref_min), for a number or an
    array (D4RL's convention; Minari's get_normalized_score gives the 0-1 fraction instead)."""
    if isinstance(returns, (int, float)):
        return 100.0 * (returns - ref_min) / (ref_max - ref_min)
    return 100.0 * (np.asarray(returns, dtype=np.float64) - ref_min) / (ref_max - ref_min)


def _slot_means(per_seed: list[np.ndarray], picks: np.ndarray, rng) -> np.ndarray:
    """For each slot (a seed index in `picks`), the mean of a resample of that seed's episodes."""
    out = np.empty(picks.size)
    for j, x in enumerate(per_seed):
        x = np.asarray(x, dtype=np.float64)
        slots = np.flatnonzero(picks == j)
        out[slots] = x[rng.integers(0, len(x), size=(len(slots), len(x)))].mean(axis=1)
    return out


def hierarchical_ci(per_seed: list[np.ndarray], n: int = 2000, seed: int = 0, level: float = 0.95):
    """95% CI of the mean when seeds vary as much as episodes: resample the seeds, then the episodes
    of each resampled seed; the mean of each draw weighs seeds equally. Vectorised: each of the
    n x k seed slots gets its own resample of its seed's episodes, as a loop over draws would."""
    rng = np.random.default_rng(seed)
    k = len(per_seed)
    picks = rng.integers(0, k, size=(n, k)).ravel()
    means = _slot_means(per_seed, picks, rng).reshape(n, k).mean(axis=1)
    lo, hi = np.percentile(means, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return float(lo), float(hi)


def paired_seed_ci(a: list[np.ndarray], b: list[np.ndarray], n: int = 2000, seed: int = 0, level: float = 0.95):
    """95% CI of b's mean minus a's where both were measured on the same seeds (seed i of a is
    seed i of b: the same training seed and data): the seeds are resampled together, each side's
    episodes independently (its episodes are not paired: a vector env's later episodes start where
    its RNG is, and finish in any order)."""
    rng = np.random.default_rng(seed)
    k = len(a)
    picks = rng.integers(0, k, size=(n, k)).ravel()
    diff = (_slot_means(b, picks, rng) - _slot_means(a, picks, rng)).reshape(n, k).mean(axis=1)
    lo, hi = np.percentile(diff, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return float(lo), float(hi)


def spearman(x, y) -> float:
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    if np.std(rx) == 0 or np.std(ry) == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])
