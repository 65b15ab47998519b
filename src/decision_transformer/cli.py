"""The `dt` command. Each subcommand is a small function; user errors print one line."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from decision_transformer.errors import DTError, Interrupted, OptionError


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
    train_dqn(a.env, a.run_dir, total_steps=a.steps, chunk=a.chunk, seed=a.seed,
              log=lambda m: print(time.strftime("%H:%M:%S"), m, flush=True))


def cmd_suite_replay(a) -> None:
    from decision_transformer.suite.pixels import export_replay
    export_replay(a.run_dir, transitions=a.transitions, seed=a.seed)


def cmd_train(a) -> None:
    from decision_transformer.training.trainer import TrainConfig, train

    over = a.given
    if a.resume:
        from decision_transformer.rundir import RunDir
        if a.preset:
            raise DTError("--resume takes the run's saved options; --preset cannot be given with it")
        rd = RunDir(a.resume)
        saved = rd.read_config()                # a file cut short or not a run: its own line
        try:                                    # the saved options alone first: a bad one names the file
            TrainConfig.from_sources(None, {**saved, "output": a.resume})
        except DTError as e:
            raise DTError(f"{rd.config}: {e}; restore the file, or train again into another --output")
        cfg = TrainConfig(**{**saved, **over})
        cfg.output = a.resume                   # the run continues where it is now, even if moved
        cfg.validate()
        from dataclasses import asdict, fields

        from decision_transformer.options import field_default
        rd.check_resume(asdict(cfg), {f.name: field_default(f) for f in fields(TrainConfig)})  # before any data loads
    else:
        cfg = TrainConfig.from_sources(a.preset, over)
    res = train(cfg, resume=bool(a.resume), progress=not a.quiet)
    if res["loss"] != res["loss"]:             # no step was taken: the run was already there
        print(f"{cfg.output} is already at step {res['step']} (--steps {cfg.steps}): nothing to train; "
              f"checkpoint {res['checkpoint']}")
        return
    print(f"trained to step {res['step']}: loss {res['loss']:.4f}; checkpoint {res['checkpoint']}")


def cmd_finetune(a) -> None:
    from dataclasses import fields

    from decision_transformer.training.finetune import FinetuneConfig, finetune
    from decision_transformer.rundir import RunDir
    opts = {f.name: getattr(a, f.name) for f in fields(FinetuneConfig)}
    if a.resume and a.preset:
        raise DTError("--resume takes the run's saved options; --preset cannot be given with it")
    if a.preset:                                # the defaults, then the preset, then the flags given
        from decision_transformer.options import read_preset
        from decision_transformer.training.finetune import PRESETS
        preset = read_preset(a.preset, PRESETS, "fine-tuning")
        bad = sorted(set(preset) - (set(opts) - {"checkpoint"}))
        if bad:
            raise DTError(f"preset {a.preset}: not fine-tuning options a preset can set: {', '.join(bad)}")
        opts = {**opts, **preset, **a.given}
    if a.resume:                                # the run's saved options; --online-steps may grow (else the run's own)
        rd = RunDir(a.resume)
        saved = rd.read_config()
        names = {f.name for f in fields(FinetuneConfig)}
        try:                                    # the saved options alone first: a bad one names the file
            FinetuneConfig(**{k: v for k, v in saved.items() if k in names}).validate()
        except DTError as e:
            raise DTError(f"{rd.config}: {e}; restore the file, or fine-tune again into another --output")
        steps = a.online_steps if "online_steps" in a.given else saved.get("online_steps", a.online_steps)
        opts = {**{k: v for k, v in saved.items() if k in names}, "output": a.resume, "online_steps": steps,
                "num_threads": a.num_threads or saved.get("num_threads", 0)}   # the run's threads: the same sums
    res = finetune(FinetuneConfig(**opts), resume=bool(a.resume), progress=not a.quiet)
    got = (f"return {res['eval_return_mean']:.1f} ± {res['eval_return_std']:.1f} at {res['env_steps']:,} env steps"
           if "eval_return_mean" in res else "nothing to do")
    print(f"fine-tuned: {got}; checkpoint {res['checkpoint']}")


def _load_for_eval(a):
    """The checkpoint of eval, sweep or video (LoadOptions), on its device, and its env id."""
    import numpy as np

    from decision_transformer.models.checkpoint import from_pretrained
    kw = {}
    for name in ("state_mean", "state_std"):
        v = getattr(a, name)
        if v:
            kw[name] = [_float(x, "--" + name.replace("_", "-"))
                        for x in (np.loadtxt(v[0]).reshape(-1) if len(v) == 1 and Path(v[0]).is_file() else v)]
    if a.scale is not None:
        kw["return_scale"] = a.scale
    model = from_pretrained(a.checkpoint, **kw)
    env_id = a.env or model.config.env_id
    if env_id is None:
        raise DTError("the checkpoint does not name its env: pass --env ENV_ID")
    if model.config.state_type == "vector" and model.config.state_mean is None:
        print("warning: no state mean/std in the checkpoint and none given (--state-mean/--state-std): "
              "states are fed unnormalised", file=sys.stderr)
    from decision_transformer.devices import resolve_device
    spec = a.device
    if getattr(a, "backend", "torch") == "onnxruntime":           # video has no backend option
        if spec not in ("auto", "cpu"):
            raise DTError(f"--backend onnxruntime runs on the CPU: drop --device {spec}, or use --backend torch")
        spec = "cpu"
    return model.to(resolve_device(spec)), env_id


def _float(x, what: str) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise DTError(f"{what} must be numbers, got {x!r}")
    if v != v or v in (float("inf"), float("-inf")):
        raise DTError(f"{what} must be finite, got {x!r}")
    return v


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
    targets = [float(x) for x in (a.target_return or model.config.target_returns or [])]
    if not targets:
        raise DTError("no target return: pass --target-return R [R ...]")
    res = evaluate(model, env_id, targets, episodes=a.episodes, num_envs=a.num_envs, seed=a.seed,
                   ref_min=a.ref_min_score, ref_max=a.ref_max_score, mode=a.mode, backend=a.backend,
                   threads=a.threads, **a.sampling())
    print(f"{a.checkpoint} on {env_id}, {a.episodes} episodes per target" +
          (" (APPROXIMATE cached mode)" if a.mode == "cached" else ""))
    print(results_table(res))
    if a.json:
        _write_json_atomic(a.json, {"checkpoint": str(a.checkpoint), "env_id": env_id, "results": res})


def cmd_sweep(a) -> None:
    from decision_transformer.evaluation.evaluate import evaluation_record, results_table
    from decision_transformer.report.plots import sweep_plot
    targets = a.target_list
    model, env_id = _load_for_eval(a)
    out = Path(a.output)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DTError(f"cannot write to {out}: {e.strerror or e}")
    rec = evaluation_record(model, env_id, targets, a.episodes, seed=a.seed, checkpoint=a.checkpoint,
                            num_envs=a.num_envs, backend=a.backend, threads=a.threads, ref_min=a.ref_min_score,
                            ref_max=a.ref_max_score, **a.sampling())
    res, best = rec["results"], rec["dataset_return_max"]
    _write_json_atomic(out / "sweep.json", rec)            # the campaigns' schema: the report reads either
    ck = Path(str(a.checkpoint)).resolve()
    sweep_plot(res, out / "sweep.png", best, title=f"{ck.parent.parent.name}/{ck.name} on {env_id}")
    print(results_table(res))
    print(f"wrote {out / 'sweep.json'} and {out / 'sweep.png'}")


def cmd_video(a) -> None:
    from decision_transformer.evaluation.video import record
    model, env_id = _load_for_eval(a)
    path, ret, n = record(model, env_id, a.target_return, a.output, seed=a.seed, max_steps=a.max_steps, fps=a.fps,
                          **a.sampling())
    print(f"wrote {path}: {n} steps, return {ret:.1f}")


def cmd_demo(a) -> None:
    from decision_transformer.demo import run_demo
    run_demo(a.output, train_steps=a.steps, progress=not a.quiet)


def cmd_serve(a) -> None:
    from decision_transformer.serve.app import serve
    serve(a)


def _campaign(a):
    from decision_transformer.results import Campaign
    from decision_transformer.results_v1 import CampaignV1
    cls = CampaignV1 if a.version == "v1" else Campaign
    dirs = {"v0": ("runs/results", "results"), "v1": ("runs/results-v1", "results/v1")}[a.version]
    return cls(runs=a.runs or dirs[0], results=a.results or dirs[1], **({"models": a.models} if a.models else {}))


def cmd_results_run(a) -> None:
    if a.ray is not None:
        from decision_transformer.ray_worker import run_on_ray
        n = run_on_ray(_campaign(a), address=None if a.ray == "local" else a.ray, only=a.only,
                       gpus_per_task=a.gpus_per_task)
        print(f"{n} task(s) done on Ray; `dt results status` lists what is left")
        return
    n = _campaign(a).run(only=a.only, wait=not a.no_wait)
    print(f"{n} task(s) done; `dt results status` lists what is left")


def cmd_results_status(a) -> None:
    camp = _campaign(a)
    st = camp.status()
    for name, state in st:
        if a.all or state != "done":
            print(f"{name:<46} {state}")
    done = sum(s == "done" for _, s in st)
    print(f"{done}/{len(st)} tasks done")
    if a.version == "v1":
        from decision_transformer.report.v1 import estimate_lines
        print("\n".join(estimate_lines(camp)))


def cmd_results_report(a) -> None:
    from decision_transformer.report.page import write_report
    from decision_transformer.report.v1 import write_report_v1
    from decision_transformer.results import Campaign
    from decision_transformer.results_v1 import CampaignV1
    # both pages: suite v1's (docs/results.md) and the first campaign's (docs/results-v0.md)
    root = Path(a.results or "results")
    v0 = Campaign(runs="runs/results", results=root, **({"models": a.models} if a.models else {}))
    v1 = CampaignV1(runs="runs/results-v1", results=root / "v1")
    for path in write_report(v0) + write_report_v1(v1):
        print(f"wrote {path}")


COMMANDS = {   # command path -> (help, its options class, its function); the parser is built from this
    ("export",): ("export a checkpoint for another library", "ExportOptions", cmd_export),
    ("info",): ("print a checkpoint's configuration", "InfoOptions", cmd_info),
    ("collect",): ("run a policy in vectorised envs and write a Minari dataset", "CollectOptions", cmd_collect),
    ("data",): ("dataset tools", None, None),
    ("data", "info"): ("episodes, steps, return distribution, reference scores (+ histogram PNG)", "DataInfoOptions",
                       cmd_data_info),
    ("train",): ("train a Decision Transformer on an offline dataset", "TrainOptions", cmd_train),
    ("finetune",): ("fine-tune an odt checkpoint online (the Online Decision Transformer)", "FinetuneOptions",
                    cmd_finetune),
    ("eval",): ("evaluate a checkpoint in the env at target returns", "EvalOptions", cmd_eval),
    ("sweep",): ("achieved vs target return over a range of targets (PNG + JSON)", "SweepOptions", cmd_sweep),
    ("video",): ("render one episode to .mp4 or .gif with the running return overlaid", "VideoOptions", cmd_video),
    ("demo",): ("collect -> train -> evaluate -> sweep -> video on a small Hopper default", "DemoOptions", cmd_demo),
    ("serve",): ("a local web page: pick a model, set the target return, watch the agent (pip install -e '.[serve]')",
                 "ServeOptions", cmd_serve),
    ("suite",): ("the D4RL-style dataset suite", None, None),
    ("suite", "build"): ("regenerate the suite's Minari datasets from the committed policies", "SuiteBuildOptions",
                         cmd_suite_build),
    ("suite", "export"): ("pick and commit the levels of a behaviour-training run", "SuiteExportOptions",
                          cmd_suite_export),
    ("suite", "dqn"): ("train (or resume) a DQN behaviour policy on a MinAtar or Atari id, logging its replay stream",
                       "SuiteDqnOptions", cmd_suite_dqn),
    ("suite", "replay"): ("sample a DQN-Replay-style dataset from a DQN run's stream into suite/",
                          "SuiteReplayOptions", cmd_suite_replay),
    ("results",): ("the results campaign: every run, evaluation and sweep behind docs/results.md", None, None),
    ("results", "run"): ("do every task not done yet (resumable; start one worker per free core)",
                         "ResultsRunOptions", cmd_results_run),
    ("results", "status"): ("list the tasks not done yet (--all: every task)", "ResultsStatusOptions",
                            cmd_results_status),
    ("results", "report"): ("regenerate docs/results.md, its figures and the model cards from the run files",
                            "ResultsOptions", cmd_results_report),
}
TRAIN_DESCRIPTION = ("Every option below is a TrainConfig field (training/trainer.py); a preset fills them first, "
                     "flags given here override it.")


# argparse takes "-1e30" or "-.5e3" for an option (its rule knows only -12 and -1.5): every
# number, exponents included, is a value, so `--target-return -1e30` means what it says
NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def build_parser() -> argparse.ArgumentParser:
    from decision_transformer import cli_options
    from decision_transformer.options import add_arguments
    p = argparse.ArgumentParser(prog="dt", description="Decision Transformer toolkit")
    p._negative_number_matcher = NEGATIVE_NUMBER
    parsers = {(): p}
    subs: dict[tuple, object] = {}
    for path, (hlp, cls_name, func) in COMMANDS.items():
        parent = path[:-1]
        if parent not in subs:
            subs[parent] = parsers[parent].add_subparsers(dest="_".join(("cmd",) + parent), required=True)
        sp = subs[parent].add_parser(path[-1], help=hlp, description=TRAIN_DESCRIPTION if path == ("train",) else hlp)
        sp._negative_number_matcher = NEGATIVE_NUMBER
        parsers[path] = sp
        if cls_name is None:
            continue
        cls = getattr(cli_options, cls_name)
        add_arguments(sp, cls)
        if path == ("train",):
            from decision_transformer.training.trainer import TrainConfig
            add_arguments(sp, TrainConfig)
        sp.set_defaults(func=func, options=cls)
    return p


def parse(argv=None):
    """The command's function, and a function that makes its validated options object (whose
    errors are DTErrors, printed by `main` as one line)."""
    from decision_transformer.options import from_args, given
    args = build_parser().parse_args(argv)

    def options():
        if args.func is cmd_train:
            from decision_transformer.training.trainer import TrainConfig
            return from_args(args.options, args, given=given(args, TrainConfig))
        if args.func is cmd_finetune:
            from decision_transformer.training.finetune import FinetuneConfig
            return from_args(args.options, args, given=given(args, FinetuneConfig))
        return from_args(args.options, args)
    return args.func, options


FLAGS = {"env_id": "--env"}                    # parameters whose flag is not --<name with dashes>


def flag(param: str) -> str:
    """The `dt` flag of a library parameter: num_envs -> --num-envs."""
    return FLAGS.get(param) or "--" + param.replace("_", "-")


def main(argv=None) -> int:
    func, options = parse(argv)
    try:
        func(options())
    except OptionError as e:                   # the library names parameters; here they are flags
        print(f"error: {e.render(flag)}", file=sys.stderr)
        return 2
    except Interrupted as e:                   # a training loop saved a checkpoint and stopped
        print(str(e), file=sys.stderr)
        return 128 + e.signum
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
