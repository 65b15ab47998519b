"""Offline trajectory datasets: one contiguous array per field plus episode offsets.

`load_dataset(source)` reads
  - a Minari dataset id (from MINARI_DATASETS_PATH or ~/.minari; downloaded only when `download=True`)
    or a Minari dataset directory (the one holding `data/`, or `data/` itself);
  - a D4RL-layout HDF5 file (observations, actions, rewards, terminals, timeouts; optional
    next_observations): split into episodes at terminals | timeouts, a trailing partial episode
    kept as truncated;
  - Hugging Face `decision_transformer_gym_replay`-style rows, parquet or arrow: one row per episode
    with observations, actions, rewards, dones;
  - the suite's replay files (`.npz`: observations, next_observations, actions, rewards,
    terminations, truncations; transitions in order).
Minari stores T+1 observations per episode (the reset observation included): the last one is
dropped for every episode, so observations[t] is the state in which actions[t] was taken.
Every problem is a one-line `DatasetError` naming the file, the episode and the field.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from decision_transformer.data.frames import Packer
from decision_transformer.errors import DTError
from decision_transformer.fileio import why


SATURATION_TOL = 1e-3       # an action component this close to +-1 counts as at the bound (action_saturation)


class DatasetError(DTError):
    pass


class MissingDataset(DatasetError):
    """A Minari id with no local copy."""


@dataclass
class Episode:
    """The one episode representation: T steps, observation t is the one action t was taken in.
    Minari stores T+1 observations; the last one, seen after the final step, is kept apart."""
    observations: np.ndarray   # (T, *obs_shape)
    actions: np.ndarray        # (T, act_dim) float or (T,) int
    rewards: np.ndarray        # (T,)
    terminations: np.ndarray   # (T,) bool
    truncations: np.ndarray    # (T,) bool
    final_observation: np.ndarray | None = None   # (*obs_shape,) after the last step, when known

    def __len__(self):
        return len(self.rewards)

    @property
    def episode_return(self) -> float:
        return float(np.sum(self.rewards, dtype=np.float64))

    @classmethod
    def from_steps(cls, observations, actions, rewards, terminations, truncations) -> "Episode":
        """From per-step lists with T+1 observations (the reset one first, the final one last)."""
        return cls(np.asarray(observations[:-1]), np.asarray(actions), np.asarray(rewards, dtype=np.float64),
                   np.asarray(terminations, dtype=bool), np.asarray(truncations, dtype=bool),
                   np.asarray(observations[-1]))


@dataclass
class TrajectoryDataset:
    observations: np.ndarray   # (N, *obs_shape), float32 vectors or uint8 frames (Atari: PackedFrames, frames.py)
    actions: np.ndarray        # (N, act_dim) float32, or (N,) int64 for discrete actions
    rewards: np.ndarray        # (N,) float32
    terminations: np.ndarray   # (N,) bool
    truncations: np.ndarray    # (N,) bool
    offsets: np.ndarray        # (E + 1,) int64: episode i is [offsets[i], offsets[i+1])
    observation_space: object = None
    action_space: object = None
    metadata: dict = field(default_factory=dict)  # env_id, ref_min_score, ref_max_score, source, ...

    @property
    def num_episodes(self) -> int:
        return len(self.offsets) - 1

    @property
    def num_steps(self) -> int:
        return int(self.offsets[-1])

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def discrete(self) -> bool:
        return self.actions.ndim == 1

    @property
    def frame_stack(self) -> int:
        """Stored frames per observation: Atari datasets store each frame once, (N, 1, 84, 84),
        and an observation is the last `frame_stack` frames of its episode (envs.py)."""
        return int(self.metadata.get("frame_stack") or 1)

    @property
    def state_shape(self) -> tuple[int, ...]:
        """What the policy sees per step: the stored shape, with frame stacks rebuilt."""
        shape = tuple(self.observations.shape[1:])
        return (shape[0] * self.frame_stack, *shape[1:]) if self.frame_stack > 1 else shape

    def episode(self, i: int) -> Episode:
        if not -self.num_episodes <= i < self.num_episodes:
            raise IndexError(f"episode {i} out of range ({self.num_episodes} episodes)")
        a, b = self.offsets[i], self.offsets[i + 1]
        return Episode(self.observations[a:b], self.actions[a:b], self.rewards[a:b],
                       self.terminations[a:b], self.truncations[a:b])

    def episode_returns(self) -> np.ndarray:
        return np.add.reduceat(self.rewards.astype(np.float64), self.offsets[:-1]) if self.num_episodes else np.zeros(0)

    def action_saturation(self, tol: float = SATURATION_TOL) -> float | None:
        """The fraction of continuous action components within tol of +-1 (None: discrete actions):
        data whose actions were clipped to the box, such as a deterministic policy plus noise, has
        many; a tanh-squashed Gaussian (the Online DT's head) can only fit those with a wide std."""
        if self.discrete or not self.num_steps:
            return None
        return float((np.abs(self.actions) >= 1.0 - tol).mean())

    def state_stats(self, eps: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std of the observations over all steps (float64), std floored at eps."""
        obs = self.observations.reshape(self.num_steps, -1).astype(np.float64)
        return obs.mean(0), np.maximum(obs.std(0), eps)

    # -- construction with validation --------------------------------------------------------
    @classmethod
    def from_episodes(cls, episodes, where: str, observation_space=None, action_space=None,
                      metadata=None, observations: np.ndarray | None = None) -> "TrajectoryDataset":
        """`observations`: the episodes' observations already concatenated (the episodes' arrays
        are views of it), so large frame datasets are not copied again."""
        eps = list(episodes)
        if not eps:
            raise DatasetError(f"{where}: the dataset has no episodes")
        for i, e in enumerate(eps):
            _check_episode(e, where, i)
        _check_shapes(eps, where)
        discrete = eps[0].actions.ndim == 1 and np.issubdtype(eps[0].actions.dtype, np.integer)
        obs_dtype = np.uint8 if eps[0].observations.dtype == np.uint8 else np.float32
        offsets = np.zeros(len(eps) + 1, dtype=np.int64)
        np.cumsum([len(e) for e in eps], out=offsets[1:])
        if observations is None:
            observations = np.concatenate([e.observations for e in eps])
        ds = cls(
            observations=observations.astype(obs_dtype, copy=False),
            actions=np.concatenate([e.actions for e in eps]).astype(np.int64 if discrete else np.float32, copy=False),
            rewards=np.concatenate([e.rewards for e in eps]).astype(np.float32, copy=False),
            terminations=np.concatenate([e.terminations for e in eps]).astype(bool, copy=False),
            truncations=np.concatenate([e.truncations for e in eps]).astype(bool, copy=False),
            offsets=offsets, observation_space=observation_space, action_space=action_space,
            metadata=dict(metadata or {}))
        ds._check_action_space(where)
        return ds

    def _check_action_space(self, where: str) -> None:
        sp = self.action_space
        if sp is None:
            return
        if hasattr(sp, "n"):                                  # Discrete
            bad = (self.actions < getattr(sp, "start", 0)) | (self.actions >= getattr(sp, "start", 0) + sp.n)
            if bad.any():
                i = int(np.searchsorted(self.offsets, np.flatnonzero(bad)[0], side="right") - 1)
                raise DatasetError(f"{where}: episode {i}, field actions: action index outside Discrete({sp.n})")
            return
        low, high = np.asarray(sp.low, np.float32), np.asarray(sp.high, np.float32)
        over = np.maximum(self.actions - high, low - self.actions).max(axis=1)
        if (over > 0).any():
            i = int(np.searchsorted(self.offsets, int(np.argmax(over)), side="right") - 1)
            tol = 1e-3 * float(np.max(high - low))
            if over.max() > tol:
                raise DatasetError(f"{where}: episode {i}, field actions: {over.max():.4g} outside the action "
                                   f"space bounds [{low.min():g}, {high.max():g}]")
            warnings.warn(f"{where}: {int((over > 0).sum())} actions slightly outside the action space "
                          f"(by <= {over.max():.2g}), clipped", stacklevel=3)
            np.clip(self.actions, low, high, out=self.actions)


# Values beyond this break float32 training (state statistics, scaled returns-to-go): refused at
# loading, so `dt data info` says it before `dt train` would fail or print a NaN loss.
MAX_ABS = 1e8


def _check_episode(e: Episode, where: str, i: int) -> None:
    T = len(e.rewards)
    if T == 0:
        raise DatasetError(f"{where}: episode {i} is empty")
    for name in ("observations", "actions", "rewards", "terminations", "truncations"):
        v = getattr(e, name)
        if len(v) != T:
            raise DatasetError(f"{where}: episode {i}, field {name}: length {len(v)} but {T} rewards")
        if name not in ("observations", "actions", "rewards"):
            continue
        if not (np.issubdtype(v.dtype, np.number) or v.dtype == bool):
            raise DatasetError(f"{where}: episode {i}, field {name}: not numbers (dtype {v.dtype}); store them as "
                               "numbers")
        if np.issubdtype(v.dtype, np.floating):
            if not np.all(np.isfinite(v)):
                raise DatasetError(f"{where}: episode {i}, field {name}: contains NaN or inf")
            big = float(np.abs(v).max())
            if big > MAX_ABS:
                raise DatasetError(f"{where}: episode {i}, field {name}: values up to {big:.3g}, beyond the {MAX_ABS:g} "
                                   "float32 training handles; rescale the data")
    if e.observations.ndim == 1:
        raise DatasetError(f"{where}: episode {i}, field observations: one number per step (shape ({T},)); a state "
                           f"is a vector or a frame: reshape to ({T}, 1)")
    if e.actions.ndim == 1 and not np.issubdtype(e.actions.dtype, np.integer):
        raise DatasetError(f"{where}: episode {i}, field actions: one float per step (shape ({T},)); continuous "
                           f"actions are ({T}, act_dim): reshape to ({T}, 1); discrete actions are integers")


def _check_shapes(eps: list[Episode], where: str) -> None:
    """Every episode's steps have the first one's observation and action shapes."""
    for name in ("observations", "actions"):
        want = getattr(eps[0], name).shape[1:]
        for i, e in enumerate(eps):
            got = getattr(e, name).shape[1:]
            if got != want:
                raise DatasetError(f"{where}: episode {i}, field {name}: shape {got} per step but episode 0 has "
                                   f"{want}")


# ---------------------------------------------------------------------------------------------
# Loaders
# ---------------------------------------------------------------------------------------------

def describe(ds: "TrajectoryDataset", source: str) -> dict:
    """Episodes, steps, shapes, the return distribution and reference scores (`dt data info`)."""
    from decision_transformer.evaluation.stats import normalized
    r, L = ds.episode_returns(), ds.lengths
    md = ds.metadata
    info = {"source": source, "episodes": ds.num_episodes, "steps": ds.num_steps,
            "observation_shape": list(ds.observations.shape[1:]),
            "actions": ("discrete" if ds.discrete else f"continuous {ds.actions.shape[1]}"),
            "return": {"mean": float(r.mean()), "std": float(r.std()), "min": float(r.min()),
                       "p25": float(np.percentile(r, 25)), "median": float(np.median(r)),
                       "p75": float(np.percentile(r, 75)), "max": float(r.max())},
            "length": {"mean": float(L.mean()), "min": int(L.min()), "max": int(L.max())},
            "terminations": int(ds.terminations.sum()), "truncations": int(ds.truncations.sum()),
            "actions_at_bounds": ds.action_saturation(),
            "env_id": md.get("env_id"), "ref_min_score": md.get("ref_min_score"), "ref_max_score": md.get("ref_max_score")}
    if info["ref_max_score"] is not None and info["ref_min_score"] is not None:
        info["normalized_return_x100"] = normalized(float(r.mean()), info["ref_min_score"], info["ref_max_score"])
    return info


def load_dataset(source, download: bool = False, pack_frames: bool = True) -> TrajectoryDataset:
    """pack_frames: hold a Minari Atari dataset's frames zlib-packed in memory (data/frames.py);
    False reads them into one raw uint8 array (3.5 GB for 500k steps)."""
    p = Path(str(source))
    if p.is_dir():
        return _load_minari_dir(p, pack_frames)
    if p.is_file():
        suffix = p.suffix.lower()
        if suffix in (".hdf5", ".h5"):
            return _load_d4rl(p)
        if suffix in (".parquet", ".arrow"):
            return _load_hf_rows(p)
        if suffix == ".npz":
            return _load_npz(p)
        raise DatasetError(f"{p}: unknown dataset file type {suffix!r} (expected .hdf5/.h5, .parquet/.arrow, .npz)")
    if p.suffix.lower() in (".hdf5", ".h5", ".parquet", ".arrow", ".npz") or str(source).startswith((os.sep, ".", "~")) \
            or not re.search(r"-v\d+$", str(source)):            # not a Minari id (name-vN): a path
        raise DatasetError(f"{source}: no such file or directory{_near_matches(p) or '; check the path'}")
    return _load_minari_id(str(source), download, pack_frames)


def _near_matches(p: Path) -> str:
    """' (did you mean A, B?)' for names beside a mistyped path, or ''."""
    import difflib
    parent = p.expanduser().parent
    try:
        names = [x.name for x in parent.iterdir()] if parent.is_dir() else []
    except OSError:
        return ""
    close = difflib.get_close_matches(p.name, names, n=3, cutoff=0.75)
    return f" (did you mean {', '.join(str(parent / c) for c in close)}?)" if close else ""


def _load_minari_id(dataset_id: str, download: bool, pack_frames: bool = True) -> TrajectoryDataset:
    try:
        import minari
        from minari.storage import get_dataset_path
    except ImportError:
        raise DatasetError(f"{dataset_id}: reading Minari datasets needs `pip install minari`")
    path = Path(get_dataset_path(dataset_id))
    if (path / "data").is_dir():
        return _load_minari_dir(path, pack_frames)
    if not download:
        how = ("build it with `dt suite build` (the suite's datasets are made here, not downloaded)"
               if dataset_id.startswith("dt/") else
               "set MINARI_DATASETS_PATH to where it is, or fetch it with `minari download "
               f"{dataset_id}` on a machine that reaches the network and copy it here")
        raise MissingDataset(f"{dataset_id}: not a file, and no Minari dataset of that id under {path.parent}: {how}")
    try:
        minari.download_dataset(dataset_id)
    except Exception as e:
        raise DatasetError(f"{dataset_id}: download failed ({why(e)})")
    return _load_minari_dir(path, pack_frames)


def _load_minari_dir(path: Path, pack_frames: bool = True) -> TrajectoryDataset:
    from minari import MinariDataset
    data = path / "data" if (path / "data").is_dir() else path
    if not (data / "metadata.json").is_file():
        raise DatasetError(f"{path}: not a Minari dataset directory (no data/metadata.json): pass one, or restore its "
                           "metadata.json, or collect the dataset again")
    _check_minari_files(data)
    try:
        md = MinariDataset(str(data))
    except Exception as e:             # its files open (checked above): Minari rejects the metadata's values
        raise DatasetError(f"{data / 'metadata.json'}: Minari rejects this metadata ({why(e)}); restore the file, "
                           "or collect the dataset again")
    try:
        # one pass, observations written into one preallocated array (frames: no second copy of
        # the dataset, which for 500k Atari frames would be 3.5 GB more), small fields per episode.
        # Atari (frames stored once, `frame_stack` > 1) is packed as it is read (data/frames.py:
        # Breakout's 3.5 GB hold in ~0.2 GB), unless pack_frames=False.
        total = int(md.total_steps)
        fs = md.storage.metadata.get("frame_stack")
        packer = Packer() if pack_frames and fs is not None and int(fs) > 1 else None
        obs_all, fields, ranges = None, [], []
        at = 0
        for i, ep in enumerate(md.iterate_episodes()):
            obs, act = ep.observations, ep.actions
            if isinstance(obs, dict) or isinstance(act, dict):
                raise DatasetError(f"{path}: episode {i}: dict observations/actions are not supported; flatten them")
            obs = np.asarray(obs)
            T = len(ep.rewards)
            if len(obs) != T + 1:
                raise DatasetError(f"{path}: episode {i}, field observations: {len(obs)} observations for {T} "
                                   "steps (Minari stores T+1)")
            if obs_all is None:
                packer = packer if obs.dtype == np.uint8 else None
                shape = (0 if packer else total, *obs.shape[1:])
                obs_all = np.empty(shape, np.uint8 if obs.dtype == np.uint8 else np.float32)
            if at + T > total or obs.shape[1:] != obs_all.shape[1:]:
                raise DatasetError(f"{path}: episode {i}: observations disagree with the dataset's metadata "
                                   f"({total} steps of shape {obs_all.shape[1:]}); it may be corrupt")
            if packer:
                ranges.append(packer.add(obs[:T]))
            else:
                obs_all[at:at + T] = obs[:T]
                ranges.append((at, at + T))
            fields.append((np.asarray(act), np.asarray(ep.rewards), np.asarray(ep.terminations),
                           np.asarray(ep.truncations)))
            at += T
        if packer:
            obs_all = packer.finish()
        episodes = [Episode(obs_all[a:b], *f) for (a, b), f in zip(ranges, fields)]
        spec = md.spec
        meta = {"source": str(path), "format": "minari", "dataset_id": spec.dataset_id,
                "env_id": spec.env_spec.id if spec.env_spec is not None else None,
                "ref_min_score": md.storage.metadata.get("ref_min_score"),
                "ref_max_score": md.storage.metadata.get("ref_max_score"),
                "frame_stack": md.storage.metadata.get("frame_stack")}
        obs_all = obs_all[:at] if obs_all is not None else None
        return TrajectoryDataset.from_episodes(episodes, str(data / MINARI_DATA), md.observation_space,
                                               md.action_space, meta, observations=obs_all)   # where the steps are
    except DTError:
        raise
    except Exception as e:
        raise DatasetError(f"{data / MINARI_DATA}: cannot read the episodes ({why(e)}); the file is corrupt or "
                           "truncated: restore it, or collect the dataset again")


MINARI_DATA = "main_data.hdf5"
# the metadata fields Minari reads, with the type it writes them as (fileio.json_mismatch)
MINARI_METADATA = {"total_episodes": 0, "total_steps": 0, "dataset_id": "", "data_format": "", "minari_version": "",
                   "observation_space": "", "action_space": ""}


def _check_minari_files(data: Path) -> None:
    """A Minari dataset's two files, each named when it is damaged, before Minari reads them."""
    from decision_transformer.fileio import json_mismatch
    meta, fix = data / "metadata.json", "restore it, or collect the dataset again"
    try:
        m = json.loads(meta.read_text())
    except (OSError, ValueError) as e:
        raise DatasetError(f"{meta}: cut short or not JSON ({why(e)}); {fix}")
    bad = json_mismatch(MINARI_METADATA, m)
    if bad or (missing := [k for k in ("total_episodes", "total_steps") if k not in m]):
        raise DatasetError(f"{meta}: not Minari's metadata ({bad or 'no ' + ', '.join(missing)}); {fix}")
    if (neg := [k for k in ("total_episodes", "total_steps") if m[k] < 0]):
        raise DatasetError(f"{meta}: {neg[0]} is {m[neg[0]]}, not a count; {fix}")
    if m.get("data_format", "hdf5") != "hdf5":
        return
    main = data / MINARI_DATA
    if not main.is_file():
        raise DatasetError(f"{main}: missing; {fix}")
    import h5py
    try:
        with h5py.File(main, "r"):
            pass
    except OSError as e:
        raise DatasetError(f"{main}: not readable HDF5 ({why(e)}); the file is corrupt or truncated: {fix}")


def episode_bounds(term: np.ndarray, trunc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Episode boundaries of a flat transition stream split at term | trunc, and the truncation
    flags with a trailing partial episode marked as truncated (cut, not terminal)."""
    n = len(term)
    ends = np.flatnonzero(term | trunc) + 1
    bounds = np.concatenate([[0], ends, [n] if (len(ends) == 0 or ends[-1] != n) else []]).astype(np.int64)
    trunc = trunc.copy()
    if n and not (term[-1] or trunc[-1]):
        trunc[-1] = True
    return bounds, trunc


def _split(where: str, obs, act, rew, term, trunc) -> list[Episode]:
    n = len(rew)
    for name, v in (("observations", obs), ("actions", act), ("terminals", term), ("timeouts", trunc)):
        if len(v) != n:
            raise DatasetError(f"{where}: field {name}: length {len(v)} but {n} rewards")
    bounds, trunc = episode_bounds(term, trunc)
    return [Episode(obs[a:b], act[a:b], rew[a:b], term[a:b], trunc[a:b]) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def _load_d4rl(path: Path) -> TrajectoryDataset:
    try:
        import h5py
    except ImportError:
        raise DatasetError(f"{path}: reading HDF5 needs `pip install h5py`")
    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in ("observations", "actions", "rewards", "terminals") if k not in f]
            if missing:
                raise DatasetError(f"{path}: missing field(s) {', '.join(missing)} (D4RL layout: observations, "
                                   "actions, rewards, terminals, timeouts)")
            obs, act = f["observations"][()], f["actions"][()]
            rew = np.asarray(f["rewards"][()]).reshape(-1)
            term = np.asarray(f["terminals"][()]).reshape(-1).astype(bool)
            trunc = np.asarray(f["timeouts"][()]).reshape(-1).astype(bool) if "timeouts" in f else np.zeros(len(rew), bool)
            meta = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
    except DTError:
        raise
    except Exception as e:
        raise DatasetError(f"{path}: cannot read HDF5 ({why(e)}); "
                           "the file is corrupt or truncated: restore it, or make it again")
    eps = _split(str(path), obs, act, rew, term, trunc)
    return TrajectoryDataset.from_episodes(eps, str(path), metadata={"source": str(path), "format": "d4rl", **meta})


def _load_hf_rows(path: Path) -> TrajectoryDataset:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise DatasetError(f"{path}: reading parquet/arrow needs `pip install pyarrow`")
    try:
        if path.suffix.lower() == ".parquet":
            table = pq.read_table(path)
        else:
            with pa.memory_map(str(path)) as src:
                try:
                    table = pa.ipc.open_stream(src).read_all()
                except pa.ArrowInvalid:
                    table = pa.ipc.open_file(src).read_all()
    except Exception as e:
        raise DatasetError(f"{path}: cannot read ({why(e)}); "
                           "the file is corrupt or truncated: restore it, or make it again")
    missing = [k for k in ("observations", "actions", "rewards", "dones") if k not in table.column_names]
    if missing:
        raise DatasetError(f"{path}: missing column(s) {', '.join(missing)} (rows of observations, actions, rewards, dones)")
    for k in ("observations", "actions", "rewards", "dones"):    # text that np.asarray would read as numbers
        t = table.schema.field(k).type
        while pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
            t = t.value_type
        if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_null(t)):
            raise DatasetError(f"{path}: column {k} holds {t}, not numbers; store it as numbers")
    cols = {k: table.column(k).to_pylist() for k in ("observations", "actions", "rewards", "dones")}
    eps = []
    for i in range(table.num_rows):
        try:
            obs = np.asarray(cols["observations"][i], dtype=np.float32)
            act = np.asarray(cols["actions"][i])
            rew = np.asarray(cols["rewards"][i], dtype=np.float32).reshape(-1)
            done = np.asarray(cols["dones"][i], dtype=bool).reshape(-1)
        except (ValueError, TypeError) as e:
            raise DatasetError(f"{path}: episode {i}: ragged or non-numeric values ({e})")
        # a row is one episode: `dones` marks the end; an episode whose last step is not done was cut
        trunc = np.zeros_like(done)
        if len(done) and not done[-1]:
            trunc[-1] = True
        eps.append(Episode(obs, act, rew, done, trunc))
    return TrajectoryDataset.from_episodes(eps, str(path), metadata={"source": str(path), "format": "hf-rows"})


def _load_npz(path: Path) -> TrajectoryDataset:
    try:
        d = np.load(path, allow_pickle=False)
        fields = {k: d[k] for k in d.files}
    except Exception as e:
        raise DatasetError(f"{path}: cannot read ({why(e)}); "
                           "the file is corrupt or truncated: restore it, or make it again")
    missing = [k for k in ("observations", "actions", "rewards", "terminations", "truncations") if k not in fields]
    if missing:
        raise DatasetError(f"{path}: missing field(s) {', '.join(missing)}")
    eps = _split(str(path), fields["observations"], fields["actions"], fields["rewards"].reshape(-1),
                 fields["terminations"].astype(bool), fields["truncations"].astype(bool))
    return TrajectoryDataset.from_episodes(eps, str(path), metadata={"source": str(path), "format": "npz"})
