"""What `dt serve` offers, without the web framework: the models it can play, each one's target
range, one episode played and rendered for a request, and its return-conditioning sweep.

A model is a checkpoint directory (config.json + model.safetensors), a `dt train` run directory
(its last checkpoint), or a directory of checkpoints such as models/ (each subdirectory one model).
Nothing here holds per-request state: every episode loads its own copy of the weights and builds
its own Agent and env, so concurrent requests share nothing but read-only files.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from decision_transformer.errors import DTError

HIGH_FACTOR = 1.2               # the slider's top: 1.2 x the dataset's best episode
SERVE_FAST_RENDER = True        # no shadows or multisampling: ~6x faster in software GL
VIDEO_STEP_EVERY = 4            # a frame every 4th env step (Hopper: 125 steps/s -> 31 fps, real time)
VIDEO_SIZE = 256                # MuJoCo frames, pixels a side


@dataclass(frozen=True)
class Entry:
    """One model on offer: where its checkpoint is, what it plays, and its target range."""
    name: str
    checkpoint: Path            # the checkpoint directory itself
    source: Path                # what was named: a run directory, a checkpoint, or models/<name>
    env_id: str
    architecture: str
    low: float                  # the slider's range and default
    high: float
    default: float
    low_from: str               # where `low` comes from, said in the page
    best: float | None          # the dataset's best episode return, if recorded
    card: dict = field(default_factory=dict, compare=False)     # results.json beside it, if any


def slider_step(lo: float, hi: float) -> float:
    """A power of ten near a hundredth of the range: 10 for Hopper's returns, 0.1 for returns near 20."""
    return float(10 ** math.floor(math.log10(max(hi - lo, 1e-6) / 100)))


def _is_checkpoint(d: Path) -> bool:
    return (d / "config.json").is_file() and ((d / "model.safetensors").is_file() or (d / "pytorch_model.bin").is_file())


def _read_json(path: Path) -> dict:
    try:
        out = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return out if isinstance(out, dict) else {}


def entry_of(source, name: str | None = None) -> Entry:
    """The Entry of a checkpoint or run directory; a DTError naming it if it is neither."""
    from decision_transformer.models.checkpoint import from_pretrained
    from decision_transformer.rundir import checkpoint_of
    src = Path(source)
    if not src.is_dir():
        raise DTError(f"{src}: no such directory; pass a checkpoint, a run directory or a directory of checkpoints")
    ck = checkpoint_of(src).resolve()
    cfg = from_pretrained(ck).config             # reads and checks it now: a bad model fails at start, not per user
    if not cfg.env_id:
        raise DTError(f"{src}: the checkpoint does not name its env; `dt serve` plays only models that do")
    card = {k: v for k, v in _read_json(src / "results.json").items()
            if k not in ("target_return", "dataset_return_max", "dataset_return_min") or _number(v)}
    extra = {k: v for k, v in (cfg.extra or {}).items()
             if k not in ("dataset_best_return", "dataset_worst_return", "ref_min_score") or _number(v)}
    best = card.get("dataset_return_max", extra.get("dataset_best_return"))
    worst, low_from = card.get("dataset_return_min", extra.get("dataset_worst_return")), "the dataset's lowest return"
    if worst is None and extra.get("ref_min_score") is not None:
        worst, low_from = extra["ref_min_score"], "the random policy's return (the dataset's lowest is not recorded)"
    if worst is None:
        worst, low_from = 0.0, "0 (the dataset's lowest return is not recorded)"
    targets = [float(t) for t in (cfg.target_returns or [])]
    high = HIGH_FACTOR * float(best) if best is not None else HIGH_FACTOR * max(targets or [1.0])
    low = min(float(worst), high)
    step = slider_step(low, high)                 # round bounds: the slider shows them
    low, high = math.floor(low / step) * step, math.ceil(high / step) * step
    default = float(card.get("target_return", targets[0] if targets else high / HIGH_FACTOR))
    return Entry(name=name or src.name, checkpoint=ck, source=src, env_id=cfg.env_id,
                 architecture=cfg.architecture, low=low, high=high, default=min(max(default, low), high),
                 low_from=low_from, best=None if best is None else float(best), card=card)


def discover(paths) -> dict[str, Entry]:
    """Every model under `paths`, by name: a checkpoint or run directory is one model (named by
    its directory); any other directory offers each checkpoint or run directory inside it."""
    from decision_transformer.rundir import RunDir
    out: dict[str, Entry] = {}
    for p in (Path(x) for x in paths):
        if not p.is_dir():
            raise DTError(f"{p}: no such directory; pass a checkpoint, a run directory or a directory of checkpoints")
        if _is_checkpoint(p) or RunDir(p).is_run():
            found = [p]
        else:
            found = sorted(d for d in p.iterdir() if d.is_dir() and (_is_checkpoint(d) or RunDir(d).is_run()))
            if not found:
                raise DTError(f"{p}: holds no checkpoint or run directory")
        for d in found:
            name = d.name if d.name not in out else f"{d.parent.name}/{d.name}"
            out[name] = entry_of(d, name)
    if not out:
        raise DTError("no model to serve: pass a checkpoint, a run directory or a directory of checkpoints")
    return out


def entry_named(entries: dict[str, Entry], name) -> Entry:
    if name not in entries:
        raise DTError(f"unknown model {name!r}: pick one of {', '.join(sorted(entries))}")
    return entries[name]


def check_request(entries: dict[str, Entry], name, target, seed) -> tuple[Entry, float, int]:
    """The request's model, target and seed, or a DTError that says what is wrong (shown in the page)."""
    e = entry_named(entries, name)
    try:
        t = float(target)
    except (TypeError, ValueError):
        raise DTError(f"the target return must be a number, got {target!r}")
    if not math.isfinite(t) or not e.low <= t <= e.high:
        raise DTError(f"the target return must be a number from {e.low:.0f} to {e.high:.0f} for {name}, got {target!r}")
    try:
        s = int(seed)
    except (TypeError, ValueError, OverflowError):
        raise DTError(f"the seed must be a whole number from 0 to 2147483647, got {seed!r}")
    if s != seed or not 0 <= s <= 2**31 - 1:
        raise DTError(f"the seed must be a whole number from 0 to 2147483647, got {seed!r}")
    return e, t, s


@dataclass
class Played:
    """One request's episode: the video file, the per-step rewards and returns-to-go."""
    video: Path
    rewards: np.ndarray
    target: float
    seed: int
    backend: str

    @property
    def total(self) -> float:
        return float(self.rewards.sum())

    @property
    def returns_so_far(self) -> np.ndarray:
        return np.concatenate([[0.0], np.cumsum(self.rewards)])

    @property
    def return_to_go(self) -> np.ndarray:
        """The countdown the model is conditioned on: the target less what was earned so far."""
        return self.target - self.returns_so_far


def play(entry: Entry, target: float, seed: int, out_dir, backend: str = "auto", max_steps: int | None = None) -> Played:
    """One episode of `entry` at `target` from env seed `seed`, rendered to OUT_DIR/episode.mp4:
    its return is `dt eval CHECKPOINT --target-return T --episodes 1 --num-envs 1 --seed S`'s
    (with `--backend onnxruntime` where that backend ran it)."""
    from decision_transformer.evaluation.video import render_episode, write_video
    from decision_transformer.inference.agent import resolve_backend
    from decision_transformer.models.checkpoint import from_pretrained
    model = from_pretrained(entry.checkpoint).eval()             # this request's own copy
    backend = resolve_backend(model, backend)
    steps = max_steps or model.config.max_ep_len or 1000
    ep = render_episode(model, entry.env_id, target, seed=seed, max_steps=steps, size=VIDEO_SIZE,
                        every=VIDEO_STEP_EVERY, backend=backend, fast=SERVE_FAST_RENDER)
    video = write_video(ep.frames, Path(out_dir) / "episode.mp4", max(1.0, ep.steps_per_second / VIDEO_STEP_EVERY))
    return Played(video=video, rewards=ep.rewards, target=target, seed=seed, backend=backend)


# ---- the sweep: from the model's files, else computed once and cached ----------------------------

def cache_dir() -> Path:
    return Path(os.environ.get("DT_CACHE_DIR") or Path.home() / ".cache" / "decision_transformer") / "serve"


def _weights_digest(ck: Path) -> str:
    """The checkpoint's identity for the cache: its config's and weights' hashes, hashed."""
    from decision_transformer.fileio import sha256_file
    files = [ck / n for n in ("config.json", "model.safetensors", "pytorch_model.bin") if (ck / n).is_file()]
    return hashlib.sha256(" ".join(sha256_file(f) for f in files).encode()).hexdigest()[:20]


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _valid_sweep(rec: dict) -> bool:
    """At least two points, each a target and a mean return that are numbers (std optional)."""
    res = rec.get("results")
    return isinstance(res, list) and len(res) >= 2 and all(
        isinstance(r, dict) and _number(r.get("target_return")) and _number(r.get("return_mean"))
        and (r.get("return_std") is None or _number(r["return_std"])) for r in res)


def _sweep_in_files(entry: Entry) -> dict | None:
    """A sweep.json (`dt sweep`'s or the campaign's schema) beside the model, if it holds a valid one."""
    for d in (entry.source, entry.checkpoint):
        rec = _read_json(d / "sweep.json")
        if _valid_sweep(rec):
            return {**rec, "from": str(d / "sweep.json")}
    return None


def _cache_path(entry: Entry, points: int, episodes: int) -> Path:
    return cache_dir() / f"{_weights_digest(entry.checkpoint)}-{points}x{episodes}" / "sweep.json"


def cached_sweep(entry: Entry, points: int = 8, episodes: int = 5) -> dict | None:
    """The sweep computed earlier for these weights, or None (nothing is computed here)."""
    path = _cache_path(entry, points, episodes)
    rec = _read_json(path)
    return {**rec, "from": f"cache ({path})"} if _valid_sweep(rec) else None


_SWEEP_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_LOCK = threading.Lock()


def sweep(entry: Entry, points: int = 8, episodes: int = 5, backend: str = "auto", compute: bool = True) -> dict | None:
    """The model's sweep: its own sweep.json if it has one, else `points` targets from low to high,
    `episodes` each, computed once (one request at a time per model) and cached under
    DT_CACHE_DIR (default ~/.cache/decision_transformer)/serve, keyed by the weights' hash.
    `compute` False: only a sweep that is ready (None if there is none yet)."""
    found = _sweep_in_files(entry)
    if found is not None or not compute:
        return found if found is not None else cached_sweep(entry, points, episodes)
    path = _cache_path(entry, points, episodes)
    with _LOCKS_LOCK:
        lock = _SWEEP_LOCKS.setdefault(str(path), threading.Lock())
    with lock:
        rec = cached_sweep(entry, points, episodes)
        if rec is not None:
            return rec
        from decision_transformer.evaluation.evaluate import evaluation_record
        from decision_transformer.fileio import write_json_atomic
        from decision_transformer.inference.agent import resolve_backend
        from decision_transformer.models.checkpoint import from_pretrained
        model = from_pretrained(entry.checkpoint).eval()
        backend = resolve_backend(model, backend)
        targets = [float(x) for x in np.linspace(entry.low, entry.high, points)]
        rec = evaluation_record(model, entry.env_id, targets, episodes, seed=1, checkpoint=str(entry.source),
                                num_envs=episodes, threads=1, backend=backend)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(path, rec)
        except OSError:
            pass                            # a read-only home: computed again next start, still shown now
        return {**rec, "from": "computed now, cached"}
