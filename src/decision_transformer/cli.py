"""The `dt` command. Each subcommand is a small function; user errors print one line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from decision_transformer.errors import DTError, OptionError


def cmd_export(a) -> None:
    if a.format == "onnx":
        from decision_transformer.inference.onnx import export_onnx
        out = export_onnx(a.checkpoint, a.output, overwrite=a.overwrite)
        print(f"wrote {out}: model.onnx (runs with onnxruntime alone: see {out / 'README.md'})")
        return
    from decision_transformer.models.checkpoint import export_transformers
    if a.format != "transformers":
        raise DTError(f"unknown export format {a.format!r}: choose transformers or onnx")
    out = export_transformers(a.checkpoint, a.output, overwrite=a.overwrite)
    print(f"wrote {out} (loadable with transformers.DecisionTransformerModel.from_pretrained)")


def cmd_info(a) -> None:
    import json

    from decision_transformer.models.checkpoint import from_pretrained

    m = from_pretrained(a.checkpoint)
    n = sum(p.numel() for p in m.parameters())
    print(json.dumps({"parameters": n, **m.config.to_dict()}, indent=1))


def cmd_collect(a) -> None:
    from decision_transformer.suite.collect import collect

    path = collect(a.env, a.policy, a.output, episodes=a.episodes, steps=a.steps, num_envs=a.num_envs,
                   seed=a.seed, noise=a.noise, target_return=a.target_return, ref_min_score=a.ref_min_score,
                   ref_max_score=a.ref_max_score, progress=not a.quiet, overwrite=a.overwrite, device=a.device)
    from decision_transformer.data.datasets import load_dataset
    ds = load_dataset(path)
    r = ds.episode_returns()
    print(f"wrote {path}: {ds.num_episodes} episodes, {ds.num_steps} steps, return {r.mean():.1f} ± {r.std():.1f}")


def cmd_data_info(a) -> None:
    import json

    from decision_transformer.data.datasets import describe, load_dataset

    ds = load_dataset(a.source)
    print(json.dumps(describe(ds, str(a.source)), indent=1))
    if a.plot != "none":
        from decision_transformer.fileio import check_writable
        from decision_transformer.report.plots import return_histogram
        out = Path(a.plot or f"{Path(str(a.source).rstrip('/')).name.replace('/', '_')}-returns.png")
        check_writable(out)
        return_histogram(ds.episode_returns(), out,
                         f"{Path(str(a.source)).name}: {ds.num_episodes} episodes, {ds.num_steps} steps")
        print(f"histogram: {out}", file=sys.stderr)


def cmd_suite_build(a) -> None:
    from decision_transformer.suite.build import build, suite_dir
    build(a.env, a.level, suite_dir=suite_dir(a.version), progress=not a.quiet)


def cmd_suite_export(a) -> None:
    from decision_transformer.suite.build import export_run, export_v1
    if a.medium_run_dir:
        export_v1(a.run_dir, a.medium_run_dir, a.env)
    else:
        export_run(a.run_dir, a.env)


def cmd_suite_dqn(a) -> None:
    import time

    from decision_transformer.suite.dqn import train_dqn
    if a.steps < 1 or a.chunk < 1:
        raise DTError(f"--steps and --chunk must be >= 1, got {a.steps} and {a.chunk}")
    train_dqn(a.env, a.run_dir, total_steps=a.steps, chunk=a.chunk, seed=a.seed,
              log=lambda m: print(time.strftime("%H:%M:%S"), m, flush=True))


def cmd_suite_replay(a) -> None:
    from decision_transformer.suite.pixels import export_replay
    export_replay(a.run_dir, transitions=a.transitions, seed=a.seed)


def cmd_train(a) -> None:
    from decision_transformer.options import given
    from decision_transformer.training.trainer import TrainConfig, train

    over = given(a, TrainConfig)
    if a.resume:
        from decision_transformer.rundir import RunDir
        if a.preset:
            raise DTError("--resume takes the run's saved options; --preset cannot be given with it")
        cfg = TrainConfig(**{**RunDir(a.resume).read_config(), **over})
        cfg.output = a.resume                   # the run continues where it is now, even if moved
        cfg.validate()                          # the trainer applies the resume rule (rundir.py)
    else:
        cfg = TrainConfig.from_sources(a.preset, over)
    res = train(cfg, resume=bool(a.resume), progress=not a.quiet)
    print(f"trained to step {res['step']}: loss {res['loss']:.4f}; checkpoint {res['checkpoint']}")


def _number(x, what) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise DTError(f"{what} must be a number, got {x!r}")
    if v != v or v in (float("inf"), float("-inf")):
        raise DTError(f"{what} must be finite, got {x!r}")
    return v


def _load_for_eval(a):
    import numpy as np

    from decision_transformer.models.checkpoint import from_pretrained
    kw = {}
    for name in ("state_mean", "state_std"):
        v = getattr(a, name, None)
        if v:
            kw[name] = [float(x) for x in (np.loadtxt(v[0]).reshape(-1) if len(v) == 1 and Path(v[0]).is_file() else v)]
    if getattr(a, "scale", None) is not None:
        kw["return_scale"] = a.scale
    model = from_pretrained(a.checkpoint, **kw)
    env_id = a.env or model.config.env_id
    if env_id is None:
        raise DTError("the checkpoint does not name its env: pass --env ENV_ID")
    if model.config.state_type == "vector" and model.config.state_mean is None:
        print("warning: no state mean/std in the checkpoint and none given (--state-mean/--state-std): "
              "states are fed unnormalised", file=sys.stderr)
    from decision_transformer.devices import resolve_device
    spec = getattr(a, "device", "auto")
    if getattr(a, "backend", "torch") == "onnxruntime":
        if spec not in ("auto", "cpu"):
            raise DTError(f"--backend onnxruntime runs on the CPU: drop --device {spec}, or use --backend torch")
        spec = "cpu"
    return model.to(resolve_device(spec)), env_id


def _write_json_atomic(path, obj) -> None:
    from decision_transformer.fileio import write_json_atomic
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, obj)
    except OSError as e:
        raise DTError(f"cannot write {path}: {e.strerror or e}")


def cmd_eval(a) -> None:
    from decision_transformer.evaluation.evaluate import evaluate, results_table
    model, env_id = _load_for_eval(a)
    targets = [_number(x, "--target-return") for x in (a.target_return or model.config.target_returns or [])]
    if not targets:
        raise DTError("no target return: pass --target-return R [R ...]")
    res = evaluate(model, env_id, targets, episodes=a.episodes, num_envs=a.num_envs, seed=a.seed,
                   ref_min=a.ref_min_score, ref_max=a.ref_max_score, mode=a.mode, backend=a.backend,
                   threads=a.threads, **_sampling(a))
    print(f"{a.checkpoint} on {env_id}, {a.episodes} episodes per target" +
          (" (APPROXIMATE cached mode)" if a.mode == "cached" else ""))
    print(results_table(res))
    if a.json:
        _write_json_atomic(a.json, {"checkpoint": str(a.checkpoint), "env_id": env_id, "results": res})


def parse_targets(spec: str) -> list[float]:
    import numpy as np
    parts = spec.split(":")
    if len(parts) != 3:
        raise DTError(f"--targets {spec!r}: use LO:HI:N, e.g. 500:4000:8")
    lo, hi = _number(parts[0], "--targets LO"), _number(parts[1], "--targets HI")
    try:
        n = int(parts[2])
    except ValueError:
        raise DTError(f"--targets {spec!r}: N must be an integer")
    if n < 2 or hi <= lo:
        raise DTError(f"--targets {spec!r}: need HI > LO and N >= 2")
    return [float(x) for x in np.linspace(lo, hi, n)]


def _runtime_args(p) -> None:
    p.add_argument("--backend", default="torch", choices=("torch", "onnxruntime"),
                   help="run the exact forward in PyTorch (default) or ONNX Runtime (same math, faster; "
                        "pip install onnxruntime onnx)")
    p.add_argument("--threads", type=int, default=2,
                   help="split the envs into this many groups, each with its own agent, stepped in its own "
                        "thread so one group's forward overlaps another's env stepping (default 2; 1 = one "
                        "batch in one thread). Results are deterministic for a given value")


def cmd_sweep(a) -> None:
    from decision_transformer.evaluation.evaluate import evaluation_record, results_table
    from decision_transformer.report.plots import sweep_plot
    targets = parse_targets(a.targets)
    if a.episodes < 1 or a.num_envs < 1:                # before the output directory is made
        raise DTError(f"--episodes and --num-envs must be >= 1, got {a.episodes} and {a.num_envs}")
    model, env_id = _load_for_eval(a)
    out = Path(a.output)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DTError(f"cannot write to {out}: {e.strerror or e}")
    rec = evaluation_record(model, env_id, targets, a.episodes, seed=a.seed, checkpoint=a.checkpoint,
                            num_envs=a.num_envs, backend=a.backend, threads=a.threads, **_sampling(a))
    res, best = rec["results"], rec["dataset_return_max"]
    _write_json_atomic(out / "sweep.json", rec)            # the campaigns' schema: the report reads either
    ck = Path(str(a.checkpoint)).resolve()
    sweep_plot(res, out / "sweep.png", best, title=f"{ck.parent.parent.name}/{ck.name} on {env_id}")
    print(results_table(res))
    print(f"wrote {out / 'sweep.json'} and {out / 'sweep.png'}")


def cmd_video(a) -> None:
    from decision_transformer.evaluation.video import record
    model, env_id = _load_for_eval(a)
    path, ret, n = record(model, env_id, _number(a.target_return, "--target-return"), a.output, seed=a.seed,
                          max_steps=a.max_steps, fps=a.fps, **_sampling(a))
    print(f"wrote {path}: {n} steps, return {ret:.1f}")


def cmd_demo(a) -> None:
    from decision_transformer.demo import run_demo
    run_demo(a.output, train_steps=a.steps, progress=not a.quiet)


def _eval_args(p):
    p.add_argument("checkpoint", help="checkpoint directory (ours or transformers), run directory (its last "
                                      "checkpoint) or Hub id")
    p.add_argument("--env", help="env id (default: the checkpoint's)")
    p.add_argument("--state-mean", nargs="+", help="numbers, or a file of them (transformers checkpoints)")
    p.add_argument("--state-std", nargs="+", help="numbers, or a file of them (transformers checkpoints)")
    p.add_argument("--scale", type=float, help="return scale (default: the checkpoint's, else 1)")
    p.add_argument("--seed", type=int, default=0, help="env i is reset with seed + i (default 0)")
    p.add_argument("--device", default="auto", help="auto (cuda if available, else cpu), cpu, cuda, cuda:N or mps "
                                                    "(default auto; the envs always step on the CPU)")
    p.add_argument("--sample", action="store_true",
                   help="discrete actions: sample from softmax(logits / T), seeded by --seed (default: argmax)")
    p.add_argument("--temperature", type=float, default=1.0, help="T for --sample (default 1)")


def _rollout_args(p, episodes: int, num_envs: int):
    """Episodes, vectorised envs and the episode cap: eval and sweep."""
    p.add_argument("--episodes", type=int, default=episodes, help=f"episodes per target (default {episodes})")
    p.add_argument("--num-envs", type=int, default=num_envs,
                   help=f"vectorised envs, batched in one forward (default {num_envs})")
    p.add_argument("--max-episode-steps", type=int, help="cut episodes after this many steps (default: the env's "
                                                          "limit; Atari's is 27,000 steps)")


def _sampling(a) -> dict:
    t = _number(str(a.temperature), "--temperature")
    if t <= 0:
        raise DTError(f"--temperature must be > 0, got {a.temperature}")
    if a.temperature != 1.0 and not a.sample:
        raise DTError("--temperature applies to --sample: pass --sample too")
    out = {"sample": a.sample, "temperature": t}
    m = getattr(a, "max_episode_steps", None)
    if m is not None:
        if m < 1:
            raise DTError(f"--max-episode-steps must be >= 1, got {m}")
        out["max_episode_steps"] = m
    return out


def cmd_results(a) -> None:
    from decision_transformer.results import Campaign
    from decision_transformer.results_v1 import CampaignV1
    cls = CampaignV1 if a.version == "v1" else Campaign
    dirs = {"v0": ("runs/results", "results"), "v1": ("runs/results-v1", "results/v1")}[a.version]
    camp = cls(runs=a.runs or dirs[0], results=a.results or dirs[1], **({"models": a.models} if a.models else {}))
    if a.results_cmd == "run":
        n = camp.run(only=a.only, wait=not a.no_wait)
        print(f"{n} task(s) done; `dt results status` lists what is left")
    elif a.results_cmd == "status":
        st = camp.status()
        for name, state in st:
            if a.all or state != "done":
                print(f"{name:<46} {state}")
        done = sum(s == "done" for _, s in st)
        print(f"{done}/{len(st)} tasks done")
        if a.version == "v1":
            from decision_transformer.report.v1 import estimate_lines
            print("\n".join(estimate_lines(camp)))
    else:
        from decision_transformer.report.page import write_report
        from decision_transformer.report.v1 import write_report_v1
        # both pages: suite v1's (docs/results.md) and the first campaign's (docs/results-v0.md)
        root = Path(a.results or "results")
        v0 = Campaign(runs="runs/results", results=root, **({"models": a.models} if a.models else {}))
        v1 = CampaignV1(runs="runs/results-v1", results=root / "v1")
        for path in write_report(v0) + write_report_v1(v1):
            print(f"wrote {path}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dt", description="Decision Transformer toolkit")
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export", help="export a checkpoint for another library")
    e.add_argument("checkpoint", help="checkpoint directory or Hub id")
    e.add_argument("--format", default="transformers", choices=("transformers", "onnx"),
                   help="transformers (a DecisionTransformerModel directory) or onnx (a standalone model.onnx "
                        "of the per-step forward, with a runner that needs onnxruntime only); default transformers")
    e.add_argument("output", help="output directory (written atomically; must not exist unless --overwrite)")
    e.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it is a checkpoint directory "
                                                             "(onnx: a previous export)")
    e.set_defaults(func=cmd_export)
    i = sub.add_parser("info", help="print a checkpoint's configuration")
    i.add_argument("checkpoint", help="checkpoint directory, run directory (its last checkpoint) or Hub id")
    i.set_defaults(func=cmd_info)
    c = sub.add_parser("collect", help="run a policy in vectorised envs and write a Minari dataset")
    c.add_argument("--env", required=True, help="gymnasium env id, e.g. Hopper-v5")
    c.add_argument("--policy", required=True, help="random | ACTOR.safetensors | SB3.zip | DT checkpoint dir")
    g = c.add_mutually_exclusive_group(required=True)
    g.add_argument("--episodes", type=int, help="collect this many finished episodes")
    g.add_argument("--steps", type=int, help="collect finished episodes until this many steps")
    c.add_argument("--output", required=True, help="Minari id (namespace/name-v0) or a directory")
    c.add_argument("--num-envs", type=int, default=8, help="vectorised envs stepped together (default 8)")
    c.add_argument("--seed", type=int, default=0, help="env i is reset with seed + i; seeds the noise too (default 0)")
    c.add_argument("--noise", help="gaussian:SIGMA, epsilon:EPS, or sample (draw from a SAC actor's own distribution)")
    c.add_argument("--target-return", type=float, help="for a DT checkpoint policy")
    c.add_argument("--device", default="auto", help="for a DT checkpoint policy: auto, cpu, cuda, cuda:N or mps "
                                                    "(default auto)")
    c.add_argument("--ref-min-score", type=float, help="reference return of a random policy, stored in the "
                                                        "dataset's metadata for normalised scores")
    c.add_argument("--ref-max-score", type=float, help="reference return of an expert, stored likewise")
    c.add_argument("--overwrite", action="store_true", help="replace an existing dataset at --output")
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    c.set_defaults(func=cmd_collect)
    d = sub.add_parser("data", help="dataset tools")
    dsub = d.add_subparsers(dest="data_cmd", required=True)
    di = dsub.add_parser("info", help="episodes, steps, return distribution, reference scores (+ histogram PNG)")
    di.add_argument("source", help="Minari id or directory, D4RL .hdf5, parquet/arrow rows, .npz")
    di.add_argument("--plot", help="histogram PNG path (default SOURCE-returns.png; 'none' to skip)")
    di.set_defaults(func=cmd_data_info)
    t = sub.add_parser("train", help="train a Decision Transformer on an offline dataset",
                       description="Every option below is a TrainConfig field (training/trainer.py); a preset fills them first, "
                                   "flags given here override it.")
    t.add_argument("--preset", help="paper, hopper, walker2d, halfcheetah, demo, or a .json file of options "
                                    "(default: none, the defaults below)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue a run exactly where its last checkpoint left it "
                                                       "(only --steps, and --device / --num-threads / --compile, may be given with it)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    from decision_transformer.options import add_arguments
    from decision_transformer.training.trainer import TrainConfig
    add_arguments(t, TrainConfig)
    t.set_defaults(func=cmd_train)
    ev = sub.add_parser("eval", help="evaluate a checkpoint in the env at target returns")
    _eval_args(ev)
    ev.add_argument("--target-return", nargs="+", help="one or more target returns (default: the checkpoint's)")
    _rollout_args(ev, episodes=100, num_envs=50)
    ev.add_argument("--ref-min-score", type=float, help="random-policy return for the normalised score "
                                                         "(default: the checkpoint's dataset metadata)")
    ev.add_argument("--ref-max-score", type=float, help="expert return for the normalised score (default: likewise)")
    ev.add_argument("--json", help="write the results here")
    ev.add_argument("--mode", default="exact", choices=("exact", "cached"),
                    help="exact (default) or cached: an approximate, faster KV-cache mode that can change "
                         "returns measurably (docs/performance.md); report exact numbers")
    _runtime_args(ev)
    ev.set_defaults(func=cmd_eval)
    sw = sub.add_parser("sweep", help="achieved vs target return over a range of targets (PNG + JSON)")
    _eval_args(sw)
    sw.add_argument("--targets", required=True, help="LO:HI:N")
    _rollout_args(sw, episodes=10, num_envs=10)
    sw.add_argument("--output", required=True, help="output directory")
    _runtime_args(sw)
    sw.set_defaults(func=cmd_sweep)
    vi = sub.add_parser("video", help="render one episode to .mp4 or .gif with the running return overlaid")
    _eval_args(vi)
    vi.add_argument("--target-return", required=True, help="the return to condition on (unscaled)")
    vi.add_argument("-o", "--output", required=True, help="out.mp4 or out.gif")
    vi.add_argument("--max-steps", type=int, default=1000, help="stop after this many steps (default 1000)")
    vi.add_argument("--fps", type=int, default=30, help="playback frames per second (default 30)")
    vi.set_defaults(func=cmd_video)
    de = sub.add_parser("demo", help="collect -> train -> evaluate -> sweep -> video on a small Hopper default")
    de.add_argument("--output", default="reports/demo", help="report directory (default reports/demo)")
    de.add_argument("--steps", type=int, help="training steps (default: preset demo)")
    de.add_argument("--quiet", action="store_true", help="no progress bars")
    de.set_defaults(func=cmd_demo)
    su = sub.add_parser("suite", help="the D4RL-style dataset suite")
    ssub = su.add_subparsers(dest="suite_cmd", required=True)
    sb = ssub.add_parser("build", help="regenerate the suite's Minari datasets from the committed policies")
    sb.add_argument("--env", nargs="*", help="env ids (default: every env in suite/manifest.json)")
    sb.add_argument("--level", nargs="*", help="random medium medium-replay expert medium-expert (default: all)")
    sb.add_argument("--version", default="v0", choices=("v0", "v1"),
                    help="v0: TD3 actors + Gaussian noise, 100-200k steps per level (suite/manifest.json); v1: "
                         "D4RL's recipe, SAC actors' own samples, 1M steps per level (suite/v1/manifest.json)")
    sb.add_argument("--quiet", action="store_true", help="no progress bars")
    sb.set_defaults(func=cmd_suite_build)
    se = ssub.add_parser("export", help="pick and commit the levels of a behaviour-training run")
    se.add_argument("--env", required=True, help="env id of the behaviour-training run")
    se.add_argument("--run-dir", required=True, help="the run directory of python -m decision_transformer.suite.behaviour")
    se.add_argument("--medium-run-dir", help="suite v1: --run-dir is the SAC expert run, this the SAC medium run "
                                             "(its replay buffer becomes medium-replay); writes suite/v1/")
    se.set_defaults(func=cmd_suite_export)
    sq = ssub.add_parser("dqn", help="train (or resume) a DQN behaviour policy on a MinAtar or Atari id, logging "
                                     "its replay stream")
    sq.add_argument("--env", required=True, help="MinAtar/<Game>-v1 or ALE/<Game>-v5")
    sq.add_argument("--run-dir", required=True, help="run directory (created; rerun the command to resume)")
    sq.add_argument("--steps", type=int, default=1_000_000, help="total env steps (default 1000000)")
    sq.add_argument("--chunk", type=int, default=50_000,
                    help="steps per checkpoint, evaluation and stream file (default 50000)")
    sq.add_argument("--seed", type=int, default=0, help="seed of the learner and the env (default 0)")
    sq.set_defaults(func=cmd_suite_dqn)
    sr = ssub.add_parser("replay", help="sample a DQN-Replay-style dataset from a DQN run's stream into suite/")
    sr.add_argument("--run-dir", required=True, help="a `dt suite dqn` run directory")
    sr.add_argument("--transitions", type=int, default=500_000, help="dataset size in steps, whole episodes "
                                                                     "(default 500000)")
    sr.add_argument("--seed", type=int, default=0, help="seed of the buffer picks (default 0)")
    sr.set_defaults(func=cmd_suite_replay)
    rs = sub.add_parser("results", help="the results campaign: every run, evaluation and sweep behind docs/results.md")
    rsub = rs.add_subparsers(dest="results_cmd", required=True)
    for name, hlp in (("run", "do every task not done yet (resumable; start one worker per free core)"),
                      ("status", "list the tasks not done yet (--all: every task)"),
                      ("report", "regenerate docs/results.md, its figures and the model cards from the run files")):
        r = rsub.add_parser(name, help=hlp)
        r.add_argument("--version", default="v1", choices=("v0", "v1"),
                       help="which suite's campaign: v1 (D4RL's recipe; default) or v0 (the first one)")
        r.add_argument("--runs", help="run directories with checkpoints (default runs/results-v1, v0: runs/results)")
        r.add_argument("--results", help="the small files the report is made from, committed (default results/v1, "
                                         "v0: results; `report` reads both, from RESULTS and RESULTS/v1)")
        r.add_argument("--models", help="the published checkpoints (default: the checkout's models/, or $DT_MODELS_DIR)")
        if name == "run":
            r.add_argument("--only", help="only tasks whose name contains this, e.g. 'hopper' or 'eval:'")
            r.add_argument("--no-wait", action="store_true",
                           help="exit instead of waiting when the tasks left are held by other workers")
        if name == "status":
            r.add_argument("--all", action="store_true", help="list done tasks too")
        r.set_defaults(func=cmd_results)
    return p


FLAGS = {"env_id": "--env"}                    # parameters whose flag is not --<name with dashes>


def flag(param: str) -> str:
    """The `dt` flag of a library parameter: num_envs -> --num-envs."""
    return FLAGS.get(param) or "--" + param.replace("_", "-")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except OptionError as e:                   # the library names parameters; here they are flags
        print(f"error: {e.render(flag)}", file=sys.stderr)
        return 2
    except DTError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:                    # `dt info CKPT | head`: the reader left; not an error
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # no second error at exit
        return 0
    except OSError as e:                       # the machine's problem, not the input's: still one line
        print(f"error: {e.filename + ': ' if e.filename else ''}{e.strerror or e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
