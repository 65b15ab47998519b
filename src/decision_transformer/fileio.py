"""Small shared file helpers: atomic JSON writes and one-line reasons for errors."""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_json_atomic(path, obj, indent: int | None = 1) -> Path:
    """Write JSON to a temp name beside `path`, then rename: readers never see half a file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=indent) + "\n")
    os.replace(tmp, path)
    return path


def why(e: BaseException, limit: int = 200) -> str:
    """`TypeName: first line of the message` for one-line error reports."""
    msg = str(e).strip()
    return f"{type(e).__name__}: {msg.splitlines()[0][:limit]}" if msg else type(e).__name__


class Locked(Exception):
    """`try_lock` found the lock held by another process (`holder` says who, when known)."""

    def __init__(self, path, holder: str):
        super().__init__(f"{path} is locked by {holder}")
        self.path, self.holder = path, holder


def try_lock(path, what: str = "", wait: bool = False):
    """Take an exclusive advisory lock on `path` (created if missing), without waiting (or
    waiting for it, with `wait`).

    Returns an open file: the lock is held until it is closed or the process dies (the kernel
    releases flock locks of dead processes, so a killed run never leaves a stale lock). The
    file holds the holder's pid and `what`, which `Locked.holder` reports to the next comer."""
    import fcntl
    path = Path(path)
    f = open(path, "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "another process"
        f.close()
        raise Locked(path, holder)
    f.seek(0)
    f.truncate()
    f.write(f"pid {os.getpid()}{' (' + what + ')' if what else ''}\n")
    f.flush()
    return f
