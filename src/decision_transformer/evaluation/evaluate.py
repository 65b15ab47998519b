"""Evaluation in the environment: vectorised envs, the batched Agent, honest statistics.

Per target return: the mean and std of the episode returns, a 95% bootstrap confidence interval
of the mean, the mean episode length, and the normalised score
100 x (R - ref_min) / (ref_max - ref_min) when reference returns are known (from the checkpoint's
dataset metadata, or given), with the references used reported beside it.
"""

from __future__ import annotations

import numpy as np

from decision_transformer.errors import DTError, OptionError
from decision_transformer.evaluation.stats import bootstrap_ci, normalized


def run_episodes(model, env_id: str, target_return: float, episodes: int, num_envs: int, seed: int,
                 threads: int = 2, sample: bool = False, temperature: float = 1.0,
                 max_episode_steps: int | None = None, **agent_kw) -> tuple[np.ndarray, np.ndarray]:
    """Returns and lengths of `episodes` full episodes with the Agent at `target_return`.

    Env i is reset with seed + i. The envs are split into `threads` groups (parallel.py), each
    with its own Agent, stepped in its own thread, with its share of the episodes; results are
    listed group by group. Within a group, episodes are counted in the order they finish, and
    envs stop starting new episodes once enough are under way (so long episodes are not
    under-sampled). Deterministic for a given (seed, num_envs, threads).
    sample: discrete actions drawn from softmax(logits / temperature), each group's Agent with
    its own generator seeded from `seed` (deterministic likewise); else the argmax.
    max_episode_steps: cut episodes there (e.g. an Atari policy that never serves the ball plays
    until the 108,000-frame limit, 27,000 steps)."""
    from decision_transformer.envs import make_vec
    from decision_transformer.evaluation.parallel import (
        one_thread_per_group,
        run_in_threads,
        split,
    )
    from decision_transformer.inference.agent import Agent

    if int(threads) < 1:
        raise DTError(f"threads must be >= 1, got {threads}")
    if episodes < 1 or num_envs < 1:
        raise OptionError(f"{{episodes}} and {{num_envs}} must be >= 1, got {episodes} and {num_envs}")
    num_envs = max(1, min(num_envs, episodes))
    G = min(int(threads), num_envs)
    sizes, quotas = split(num_envs, G), split(episodes, G)
    cfg = model.config
    want = (cfg.state_dim,) if cfg.state_type == "vector" else tuple(cfg.state_shape)
    opened, groups = [], []
    with one_thread_per_group(G):                     # agents built inside get one ORT thread each
        try:
            for g in range(G):
                envs = make_vec(env_id, sizes[g], max_episode_steps=max_episode_steps)
                opened.append(envs)
                got = tuple(envs.single_observation_space.shape)
                if int(np.prod(got)) != int(np.prod(want)):
                    raise DTError(f"the checkpoint expects observations of shape {want} but {env_id} gives {got}: "
                                  "evaluate it on the env it was trained on")
                check_actions(model.config, envs.single_action_space, env_id)
                if sample:
                    agent_kw.update(deterministic=False, temperature=temperature, seed=seed + sum(sizes[:g]))
                agent = Agent(model, num_envs=sizes[g], target_return=target_return, **agent_kw)
                groups.append((envs, agent, quotas[g], seed + sum(sizes[:g])))
            out = run_in_threads(lambda grp, stop: _run_group(*grp, want, stop), groups)
        finally:
            for envs in opened:
                envs.close()
    return (np.concatenate([r for r, _ in out])[:episodes], np.concatenate([n for _, n in out])[:episodes])


def _run_group(envs, agent, episodes: int, seed: int, obs_shape, stop) -> tuple[np.ndarray, np.ndarray]:
    n = envs.num_envs
    obs, _ = envs.reset(seed=seed)
    ret, length = np.zeros(n), np.zeros(n, dtype=np.int64)
    active = np.ones(n, bool)                         # env is running an episode we will count
    started = n
    returns, lengths = [], []
    while len(returns) < episodes and not stop.is_set():
        act = agent.act(obs.reshape(n, *obs_shape))
        obs, r, term, trunc, _ = envs.step(act)
        done = term | trunc
        agent.observe(r, done)
        ret += r * active
        length += active
        for i in np.flatnonzero(done & active):
            returns.append(float(ret[i]))
            lengths.append(int(length[i]))
            ret[i], length[i] = 0.0, 0
            if started >= episodes:
                active[i] = False
            else:
                started += 1
        if not active.any():
            break
    return np.asarray(returns[:episodes]), np.asarray(lengths[:episodes], dtype=np.int64)


def results_table(results: list[dict]) -> str:
    """The per-target results of `evaluate` as a text table (dt eval, dt sweep, dt demo)."""
    lines = [f"{'target':>10} {'return':>18} {'95% CI':>21} {'length':>7} {'normalised':>11}"]
    for r in results:
        n = f"{r['normalized_x100']:.1f}" if "normalized_x100" in r else "-"
        lines.append(f"{r['target_return']:>10.0f} {r['return_mean']:>10.1f} ± {r['return_std']:<6.1f}"
                     f" [{r['return_ci95'][0]:>8.1f}, {r['return_ci95'][1]:>8.1f}] {r['length_mean']:>7.0f} {n:>11}")
    if results and "refs" in results[0]:
        ref = results[0]["refs"]
        lines.append(f"normalised = 100 x (R - {ref['min']:.1f}) / ({ref['max']:.1f} - {ref['min']:.1f}), refs from {ref['from']}")
    return "\n".join(lines)


def check_actions(cfg, space, env_id: str) -> None:
    """The checkpoint's actions are the env's (kind and size): one line if not."""
    discrete = hasattr(space, "n")
    have = f"{cfg.act_dim} discrete" if cfg.action_type == "discrete" else f"{cfg.act_dim}-dimensional"
    want = f"{space.n} discrete" if discrete else f"{int(np.prod(space.shape))}-dimensional"
    if (cfg.action_type == "discrete") != discrete or have != want:
        raise DTError(f"the checkpoint acts with {have} actions but {env_id} takes {want} actions: evaluate it on "
                      "the env it was trained on")


def evaluate(model, env_id: str, targets, episodes: int = 100, num_envs: int = 50, seed: int = 0,
             ref_min: float | None = None, ref_max: float | None = None, threads: int = 2,
             **agent_kw) -> list[dict]:
    extra = model.config.extra or {}
    refs_from = "given" if ref_max is not None else "checkpoint (dataset metadata)"
    ref_min = ref_min if ref_min is not None else extra.get("ref_min_score")
    ref_max = ref_max if ref_max is not None else extra.get("ref_max_score")
    out = []
    for tr in targets:
        R, L = run_episodes(model, env_id, float(tr), episodes, num_envs, seed, threads=threads, **agent_kw)
        lo, hi = bootstrap_ci(R)
        res = {"target_return": float(tr), "episodes": len(R), "return_mean": float(R.mean()),
               "return_std": float(R.std()), "return_ci95": [lo, hi], "length_mean": float(L.mean()),
               "returns": [round(float(x), 3) for x in R]}
        if ref_min is not None and ref_max is not None and ref_max != ref_min:
            norm = lambda x: normalized(float(x), ref_min, ref_max)
            res.update({"normalized_x100": norm(R.mean()), "normalized_ci95": [norm(lo), norm(hi)],
                        "refs": {"min": ref_min, "max": ref_max, "from": refs_from}})
        out.append(res)
    return out


def evaluation_record(model, env_id: str, targets, episodes: int, seed: int = 0, checkpoint=None,
                      dataset_returns: tuple[float, float] | None = None, **evaluate_kw) -> dict:
    """`evaluate`, as the one record every evaluation and sweep file holds (`dt eval --json`,
    `dt sweep`'s sweep.json, the campaigns' eval.json and sweep.json, the demo's report): where it
    ran (checkpoint, env, dataset, seed, episodes per target, backend, date, seconds), the
    dataset's lowest and best episode returns when known (`dataset_returns`, else the best one the
    checkpoint records), and per target the statistics of `evaluate` under "results"."""
    import datetime
    import time
    t0 = time.time()
    res = evaluate(model, env_id, targets, episodes=episodes, seed=seed, **evaluate_kw)
    extra = model.config.extra or {}
    lo, hi = dataset_returns if dataset_returns is not None else (extra.get("dataset_worst_return"),
                                                                  extra.get("dataset_best_return"))
    return {"checkpoint": None if checkpoint is None else str(checkpoint), "env_id": env_id,
            "dataset": extra.get("dataset"), "architecture": model.config.architecture, "seed": seed,
            "episodes_per_target": episodes, "backend": evaluate_kw.get("backend", "torch"),
            "dataset_return_min": lo, "dataset_return_max": hi,
            "eval_date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "eval_seconds": round(time.time() - t0, 1), "results": res}


def sweep_targets(return_min: float, return_max: float, points: int) -> list[float]:
    """A sweep's targets: `points` from the data's lowest episode return (at least 0) to 1.2x its best."""
    return [float(x) for x in np.linspace(max(0.0, return_min), 1.2 * return_max, points)]
