"""Options declared once: a dataclass field with its help, its valid range or choices and its
default. From that one declaration come the command-line flags (help text with the default),
the parsing of what was given, and the validation every source of options goes through
(command line, preset files, config.json of a run, the Python API).

A small generator of our own rather than tyro or draccus: it keeps argparse (the rest of the
CLI's subcommands, its look and its one-line errors stay as they are), adds no dependency, and
the same `check` runs on configs that never see a command line (presets, resumed runs).

    @dataclass
    class Cfg:
        lr: float = option(1e-4, "peak learning rate (AdamW)", range="(0, inf)")
"""

from __future__ import annotations

import math
from dataclasses import MISSING, field, fields

from decision_transformer.errors import DTError


def option(default=MISSING, help: str = "", *, range: str | None = None, choices=None, flag: str | None = None,
           factory=None, default_text: str | None = None, cli: bool = True):
    """A dataclass field with its declaration. `range` is an interval like "(0, inf)" or "[0, 1)";
    `flag` overrides the flag name (default --field-name); `default_text` describes a None default."""
    md = {"help": help, "range": _interval(range) if range else None,
          "choices": choices if callable(choices) else tuple(choices) if choices else None,
          "flag": flag, "default_text": default_text, "cli": cli}
    if factory is not None:
        return field(default_factory=factory, metadata=md)
    return field(default=default, metadata=md)


def _interval(spec: str):
    spec = spec.strip()
    lo, hi = (float(x) for x in spec[1:-1].split(","))
    return spec, lo, spec[0] == "[", hi, spec[-1] == "]"


def _kind(f) -> tuple[type, bool]:
    """(element type, is a list) from the field's annotation (a string under future annotations)."""
    t = str(f.type)
    base = float if "float" in t else int if "int" in t else bool if t == "bool" else str
    return base, t.startswith("list")


def _readable(r) -> str:
    spec, lo, lo_in, hi, hi_in = r
    if math.isinf(hi):
        return f"{'>=' if lo_in else '>'} {lo:g}"
    return f"in {spec}"


def choices_of(md) -> tuple | None:
    """A field's choices; a callable is asked each time (e.g. the models registered so far)."""
    c = md.get("choices")
    return tuple(c()) if callable(c) else c


def flag_name(f) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def field_default(f):
    return f.default_factory() if f.default is MISSING and f.default_factory is not MISSING else f.default


def add_arguments(parser, cls) -> None:
    """One flag per declared field, help text with the default; the parsed value is None when
    the flag is not given, so presets and saved configs can fill it."""
    for f in fields(cls):
        md = f.metadata
        if not md.get("cli", False):
            continue
        base, is_list = _kind(f)
        d = field_default(f)
        shown = md.get("default_text") or (" ".join(f"{x:g}" for x in d) if is_list else
                                           f"{d:g}" if isinstance(d, float) else d)
        hlp = f"{md['help']}" + (f", {_readable(md['range'])}" if md.get("range") else "") + f" (default: {shown})"
        kw = dict(dest=f.name, default=None, help=hlp)
        if base is bool:
            parser.add_argument(flag_name(f), action="store_true", **kw)
            continue
        parser.add_argument(flag_name(f), type=base, choices=choices_of(md), nargs="+" if is_list else None,
                            metavar=None if md.get("choices") else {int: "N", float: "X"}.get(base, "STR"), **kw)


def given(args, cls) -> dict:
    """The declared options that were given on the command line."""
    return {f.name: getattr(args, f.name) for f in fields(cls)
            if f.metadata.get("cli") and getattr(args, f.name, None) is not None}


def check(obj) -> None:
    """Validate every declared field of `obj`: type, finiteness, range, choices. One-line DTError."""
    for f in fields(obj):
        md = f.metadata
        if "help" not in md:
            continue
        v = getattr(obj, f.name)
        base, is_list = _kind(f)
        name = flag_name(f) if md.get("cli") else f.name
        if v is None:
            if "None" in str(f.type):
                continue
            raise DTError(f"{name} is required")
        for x in (v if is_list else [v]):
            if base in (int, float):
                if isinstance(x, bool) or not isinstance(x, (int, float)) or (base is int and float(x) != int(x)):
                    raise DTError(f"{name} must be {'an integer' if base is int else 'a number'}, got {x!r}")
                if not math.isfinite(x):
                    raise DTError(f"{name} must be a finite number, got {x!r}")
                r = md.get("range")
                if r and not ((x >= r[1] if r[2] else x > r[1]) and (x <= r[3] if r[4] else x < r[3])):
                    raise DTError(f"{name} must be {_readable(r)}, got {x:g}")
            elif base is str and not isinstance(x, str):
                raise DTError(f"{name} must be a string, got {x!r}")
            if md.get("choices") and x not in choices_of(md):
                raise DTError(f"{name} must be one of {', '.join(map(str, choices_of(md)))}, got {x!r}")
        if is_list and not isinstance(v, list):
            raise DTError(f"{name} must be a list, got {v!r}")
