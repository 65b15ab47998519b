"""Where tensors live: `--device auto|cpu|cuda[:N]|mps` and `--precision fp32|bf16|fp16`, resolved
once, with one clear line when the machine cannot do what was asked."""

from __future__ import annotations

import contextlib
import re

import torch

from decision_transformer.errors import DTError, OptionError

DEVICES = "auto, cpu, cuda, cuda:N or mps"
PRECISIONS = ("fp32", "bf16", "fp16")


def resolve_device(spec: str | None = "auto") -> torch.device:
    """auto: cuda if available, else cpu. Anything unavailable is a DTError naming what is missing."""
    s = (spec or "auto").strip().lower()
    if s == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if s == "cpu":
        return torch.device("cpu")
    m = re.fullmatch(r"cuda(?::(\d+))?", s)
    if m:
        if not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
            raise OptionError(f"{{device}} {spec}: CUDA is not available on this machine (torch {torch.__version__}, "
                              f"{build}): use {{device}} cpu, or auto")
        i = int(m.group(1) or 0)
        if i >= torch.cuda.device_count():
            raise OptionError(f"{{device}} {spec}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                              f"numbered from 0")
        return torch.device("cuda", i)
    if s == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise OptionError(f"{{device}} {spec}: MPS (Apple GPU) is not available on this machine: use {{device}} cpu")
        return torch.device("mps")
    raise OptionError(f"{{device}} {spec!r}: use {DEVICES}")


def autocast(device: torch.device, precision: str):
    """The forward's autocast context: bf16/fp16 on CUDA (weights stay fp32), nothing for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    if device.type != "cuda":
        raise OptionError(f"{{precision}} {precision} is for CUDA devices; on {device.type} use {{precision}} fp32")
    return torch.autocast("cuda", dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
