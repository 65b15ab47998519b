"""The options of every `dt` command, declared once (options.py): each class is one command's
flags and arguments, with help, default and valid range; cli.py builds the parser from them and
hands the command a validated object. Options shared by several commands are declared in one
mixin (or one field helper, where commands want different defaults). `dt train`'s options are
TrainConfig's (training/trainer.py), beside the three below that only the command has.

Upper bounds are what this toolkit is for and what one machine can hold: a request past them is
refused before any work starts, never left to run until killed."""

from __future__ import annotations

from dataclasses import dataclass, field

from decision_transformer.errors import DTError
from decision_transformer.options import option, preset_names
from decision_transformer.training.trainer import PRESETS as TRAIN_PRESETS

MAX_EPISODES = 100_000          # episodes per target: 100 is the paper's protocol
MAX_ENVS = 1024                 # vectorised envs stepped in one process
MAX_STEPS = 10_000_000          # env steps in one episode, or collected in one dataset
MAX_TARGETS = 1000              # points of one sweep
SEED_RANGE = "[0, 2147483647]"  # what every seed (numpy, gymnasium, torch) accepts


def _episodes(default: int):
    return option(default, "episodes per target", range=f"[1, {MAX_EPISODES}]")


def _num_envs(default: int):
    return option(default, "vectorised envs, batched in one forward", range=f"[1, {MAX_ENVS}]")


def _seed(help: str = "env i is reset with seed + i"):
    return option(0, help, range=SEED_RANGE)


def _reference_pair(obj) -> None:
    if (obj.ref_min_score is None) != (obj.ref_max_score is None):
        raise DTError("give both --ref-min-score and --ref-max-score, or neither")


@dataclass(kw_only=True)
class Quiet:
    quiet: bool = option(False, "no progress bar")


@dataclass(kw_only=True)
class Overwrite:
    overwrite: bool = option(False, "replace OUTPUT if it is what this command writes (a checkpoint directory, an "
                                    "ONNX export or a dataset); anything else is refused")


@dataclass(kw_only=True)
class References:
    ref_min_score: float | None = option(None, "random-policy return for normalised scores (give both or neither)")
    ref_max_score: float | None = option(None, "expert return for normalised scores (give both or neither)")


@dataclass(kw_only=True)
class LoadOptions:
    """A checkpoint loaded to act in its env: eval, sweep and video."""
    checkpoint: str = option(help="checkpoint directory (ours or transformers), run directory (its last "
                                  "checkpoint) or Hub id", positional=True)
    env: str | None = option(None, "env id", default_text="the checkpoint's")
    state_mean: list[str] | None = option(None, "numbers, or a file of them (transformers checkpoints)")
    state_std: list[str] | None = option(None, "numbers, or a file of them (transformers checkpoints)")
    scale: float | None = option(None, "return scale", range="(0, inf)", default_text="the checkpoint's, else 1")
    seed: int = _seed()
    device: str = option("auto", "auto (cuda if available, else cpu), cpu, cuda, cuda:N or mps (the envs always "
                                 "step on the CPU)")
    sample: bool = option(False, "sample actions, seeded by --seed: discrete ones from softmax(logits / T), a "
                                 "stochastic model's (--model odt) from its policy (default: argmax, mean action)")
    temperature: float = option(1.0, "T for --sample with discrete actions", range="(0, inf)")

    def validate(self) -> None:
        if self.temperature != 1.0 and not self.sample:
            raise DTError("--temperature applies to --sample: pass --sample too")

    def sampling(self) -> dict:
        """The keyword arguments of evaluate/record that these options set."""
        out = {"sample": self.sample, "temperature": self.temperature}
        if getattr(self, "max_episode_steps", None) is not None:
            out["max_episode_steps"] = self.max_episode_steps
        return out


@dataclass(kw_only=True)
class Runtime:
    backend: str = option("torch", "run the exact forward in PyTorch or ONNX Runtime (same math, faster; pip "
                                   "install onnxruntime onnx)", choices=("torch", "onnxruntime"))
    threads: int = option(2, "split the envs into this many groups, each with its own agent, stepped in its own "
                             "thread so one group's forward overlaps another's env stepping (1 = one batch in one "
                             "thread); results are deterministic for a given value", range="[1, 64]")
    max_episode_steps: int | None = option(None, "cut episodes after this many steps", range=f"[1, {MAX_STEPS}]",
                                           default_text="the env's limit; Atari's is 27,000 steps")


@dataclass(kw_only=True)
class EvalOptions(LoadOptions, Runtime, References):
    target_return: list[float] | None = option(None, "one or more target returns",
                                               default_text="the checkpoint's")
    episodes: int = _episodes(100)
    num_envs: int = _num_envs(50)
    json: str | None = option(None, "write the results here")
    mode: str = option("exact", "exact, or cached: an approximate, faster KV-cache mode that can change returns "
                                "measurably (docs/performance.md); report exact numbers", choices=("exact", "cached"))

    def validate(self) -> None:
        LoadOptions.validate(self)
        _reference_pair(self)


@dataclass(kw_only=True)
class SweepOptions(LoadOptions, Runtime, References):
    targets: str = option(help=f"LO:HI:N, N targets from LO to HI (N in [2, {MAX_TARGETS}])", metavar="LO:HI:N")
    episodes: int = _episodes(10)
    num_envs: int = _num_envs(10)
    output: str = option(help="output directory (sweep.json, sweep.png)")

    def validate(self) -> None:
        LoadOptions.validate(self)
        _reference_pair(self)
        self.target_list = parse_targets(self.targets)


@dataclass(kw_only=True)
class VideoOptions(LoadOptions):
    target_return: float = option(help="the return to condition on (unscaled)")
    output: str = option(help="out.mp4 or out.gif", short="-o")
    max_steps: int = option(1000, "stop after this many steps", range=f"[1, {MAX_STEPS}]")
    fps: int = option(30, "playback frames per second", range="[1, 240]")


@dataclass(kw_only=True)
class ExportOptions(Overwrite):
    checkpoint: str = option(help="checkpoint directory or Hub id", positional=True)
    output: str = option(help="output directory (written atomically; must not exist unless --overwrite)",
                         positional=True)
    format: str = option("transformers", "transformers (a DecisionTransformerModel directory) or onnx (a "
                                         "standalone model.onnx of the per-step forward, with a runner that needs "
                                         "onnxruntime only)", choices=("transformers", "onnx"))


@dataclass(kw_only=True)
class InfoOptions:
    checkpoint: str = option(help="checkpoint directory, run directory (its last checkpoint) or Hub id",
                             positional=True)


@dataclass(kw_only=True)
class CollectOptions(References, Overwrite, Quiet):
    required_groups = ("amount",)
    env: str = option(help="gymnasium env id, e.g. Hopper-v5")
    policy: str = option(help="random | ACTOR.safetensors | SB3.zip | DT checkpoint dir")
    episodes: int | None = option(None, "collect this many finished episodes", range=f"[1, {MAX_EPISODES}]",
                                  group="amount")
    steps: int | None = option(None, "collect finished episodes until this many steps", range=f"[1, {MAX_STEPS}]",
                               group="amount")
    output: str = option(help="Minari id (namespace/name-v0) or a directory")
    num_envs: int = _num_envs(8)
    seed: int = _seed("env i is reset with seed + i; seeds the noise too")
    noise: str | None = option(None, "gaussian:SIGMA, epsilon:EPS, or sample (draw from a SAC actor's own "
                                     "distribution)", default_text="none: the policy's action")
    target_return: float | None = option(None, "for a DT checkpoint policy")
    device: str = option("auto", "for a DT checkpoint policy: auto, cpu, cuda, cuda:N or mps")

    def validate(self) -> None:
        _reference_pair(self)


@dataclass(kw_only=True)
class DataInfoOptions:
    source: str = option(help="Minari id or directory, D4RL .hdf5, parquet/arrow rows, .npz", positional=True)
    plot: str | None = option(None, "histogram PNG path ('none' to skip)", default_text="SOURCE-returns.png")


@dataclass(kw_only=True)
class TrainOptions(Quiet):
    """The command's own flags; the training options are TrainConfig's, collected in `given`."""
    preset: str | None = option(None, f"{', '.join(preset_names(TRAIN_PRESETS))}, or a .json file of options "
                                      "(odt-*: the Online DT's pretraining, its paper's settings)",
                                default_text="none, the defaults below")
    resume: str | None = option(None, "continue a run exactly where its last checkpoint left it (only --steps, and "
                                      "--device / --num-threads / --compile, may be given with it)",
                                metavar="RUN_DIR")
    given: dict = field(default_factory=dict)


@dataclass(kw_only=True)
class DemoOptions(Quiet):
    output: str = option("reports/demo", "report directory")
    steps: int | None = option(None, "training steps", range="[1, 1000000]", default_text="preset demo")


@dataclass(kw_only=True)
class ServeOptions:
    paths: list[str] = option(factory=list, help="checkpoint or run directories to offer besides --models",
                              positional=True)
    models: list[str] | None = option(None, "directories of checkpoints, each subdirectory one model",
                                      default_text="the checkout's models/, or $DT_MODELS_DIR, when no PATHS")
    host: str = option("127.0.0.1", "address to bind (0.0.0.0: every interface, e.g. in a container)")
    port: int = option(7860, "port", range="[1, 65535]")
    workers: int = option(2, "episodes played at once; further requests wait in the queue", range="[1, 64]")
    queue: int = option(32, "requests that may wait; more are told the page is busy", range="[1, 10000]")
    backend: str = option("auto", "the Agent's forward: auto (ONNX Runtime where installed, ~0.3 s of export then "
                                  "faster steps; else torch), torch or onnxruntime",
                          choices=("auto", "torch", "onnxruntime"))
    sweep_points: int = option(8, "targets of a model's sweep when it has no sweep.json (computed once, cached)",
                               range="[2, 100]")
    sweep_episodes: int = option(5, "episodes per target of that sweep", range="[1, 1000]")


@dataclass(kw_only=True)
class SuiteBuildOptions(Quiet):
    env: list[str] | None = option(None, "env ids", default_text="every env in the suite's manifest")
    level: list[str] | None = option(None, "random, medium, medium-replay, expert, medium-expert",
                                     default_text="all")
    version: str = option("v0", "v0: TD3 actors + Gaussian noise, 100-200k steps per level (suite/manifest.json); "
                                "v1: D4RL's recipe, SAC actors' own samples, 1M steps per level "
                                "(suite/v1/manifest.json)", choices=("v0", "v1"))


@dataclass(kw_only=True)
class SuiteExportOptions:
    env: str = option(help="env id of the behaviour-training run")
    run_dir: str = option(help="the run directory of python -m decision_transformer.suite.behaviour")
    medium_run_dir: str | None = option(None, "suite v1: --run-dir is the SAC expert run, this the SAC medium run "
                                              "(its replay buffer becomes medium-replay); writes suite/v1/")


@dataclass(kw_only=True)
class SuiteDqnOptions:
    env: str = option(help="MinAtar/<Game>-v1 or ALE/<Game>-v5")
    run_dir: str = option(help="run directory (created; rerun the command to resume)")
    steps: int = option(1_000_000, "total env steps", range="[1, 100000000]")
    chunk: int = option(50_000, "steps per checkpoint, evaluation and stream file", range="[1, 100000000]")
    seed: int = _seed("seed of the learner and the env")


@dataclass(kw_only=True)
class SuiteReplayOptions:
    run_dir: str = option(help="a `dt suite dqn` run directory")
    transitions: int = option(500_000, "dataset size in steps, whole episodes", range=f"[1, {MAX_STEPS}]")
    seed: int = _seed("seed of the buffer picks")


@dataclass(kw_only=True)
class ResultsOptions:
    version: str = option("v1", "which suite's campaign: v1 (D4RL's recipe) or v0 (the first one)",
                          choices=("v0", "v1"))
    runs: str | None = option(None, "run directories with checkpoints",
                              default_text="runs/results-v1, v0: runs/results")
    results: str | None = option(None, "the small files the report is made from, committed (`report` reads both "
                                       "campaigns, from RESULTS and RESULTS/v1)", default_text="results/v1, v0: results")
    models: str | None = option(None, "the published checkpoints", default_text="the checkout's models/, or "
                                                                                 "$DT_MODELS_DIR")


@dataclass(kw_only=True)
class ResultsRunOptions(ResultsOptions):
    only: str | None = option(None, "only tasks whose name contains this, e.g. 'hopper' or 'eval:', and the tasks "
                                    "they need (their data, the training whose checkpoint they start from)")
    no_wait: bool = option(False, "exit instead of waiting when the tasks left are held by other workers")
    ray: str | None = option(None, "run the tasks as Ray tasks, one CPU each: --ray alone starts Ray on this "
                                   "machine, --ray ADDRESS joins a cluster (e.g. auto, or ray://HEAD:10001); every "
                                   "node must share RUNS, RESULTS and the models directory (ray_worker.py)",
                             const="local", metavar="ADDRESS", default_text="local workers, no Ray")
    gpus_per_task: float = option(0.0, "with --ray: GPUs each task asks for (0: CPU tasks)", range="[0, 8]")

    def validate(self) -> None:
        if self.gpus_per_task and self.ray is None:
            raise DTError("--gpus-per-task applies to --ray: pass --ray too")


@dataclass(kw_only=True)
class ResultsStatusOptions(ResultsOptions):
    all: bool = option(False, "list done tasks too")


from decision_transformer.training.finetune import FinetuneOptions  # noqa: E402,F401  (dt finetune's, declared there)


def parse_targets(spec: str) -> list[float]:
    """LO:HI:N -> N evenly spaced target returns."""
    import numpy as np

    parts = spec.split(":")
    if len(parts) != 3:
        raise DTError(f"--targets {spec!r}: use LO:HI:N, e.g. 500:4000:8")
    bounds = []
    for name, x in (("LO", parts[0]), ("HI", parts[1])):
        try:
            bounds.append(float(x))
        except ValueError:
            raise DTError(f"--targets {name} must be a number, got {x!r}") from None
        if not np.isfinite(bounds[-1]):
            raise DTError(f"--targets {name} must be finite, got {x!r}")
    lo, hi = bounds
    try:
        n = int(parts[2])
    except ValueError:
        raise DTError(f"--targets {spec!r}: N must be an integer") from None
    if not 2 <= n <= MAX_TARGETS or hi <= lo:
        raise DTError(f"--targets {spec!r}: need HI > LO and N in [2, {MAX_TARGETS}]")
    return [float(x) for x in np.linspace(lo, hi, n)]
