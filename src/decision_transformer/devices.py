"""Where tensors live: `--device auto|cpu|cuda[:N]|mps` and `--precision fp32|bf16|fp16`, resolved
once, with one clear line when the machine cannot do what was asked."""

from __future__ import annotations

import contextlib
import re

import torch

from decision_transformer.errors import OptionError

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


def describe_machine(device: torch.device, threads: int | None = None) -> dict:
    """What a measured speed depends on, for a run's sessions.jsonl: the CPU's model and vector
    instruction set (AVX-512 or AVX2 kernels), torch's thread count, the accelerator if one is used,
    and torch's version."""
    import platform
    cpu, flags = platform.processor() or platform.machine(), ""
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
        cpu = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")), cpu)
        flags = next((ln for ln in info.splitlines() if ln.startswith("flags")), "")
    except OSError:
        pass
    isa = "AVX-512" if " avx512f" in flags else "AVX2" if " avx2" in flags else None
    out = {"cpu": cpu, "isa": isa, "threads": threads or torch.get_num_threads(), "torch": torch.__version__,
           "device": device.type}
    if device.type == "cuda":
        out["accelerator"] = torch.cuda.get_device_name(device)
    return out


def machine_label(m: dict) -> str:
    """"AMD EPYC (AVX2), one thread" / "NVIDIA H100 80GB HBM3": a describe_machine record in words."""
    if m.get("accelerator"):
        return str(m["accelerator"])
    n = m.get("threads")
    threads = "one thread" if n == 1 else f"{n} threads" if n else ""
    return ", ".join(x for x in (f"{m.get('cpu', '?')}" + (f" ({m['isa']})" if m.get("isa") else ""), threads) if x)
