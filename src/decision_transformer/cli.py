"""The `dt` command. Each subcommand is a small function; user errors print one line."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

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


def cmd_collect(a) -> None:
    from .collect import collect

    path = collect(a.env, a.policy, a.output, episodes=a.episodes, steps=a.steps, num_envs=a.num_envs,
                   seed=a.seed, noise=a.noise, target_return=a.target_return, ref_min_score=a.ref_min_score,
                   ref_max_score=a.ref_max_score, progress=not a.quiet, overwrite=a.overwrite)
    from .data import load_dataset
    ds = load_dataset(path)
    r = ds.episode_returns()
    print(f"wrote {path}: {ds.num_episodes} episodes, {ds.num_steps} steps, return {r.mean():.1f} ± {r.std():.1f}")


def cmd_data_info(a) -> None:
    import json

    import numpy as np

    from .data import load_dataset

    ds = load_dataset(a.source)
    r, L = ds.episode_returns(), ds.lengths
    md = ds.metadata
    info = {"source": str(a.source), "episodes": ds.num_episodes, "steps": ds.num_steps,
            "observation_shape": list(ds.observations.shape[1:]),
            "actions": ("discrete" if ds.discrete else f"continuous {ds.actions.shape[1]}"),
            "return": {"mean": float(r.mean()), "std": float(r.std()), "min": float(r.min()),
                       "p25": float(np.percentile(r, 25)), "median": float(np.median(r)),
                       "p75": float(np.percentile(r, 75)), "max": float(r.max())},
            "length": {"mean": float(L.mean()), "min": int(L.min()), "max": int(L.max())},
            "terminations": int(ds.terminations.sum()), "truncations": int(ds.truncations.sum()),
            "env_id": md.get("env_id"), "ref_min_score": md.get("ref_min_score"), "ref_max_score": md.get("ref_max_score")}
    if info["ref_max_score"] is not None and info["ref_min_score"] is not None:
        lo, hi = info["ref_min_score"], info["ref_max_score"]
        info["normalized_return_x100"] = float(100 * (r.mean() - lo) / (hi - lo))
    print(json.dumps(info, indent=1))
    if a.plot != "none":
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        out = Path(a.plot or f"{Path(str(a.source).rstrip('/')).name.replace('/', '_')}-returns.png")
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.hist(r, bins=min(50, max(5, ds.num_episodes // 5)), color="tab:blue")
        ax.set_xlabel("episode return"); ax.set_ylabel("episodes")
        ax.set_title(f"{Path(str(a.source)).name}: {ds.num_episodes} episodes, {ds.num_steps} steps", fontsize=9)
        fig.tight_layout()
        tmp = out.with_name(out.name + ".tmp.png")
        fig.savefig(tmp, dpi=100)
        plt.close(fig)
        os.replace(tmp, out)
        print(f"histogram: {out}", file=sys.stderr)


def cmd_suite_build(a) -> None:
    from .suite import build
    build(a.env, a.level, progress=not a.quiet)


def cmd_suite_export(a) -> None:
    from .suite import export_run
    export_run(a.run_dir, a.env)


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
    c = sub.add_parser("collect", help="run a policy in vectorised envs and write a Minari dataset")
    c.add_argument("--env", required=True, help="gymnasium env id, e.g. Hopper-v5")
    c.add_argument("--policy", required=True, help="random | ACTOR.safetensors | SB3.zip | DT checkpoint dir")
    g = c.add_mutually_exclusive_group(required=True)
    g.add_argument("--episodes", type=int)
    g.add_argument("--steps", type=int, help="collect finished episodes until this many steps")
    c.add_argument("--output", required=True, help="Minari id (namespace/name-v0) or a directory")
    c.add_argument("--num-envs", type=int, default=8)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--noise", help="gaussian:SIGMA or epsilon:EPS")
    c.add_argument("--target-return", type=float, help="for a DT checkpoint policy")
    c.add_argument("--ref-min-score", type=float)
    c.add_argument("--ref-max-score", type=float)
    c.add_argument("--overwrite", action="store_true")
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    c.set_defaults(func=cmd_collect)
    d = sub.add_parser("data", help="dataset tools")
    dsub = d.add_subparsers(dest="data_cmd", required=True)
    di = dsub.add_parser("info", help="episodes, steps, return distribution, reference scores (+ histogram PNG)")
    di.add_argument("source", help="Minari id or directory, D4RL .hdf5, parquet/arrow rows, .npz")
    di.add_argument("--plot", help="histogram PNG path (default SOURCE-returns.png; 'none' to skip)")
    di.set_defaults(func=cmd_data_info)
    su = sub.add_parser("suite", help="the D4RL-style dataset suite")
    ssub = su.add_subparsers(dest="suite_cmd", required=True)
    sb = ssub.add_parser("build", help="regenerate the suite's Minari datasets from the committed policies")
    sb.add_argument("--env", nargs="*", help="env ids (default: every env in suite/manifest.json)")
    sb.add_argument("--level", nargs="*", help="random medium medium-replay expert medium-expert (default: all)")
    sb.add_argument("--quiet", action="store_true")
    sb.set_defaults(func=cmd_suite_build)
    se = ssub.add_parser("export", help="pick and commit the levels of a behaviour-training run")
    se.add_argument("--env", required=True)
    se.add_argument("--run-dir", required=True)
    se.set_defaults(func=cmd_suite_export)
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
