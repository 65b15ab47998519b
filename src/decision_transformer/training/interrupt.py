"""Stopping a training loop cleanly: SIGTERM (a scheduler's preemption, `kill`, the end of a
session) or Ctrl-C asks the loop to finish the step it is in, save a checkpoint there and stop, so
no work since the last periodic checkpoint is lost; `--resume` then continues exactly as an
uninterrupted run would have (the checkpoint holds every RNG state).

A second Ctrl-C while the checkpoint is being written interrupts at once (KeyboardInterrupt): the
run is then intact up to its previous checkpoint, as checkpoints are written atomically.

The handlers are installed only in a process's main thread (Python's rule), and not in one rank of
a multi-process (torchrun) run, where the ranks could stop at different steps and wait for each
other forever: there, the signals keep their default behaviour.
"""

from __future__ import annotations

import signal
import threading

from decision_transformer.errors import Interrupted

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequests:
    """A context manager around a training loop: `.signum` is the first stop signal received (None
    while none has come); the loop checks it between steps and calls `stop()`."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.signum: int | None = None
        self._old: dict = {}

    def __enter__(self) -> "StopRequests":
        self.signum = None
        if self.enabled and threading.current_thread() is threading.main_thread():
            for s in SIGNALS:
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, old in self._old.items():
            signal.signal(s, old)
        self._old = {}

    def _handle(self, signum, frame) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt                 # a second Ctrl-C: now
        self.signum = self.signum or signum

    def stop(self, where: str, resume: str) -> None:
        """Raise Interrupted for the signal received: `where` says what was saved, `resume` how to go on."""
        name = signal.Signals(self.signum).name
        raise Interrupted(f"stopped by {name} {where}; {resume} continues it exactly", self.signum)
