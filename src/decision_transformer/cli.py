"""The `dt` command. Each subcommand is a small function; user errors print one line."""

from __future__ import annotations

import argparse
import sys

from .errors import DTError


def cmd_export(a) -> None:
    from .checkpoint import export_transformers

    if a.format != "transformers":
        raise DTError(f"unknown export format {a.format!r}: the only format is 'transformers'")
    out = export_transformers(a.checkpoint, a.output)
    print(f"wrote {out} (loadable with transformers.DecisionTransformerModel.from_pretrained)")


def cmd_info(a) -> None:
    import json

    from .checkpoint import from_pretrained

    m = from_pretrained(a.checkpoint)
    n = sum(p.numel() for p in m.parameters())
    print(json.dumps({"parameters": n, **m.config.to_dict()}, indent=1))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dt", description="Decision Transformer toolkit")
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export", help="export a checkpoint for another library")
    e.add_argument("checkpoint", help="checkpoint directory or Hub id")
    e.add_argument("--format", default="transformers", help="target format (transformers)")
    e.add_argument("output", help="output directory (written atomically)")
    e.set_defaults(func=cmd_export)
    i = sub.add_parser("info", help="print a checkpoint's configuration")
    i.add_argument("checkpoint")
    i.set_defaults(func=cmd_info)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except DTError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
