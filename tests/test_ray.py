"""`dt results run --ray`: a campaign's tasks on a real local Ray cluster (ray.init(num_cpus=2)):
the same files as local workers, and a driver killed mid-campaign resumes where it stopped."""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import toyenv

from decision_transformer import results_v1 as V

# CI installs Ray and must run this; elsewhere it is optional. Looked up, not imported: importing Ray
# costs every pytest-xdist worker a second at collection, where one worker runs these tests
if not os.environ.get("CI") and importlib.util.find_spec("ray") is None:
    pytest.skip("Ray is not installed (pip install -e '.[ray]')", allow_module_level=True)

from decision_transformer.ray_worker import run_on_ray  # noqa: E402

TESTS = Path(__file__).parent
TOY = dict(env_id="LineReach-v0", context_length=5, hidden_size=16, n_layer=1, n_head=1, dropout=0.1,
           lr=1e-3, warmup_steps=5, return_scale=10.0, max_ep_len=32, target_returns=[19.0, 9.0], log_every=5)


def _config(tmp: Path) -> V.CampaignV1Config:
    import h5py
    data = tmp / "toy.hdf5"
    if not data.exists():
        npz = np.load(toyenv.make_dataset(tmp / "toy.npz", episodes=60))
        with h5py.File(data, "w") as f:
            f["observations"], f["actions"], f["rewards"] = npz["observations"], npz["actions"], npz["rewards"]
            f["terminals"], f["timeouts"] = npz["terminations"], npz["truncations"]
            f.attrs["env_id"], f.attrs["ref_min_score"], f.attrs["ref_max_score"] = "LineReach-v0", 7.0, 19.0
        (tmp / "toy.json").write_text(json.dumps(TOY))
    return V.CampaignV1Config(
        envs={"toy": "LineReach-v0"}, presets={"toy": str(tmp / "toy.json")}, levels=("mixed",), seeds=(0,),
        ab_datasets=(("toy", "mixed"),), checkpoint_every=5, curve_episodes=2, eval_episodes=3, best_seed=50,
        recipes={"dt": {"init": "transformers", "steps": 30, "evals": (15, 30)}},
        datasets={"toy-mixed": str(data)}, poll_seconds=0.2, eval_backend="torch", stage2=None)


def _campaign(tmp: Path, name: str) -> V.CampaignV1:
    return V.CampaignV1(runs=tmp / name / "runs", results=tmp / name / "results", models=tmp / name / "models",
                        log=lambda *a: None, config=_config(tmp))


def _files(camp) -> dict[str, object]:
    """What the report reads: every result file, with the evaluations' returns."""
    out = {}
    for p in sorted(camp.results.rglob("*.json")):
        rec = json.loads(p.read_text())
        out[str(p.relative_to(camp.results))] = [r["returns"] for r in rec.get("results", [])] or rec.get("episodes")
    return out


@pytest.fixture(scope="module")
def local_ray():
    import ray
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(TESTS)}, "worker_process_setup_hook": "toyenv.setup"})
    yield
    ray.shutdown()


@pytest.mark.slow        # 50 s; the --ray flag test below reaches the same cluster in the default run
def test_ray_campaign_writes_what_local_workers_write_and_resumes_after_a_kill(tmp_path, local_ray):
    local = _campaign(tmp_path, "local")
    local.run()
    assert all(s == "done" for _, s in local.status())

    # a Ray driver killed mid-campaign (its whole process group, Ray's processes with it)
    killed = _campaign(tmp_path, "ray")
    code = ("import sys, toyenv, ray; from pathlib import Path; sys.path.insert(0, %r); import test_ray as T; "
            "ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={'env_vars': "
            "{'PYTHONPATH': %r}, 'worker_process_setup_hook': 'toyenv.setup'}); "
            "T.run_on_ray(T._campaign(Path(%r), 'ray'))") % (str(TESTS), str(TESTS), str(tmp_path))
    p = subprocess.Popen([sys.executable, "-c", code], cwd=TESTS, start_new_session=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ck = killed.runs / "dt-toy-mixed-s0" / "checkpoints"
    t0 = time.time()
    while not (ck / "00000010").exists() and time.time() - t0 < 600 and p.poll() is None:
        time.sleep(0.05)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    assert (ck / "00000010").exists(), p.stderr.read().decode()[-2000:]
    assert not (ck / "00000030").exists()                              # killed mid-way
    assert any(s != "done" for _, s in killed.status())

    # resumed on Ray: every task done, the same files and numbers as the uninterrupted local workers
    n = run_on_ray(killed)
    assert n > 0 and all(s == "done" for _, s in killed.status())
    assert _files(killed) == _files(local)
    last = "dt-toy-mixed-s0/checkpoints/00000030/model.safetensors"
    assert (killed.runs / last).read_bytes() == (local.runs / last).read_bytes()
    assert (killed.runs / "dt-toy-mixed-s0/metrics.csv").read_text().splitlines()[1:] != []
    assert run_on_ray(killed) == 0                                     # nothing left: nothing redone


def test_dt_results_run_ray_flag_reaches_the_cluster(tmp_path, local_ray, monkeypatch, capsys):
    from decision_transformer import cli
    camp = _campaign(tmp_path, "cli")
    monkeypatch.setattr(cli, "_campaign", lambda a: camp)
    assert cli.main(["results", "run", "--ray", "--only", "data:"]) == 0
    assert "task(s) done on Ray" in capsys.readouterr().out
    assert (camp.results / "datasets" / "toy-mixed.json").is_file()
