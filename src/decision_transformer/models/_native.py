"""Small C kernels (csrc/*.c), compiled on first use with the system C compiler and loaded with
ctypes. No torch headers, so a build takes about a second. The shared object is cached under
$XDG_CACHE_HOME/decision_transformer (or ~/.cache/...), keyed by the source, the flags and the
CPU's feature flags (it is built with -march=native), and written atomically.

If there is no compiler, or DT_NATIVE=0 is set, `load()` returns None and callers use their
pure-PyTorch path (same math).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
from pathlib import Path

from decision_transformer.fileio import atomic_path

_SRC = Path(__file__).resolve().parent / "csrc" / "dropout.c"
_FLAGS = ["-O3", "-march=native", "-shared", "-fPIC", "-std=c99"]
_lib = None
_tried = False


def _cpu_key() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line
    except OSError:
        pass
    return platform.machine() + platform.processor()


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "decision_transformer"


def _build(flags: list[str]) -> Path | None:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        return None
    src = _SRC.read_bytes()
    key = hashlib.sha256(src + " ".join(flags).encode() + _cpu_key().encode() + cc.encode()).hexdigest()[:16]
    out = _cache_dir() / f"dt_kernels-{key}.so"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(out) as tmp:
            subprocess.run([cc, *flags, "-o", str(tmp), str(_SRC)], check=True, capture_output=True, timeout=120)
    except (subprocess.SubprocessError, OSError):
        return None
    return out


def load():
    """The kernel library (ctypes.CDLL) or None."""
    global _lib, _tried
    if _tried:
        return _lib
    _tried = True
    if os.environ.get("DT_NATIVE", "1") == "0":
        return None
    # OpenMP (torch's own libgomp, already loaded, runs the threads) where the compiler has it;
    # DT_NATIVE_OPENMP=0 builds the single-threaded kernel
    path = _build(_FLAGS + ["-fopenmp"]) if os.environ.get("DT_NATIVE_OPENMP", "1") != "0" else None
    if path is None:
        path = _build(_FLAGS)
    if path is None:
        return None
    try:
        lib = ctypes.CDLL(str(path))
    except OSError:
        return None
    u32, vp, sz = ctypes.c_uint32, ctypes.c_void_p, ctypes.c_size_t
    lib.dt_dropout_f32.argtypes = [vp, vp, sz, u32, u32, u32, ctypes.c_float]
    lib.dt_dropout_f32.restype = None
    lib.dt_keep_mask_u8.argtypes = [vp, sz, u32, u32, u32]
    lib.dt_keep_mask_u8.restype = None
    _lib = lib
    return lib
