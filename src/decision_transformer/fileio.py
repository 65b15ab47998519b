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
