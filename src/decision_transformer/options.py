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

import argparse
import json
import math
from pathlib import Path
from dataclasses import MISSING, field, fields

from decision_transformer.errors import DTError


def option(default=MISSING, help: str = "", *, range: str | None = None, choices=None, flag: str | None = None,
           factory=None, default_text: str | None = None, cli: bool = True, positional: bool = False,
           short: str | None = None, group: str | None = None, metavar: str | None = None, const=None):
    """A dataclass field with its declaration. `range` is an interval like "(0, inf)" or "[0, 1)";
    `flag` overrides the flag name (default --field-name); `default_text` describes a None default.
    No default (MISSING) makes the flag required; `positional` makes it an argument without a flag;
    `short` adds an alias such as "-o"; fields of one `group` are mutually exclusive on the command
    line (one of them required if the class lists the group in `required_groups`); `const` makes the
    flag's value optional (`--ray` alone gives const, `--ray ADDRESS` the address)."""
    md = {"help": help, "range": _interval(range) if range else None,
          "choices": choices if callable(choices) else tuple(choices) if choices else None,
          "flag": flag, "default_text": default_text, "cli": cli, "positional": positional, "short": short,
          "group": group, "metavar": metavar, "const": const}
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


def _help(f) -> str:
    md, d = f.metadata, field_default(f)
    base, is_list = _kind(f)
    hlp = f"{md['help']}" + (f", {_readable(md['range'])}" if md.get("range") else "")
    if md.get("positional") or base is bool:
        return hlp
    if d is MISSING:
        return hlp + " (required)"
    if d is None and not md.get("default_text"):
        return hlp
    shown = md.get("default_text") or (" ".join(f"{x:g}" if isinstance(x, float) else str(x) for x in d) if is_list
                                       else f"{d:g}" if isinstance(d, float) else d)
    return hlp + f" (default: {shown})"


def _help_order(cls) -> list:
    """The class's own fields first, then each base's in method-resolution order (mixins last)."""
    by_name = {f.name: f for f in fields(cls)}
    out: list = []
    for c in cls.__mro__:
        out += [by_name[n] for n in c.__dict__.get("__annotations__", {}) if n in by_name and by_name[n] not in out]
    return out


def add_arguments(parser, cls) -> None:
    """One flag (or positional argument) per declared field, help text with the default; the parsed
    value is None when the flag is not given, so presets and saved configs can fill it."""
    groups: dict[str, object] = {}
    for f in _help_order(cls):
        md = f.metadata
        if not md.get("cli", False):
            continue
        base, is_list = _kind(f)
        target = parser
        if md.get("group"):
            if md["group"] not in groups:
                groups[md["group"]] = parser.add_mutually_exclusive_group(
                    required=md["group"] in getattr(cls, "required_groups", ()))
            target = groups[md["group"]]
        if md.get("positional"):                       # a default makes it optional
            optional = field_default(f) is not MISSING
            nargs = ("*" if optional else "+") if is_list else "?" if optional else None
            target.add_argument(f.name, type=str if base in (int, float) else base, nargs=nargs,
                                help=_help(f), metavar=md.get("metavar") or f.name.upper())
            continue
        names = [n for n in (md.get("short"), flag_name(f)) if n]
        kw = dict(dest=f.name, default=None, help=_help(f))
        if base is bool:                               # default True: --flag / --no-flag
            target.add_argument(*names, action=argparse.BooleanOptionalAction if field_default(f) is True
                                else "store_true", **kw)
            continue
        if field_default(f) is MISSING and not md.get("group"):
            kw["required"] = True
        kw["nargs"] = "+" if is_list else None
        if md.get("const") is not None:
            kw.update(nargs="?", const=md["const"])
        target.add_argument(*names, type=str if base in (int, float) else base, choices=choices_of(md),
                            metavar=md.get("metavar") or (None if md.get("choices") else
                                                          {int: "N", float: "X"}.get(base, "STR")), **kw)


def from_args(cls, args, **extra):
    """The options object of a command from its parsed arguments: what was given, else the declared
    default; validated by `check` and by the class's own `validate()` (rules between fields)."""
    kw = {}
    for f in fields(cls):
        if not f.metadata.get("cli"):
            continue
        v = getattr(args, f.name, None)
        if v is None and f.metadata.get("positional") is False:
            d = field_default(f)
            v = None if d is MISSING else d
        kw[f.name] = _parsed(f, v)
    obj = cls(**kw, **extra)
    check(obj)
    if hasattr(obj, "validate"):
        obj.validate()
    return obj


def _number(f, text):
    """A number given on the command line (argparse hands over text, so that a bad one gets our
    one-line error rather than argparse's usage block). Integers may be written 1e6."""
    base, _ = _kind(f)
    if base not in (int, float) or not isinstance(text, str):
        return text
    try:
        v = float(text)
    except ValueError:
        raise DTError(f"{flag_name(f)} must be {'an integer' if base is int else 'a number'}, got {text!r}") from None
    if base is int and math.isfinite(v):
        if v != int(v):
            raise DTError(f"{flag_name(f)} must be an integer, got {text!r}")
        return int(v)
    return v


def _parsed(f, v):
    return [_number(f, x) for x in v] if isinstance(v, list) else _number(f, v)


def preset_names(directory) -> list[str]:
    """The presets a directory holds: its .json files' stems."""
    return sorted(p.stem for p in Path(directory).glob("*.json"))


def read_preset(preset: str, directory, what: str = "training") -> dict:
    """A preset's options: `directory`/<preset>.json, or the .json file `preset` names. One-line errors."""
    p = Path(preset) if Path(preset).suffix == ".json" else Path(directory) / f"{preset}.json"
    if not p.is_file():
        if Path(preset).suffix == ".json":
            raise DTError(f"preset file {preset} does not exist")
        raise DTError(f"unknown preset {preset!r}: choose one of {', '.join(preset_names(directory))}, or pass a "
                      ".json file")
    try:
        loaded = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DTError(f"preset {p}: not valid JSON ({e})")
    if not isinstance(loaded, dict):
        raise DTError(f"preset {p}: a preset is a JSON object of {what} options, got a {type(loaded).__name__}")
    return loaded


def given(args, cls) -> dict:
    """The declared options that were given on the command line."""
    return {f.name: _parsed(f, getattr(args, f.name)) for f in fields(cls)
            if f.metadata.get("cli") and getattr(args, f.name, None) is not None}


def check(obj) -> None:
    """Validate every declared field of `obj`: type, finiteness, range, choices. One-line DTError."""
    for f in fields(obj):
        md = f.metadata
        if "help" not in md:
            continue
        v = getattr(obj, f.name)
        base, is_list = _kind(f)
        name = (f.name.upper() if md.get("positional") else flag_name(f)) if md.get("cli") else f.name
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
                    raise DTError(f"{name} must be {_readable(r)}, got {x if base is int else format(x, 'g')}")
            elif base is str and not isinstance(x, str):
                raise DTError(f"{name} must be a string, got {x!r}")
            if md.get("choices") and x not in choices_of(md):
                raise DTError(f"{name} must be one of {', '.join(map(str, choices_of(md)))}, got {x!r}")
        if is_list and not isinstance(v, list):
            raise DTError(f"{name} must be a list, got {v!r}")
