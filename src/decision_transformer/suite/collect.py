"""`dt collect`: run a policy in vectorised gymnasium envs and write a Minari dataset.

POLICY is `random`, a suite actor (`.safetensors`), a Stable-Baselines3 / RL-Zoo `.zip`
(read without unpickling, see policies.from_sb3_zip), or a DT checkpoint directory of ours
(acting through the batched Agent at `target_return`). Optional noise: `gaussian:SIGMA` (added
to continuous actions, in units of half the action range, then clipped) or `epsilon:EPS`
(a uniformly random action with probability EPS), or `sample`: actions drawn from the policy's own
distribution (a SAC actor's squashed Gaussian: the v1 suite's recipe, D4RL's).

Only finished episodes are written, with Minari's own writer (`create_dataset_from_buffers`),
into a temporary directory beside the destination that is renamed into place when complete:
Ctrl-C writes the episodes finished so far, a crash writes nothing, never half a dataset.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from decision_transformer.errors import DTError, OptionError
from decision_transformer.fileio import check_writable, why


def parse_noise(spec: str | None):
    if not spec:
        return None
    if spec == "sample":
        return "sample", None
    m = re.fullmatch(r"(gaussian|epsilon):([0-9.eE+-]+)", spec)
    try:
        v = float(m.group(2)) if m else None
    except ValueError:
        v = None
    if v is None or not 0 <= v <= (1 if m.group(1) == "epsilon" else 10):
        raise OptionError(f"bad {{noise}} {spec!r}: use gaussian:SIGMA (e.g. gaussian:0.1), epsilon:EPS (0-1) or sample "
                          "(the policy's own stochastic actions)")
    return m.group(1), float(m.group(2))


class _Policy:
    """Batched policy: __call__(obs (N, ...)) -> actions (N, ...); observe(rewards, dones)."""

    def __init__(self, spec: str, env_id: str, envs, target_return=None, seed=0, device="auto"):
        self.name, self.agent, self.fn = spec, None, None
        self.space = envs.single_action_space
        self.rng = np.random.default_rng(seed)
        p = Path(spec)
        if spec == "random":
            self.fn = lambda obs: self._random(len(obs))
        elif p.suffix == ".safetensors":
            from decision_transformer.suite.policies import MLPActor
            self.fn = MLPActor.load(p)
        elif p.suffix == ".zip":
            from decision_transformer.suite.policies import from_sb3_zip
            if not p.is_file():
                raise DTError(f"{p}: no such policy file")
            self.fn = from_sb3_zip(p, env_id)
        elif p.is_dir():
            from decision_transformer.devices import resolve_device
            from decision_transformer.inference.agent import Agent
            from decision_transformer.models.checkpoint import from_pretrained
            model = from_pretrained(p).to(resolve_device(device))
            obs_dim = int(np.prod(envs.single_observation_space.shape))
            if model.config.state_type == "vector" and model.config.state_dim != obs_dim:
                raise DTError(f"{p}: checkpoint state_dim {model.config.state_dim} does not match {env_id}'s "
                              f"observations ({obs_dim}): use a checkpoint trained on this env")
            self.agent = Agent(model, num_envs=envs.num_envs, target_return=target_return)
        else:
            raise DTError(f"policy {spec!r}: use 'random', a .safetensors actor, an SB3 .zip or a checkpoint directory")

    def _random(self, n):
        if hasattr(self.space, "n"):
            return self.rng.integers(0, self.space.n, size=n)
        return self.rng.uniform(self.space.low, self.space.high, size=(n, *self.space.shape)).astype(self.space.dtype)

    def __call__(self, obs):
        return self.agent.act(obs) if self.agent is not None else self.fn(obs)

    def can_sample(self) -> bool:
        return getattr(self.fn, "stochastic", False)

    def sample(self, obs, rng):
        """Actions drawn from a stochastic actor (a SAC MLPActor)."""
        return self.fn.sample(obs, rng)

    def observe(self, rewards, dones):
        if self.agent is not None:
            self.agent.observe(rewards, dones)


def _dataset_id(output: str) -> tuple[str, Path]:
    """(minari dataset id, final directory) for an id (name-vN, namespace/name-vN) or a directory
    path: anything else, a plain relative name included."""
    from minari.storage import get_dataset_path
    if output.startswith((".", "/", "~")) or not re.search(r"-v\d+$", output):
        d = Path(output).expanduser().resolve()
        name = re.sub(r"[^\w]+", "_", d.name) or "dataset"
        return f"local/{name}-v0", d
    from minari.dataset.minari_dataset import parse_dataset_id
    try:
        if parse_dataset_id(output)[2] is None:
            raise ValueError
    except (ValueError, TypeError):                     # minari raises TypeError for ids without -vN
        raise DTError(f"bad output {output!r}: a Minari id like 'hopper/medium-v0' (namespace/name-vN) or a directory path")
    return output, Path(get_dataset_path(output))


def collect(env_id: str, policy: str, output: str, episodes: int | None = None, steps: int | None = None,
            num_envs: int = 8, seed: int = 0, noise: str | None = None, target_return: float | None = None,
            ref_min_score: float | None = None, ref_max_score: float | None = None,
            progress: bool = True, algorithm_name: str | None = None, overwrite: bool = False,
            device: str = "auto") -> Path:
    """Run `policy` and write the finished episodes as a Minari dataset at `output` (id or dir)."""
    if (ref_min_score is None) != (ref_max_score is None):
        raise OptionError("give both {ref_min_score} and {ref_max_score}, or neither")
    dataset_id, final = _dataset_id(output)
    if final.exists() and not overwrite:
        raise OptionError(f"{final} already exists: choose another {{output}} or pass {{overwrite}}")
    if final.exists() and not (final / "data" / "metadata.json").is_file():
        raise OptionError(f"{final} is not a Minari dataset: {{overwrite}} only replaces a dataset; choose another {{output}}")
    check_writable(final)                       # before the collection, not after it
    eps, interrupted = rollout_episodes(env_id, policy, episodes, steps, num_envs, seed, noise, target_return, progress,
                                        device=device)
    existed = final.exists()
    try:
        path = write_minari(dataset_id, final, eps, env_id, ref_min_score, ref_max_score,
                            algorithm_name or f"dt collect --policy {policy}" + (f" --noise {noise}" if noise else ""),
                            overwrite)
    except KeyboardInterrupt:                     # a (second) Ctrl-C while writing: say what happened
        what = (f"the dataset was complete and is at {final}" if final.exists() and not existed else
                f"nothing was written{' (the dataset already there is unchanged)' if existed else ''} to {final}")
        print(f"interrupted while writing the dataset: {what}"
              + (" (the first Ctrl-C had stopped the collection)" if interrupted else ""), file=sys.stderr)
        raise
    if interrupted:
        print(f"interrupted: wrote the {len(eps)} finished episodes to {path}")
        raise KeyboardInterrupt
    return path


def rollout_episodes(env_id: str, policy: str, episodes: int | None = None, steps: int | None = None,
                     num_envs: int = 8, seed: int = 0, noise: str | None = None, target_return: float | None = None,
                     progress: bool = True, device: str = "auto") -> tuple[list, bool]:
    """Finished episodes (data.Episode, final observation included), and whether Ctrl-C stopped it."""
    from tqdm import tqdm

    from decision_transformer.data.datasets import Episode

    if (episodes is None) == (steps is None):
        raise OptionError("give exactly one of {episodes} N or {steps} N")
    name, n = ("episodes", episodes) if episodes is not None else ("steps", steps)
    if n <= 0:
        raise OptionError(f"{{{name}}} must be >= 1, got {n}")
    if num_envs < 1:
        raise OptionError(f"{{num_envs}} must be >= 1, got {num_envs}")
    noise_kind = parse_noise(noise)
    from decision_transformer.envs import make_vec, stored_frame
    envs = make_vec(env_id, num_envs)
    keep = lambda o: stored_frame(env_id, o)          # noqa: E731 - Atari: the newest frame of the stack
    pol = _Policy(policy, env_id, envs, target_return, seed, device)
    if noise_kind and noise_kind[0] == "sample" and not pol.can_sample():
        envs.close()
        raise OptionError(f"{{noise}} sample draws from the policy's own distribution, but {policy!r} is deterministic: "
                          "use a SAC actor (.safetensors with a Gaussian head), or {noise} gaussian:SIGMA")
    space = envs.single_action_space
    rng = np.random.default_rng(seed + 1)
    obs, _ = envs.reset(seed=seed)
    cur = [([keep(o)], [], [], [], []) for o in obs]         # per env: observations (T+1), actions, rewards, terms, truncs
    done_eps: list[Episode] = []
    n_steps = 0
    goal = episodes or steps
    bar = tqdm(total=goal, unit="ep" if episodes else "step", disable=not progress, dynamic_ncols=True,
               mininterval=0.5, desc=f"{env_id} {Path(policy).name}")
    t0 = time.time()
    interrupted = False
    try:
        while (len(done_eps) if episodes else n_steps) < goal:
            if noise_kind and noise_kind[0] == "sample":
                act = pol.sample(obs, rng)
            else:
                act = np.asarray(pol(obs))
            if noise_kind and noise_kind[0] == "gaussian" and not hasattr(space, "n"):
                act = np.clip(act + rng.normal(size=act.shape) * noise_kind[1] * (space.high - space.low) / 2,
                              space.low, space.high).astype(space.dtype)
            elif noise_kind and noise_kind[0] == "epsilon":
                flip = rng.random(num_envs) < noise_kind[1]
                act = np.where(flip.reshape(-1, *[1] * (act.ndim - 1)), pol._random(num_envs), act)
            nobs, rew, term, trunc, info = envs.step(act)
            pol.observe(rew, term | trunc)
            for i in range(num_envs):
                o, a, r, te, tr = cur[i]
                a.append(act[i]); r.append(float(rew[i])); te.append(bool(term[i])); tr.append(bool(trunc[i]))
                if term[i] or trunc[i]:
                    o.append(keep(info["final_obs"][i]))
                    done_eps.append(Episode.from_steps(o, a, r, te, tr))
                    n_steps += len(r)
                    bar.update(min(1 if episodes else len(r), goal - bar.n))
                    cur[i] = ([keep(nobs[i])], [], [], [], [])
                else:
                    o.append(keep(nobs[i]))
            obs = nobs
            bar.set_postfix_str(f"{n_steps / max(time.time() - t0, 1e-9):.0f} steps/s, {len(done_eps)} episodes",
                                refresh=False)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
        envs.close()
    if episodes:
        done_eps = done_eps[:episodes]
    if not done_eps:
        raise DTError("no episode finished: nothing written" + (" (interrupted)" if interrupted else ""))
    return done_eps, interrupted


def _jsonable_spec(env_id: str):
    """The env's spec, its entry point as a 'module:Class' string when it was registered with the
    class itself (Minari stores the spec as JSON, which cannot hold a callable)."""
    import dataclasses

    import gymnasium as gym
    spec = gym.spec(env_id)
    if callable(spec.entry_point):
        ep = spec.entry_point
        spec = dataclasses.replace(spec, entry_point=f"{ep.__module__}:{ep.__qualname__}")
    return spec


def _spaces(env_id: str):
    """The dataset's observation and action spaces: the env's, with an Atari frame stack stored
    one frame per step (envs.stored_frame), and `frame_stack` for the metadata."""
    import gymnasium as gym

    from decision_transformer.envs import frame_stack, make_env
    env = make_env(env_id)
    osp, asp = env.observation_space, env.action_space
    env.close()
    fs = frame_stack(env_id)
    if fs > 1:
        osp = gym.spaces.Box(0, 255, (osp.shape[0] // fs, *osp.shape[1:]), np.uint8)
    return osp, asp, fs


def write_minari(dataset_id, final: Path, eps, env_id, ref_min, ref_max, algorithm_name, overwrite,
                 description: str | None = None) -> Path:
    """Write episodes (data.Episode with their final observation) with Minari's writer into a temp
    dir beside `final`, then rename it into place. Frames are stored as the env gives them,
    uint8 (Atari: one frame per step, `frame_stack` in the metadata)."""
    import minari
    from minari.data_collector.episode_buffer import EpisodeBuffer
    bufs = [EpisodeBuffer(id=k, observations=list(e.observations) + [e.final_observation], actions=list(e.actions),
                          rewards=e.rewards.tolist(), terminations=e.terminations.tolist(),
                          truncations=e.truncations.tolist()) for k, e in enumerate(eps)]
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp_root = Path(tempfile.mkdtemp(prefix=".collect-", dir=final.parent))
    old = os.environ.get("MINARI_DATASETS_PATH")
    try:
        os.environ["MINARI_DATASETS_PATH"] = str(tmp_root)
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # minari nags about author/permalink/description
            kw = dict(ref_min_score=ref_min, ref_max_score=ref_max) if ref_max is not None else {}
            osp, asp, fs = _spaces(env_id)

            def write():
                made = minari.create_dataset_from_buffers(
                    dataset_id, bufs, env=_jsonable_spec(env_id), observation_space=osp, action_space=asp,
                    algorithm_name=algorithm_name, author="decision-transformer",
                    description=description or algorithm_name, **kw)
                if fs > 1:
                    made.storage.update_metadata({"frame_stack": fs})
            _contained(write, final)
        from minari.storage import get_dataset_path
        written = Path(get_dataset_path(dataset_id))
        if final.exists() and overwrite:
            shutil.rmtree(final)
        os.replace(written, final)
    finally:
        if old is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = old
        shutil.rmtree(tmp_root, ignore_errors=True)
    return final


def _contained(write, final: Path) -> None:
    """Run `write` in a forked child where the OS allows: after a failed write (a full disk) h5py
    objects left behind crash the interpreter as they are freed (a segfault at exit), so the child
    leaves with os._exit and only its verdict comes back: an OSError (a full disk: ENOSPC, also
    when h5py words it as a ValueError), an interruption, or one line of what failed."""
    import json

    def verdict():
        try:
            write()
            return {"ok": True}
        except KeyboardInterrupt:
            return {"interrupted": True}
        except OSError as e:
            return {"errno": e.errno, "strerror": e.strerror or str(e), "filename": e.filename}
        except Exception as e:                           # h5py reports a full disk as a ValueError
            if "errno = 28" in str(e):
                return {"errno": errno.ENOSPC, "strerror": os.strerror(errno.ENOSPC), "filename": str(final.parent)}
            return {"error": why(e)}

    if not hasattr(os, "fork"):
        v = verdict()
    else:
        r, w = os.pipe()
        log = tempfile.TemporaryFile()                   # the child's stderr: h5py's noise stays out of sight
        pid = os.fork()
        if pid == 0:                                     # the child: write, report, leave without teardown
            os.close(r)
            os.dup2(log.fileno(), 2)
            # Python's own stderr too: where the caller has replaced sys.stderr (a notebook, a captured
            # CLI), h5py's "errno = 28" would go there instead, and the verdict be lost with it
            sys.stderr = open(2, "w", closefd=False)
            code = 1
            try:
                v = verdict()
                if v.get("ok"):
                    import gc
                    gc.collect()                         # a successful writer's files are closed and flushed
                os.write(w, json.dumps(v).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(w)
        try:
            with os.fdopen(r, "rb") as f:
                raw = f.read()
            _, status = os.waitpid(pid, 0)
        except KeyboardInterrupt:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            raise
        log.seek(0)
        noise = log.read().decode(errors="replace")
        log.close()
        try:
            v = json.loads(raw)
        except ValueError:                               # it crashed: h5py frees a file whose write failed
            if "errno = 28" in noise:
                v = {"errno": errno.ENOSPC, "strerror": os.strerror(errno.ENOSPC), "filename": str(final.parent)}
            else:
                raise DTError(f"writing the Minari dataset to {final} failed (the writer process ended with status "
                              f"{status}); nothing was written")
    if v.get("interrupted"):
        raise KeyboardInterrupt
    if "errno" in v:                                     # the command reports it in one line
        raise OSError(v["errno"], v["strerror"], v["filename"])
    if "error" in v:
        raise DTError(f"writing the Minari dataset to {final} failed ({v['error']}); nothing was written")


def reference_min_score(env_id: str, episodes: int = 100, seed: int = 12345) -> float:
    """Mean return of the uniform random policy (D4RL's REF_MIN_SCORE recipe)."""
    eps, _ = rollout_episodes(env_id, "random", episodes=episodes, num_envs=8, seed=seed, progress=False)
    return float(np.mean([e.episode_return for e in eps]))
