"""`dt finetune`: online fine-tuning of an Online Decision Transformer (`--model odt` checkpoints),
after Zheng, Zhang and Grover (ICML 2022), written from the paper.

Each round:
1. exploration: `num_envs` episodes, one per vectorised env, with actions drawn from the policy
   (the exact Agent, sampled) at the exploration target, above the evaluation target;
2. the replay buffer (whole trajectories, seeded with the best offline ones by return) takes them,
   the oldest leaving first; returns-to-go come from the rewards a trajectory actually got
   (hindsight relabelling: the window sampler computes them from each episode's rewards);
3. `updates_per_round` gradient steps on windows from the buffer, the model's own loss (or,
   with `updates_per_env_step`, that many per env step the round collected: a policy that falls
   at once then costs no more updates per env step than one that walks).
Every `eval_every` env steps, the mean action is evaluated at the evaluation target; every
`checkpoint_every`, the run directory gets a checkpoint: weights, optimiser, schedule, the buffer
and the RNG state, so a killed run resumes to the same weights as an uninterrupted one. Round r's
env seeds and action draws derive from (seed, r), so a resumed round is the round it would have been.

The run directory is `dt train`'s: config.json, metrics.csv (return against env steps), tb/,
checkpoints/<env steps>/ with `last`; its checkpoints load, evaluate and export like any other.
"""

from __future__ import annotations

import csv
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
import numpy as np

from decision_transformer.errors import DTError
from decision_transformer.options import check, field_default, option, preset_names
from decision_transformer.training.interrupt import StopRequests
from decision_transformer.training.optim import OPTIMIZERS, make_optimizer
from decision_transformer.training.trainer import action_losses, load_optimizer, optimizer_tensors

PRESETS = Path(__file__).resolve().parent / "presets" / "finetune"   # `dt finetune --preset NAME`

FINETUNE_COLUMNS = ("env_steps", "round", "updates", "loss", "temperature", "explore_return_mean", "eval_return_mean",
                    "eval_return_std")


@dataclass(kw_only=True)
class FinetuneConfig:
    checkpoint: str | None = option(None, "an odt checkpoint (dt train --model odt), or its run directory (not with "
                                          "--resume: the run's own)", positional=True)
    env_id: str | None = option(None, "env id", flag="--env", default_text="the checkpoint's")
    output: str = option("runs/odt-finetune", "run directory: config, metrics, TensorBoard events, checkpoints")
    online_steps: int = option(200_000, "env steps collected online", range="[1, 100000000]")
    dataset: str | None = option(None, "offline data that seeds the replay buffer", default_text="the checkpoint's")
    buffer_size: int = option(1000, "trajectories in the replay buffer (oldest out)", range="[1, 1000000]")
    explore_return: float | None = option(None, "target return of exploration episodes",
                                          default_text="2 x the evaluation target")
    eval_return: float | None = option(None, "target return of evaluations", default_text="the checkpoint's first")
    num_envs: int = option(4, "exploration episodes per round, one per vectorised env", range="[1, 1024]")
    updates_per_round: int = option(300, "gradient steps after each round", range="[1, 1000000]")
    updates_per_env_step: float | None = option(None, "gradient steps per env step the round collected (at least "
                                                      "1), instead of --updates-per-round: bounds the cost when "
                                                      "exploration episodes are short", range="(0, 1000]",
                                                default_text="off")
    batch_size: int = option(64, "windows per gradient step", range="[1, 100000]")
    optimizer: str = option("adamw", "adamw, or lamb (the paper's; training/optim.py)", choices=OPTIMIZERS)
    lr: float = option(1e-4, "learning rate", range="(0, inf)")
    weight_decay: float = option(5e-4, "decoupled weight decay", range="[0, inf)")
    warmup_steps: int = option(1000, "linear learning-rate warm-up, in gradient steps", range="[0, inf)")
    grad_clip: float = option(0.25, "gradient-norm clip", range="(0, inf)")
    eval_context: int | None = option(None, "K of exploration and evaluation episodes (the paper: 5, training on "
                                            "windows of the checkpoint's K)", default_text="the checkpoint's K",
                                      range="[1, 4096]")
    eval_every: int = option(10_000, "env steps between evaluations (and metrics rows)", range="[1, inf)")
    eval_episodes: int = option(10, "episodes per evaluation", range="[1, 100000]")
    checkpoint_every: int = option(10_000, "env steps between checkpoints", range="[1, inf)")
    seed: int = option(0, "seed of exploration, sampling and dropout", range="[0, 2147483647]")
    num_threads: int = option(0, "torch threads (0: torch's default)", range="[0, 1024]")

    def validate(self) -> None:
        check(self)
        if not self.checkpoint:
            raise DTError("give the checkpoint to fine-tune: dt finetune CHECKPOINT --env ENV --output RUN")


@dataclass(kw_only=True)
class FinetuneOptions(FinetuneConfig):
    """`dt finetune`'s flags: the config's, and the command's own."""
    preset: str | None = option(None, f"a preset of the options above: {', '.join(preset_names(PRESETS))}, or a "
                                      ".json file; flags given here override it", default_text="none")
    resume: str | None = option(None, "continue the run in RUN_DIR exactly where its last checkpoint left it (only "
                                      "--online-steps, and --num-threads, may be given with it)", metavar="RUN_DIR")
    quiet: bool = option(False, "no progress bar")
    given: dict = field(default_factory=dict)      # the FinetuneConfig flags given on the command line

    def validate(self) -> None:
        if self.resume is None:
            super().validate()
        else:
            check(self)


class Finetuner:
    def __init__(self, cfg: FinetuneConfig, resume: bool = False, progress: bool = True, log=print):
        from decision_transformer.data.datasets import load_dataset
        from decision_transformer.models.checkpoint import from_pretrained
        from decision_transformer.devices import describe_machine
        from decision_transformer.rundir import RunDir
        cfg.validate()
        self.cfg, self.progress, self.log = cfg, progress, log
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        self.rundir = RunDir(cfg.output)
        model = from_pretrained(cfg.checkpoint)
        if not hasattr(model, "sample_last_action"):
            raise DTError(f"{cfg.checkpoint} is a {model.config.architecture!r} model with a deterministic head: online "
                          "fine-tuning explores with a stochastic policy; train one with `dt train --model odt`")
        mc = model.config
        self.env_id = cfg.env_id or mc.env_id
        if self.env_id is None:
            raise DTError("the checkpoint does not name its env: pass --env ENV_ID")
        self._check_env(mc)
        targets = mc.target_returns or []
        self.eval_return = cfg.eval_return if cfg.eval_return is not None else (targets[0] if targets else None)
        if self.eval_return is None:
            raise DTError("no evaluation target: pass --eval-return R (the checkpoint has no target returns)")
        self.explore_return = cfg.explore_return if cfg.explore_return is not None else 2 * self.eval_return
        source = cfg.dataset or (mc.extra or {}).get("dataset")
        if not source:
            raise DTError("the checkpoint does not name its dataset: pass --dataset (the offline data that seeds "
                          "the replay buffer)")
        ds = load_dataset(source)
        if ds.num_episodes < 1 or tuple(ds.state_shape) != (mc.state_dim,):
            raise DTError(f"{source}: its observations {tuple(ds.state_shape)} are not the checkpoint's ({mc.state_dim},)")
        if not resume:
            for warning in model.data_warnings(ds):
                log(f"warning: {source}: {warning}")
        order = np.argsort(-ds.episode_returns(), kind="stable")[:cfg.buffer_size]
        self.buffer = [ds.episode(int(i)) for i in sorted(order, key=lambda i: ds.episode_returns()[i])]  # worst first out
        held = sum(len(e) for e in self.buffer)
        if held < max(cfg.batch_size, mc.context_length):
            raise DTError(f"the replay buffer holds {held} steps, fewer than a batch (--batch-size {cfg.batch_size}) "
                          f"or a window (K = {mc.context_length}): pass a larger --buffer-size, a smaller "
                          "--batch-size, or other --dataset")
        self.model = model.train()
        self.opt = make_optimizer(cfg.optimizer, model.param_groups(), cfg.lr, cfg.weight_decay)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda s: min(1.0, (s + 1) / max(1, cfg.warmup_steps)))
        self.env_steps = self.round = self.updates = 0
        torch.manual_seed(cfg.seed)
        self.rundir.open(resume, f"dt finetune --output {cfg.output}")
        try:
            if resume:
                self._restore()
            else:
                self.rundir.write_config({**asdict(cfg), "env_id": self.env_id, "eval_return": self.eval_return,
                                          "explore_return": self.explore_return})
            self.rundir.log_session(self.env_steps, describe_machine(torch.device("cpu")))
        except BaseException:
            self.rundir.close()
            raise

    def _check_env(self, mc) -> None:
        from decision_transformer.envs import make_env
        env = make_env(self.env_id)
        obs, act = env.observation_space, env.action_space
        env.close()
        if int(np.prod(obs.shape)) != mc.state_dim or hasattr(act, "n") or int(np.prod(act.shape)) != mc.act_dim:
            raise DTError(f"{self.env_id} has observations {tuple(obs.shape)} and actions {act}, but the checkpoint was "
                          f"trained on ({mc.state_dim},) observations and {mc.act_dim}-dimensional actions: pass the "
                          "env it was trained on (--env)")

    # -- one round ------------------------------------------------------------------------------
    def explore(self) -> list:
        """num_envs episodes with sampled actions at the exploration target (seeds from (seed, round))."""
        from decision_transformer.data.datasets import Episode
        from decision_transformer.envs import make_env
        from decision_transformer.inference.agent import Agent
        N, base = self.cfg.num_envs, self.cfg.seed * 1_000_003 + self.round * 7919
        envs = [make_env(self.env_id) for _ in range(N)]
        agent = Agent(self.model.eval(), num_envs=N, target_return=self.explore_return, deterministic=False, seed=base,
                      context_length=self.cfg.eval_context)
        cols = [{k: [] for k in ("obs", "act", "rew", "term", "trunc")} for _ in range(N)]
        obs = np.stack([e.reset(seed=base + i)[0] for i, e in enumerate(envs)]).astype(np.float32)
        live = np.ones(N, bool)
        while live.any():
            acts = agent.act(obs)
            rews, dones = np.zeros(N), np.zeros(N, bool)
            for i in np.flatnonzero(live):
                o, r, term, trunc, _ = envs[i].step(acts[i])
                c = cols[i]
                c["obs"].append(obs[i].copy()); c["act"].append(acts[i].copy()); c["rew"].append(r)
                c["term"].append(term); c["trunc"].append(trunc)
                rews[i], obs[i] = r, o
                if term or trunc:
                    live[i] = False
            agent.observe(rews, dones)
        for e in envs:
            e.close()
        self.model.train()
        return [Episode(np.asarray(c["obs"], np.float32), np.asarray(c["act"], np.float32),
                        np.asarray(c["rew"], np.float64), np.asarray(c["term"], bool), np.asarray(c["trunc"], bool))
                for c in cols]

    def round_updates(self, steps: int) -> int:
        """Gradient steps after a round that collected `steps` env steps."""
        x = self.cfg.updates_per_env_step
        return self.cfg.updates_per_round if x is None else max(1, round(x * steps))

    def update(self, n: int) -> float:
        """n gradient steps on windows of the buffer: the mean loss."""
        from decision_transformer.data.datasets import TrajectoryDataset
        from decision_transformer.data.sampler import WindowSampler
        mc, cfg = self.model.config, self.cfg
        ds = TrajectoryDataset.from_episodes(self.buffer, "the replay buffer")
        sampler = WindowSampler(ds, K=mc.context_length, batch_size=cfg.batch_size, scale=mc.return_scale or 1.0,
                                max_ep_len=mc.max_ep_len, seed=cfg.seed * 1_000_003 + self.round,
                                state_mean=mc.state_mean, state_std=mc.state_std, anchor=self.model.window_anchor)
        losses = []
        for _ in range(n):
            loss = action_losses(self.model, sampler.sample()).mean()
            if not torch.isfinite(loss):
                raise DTError(f"loss became {loss.item()} at update {self.updates}: lower --lr")
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            self.opt.step()
            self.sched.step()
            self.updates += 1
            losses.append(loss.item())
        return float(np.mean(losses))

    def evaluate(self) -> tuple[float, float]:
        from decision_transformer.evaluation.evaluate import evaluate
        r = evaluate(self.model.eval(), self.env_id, [self.eval_return], episodes=self.cfg.eval_episodes,
                     num_envs=min(self.cfg.eval_episodes, 10), seed=10_000 + self.round, threads=1,
                     context_length=self.cfg.eval_context)[0]
        self.model.train()
        return r["return_mean"], r["return_std"]

    # -- the loop ---------------------------------------------------------------------------------
    def run(self) -> dict:
        from tqdm import tqdm
        cfg = self.cfg
        new = not self.rundir.metrics.exists()
        mf = open(self.rundir.metrics, "a", newline="")
        w = csv.writer(mf)
        if new:
            w.writerow(FINETUNE_COLUMNS)
            mf.flush()                              # a run killed before its first row still has it
        try:
            from torch.utils.tensorboard import SummaryWriter
            tb = SummaryWriter(str(self.rundir.tb), purge_step=self.env_steps + 1)
        except ImportError:
            tb = None
        bar = tqdm(total=cfg.online_steps, initial=self.env_steps, disable=not self.progress, unit="env step",
                   dynamic_ncols=True, desc="finetune")
        last = {}
        with StopRequests() as stop:                # SIGTERM / Ctrl-C: a checkpoint after this round, then stop
            try:
                while self.env_steps < cfg.online_steps:
                    t0 = time.time()
                    eps = self.explore()
                    self.buffer = (self.buffer + eps)[-cfg.buffer_size:]
                    steps = sum(len(e) for e in eps)
                    t1 = time.time()
                    n = self.round_updates(steps)
                    loss = self.update(n)
                    t2 = time.time()
                    before, self.env_steps, self.round = self.env_steps, self.env_steps + steps, self.round + 1
                    bar.update(steps)
                    bar.set_postfix_str(f"{steps / max(t1 - t0, 1e-9):.0f} env steps/s, "
                                        f"{n / max(t2 - t1, 1e-9):.1f} updates/s, loss {loss:.3f}",
                                        refresh=False)
                    crossed = lambda every: self.env_steps // every > before // every or self.env_steps >= cfg.online_steps  # noqa: E731
                    explore_mean = float(np.mean([e.episode_return for e in eps]))
                    if crossed(cfg.eval_every):
                        m, s = self.evaluate()
                        last = {"env_steps": self.env_steps, "eval_return_mean": m, "eval_return_std": s}
                        w.writerow([self.env_steps, self.round, self.updates, f"{loss:.6g}",
                                    f"{self.model.log_temperature.exp().item():.6g}", f"{explore_mean:.6g}", f"{m:.6g}",
                                    f"{s:.6g}"])
                        mf.flush()
                        if tb:
                            for k, v in (("eval/return", m), ("explore/return", explore_mean), ("train/loss", loss),
                                         ("train/temperature", self.model.log_temperature.exp().item())):
                                tb.add_scalar(k, v, self.env_steps)
                    if crossed(cfg.checkpoint_every):
                        self.save()
                    if stop.signum is not None:
                        if not crossed(cfg.checkpoint_every):
                            self.save()
                        stop.stop(f"after round {self.round} ({self.env_steps:,} env steps of {cfg.online_steps:,}), "
                                  f"where {cfg.output} has its checkpoint", f"`dt finetune --resume {cfg.output}`")
            finally:
                bar.close()
                mf.close()
                if tb:
                    tb.close()
                self.rundir.close()
        return {**last, "checkpoint": str(self.rundir.last)}

    # -- checkpoints --------------------------------------------------------------------------
    def save(self) -> Path:
        from safetensors.numpy import save_file as save_np
        from safetensors.torch import save_file

        from decision_transformer.models.checkpoint import save_pretrained

        def write(tmp: Path):
            save_pretrained(self.model, tmp)
            save_file({**optimizer_tensors(self.opt.state_dict()), "torch_rng": torch.get_rng_state()},
                      str(tmp / "trainer.safetensors"))
            lens = np.array([len(e) for e in self.buffer], np.int64)
            cat = lambda k: np.concatenate([getattr(e, k) for e in self.buffer])  # noqa: E731
            save_np({"lengths": lens, "observations": cat("observations").astype(np.float32),
                     "actions": cat("actions").astype(np.float32), "rewards": cat("rewards").astype(np.float64),
                     "terminations": cat("terminations").astype(np.uint8),
                     "truncations": cat("truncations").astype(np.uint8)}, str(tmp / "buffer.safetensors"))
            self.rundir.write_state(tmp, {               # last: the hashes of the files above
                "step": self.env_steps, "round": self.round, "updates": self.updates,
                "param_groups": self.opt.state_dict()["param_groups"], "sched": self.sched.state_dict()})
        return self.rundir.save_checkpoint(self.env_steps, write)

    def _restore(self) -> None:
        from safetensors import SafetensorError
        from safetensors.numpy import load_file as load_np
        from safetensors.torch import load_file

        from decision_transformer.data.datasets import Episode
        from decision_transformer.models.checkpoint import load_state_dict_strict, read_weights
        saved = self.rundir.read_config()
        now = {**asdict(self.cfg), "env_id": self.env_id, "eval_return": self.eval_return,
               "explore_return": self.explore_return}
        defaults = {f.name: field_default(f) for f in fields(FinetuneConfig)}
        bad = sorted(k for k in now if k not in ("online_steps", "output", "num_threads", "checkpoint")
                     and saved.get(k, defaults.get(k)) != now[k])
        if bad:
            raise DTError(f"--resume with different options ({', '.join(bad)}): a resumed run keeps its options; only "
                          "--online-steps may change")
        ck = self.rundir.last_checkpoint()
        meta = self.rundir.read_state(ck, {"round": 0, "updates": 0, "param_groups": self.opt.state_dict()["param_groups"],
                                           "sched": self.sched.state_dict()})   # every file of the checkpoint, checked
        try:
            load_state_dict_strict(self.model, read_weights(ck), where=str(ck))
            t = load_file(str(ck / "trainer.safetensors"))
            b = load_np(str(ck / "buffer.safetensors"))
        except (OSError, ValueError, KeyError, DTError, SafetensorError) as e:
            raise self.rundir.damaged(f"{ck} cannot be resumed from ({e})", before=int(ck.name)) from None
        load_optimizer(self.opt, t, meta["param_groups"])
        self.sched.load_state_dict(meta["sched"])
        torch.set_rng_state(t["torch_rng"])
        self.env_steps, self.round, self.updates = int(meta["step"]), int(meta["round"]), int(meta["updates"])
        ends = np.cumsum(b["lengths"])
        self.buffer = [Episode(*(b[k][a:z] for k in ("observations", "actions", "rewards")),
                               b["terminations"][a:z].astype(bool), b["truncations"][a:z].astype(bool))
                       for a, z in zip(np.concatenate([[0], ends[:-1]]), ends)]
        self.rundir.truncate_metrics(self.env_steps, recorded=meta.get("metrics"))
        if saved.get("online_steps") != self.cfg.online_steps:
            self.rundir.write_config({**saved, "online_steps": self.cfg.online_steps})
        self.log(f"resumed {self.rundir.path} at {self.env_steps} env steps (round {self.round})")


def finetune(cfg: FinetuneConfig, resume: bool = False, progress: bool = True, log=print) -> dict:
    return Finetuner(cfg, resume=resume, progress=progress, log=log).run()
