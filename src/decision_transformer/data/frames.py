"""Frames held compressed in memory, read like a uint8 array.

A 500k-step Atari dataset is 3.5 GB of (1, 84, 84) frames; zlib at level 1 packs Breakout's
about 18x, and one frame decodes in ~20 us. `PackedFrames` keeps every frame as its own zlib
blob in one buffer and decodes only what is indexed, each distinct frame once per call, so the
sampler's per-batch gather (B x K x 4 stacked frames, ~K + 3 distinct per window) costs tens of
milliseconds and the dataset never sits in memory raw (docs/pixels.md, bench/pixel_memory.py).

It reads like a read-only (N, *frame_shape) uint8 array for what the project does with frames:
`x[i]` and `x[int_array]` decode to new arrays, `x[a:b]` is a packed view (no copy, no decode),
`len`, `shape`, `ndim`, `dtype`, iteration, and `np.asarray(x)` decodes everything.
"""

from __future__ import annotations

import zlib

import numpy as np

LEVEL = 1      # zlib level: 6 packs Breakout 22x instead of 18x at 3x the packing time; decoding costs the same


class PackedFrames:
    dtype = np.dtype(np.uint8)

    def __init__(self, blob: np.ndarray, offsets: np.ndarray, frame_shape: tuple[int, ...]):
        """blob: every frame's zlib bytes back to back; offsets: (N + 1,) frame i is
        blob[offsets[i]:offsets[i + 1]]."""
        self._blob, self._off, self.frame_shape = blob, offsets, tuple(int(s) for s in frame_shape)
        self._frame_bytes = int(np.prod(self.frame_shape))

    @classmethod
    def pack(cls, frames) -> "PackedFrames":
        """From a uint8 array (or any iterable of same-shape uint8 frames)."""
        b = Packer()
        b.add(np.asarray(frames, np.uint8))
        return b.finish()

    # -- the array surface ----------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self.frame_shape)

    @property
    def ndim(self) -> int:
        return 1 + len(self.frame_shape)

    @property
    def nbytes(self) -> int:
        """The decoded size, as for an ndarray (`packed_nbytes`: what is held)."""
        return len(self) * self._frame_bytes

    @property
    def packed_nbytes(self) -> int:
        return int(self._off[-1] - self._off[0]) + self._off.nbytes

    def __len__(self) -> int:
        return len(self._off) - 1

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __array__(self, dtype=None, copy=None):
        out = self._decode(np.arange(len(self)))
        return out if dtype is None else out.astype(dtype, copy=False)

    def astype(self, dtype, copy: bool = True):
        if np.dtype(dtype) == self.dtype and not copy:
            return self
        return np.asarray(self).astype(dtype)

    def __getitem__(self, key):
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step == 1:
                return PackedFrames(self._blob, self._off[start:max(start, stop) + 1], self.frame_shape)
            key = np.arange(start, stop, step)
        if isinstance(key, (int, np.integer)):
            i = int(key) + len(self) if key < 0 else int(key)
            if not 0 <= i < len(self):
                raise IndexError(f"frame {key} out of range ({len(self)} frames)")
            return self._decode(np.array([i]))[0]
        idx = np.asarray(key)
        if idx.dtype == bool or not np.issubdtype(idx.dtype, np.integer):
            raise TypeError(f"PackedFrames takes an int, a slice or an integer array, not {type(key).__name__}")
        flat = np.where(idx < 0, idx + len(self), idx).ravel()
        if flat.size and (flat.min() < 0 or flat.max() >= len(self)):
            raise IndexError(f"frame index out of range ({len(self)} frames)")
        uniq, inv = np.unique(flat, return_inverse=True)
        return self._decode(uniq)[inv].reshape(*idx.shape, *self.frame_shape)

    def _decode(self, idx: np.ndarray) -> np.ndarray:
        out = np.empty((len(idx), *self.frame_shape), np.uint8)
        flat = out.reshape(len(idx), self._frame_bytes)
        mv, off = memoryview(self._blob), self._off
        for j, i in enumerate(idx.tolist()):
            flat[j] = np.frombuffer(zlib.decompress(mv[off[i]:off[i + 1]], bufsize=self._frame_bytes), np.uint8)
        return out

    def __repr__(self) -> str:
        return (f"PackedFrames({len(self)} frames of {self.frame_shape} uint8, "
                f"{self.packed_nbytes / 1e6:.1f} MB packed of {self.nbytes / 1e6:.1f} MB)")


class Packer:
    """Frames appended a batch at a time (e.g. one episode), packed as they come, so the raw
    dataset is never held whole."""

    def __init__(self):
        self._buf, self._ends, self.frame_shape = bytearray(), [0], None

    def add(self, frames: np.ndarray) -> tuple[int, int]:
        """Pack (T, *frame_shape) uint8 frames; returns their range [a, b) in what `finish`
        will return."""
        frames = np.ascontiguousarray(frames, np.uint8)
        if self.frame_shape is None:
            self.frame_shape = frames.shape[1:]
        elif frames.shape[1:] != self.frame_shape:
            raise ValueError(f"frames of shape {frames.shape[1:]} added to frames of shape {self.frame_shape}")
        first = len(self._ends) - 1
        for f in frames:
            self._buf += zlib.compress(f.tobytes(), LEVEL)
            self._ends.append(len(self._buf))
        return first, len(self._ends) - 1

    def finish(self) -> PackedFrames:
        blob = np.frombuffer(self._buf, np.uint8) if self._buf else np.zeros(0, np.uint8)
        return PackedFrames(blob, np.asarray(self._ends, np.int64), self.frame_shape or (0,))
