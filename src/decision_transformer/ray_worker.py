"""`dt results run --ray [ADDRESS]`: a campaign's tasks as Ray tasks, one CPU (or GPU) each.

The driver (this module) plans on its own machine, as a local worker does: it submits every task
whose needs are done and whose files exist, at most one training per run directory at a time
(trainings advance one checkpoint interval per call, so a run's training is submitted again until
its goal is reached). A Ray task rebuilds the campaign from its class, directories and config and
does one task under the same lock file a local worker takes: Ray workers, local `dt results run`
workers and several drivers can share one campaign. Resumability is the campaign's own: finished
tasks are skipped, an interrupted training resumes from its last checkpoint.

Storage: every node must see RUNS, RESULTS and the models directory at the same paths (an NFS or
other shared mount), the datasets (the Minari root, `$MINARI_DATASETS_PATH`, shared likewise, or
each node builds them: deterministic, under a lock in RUNS/.locks), and this package installed.
"""

from __future__ import annotations

import time

from decision_transformer.errors import DTError


def _remote_task(cls, runs, results, models, config, name: str, action: str, args: dict) -> str:
    """One task on a Ray worker: 'ran' or 'held' (Campaign.attempt)."""
    import torch
    torch.set_num_threads(1)
    camp = cls(runs=runs, results=results, models=models, config=config, log=print)
    return camp.attempt(name, action, args)


def run_on_ray(camp, address: str | None = None, only: str | None = None, gpus_per_task: float = 0.0,
               num_cpus: int | None = None) -> int:
    """Run the campaign's tasks on a Ray cluster until none is left; returns how many ran.
    address None starts a local Ray instance (num_cpus of this machine's cores, default all)."""
    from decision_transformer.results import select_tasks
    try:
        import ray
    except ImportError:
        raise DTError("--ray needs Ray: pip install 'ray>=2.9' (or the extra: pip install 'decision-transformer[ray]')")
    if not ray.is_initialized():
        try:
            ray.init(address=address, num_cpus=num_cpus if address is None else None, include_dashboard=False,
                     log_to_driver=False)
        except ConnectionError as e:
            raise DTError(f"cannot reach the Ray cluster at {address}: {e}")
    remote = ray.remote(_remote_task).options(num_cpus=1, num_gpus=gpus_per_task, max_retries=0)
    inflight: dict = {}                           # ObjectRef -> Task
    held: dict[str, float] = {}                   # task held by another worker -> when to try again
    failed: set[str] = set()
    n = 0
    while True:
        tasks, by_name = select_tasks(camp.plan(), only)
        running = {t.name for t in inflight.values()}
        training = {t.run for t in inflight.values() if t.action == "train"}
        now = time.time()
        for t in tasks:
            if t.name in failed or t.name in running or held.get(t.name, 0) > now or t.done():
                continue
            if any(nd in by_name and not by_name[nd].done() for nd in t.needs) or not camp.ready(t):
                continue
            if t.action == "train":
                if t.run in training:             # one training per run directory at a time
                    continue
                training.add(t.run)
            ref = remote.remote(type(camp), camp.runs, camp.results, camp.models, camp.config, t.name, t.action, t.args)
            inflight[ref] = t
            running.add(t.name)
        if not inflight:
            waiting = [w for w in held if w not in failed]
            if not waiting:
                break
            time.sleep(max(0.0, min(held[w] for w in waiting) - time.time()))
            held.clear()
            continue
        ready, _ = ray.wait(list(inflight), num_returns=1)
        for ref in ready:
            t = inflight.pop(ref)
            try:
                state = ray.get(ref)
            except ray.exceptions.RayError as e:
                cause = getattr(e, "cause", None)
                camp.log(f"{t.name} FAILED on Ray: {cause if isinstance(cause, DTError) else e}")
                failed.add(t.name)
                continue
            if state == "held":
                held[t.name] = time.time() + camp.config.poll_seconds
            else:
                n += 1
                camp.log(f"{t.name} " + ("done" if t.done() else "continues"))
    if failed:
        raise DTError(f"{len(failed)} task(s) failed: {', '.join(sorted(failed))}")
    return n
