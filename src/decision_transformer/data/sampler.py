"""Training windows of K steps, drawn the way the official code does, fully vectorised.

Per sample: an episode with probability proportional to its length, a start step uniform in
[0, T); the window is steps [start, min(start + K, T)), left-padded to K (the official gym code's get_batch).
Returns-to-go use gamma = 1 (the sum of rewards from the step to the episode's end) divided by
`scale`; timesteps are the steps' indices in their episode, clipped to max_ep_len - 1; states
are normalised with the dataset's mean/std (computed once). Padding: states, actions, rtg,
timesteps 0 and attention_mask 0 (the official code pads actions with -10; only the mask
matters, and 0 matches evaluation).

Frames (uint8) stay uint8 and are gathered per batch: the dataset is never copied as floats.
Datasets that store each frame once (`frame_stack` > 1, Atari) get their stacks rebuilt here:
the observation at step t is frames t-3..t of its episode, the first frame repeated before the
episode's start, which is what gymnasium's FrameStackObservation gives the Agent.
"""

from __future__ import annotations

import numpy as np
import torch

from decision_transformer.data.datasets import TrajectoryDataset


def returns_to_go(ds: TrajectoryDataset) -> np.ndarray:
    """(N,) float64: sum of rewards from each step to the end of its episode."""
    r = ds.rewards.astype(np.float64)
    csum = np.concatenate([[0.0], np.cumsum(r)])          # csum[i] = sum r[:i]
    ends = np.repeat(ds.offsets[1:], ds.lengths)          # each step's episode end
    return csum[ends] - csum[:-1]


class WindowSampler:
    def __init__(self, ds: TrajectoryDataset, K: int = 20, batch_size: int = 64, scale: float = 1000.0,
                 max_ep_len: int = 1000, seed: int = 0, state_mean=None, state_std=None, normalize: bool = True,
                 rank: int = 0, anchor: str = "start"):
        """rank: a multi-process run's rank; each draws from its own stream (rank 0's is the
        one-process stream).

        anchor: how a window is placed around the step drawn uniformly from the dataset.
        "start" (the Decision Transformer; the official get_batch): the window starts there and
        runs K steps or to the episode's end, left-padded. Every step is a target at some
        position. "end" (BC, which predicts the last step only): the window ends there, reaching
        K-1 steps back or to the episode's start, left-padded, so every step is equally likely
        to be the last. (The official code samples BC windows the "start" way, so the first
        K-1 steps of every episode are never a BC target; docs/results.md.)"""
        if anchor not in ("start", "end"):
            raise ValueError(f"anchor must be 'start' or 'end', got {anchor!r}")
        self.anchor = anchor
        self.ds, self.K, self.B, self.scale, self.max_ep_len = ds, int(K), int(batch_size), float(scale), int(max_ep_len)
        self.rng = np.random.default_rng(seed if rank == 0 else [seed, rank])
        obs = ds.observations
        if normalize and obs.dtype != np.uint8:
            m, s = ds.state_stats() if state_mean is None else (np.asarray(state_mean), np.asarray(state_std))
            self.state_mean, self.state_std = m.astype(np.float32), s.astype(np.float32)
            obs = ((obs - self.state_mean) / self.state_std).astype(np.float32)
        else:
            self.state_mean = self.state_std = None
        # every field once, normalised, with one zero row appended: padded slots index row N.
        # Frames are not copied (a 500k-step Atari dataset is 3.5 GB): gathered rows are zeroed.
        zero = lambda x: np.concatenate([x, np.zeros((1, *x.shape[1:]), x.dtype)])
        self._frames = obs.dtype == np.uint8
        self._obs, self._act = (obs if self._frames else zero(obs)), zero(ds.actions)
        self.rtg = (returns_to_go(ds) / self.scale).astype(np.float32)
        self._rtg = zero(self.rtg)[:, None]
        self.fs = ds.frame_stack
        if self.fs > 1:                                   # each step's episode start; row N -> N
            self._ep_start = np.append(np.repeat(ds.offsets[:-1], ds.lengths), ds.num_steps)
        self.p = ds.lengths / ds.num_steps
        self._cdf = np.cumsum(self.p)
        self._cdf[-1] = 1.0

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state, "anchor": self.anchor}

    def load_state_dict(self, d: dict) -> None:
        """Continue a saved stream exactly, with the windows it was drawn with (states saved
        before the anchor existed were "start"-anchored)."""
        self.anchor = d.get("anchor", "start")
        self.rng.bit_generator.state = d["rng"]

    def sample_indices(self):
        """(B, K) global step indices, (B, K) bool mask and (B, K) step-in-episode; padded slots
        point at row N (the zero row)."""
        ds, K, B = self.ds, self.K, self.B
        ep = np.searchsorted(self._cdf, self.rng.random(B), side="right")   # P(ep) = T_ep / N
        T = ds.lengths[ep]
        drawn = (self.rng.random(B) * T).astype(np.int64)                   # uniform in [0, T)
        if self.anchor == "start":
            start = drawn
            pad = (K - np.minimum(K, T - start))[:, None]                    # left padding
        else:                                                               # the window ends at `drawn`
            start = np.maximum(drawn - (K - 1), 0)
            pad = (K - 1 - (drawn - start))[:, None]
        j = np.arange(K)[None, :]
        mask = j >= pad
        local = start[:, None] + j - pad                                     # step within the episode
        idx = np.where(mask, ds.offsets[ep][:, None] + local, ds.num_steps)
        return idx, mask, np.where(mask, local, 0)

    def states(self, idx: np.ndarray) -> np.ndarray:
        """(B, K, *state_shape) for (B, K) step indices (row N = padding, zeros)."""
        if not self._frames:
            return self._obs[idx]
        N = self.ds.num_steps
        pad = idx == N
        if self.fs == 1:
            out = self._obs[np.minimum(idx, N - 1)]
        else:
            lag = np.arange(self.fs - 1, -1, -1)                                  # oldest frame first
            src = np.maximum(idx[..., None] - lag, self._ep_start[idx][..., None])  # (B, K, fs)
            frames = self._obs[np.minimum(src, N - 1)]                            # (B, K, fs, C, H, W)
            out = frames.reshape(*idx.shape, -1, *frames.shape[4:])
        out[pad] = 0
        return out

    def sample(self) -> dict[str, torch.Tensor]:
        idx, mask, local = self.sample_indices()
        return {
            "states": torch.from_numpy(self.states(idx)),
            "actions": torch.from_numpy(self._act[idx]),
            "returns_to_go": torch.from_numpy(self._rtg[idx]),
            "timesteps": torch.from_numpy(np.minimum(local, self.max_ep_len - 1)),
            "attention_mask": torch.from_numpy(mask.astype(np.float32)),
        }
