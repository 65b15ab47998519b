"""Small shared file helpers: atomic writes (files and directories), advisory locks, and
one-line reasons for errors. Every file the toolkit writes goes through `atomic_path` or
`atomic_dir`: readers see the old version or the new one, never half of one, and a failure
leaves no temp file behind."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path):
    """Yield a hidden temp path beside `path` with the same suffix (so libraries that append one,
    like numpy's .npz or SB3's .zip, keep the name); when the block succeeds, rename it onto
    `path`; when it fails, remove it."""
    import threading
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}-{threading.get_ident()}{path.suffix}")   # unique per writer
    try:
        yield tmp
        if tmp.exists() and not tmp.is_symlink():
            make_plain(tmp)                         # some libraries (safetensors) create theirs 0600
        os.replace(tmp, path)
    finally:
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()


def check_writable(path: Path) -> None:
    """Fail now, in one line, if `path` could not be created later (before long work, not after
    it); leaves nothing behind."""
    from decision_transformer.errors import DTError
    d = Path(path).parent
    while not d.exists():
        d = d.parent
    try:
        with tempfile.TemporaryFile(dir=d):
            pass
    except OSError as e:
        raise DTError(f"cannot write to {d}: {e.strerror or e}")


def write_text_atomic(path, text: str) -> Path:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)
    return Path(path)


def replace_block(path, name: str, lines: list[str]) -> bool:
    """Rewrite, atomically, the lines between `<!-- generated: NAME ... -->` and `<!-- end: NAME -->`
    in a Markdown file (a command's figures inside a hand-written page): False, and the file left
    as it is, where it has no such block."""
    path = Path(path)
    text = path.read_text()
    start = re.search(rf"^<!-- generated: {re.escape(name)}\b.*-->\n", text, re.M)
    end = start and re.search(rf"^<!-- end: {re.escape(name)} -->$", text[start.end():], re.M)
    if not end:
        return False
    new = text[:start.end()] + "".join(f"{x}\n" for x in lines) + text[start.end() + end.start():]
    if new != text:
        write_text_atomic(path, new)
    return True


def write_json_atomic(path, obj, indent: int | None = 1) -> Path:
    """Write JSON atomically: readers never see half a file."""
    return write_text_atomic(path, json.dumps(obj, indent=indent) + "\n")


def json_mismatch(template, value, where: str = "") -> str | None:
    """Where `value` (read from a JSON file) departs from the structure of `template` (what this
    version writes there), or None: a dict for a dict, a list for a list, an int where an int
    belongs, a number where a float does, text where text does; None in the template allows
    anything. Keys the template lacks are allowed (files written by later versions)."""
    if template is None:
        return None
    if isinstance(template, dict):
        if not isinstance(value, dict):
            return f"{where or 'the file'} is a {type(value).__name__}, not an object"
        for k in template:
            if k in value:
                bad = json_mismatch(template[k], value[k], f"{where}.{k}" if where else k)
                if bad:
                    return bad
        return None
    if isinstance(template, (list, tuple)):
        if not isinstance(value, list):
            return f"{where} is a {type(value).__name__}, not a list"
        if len(template) == len(value):
            return next((b for t, v, i in zip(template, value, range(len(value)))
                         if (b := json_mismatch(t, v, f"{where}[{i}]"))), None)
        return None
    want = (bool,) if isinstance(template, bool) else (int,) if isinstance(template, int) else \
        (int, float) if isinstance(template, float) else (str,) if isinstance(template, str) else None
    if want and (not isinstance(value, want) or (bool not in want and isinstance(value, bool))):
        return f"{where} is {value!r}, where a {type(template).__name__} belongs"
    return None


def umask() -> int:
    """The process's file-creation mask (os.umask can only be read by setting it)."""
    m = os.umask(0o022)
    os.umask(m)
    return m


def make_plain(path) -> None:
    """Give a file the permissions a plain open() would (0666 minus the umask), for libraries
    that create theirs private (safetensors writes 0600)."""
    os.chmod(path, 0o666 & ~umask())


def atomic_dir(path, write) -> Path:
    """Call write(tmp_dir), then move tmp_dir to `path`, replacing it only once complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    os.chmod(tmp, 0o777 & ~umask())                # mkdtemp makes 0700; a checkpoint is a normal dir
    try:
        write(tmp)
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def sha256_file(path) -> str:
    """The SHA-256 of a file's bytes, hex, read in 1 MiB blocks."""
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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
