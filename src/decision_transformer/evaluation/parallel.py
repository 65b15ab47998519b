"""Evaluation on every core: groups of envs, each with its own Agent, stepped in their own threads.

In a batched rollout the two halves of each step take turns: the envs step (Python and MuJoCo,
one core) while the model waits, then the model runs while the envs wait. With G groups in G
threads, one group's forward runs while another group steps its envs. Threads suffice: ONNX
Runtime releases the GIL for a whole forward, PyTorch inside each kernel, and MuJoCo inside
its physics step. Each group's forward runs on one intra-op thread, so the groups do not fight
over one thread pool (`one_thread_per_group`).

Every group's trajectory depends on its own envs and agent only, never on thread timing, so
results are deterministic for a given number of groups (tested).
"""

from __future__ import annotations

import sys
import threading
from contextlib import contextmanager

import numpy as np
import torch

SWITCH_INTERVAL = 2e-4   # seconds; Python's default 5 ms lets a thread that holds the GIL stall the others


def split(n: int, groups: int) -> list[int]:
    """n items into `groups` near-equal parts, larger first: split(50, 2) = [25, 25]."""
    return [len(p) for p in np.array_split(np.arange(n), groups)]


@contextmanager
def one_thread_per_group(groups: int):
    """While G > 1 groups run: torch on one intra-op thread (agents built inside also give ONNX
    Runtime one thread), and a short GIL switch interval. Both are restored on exit."""
    if groups <= 1:
        yield
        return
    threads, switch = torch.get_num_threads(), sys.getswitchinterval()
    torch.set_num_threads(1)
    sys.setswitchinterval(SWITCH_INTERVAL)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        sys.setswitchinterval(switch)


def run_in_threads(fn, items) -> list:
    """[fn(item, stop) for item in items], each call in its own thread (one item runs inline).
    `stop` is a threading.Event set as soon as any call raises; long loops should check it.
    The first exception is re-raised here once every thread has ended."""
    stop = threading.Event()
    if len(items) == 1:
        return [fn(items[0], stop)]
    out, errors = [None] * len(items), []

    def run(i):
        try:
            out[i] = fn(items[i], stop)
        except BaseException as e:          # noqa: BLE001 - handed to the caller below
            errors.append(e)
            stop.set()

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(items))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return out
