"""`dt train`: train a registered model on an offline dataset, resumably.

TrainConfig declares every option once (options.py). The run directory's layout, its lock, its
atomic checkpoints and the resume rule belong to rundir.py. `--resume RUN` continues with the
exact losses an uninterrupted run would have produced (model, optimizer, LR schedule, torch and
sampler RNG states are all restored).
"""

from __future__ import annotations

import csv
import gc
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch

from decision_transformer.devices import PRECISIONS, autocast, describe_machine, resolve_device
from decision_transformer.errors import DTError
from decision_transformer.models.dt import ACTIVATIONS
from decision_transformer.models.policy import architectures
from decision_transformer.options import check, field_default, option, read_preset
from decision_transformer.rundir import METRICS_COLUMNS, RunDir
from decision_transformer.training.interrupt import StopRequests
from decision_transformer.training.optim import OPTIMIZERS, make_optimizer

PRESETS = Path(__file__).resolve().parent / "presets"
EMA_DIR = "ema"              # checkpoints/<step>/ema/: the moving average's weights (--ema-decay)


MAX_COUNT = 1_000_000_000     # steps and intervals: a bound on typos (1e9 paper-config steps: years on a CPU)


@dataclass
class TrainConfig:
    """Every training option, declared once (options.py): `dt train`'s flags, their help and the
    validation of presets, saved configs and the Python API all come from these fields."""
    dataset: str = option("", "Minari id or directory, D4RL .hdf5, parquet/arrow rows or .npz to train on",
                          default_text="none, required")
    env_id: str | None = option(None, "env id for evaluation", flag="--env", default_text="the dataset's env")
    output: str = option("runs/dt", "run directory: config, metrics, TensorBoard events, checkpoints")
    steps: int = option(100_000, "gradient steps (the paper: 10 x 10k)", range=f"[1, {MAX_COUNT}]")
    batch_size: int = option(64, "windows per gradient step", range="[1, 65536]")
    context_length: int = option(20, "K, timesteps per window", range="[1, 4096]")
    hidden_size: int = option(128, "embedding width (a multiple of --n-head)", range="[1, 65536]")
    n_layer: int = option(3, "transformer blocks", range="[1, 1024]")
    n_head: int = option(1, "attention heads", range="[1, 1024]")
    activation_function: str = option("relu", "MLP activation", choices=ACTIVATIONS)
    dropout: float = option(0.1, "dropout on embeddings, attention and residuals", range="[0, 1)")
    optimizer: str = option("adamw", "adamw, or lamb (the Online DT's; training/optim.py)", choices=OPTIMIZERS)
    lr: float = option(1e-4, "peak learning rate", range="(0, inf)")
    weight_decay: float = option(1e-4, "decoupled weight decay", range="[0, inf)")
    betas: list[float] = option(help="the optimiser's betas (the Atari DT: 0.9 0.95)", range="[0, 1)",
                                factory=lambda: [0.9, 0.999])
    embed_tanh: bool = option(False, "tanh on the return/state/action embeddings (the Atari DT)")
    timestep_embedding: bool = option(True, "a learned embedding of the episode timestep added to every token, as "
                                      "in the DT; --no-timestep-embedding: none, as in the Online DT (the model "
                                      "then knows its place in the episode from the return-to-go alone; not "
                                      "transformers-compatible)")
    warmup_steps: int = option(10_000, "linear learning-rate warm-up steps, then constant", range=f"[0, {MAX_COUNT}]")
    grad_clip: float = option(0.25, "gradient-norm clip", range="(0, inf)")
    return_scale: float = option(1000.0, "returns-to-go are divided by this (1000 for MuJoCo)", range="(0, inf)")
    max_ep_len: int = option(1000, "rows of the timestep embedding (longest episode)", range="[1, 10000000]")
    target_returns: list[float] = option(help="evaluation targets stored with the model (unscaled)",
                                         flag="--target-return", factory=lambda: [3600.0, 1800.0])
    seed: int = option(0, "seed of the weights, the sampler and dropout", range="[0, inf)")
    log_every: int = option(100, "steps between metrics rows", range=f"[1, {MAX_COUNT}]")
    checkpoint_every: int = option(5_000, "steps between checkpoints (each is kept)", range=f"[1, {MAX_COUNT}]")
    eval_every: int = option(0, "steps between evaluations during training (0: none)", range=f"[0, {MAX_COUNT}]")
    eval_episodes: int = option(10, "episodes per target in those evaluations", range="[1, 100000]")
    num_threads: int = option(0, "torch threads (0: torch's default; one per job when jobs share cores)",
                              range="[0, inf)")
    device: str = option("auto", "auto (cuda if available, else cpu), cpu, cuda, cuda:N or mps")
    precision: str = option("fp32", "fp32, or bf16 / fp16 autocast on CUDA (fp32 weights; fp16 with a "
                            "gradient scaler)", choices=PRECISIONS)
    compile: bool = option(False, "torch.compile the training forward (first steps compile)")
    init: str = option("transformers", "initial weights of a DT: transformers (every layer N(0, 0.02), as "
                       "transformers.DecisionTransformerModel) or official (the official code's: N(0, 0.02) in the "
                       "GPT-2 trunk only, PyTorch's defaults for the embeddings and heads); BC's MLP always has "
                       "PyTorch's defaults, as in the official code", choices=("transformers", "official"))
    ema_decay: float = option(0.0, "also keep an exponential moving average of the weights with this decay "
                              "(e.g. 0.999), saved beside each checkpoint as checkpoints/<step>/ema/, a checkpoint "
                              "of its own; 0: off", range="[0, 1)")
    model: str = option("dt", "a registered model: dt, or bc (the MLP baseline of the official code)",
                        choices=architectures)          # asked when parsing: every model registered by then
    top_pct: float = option(100.0, "train on the best episodes by return holding X%% of the data (%%BC with "
                            "--model bc; see --top-unit)", range="(0, 100]")
    top_unit: str = option("timesteps", "what --top-pct counts: timesteps (the paper's %%BC: the best episodes "
                           "until they hold X%% of the steps; state statistics from all the data) or episodes "
                           "(suite v0's campaign: X%% of the episodes, statistics from them)",
                           choices=("timesteps", "episodes"))

    @classmethod
    def from_sources(cls, preset: str | None, overrides: dict) -> "TrainConfig":
        d = read_preset(preset, PRESETS) if preset else {}
        d.update({k: v for k, v in overrides.items() if v is not None})
        names = {f.name: f for f in fields(cls)}
        bad = sorted(set(d) - set(names))
        if bad:
            raise DTError(f"unknown training option(s): {', '.join(bad)}")
        cfg = cls(**d)
        cfg.validate()
        if Path(cfg.dataset).exists():          # a local file or directory: recorded absolutely, so the run resumes
            cfg.dataset = str(Path(cfg.dataset).resolve())                   # from any working directory
        return cfg

    def validate(self):
        check(self)
        if self.hidden_size % self.n_head:
            raise DTError(f"--hidden-size {self.hidden_size} is not a multiple of --n-head {self.n_head}")
        if not self.dataset:
            raise DTError("--dataset is required (a Minari id or directory, a D4RL .hdf5, parquet rows or .npz)")


def top_episodes(ds, pct: float, unit: str = "timesteps"):
    """The best episodes by return, in their original order.

    unit "timesteps" (the paper's %BC, as the official code selects them): the best episode, then
    the next best while together they hold at most int(pct% of all steps) steps. unit "episodes":
    the top pct% of the episodes (at least one)."""
    from decision_transformer.data.datasets import TrajectoryDataset
    if pct >= 100:
        return ds
    order = np.argsort(-ds.episode_returns(), kind="stable")                # best first (ties: earlier first)
    if unit == "episodes":
        keep = order[:max(1, int(round(ds.num_episodes * pct / 100)))]
    else:
        lens = ds.lengths
        budget = max(int(pct / 100 * ds.num_steps), 1)
        total, n = int(lens[order[0]]), 1
        while n < len(order) and total + lens[order[n]] <= budget:
            total += int(lens[order[n]])
            n += 1
        keep = order[:n]
    keep = np.sort(keep)
    return TrajectoryDataset.from_episodes([ds.episode(int(i)) for i in keep], f"{ds.metadata.get('source')} top {pct}%",
                                           ds.observation_space, ds.action_space, ds.metadata)


def _check_memory(cfg: TrainConfig, ds, env_id, device) -> None:
    """Refuse, in one line with the estimate, a model whose training cannot fit the memory free on
    its device: parameters counted exactly on the meta device (nothing allocated), times weights,
    gradients, AdamW's two moments and the weight average; activations by Megatron-LM's estimate
    (per layer s*b*h*(34 + 5*a*s/h) half-precision bytes for s tokens, doubled for fp32)."""
    free = _free_bytes(device)
    if free is None:
        return
    with torch.device("meta"):
        model = build_model(cfg, ds, env_id)
    n = sum(p.numel() for p in model.parameters())
    s, h, a = 3 * cfg.context_length, cfg.hidden_size, cfg.n_head
    need = 4 * n * (4 + bool(cfg.ema_decay)) + 4 * cfg.n_layer * s * cfg.batch_size * h * (34 + 5 * a * s / h)
    if need > free:
        raise DTError(f"training this model needs about {need / 2**30:,.1f} GiB ({n / 1e6:,.1f}M parameters, batch "
                      f"{cfg.batch_size} x {s} tokens) and {free / 2**30:,.1f} GiB are free on {device}: lower "
                      "--hidden-size, --n-layer, --batch-size or --context-length")


def _free_bytes(device) -> int | None:
    """Memory free for a training run on `device` (None where it cannot be read)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        return int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None


def build_model(cfg: TrainConfig, ds, env_id: str | None, stats_ds=None):
    """The registered model `cfg.model` names, with the policy fields the data gives; the state
    statistics from `stats_ds` (default: ds)."""
    from decision_transformer.models.policy import build, lookup
    image = ds.observations.ndim > 2
    mean, std = (None, None) if image else (stats_ds or ds).state_stats()   # frames are not normalised
    rets = ds.episode_returns()
    policy = dict(
        state_dim=int(np.prod(ds.state_shape)),
        act_dim=int(ds.action_space.n) if ds.discrete and ds.action_space is not None
        else (int(ds.actions.max()) + 1 if ds.discrete else ds.actions.shape[1]),
        max_ep_len=cfg.max_ep_len, action_type="discrete" if ds.discrete else "continuous",
        state_type="image" if image else "vector", state_shape=list(ds.state_shape) if image else None,
        context_length=cfg.context_length, return_scale=cfg.return_scale,
        state_mean=None if image else [float(x) for x in mean], state_std=None if image else [float(x) for x in std],
        env_id=env_id, target_returns=list(cfg.target_returns),
        extra={"dataset": cfg.dataset, "dataset_best_return": float(rets.max()), "dataset_mean_return": float(rets.mean()),
               "dataset_worst_return": float(rets.min()),
               "ref_min_score": ds.metadata.get("ref_min_score"), "ref_max_score": ds.metadata.get("ref_max_score"),
               "top_pct": cfg.top_pct, "top_unit": cfg.top_unit})
    model = build(lookup(cfg.model)[0].from_training(cfg, **policy))
    if cfg.init == "official" and hasattr(model, "init_official"):
        model.init_official()
    return model


def action_losses(model, batch: dict, forward=None) -> torch.Tensor:
    """The model's per-position losses on a batch of windows (the sampler's dict): its forward (or
    `forward`: DDP's, compiled, under autocast), at the positions it counts (BC: the last step
    only), by its own loss. Training and fine-tuning both take their loss here."""
    pred = (forward or model.forward_actions)(*(batch[k] for k in WINDOW_KEYS)).float()   # (B, K, act_dim)
    mask = model.loss_positions(batch["attention_mask"])
    return model.action_loss(pred[mask], batch["actions"][mask])


WINDOW_KEYS = ("states", "actions", "returns_to_go", "timesteps", "attention_mask")


def optimizer_tensors(osd: dict) -> dict:
    """An optimiser's state_dict()["state"] as flat tensors for safetensors: opt.<param id>.<name>."""
    return {f"opt.{pid}.{k}": v.cpu() if torch.is_tensor(v) else torch.tensor(v)
            for pid, st in osd["state"].items() for k, v in st.items()}


def load_optimizer(opt, tensors: dict, param_groups: list) -> None:
    """The inverse of optimizer_tensors (the other keys of `tensors` are ignored)."""
    state: dict = {}
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, pid, name = k.split(".", 2)
            state.setdefault(int(pid), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": param_groups})


def check_env_fits(ds, env_id: str, source: str, named_by_data: bool = False) -> None:
    """The dataset's observations and actions are the env's: one clear line before training if not.
    named_by_data: the env is the one the dataset's metadata names (not --env): skipped if this
    machine cannot make it, and the message says where the id came from."""
    from decision_transformer.envs import make_env
    try:
        env = make_env(env_id)
    except DTError:
        if named_by_data:
            return
        raise
    try:
        _check_spaces(ds, env, env_id, source)
    except DTError as e:
        if named_by_data:
            raise DTError(f"{e} (the env its metadata names; pass --env to train for another)") from None
        raise


def _check_spaces(ds, env, env_id: str, source: str) -> None:
    space, aspace = env.observation_space, env.action_space
    env.close()
    if tuple(space.shape) != tuple(ds.state_shape):
        raise DTError(f"dataset {source} has observations {tuple(ds.state_shape)} but {env_id} has {tuple(space.shape)}"
                      + (f": the dataset was collected on {ds.metadata['env_id']}" if ds.metadata.get("env_id") else ""))
    if ds.discrete != hasattr(aspace, "n") or (not ds.discrete and tuple(aspace.shape) != tuple(ds.actions.shape[1:])):
        have = "discrete" if ds.discrete else f"{ds.actions.shape[1]}-dimensional"
        want = f"{aspace.n} discrete" if hasattr(aspace, "n") else f"{aspace.shape[0]}-dimensional"
        raise DTError(f"dataset {source} has {have} actions but {env_id} takes {want} actions")


class Trainer:
    def __init__(self, cfg: TrainConfig, resume: bool | str = False, progress: bool = True, log=print):
        """resume: False (a new run), True (continue RUN), or "auto" (continue if RUN has a checkpoint,
        decided under the run's lock)."""
        from decision_transformer.data.datasets import load_dataset
        from decision_transformer.data.sampler import WindowSampler
        self.cfg, self.progress, self.log = cfg, progress, log
        self.run = Path(cfg.output)
        self.rundir = RunDir(self.run)
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        self.device = resolve_device(cfg.device)          # an unavailable device fails before anything is written
        from decision_transformer.training.distributed import Dist
        self.dist = Dist(self.device)                      # torchrun: this rank's place (one process: world 1)
        self.device = self.dist.device
        if cfg.batch_size % self.dist.world:
            raise DTError(f"--batch-size {cfg.batch_size} is not divisible by the {self.dist.world} processes: "
                          "each takes an equal share of the global batch")
        self.autocast = lambda: autocast(self.device, cfg.precision)
        self.autocast()                                     # made, not entered: checks the precision suits the device
        if resume is False and self.rundir.has_checkpoint():
            raise DTError(f"{self.run} already holds a run: pass --resume {self.run} to continue it, or another --output")
        ds = load_dataset(cfg.dataset)                  # inputs first: a bad one writes nothing
        env_id = cfg.env_id or ds.metadata.get("env_id")
        if cfg.env_id:
            check_env_fits(ds, cfg.env_id, cfg.dataset)
        elif env_id:                                    # the env the dataset names, if this machine has it
            check_env_fits(ds, env_id, cfg.dataset, named_by_data=True)
        _check_memory(cfg, ds, env_id, self.device)    # before the run directory exists
        if self.dist.main:
            resume = self.rundir.open(resume, f"dt train --output {self.run}")   # one writer per run directory
        resume = self.dist.broadcast(bool(resume))         # ranks > 0 never write to the run directory
        full, ds = ds, top_episodes(ds, cfg.top_pct, cfg.top_unit)
        self.ds, self.env_id = ds, env_id
        torch.manual_seed(cfg.seed)
        # %BC as the paper: state statistics from all the data (suite v0's campaign: from the subset)
        self.model = build_model(cfg, ds, env_id, stats_ds=full if cfg.top_unit == "timesteps" else ds).to(self.device)
        if self.dist.main and not resume:
            for warning in self.model.data_warnings(full):
                self.log(f"warning: {cfg.dataset}: {warning}")
        self.ema = None              # an exponential moving average of the weights (--ema-decay), torch's own
        if cfg.ema_decay:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
            self.ema = AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay))
        self.forward_actions = self._training_forward()
        self.scaler = torch.amp.GradScaler("cuda") if cfg.precision == "fp16" else None
        mc = self.model.config
        self.sampler = WindowSampler(ds, K=cfg.context_length, batch_size=cfg.batch_size // self.dist.world,
                                     scale=cfg.return_scale, max_ep_len=cfg.max_ep_len, seed=cfg.seed,
                                     state_mean=mc.state_mean, state_std=mc.state_std,
                                     normalize=mc.state_type == "vector", rank=self.dist.rank,
                                     anchor=self.model.window_anchor)
        self.opt = make_optimizer(cfg.optimizer, self.model.param_groups(), cfg.lr, cfg.weight_decay, cfg.betas)
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda s: min(1.0, (s + 1) / max(1, cfg.warmup_steps)))
        self.step = 0
        try:
            if resume:
                self._restore()
            elif self.dist.main:
                self.rundir.write_config(asdict(cfg))
            if self.dist.main:
                machine = describe_machine(self.device)
                if self.dist.world > 1:
                    machine["processes"] = self.dist.world
                self.rundir.log_session(self.step, machine)
        except BaseException:                   # refused or failed: the run directory is free again
            self.rundir.close()
            raise

    def close(self) -> None:
        """Release the run directory's lock (also released when the process dies)."""
        self.rundir.close()
        if self.dist.on:                # the DDP wrapper holds the process group: drop it, so leaving the group
            self.forward_actions = None     # stops its threads while the interpreter is alive
            gc.collect()
        self.dist.close()

    # -- checkpoints --------------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        from decision_transformer.models.checkpoint import (
            save_tensors,
            write_checkpoint_files,
        )
        osd = self.opt.state_dict()
        mine = {"torch_rng": torch.get_rng_state(), "sampler": self.sampler.state_dict(),
                "cuda_rng": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None}
        ranks = self.dist.gather(mine)                      # every rank's RNG states, for an exact resume
        if not self.dist.main:
            return self.rundir.last
        tensors = {"torch_rng": ranks[0]["torch_rng"]}
        if ranks[0]["cuda_rng"] is not None:               # dropout on CUDA draws from the CUDA generator
            tensors["cuda_rng"] = ranks[0]["cuda_rng"]
        for r in range(1, len(ranks)):
            tensors[f"rank{r}.torch_rng"] = ranks[r]["torch_rng"]
            if ranks[r]["cuda_rng"] is not None:
                tensors[f"rank{r}.cuda_rng"] = ranks[r]["cuda_rng"]
        tensors.update(optimizer_tensors(osd))
        meta = {"step": self.step, "param_groups": osd["param_groups"], "sched": self.sched.state_dict(),
                "sampler": ranks[0]["sampler"]}
        if self.dist.on:
            meta.update(world=self.dist.world, rank_samplers=[r["sampler"] for r in ranks])

        if self.ema is not None:
            meta["ema_n_averaged"] = int(self.ema.n_averaged)

        def write(tmp: Path):
            write_checkpoint_files(self.model, tmp)
            if self.ema is not None:                        # a checkpoint of its own: dt eval CKPT/ema
                (tmp / EMA_DIR).mkdir()
                write_checkpoint_files(self.ema.module, tmp / EMA_DIR)
            save_tensors(tensors, tmp / "trainer.safetensors")
            self.rundir.write_state(tmp, meta)           # last: the hashes of the files above
        return self.rundir.save_checkpoint(self.step, write)

    def _training_forward(self):
        """The forward the loss is taken on: the model's, wrapped in DDP under torchrun, compiled
        with --compile."""
        cfg, fwd = self.cfg, self.model.forward_actions
        if self.dist.on:
            from torch.nn.parallel import DistributedDataParallel as DDP

            from decision_transformer.training.distributed import FitActions
            # unused by the action loss: the state/return heads, wte; DDP must not wait for them
            fwd = DDP(FitActions(self.model), find_unused_parameters=True,
                      device_ids=[self.device.index] if self.device.type == "cuda" else None)
            torch.manual_seed(cfg.seed * 1_000_003 + self.dist.rank)   # per-rank dropout (rank 0 reseeded too)
        return torch.compile(fwd) if cfg.compile else fwd

    def _restore(self):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        from decision_transformer.models.checkpoint import (
            load_state_dict_strict,
            read_weights,
        )
        saved = None
        if self.dist.main:                      # rank 0 checks the rule and clears debris, then the others read
            defaults = {f.name: field_default(f) for f in fields(TrainConfig)}    # options added since the run began
            saved = self.rundir.check_resume(asdict(self.cfg), defaults)          # the resume rule, in one place
            ck = self.rundir.last_checkpoint()
        self.dist.barrier()
        if not self.dist.main:
            ck = self.rundir.last.resolve()
        template = {"param_groups": self.opt.state_dict()["param_groups"], "sched": self.sched.state_dict(),
                    "sampler": self.sampler.state_dict(), **({"ema_n_averaged": 0} if self.ema is not None else {})}
        meta = self.rundir.read_state(ck, template)        # every file of the checkpoint, checked
        try:
            load_state_dict_strict(self.model, read_weights(ck), where=str(ck))
            t = load_file(str(ck / "trainer.safetensors"))
        except (OSError, ValueError, KeyError, TypeError, DTError, SafetensorError) as e:
            raise self.rundir.damaged(f"{ck} cannot be resumed from ({e})", before=int(ck.name)) from None
        if self.cfg.steps < int(meta["step"]):             # before anything is written
            raise DTError(f"--steps {self.cfg.steps} is below the run's last checkpoint (step {meta['step']}): a "
                          f"resumed run only goes forward; pass --steps above {meta['step']}, or leave it out")
        world = int(meta.get("world", 1))
        if world != self.dist.world:
            raise DTError(f"{self.run} was trained with {world} process(es): resume it with the same number "
                          f"({'torchrun --nproc-per-node ' + str(world) if world > 1 else 'plain dt train'}), "
                          "so every rank's sampler continues its own stream")
        load_optimizer(self.opt, t, meta["param_groups"])
        self.sched.load_state_dict(meta["sched"])
        if self.ema is not None:
            if not (ck / EMA_DIR).is_dir():
                raise DTError(f"{ck} has no {EMA_DIR}/ weights: the run was started without --ema-decay")
            load_state_dict_strict(self.ema.module, read_weights(ck / EMA_DIR), where=str(ck / EMA_DIR))
            self.ema.n_averaged.fill_(int(meta["ema_n_averaged"]))
        r = self.dist.rank
        pre = f"rank{r}." if r else ""
        self.sampler.load_state_dict(meta["rank_samplers"][r] if r else meta["sampler"])
        if self.sampler.anchor != self.model.window_anchor and self.dist.main:   # a BC run begun on start-anchored windows
            self.log(f"note: {self.run} began on {self.sampler.anchor}-anchored windows and continues on them, so "
                     f"the resumed run equals the uninterrupted one; this version trains {self.model.config.architecture} "
                     f"on {self.model.window_anchor}-anchored windows: train it again with a new --output to get those")
        torch.set_rng_state(t[pre + "torch_rng"])
        if pre + "cuda_rng" in t and self.device.type == "cuda":
            torch.cuda.set_rng_state(t[pre + "cuda_rng"], self.device)
        self.step = int(meta["step"])
        if self.dist.main:
            self.rundir.truncate_metrics(self.step, recorded=meta.get("metrics"))
            if saved != asdict(self.cfg):                              # new --steps, or a moved run
                self.rundir.write_config(asdict(self.cfg))
        self.log(f"resumed {self.run} at step {self.step}")

    # -- the loop -----------------------------------------------------------------------------
    def loss_on(self, batch) -> torch.Tensor:
        if self.device.type != "cpu":                       # the dataset stays on the host: batches move
            batch = {k: v.pin_memory().to(self.device, non_blocking=True) if self.device.type == "cuda"
                     else v.to(self.device) for k, v in batch.items()}
        def forward(*x):
            with self.autocast():
                return self.forward_actions(*x)                            # DDP's or compiled, under autocast
        err = action_losses(self.model, batch, forward)
        if not self.dist.on:
            return err.mean()
        # N ranks: the sum over this rank's positions / the global count, times N (DDP averages
        # the N gradients): the gradient of the mean over the global batch, as one process computes it
        count = self.dist.sum_(torch.tensor(float(err.numel()), device=err.device))
        return err.sum() * self.dist.world / count

    def train(self) -> dict:
        """Train to cfg.steps; an I/O failure (a full disk, lost permissions) is one line that says
        how to continue, and leaves the run resumable from its last checkpoint."""
        try:
            return self._train()
        except OSError as e:
            raise DTError(self._io_failure(e)) from None
        finally:
            self.close()

    def _train(self) -> dict:
        from tqdm import tqdm
        cfg = self.cfg
        self.model.train()
        main = self.dist.main                               # only rank 0 writes (metrics, TensorBoard, checkpoints)
        mf, w, tb = self._open_logs() if main else (None, None, None)
        bar = tqdm(total=cfg.steps, initial=self.step, disable=not (self.progress and main), dynamic_ncols=True,
                   mininterval=1.0, desc="train")
        losses, t_last, s_last, last_loss = [], time.time(), self.step, float("nan")
        saved = self.step                                   # the step of the newest checkpoint (0: none yet)
        with StopRequests(enabled=not self.dist.on) as stop:   # SIGTERM / Ctrl-C: a checkpoint, then stop
            try:
                while self.step < cfg.steps:
                    batch = self.sampler.sample()
                    loss = self.loss_on(batch)
                    lval = loss.detach()
                    if self.dist.on:                            # the global batch's loss, the same on every rank
                        lval = self.dist.sum_(lval.clone()) / self.dist.world
                    if not torch.isfinite(lval):
                        raise DTError(f"loss became {lval.item()} at step {self.step}: lower --lr or check the dataset")
                    self._update(loss)
                    self.step += 1
                    losses.append(lval.item())
                    bar.update(1)
                    if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                        now = time.time()
                        sps = (self.step - s_last) / max(now - t_last, 1e-9)
                        last_loss = float(np.mean(losses))
                        lr = self.sched.get_last_lr()[0]
                        if main:
                            w.writerow([self.step, f"{last_loss:.6g}", f"{lr:.6g}", f"{sps:.2f}", "", "", ""])
                            mf.flush()
                        if tb:
                            tb.add_scalar("train/loss", last_loss, self.step)
                            tb.add_scalar("train/lr", lr, self.step)
                        bar.set_postfix_str(f"loss {last_loss:.4f}, {sps:.1f} steps/s", refresh=False)
                        losses, t_last, s_last = [], now, self.step
                    if cfg.eval_every and self.step % cfg.eval_every == 0 and main:
                        self._evaluate(w, tb)
                        mf.flush()
                    if self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps:
                        self.save_checkpoint()
                        saved = self.step
                    if stop.signum is not None:
                        if saved != self.step:
                            self.save_checkpoint()
                        stop.stop(f"at step {self.step:,} of {cfg.steps:,}, where {self.run} has its checkpoint",
                                  f"`dt train --resume {self.run}`")
            finally:
                bar.close()
                if tb:
                    tb.close()
                if mf:
                    mf.close()
        return {"step": self.step, "loss": last_loss, "checkpoint": str(self.rundir.last)}

    def _open_logs(self):
        """(metrics.csv file, its csv writer, a TensorBoard writer or None), appending after a resume."""
        new = not self.rundir.metrics.exists()
        mf = open(self.rundir.metrics, "a", newline="")
        w = csv.writer(mf)
        if new:
            w.writerow(METRICS_COLUMNS)
            mf.flush()                              # a run killed before its first row still has it
        try:
            from torch.utils.tensorboard import SummaryWriter
            tb = SummaryWriter(str(self.rundir.tb), purge_step=self.step + 1)
        except ImportError:
            tb = None
        return mf, w, tb

    def _update(self, loss) -> None:
        """One optimiser step on `loss`: gradients clipped to --grad-clip, the EMA and the schedule advanced."""
        self.opt.zero_grad(set_to_none=True)
        if self.scaler is not None:                 # fp16: scaled loss, unscaled before clipping
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.opt)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
            self.opt.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        self.sched.step()

    def _io_failure(self, e: OSError) -> str:
        what = f"{self.run}: {e.strerror or e} while training (step {self.step})"
        if self.rundir.has_checkpoint():
            last = int(self.rundir.last.resolve().name)
            return (f"{what}; the run is intact up to its last checkpoint (step {last}): fix it, then "
                    f"`dt train --resume {self.run}`")
        return f"{what}, before its first checkpoint; fix it, then run the same command again"

    def _evaluate(self, w, tb):
        from decision_transformer.evaluation.evaluate import evaluate
        if self.env_id is None:
            return
        self.model.eval()
        for tr in self.cfg.target_returns:
            res = evaluate(self.model, self.env_id, [tr], episodes=self.cfg.eval_episodes,
                           num_envs=min(self.cfg.eval_episodes, 10), seed=10_000)[0]
            w.writerow([self.step, "", "", "", tr, f"{res['return_mean']:.4g}", f"{res['return_std']:.4g}"])
            if tb:
                tb.add_scalar(f"eval/return@{tr:g}", res["return_mean"], self.step)
        self.model.train()


def train(cfg: TrainConfig, resume: bool | str = False, progress: bool = True, log=print) -> dict:
    return Trainer(cfg, resume=resume, progress=progress, log=log).train()
