import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import toyenv

from decision_transformer.cli import main
from decision_transformer.errors import DTError
from decision_transformer.evaluation.evaluate import evaluate
from decision_transformer.training.trainer import TrainConfig, Trainer, train

TOY = dict(env_id="LineReach-v0", context_length=5, hidden_size=32, n_layer=2, n_head=1, dropout=0.1,
           lr=1e-3, warmup_steps=50, return_scale=10.0, max_ep_len=32, target_returns=[19.0, 9.0],
           log_every=1, checkpoint_every=100)


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory):
    return str(toyenv.make_dataset(tmp_path_factory.mktemp("toy") / "toy.npz"))


def _cfg(data, out, **kw):
    return TrainConfig.from_sources(None, {**TOY, "dataset": data, "output": str(out), **kw})


def _losses(run):
    rows = [r.split(",") for r in (Path(run) / "metrics.csv").read_text().splitlines()[1:]]
    return [(int(r[0]), float(r[1])) for r in rows if r[1]]


def test_dt_learns_and_follows_the_target(toy_data, tmp_path):
    train(_cfg(toy_data, tmp_path / "run", steps=600, log_every=10), progress=False)
    losses = [l for _, l in _losses(tmp_path / "run")]
    assert losses[-1] < 0.8 * losses[0]        # the loss falls (the random share of the actions is unlearnable)
    from decision_transformer.models.checkpoint import from_pretrained
    model = from_pretrained(tmp_path / "run" / "checkpoints" / "last")
    hi, lo = evaluate(model, "LineReach-v0", [19.0, 9.0], episodes=30, num_envs=10, seed=1)
    rnd = []
    env = toyenv.LineReach()
    rng = np.random.default_rng(0)
    for ep in range(30):
        env.reset(seed=1000 + ep); R = 0.0
        for _ in range(20):
            R += env.step(rng.uniform(-1, 1, 1))[1]
        rnd.append(R)
    assert hi["return_mean"] > np.mean(rnd) + 5                          # beats random clearly
    assert hi["return_mean"] > lo["return_mean"] + 2                     # higher target, higher return


def test_resume_continues_exactly_and_same_seed_same_weights(toy_data, tmp_path):
    train(_cfg(toy_data, tmp_path / "full", steps=40, checkpoint_every=20), progress=False)
    train(_cfg(toy_data, tmp_path / "cut", steps=20, checkpoint_every=20), progress=False)
    cfg = TrainConfig(**json.loads((tmp_path / "cut" / "config.json").read_text()))
    cfg.steps = 40
    train(cfg, resume=True, progress=False, log=lambda *a: None)
    assert _losses(tmp_path / "full") == _losses(tmp_path / "cut")
    from safetensors.torch import load_file
    a = load_file(str(tmp_path / "full" / "checkpoints" / "last" / "model.safetensors"))
    b = load_file(str(tmp_path / "cut" / "checkpoints" / "last" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    train(_cfg(toy_data, tmp_path / "again", steps=40, checkpoint_every=20), progress=False)
    c = load_file(str(tmp_path / "again" / "checkpoints" / "last" / "model.safetensors"))
    assert all(torch.equal(a[k], c[k]) for k in a)


def test_each_start_and_resume_records_its_machine_so_a_speed_can_name_it(toy_data, tmp_path):
    from decision_transformer.devices import machine_label
    from decision_transformer.rundir import read_metrics, read_sessions, session_of
    train(_cfg(toy_data, tmp_path / "run", steps=20, checkpoint_every=20, num_threads=1), progress=False)
    cfg = TrainConfig(**json.loads((tmp_path / "run" / "config.json").read_text()))
    cfg.steps = 40
    train(cfg, resume=True, progress=False, log=lambda *a: None)
    with open(tmp_path / "run" / "sessions.jsonl", "a") as f:
        f.write('{"time": "2026-')                      # a line cut by a kill: skipped, and the next one is whole
    cfg.steps = 60
    train(cfg, resume=True, progress=False, log=lambda *a: None)
    sessions = read_sessions(tmp_path / "run" / "sessions.jsonl")
    assert [s["step"] for s in sessions] == [0, 20, 40]
    assert len((tmp_path / "run" / "sessions.jsonl").read_text().splitlines()) == 4      # no blank lines
    m = sessions[0]["machine"]
    assert m["threads"] == 1 and m["device"] == "cpu" and m["torch"] == torch.__version__ and m["cpu"]
    assert machine_label(m).endswith(", one thread") and ("AVX" in machine_label(m)) == (m["isa"] is not None)
    rows = read_metrics(tmp_path / "run" / "metrics.csv")
    assert [session_of(sessions, r["step"]) for r in rows] == [0] * 20 + [1] * 20 + [2] * 20   # 1-20, 21-40, 41-60
    died = tmp_path / "died"                 # died before its first checkpoint: started over, its old session gone
    died.mkdir()
    (died / "sessions.jsonl").write_text((tmp_path / "run" / "sessions.jsonl").read_text())
    train(_cfg(toy_data, died, steps=20, checkpoint_every=20), progress=False)
    assert len(read_sessions(died / "sessions.jsonl")) == 1


def test_sigkill_loses_at_most_one_checkpoint_interval(toy_data, tmp_path):
    run = tmp_path / "killed"
    cmd = [sys.executable, "-c", "import sys, toyenv; from decision_transformer.cli import main; sys.exit(main())",
           "train", "--dataset", toy_data, "--env", "LineReach-v0",
           "--output", str(run), "--steps", "100000", "--checkpoint-every", "10", "--context-length", "5",
           "--hidden-size", "32", "--n-layer", "1", "--max-ep-len", "32", "--return-scale", "10", "--quiet"]
    p = subprocess.Popen(cmd, cwd=Path(__file__).parent, env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)})
    deadline = time.time() + 120
    while time.time() < deadline and not (run / "checkpoints" / "00000030").exists():
        assert p.poll() is None, "training exited early"
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    last = (run / "checkpoints" / "last").resolve()
    step = int(last.name)
    assert step >= 30
    assert sorted(x.name for x in last.iterdir()) == ["config.json", "model.safetensors", "trainer.json",
                                                      "trainer.safetensors"]
    cfg = TrainConfig(**json.loads((run / "config.json").read_text()))
    cfg.steps = step + 10
    res = train(cfg, resume=True, progress=False, log=lambda *a: None)
    assert res["step"] == step + 10
    # a write cut by the kill may have left a temp dir; resuming clears it
    assert not [x for x in (run / "checkpoints").iterdir() if x.name.startswith(".")]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_ctrl_c_saves_a_checkpoint_where_it_stops_and_resume_is_exact(toy_data, tmp_path, sig):
    """A scheduler's SIGTERM or a Ctrl-C mid-interval loses nothing: the step it is in ends, a checkpoint is
    saved there, one line says so (exit 128 + the signal); resuming gives the uninterrupted run's weights."""
    run = tmp_path / "stopped"
    opts = ["--dataset", toy_data, "--env", "LineReach-v0", "--steps", "100000", "--checkpoint-every", "100000",
            "--context-length", "5", "--hidden-size", "32", "--n-layer", "1", "--max-ep-len", "32", "--return-scale",
            "10", "--log-every", "1", "--quiet"]
    cmd = [sys.executable, "-c", "import sys, toyenv; from decision_transformer.cli import main; sys.exit(main())",
           "train", "--output", str(run), *opts]
    p = subprocess.Popen(cmd, cwd=Path(__file__).parent, env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)},
                         stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(_losses(run) if (run / "metrics.csv").exists() else []) < 15:
        assert p.poll() is None, "training exited early"
        time.sleep(0.05)
    p.send_signal(sig)
    err = p.communicate(timeout=60)[1]
    assert p.returncode == 128 + sig, err
    step = int((run / "checkpoints" / "last").resolve().name)
    assert step >= 15 and [x.name for x in (run / "checkpoints").iterdir() if x.name != "last"] == [f"{step:08d}"]
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"stopped by {signal.Signals(sig).name} at step {step:,} of 100,000") and \
        f"`dt train --resume {run}` continues it exactly" in line and "Traceback" not in err
    # resumed to a later step: the weights of a run never stopped
    assert main(["train", "--resume", str(run), "--steps", str(step + 7), "--quiet"]) == 0
    whole = [str(step + 7) if o == "100000" and opts[i - 1] == "--steps" else o for i, o in enumerate(opts)]
    assert main(["train", "--output", str(tmp_path / "whole"), *whole]) == 0
    from safetensors.torch import load_file
    a, b = (load_file(str(r / "checkpoints" / "last" / "model.safetensors")) for r in (run, tmp_path / "whole"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_stop_handlers_are_the_callers_again_after_training(toy_data, tmp_path):
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    train(_cfg(toy_data, tmp_path / "run", steps=3), progress=False)
    assert {s: signal.getsignal(s) for s in before} == before


def test_every_subcommand_smoke(toy_data, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--dataset", toy_data, "--env", "LineReach-v0", "--output", str(run), "--steps", "20",
                 "--context-length", "5", "--hidden-size", "32", "--n-layer", "1", "--max-ep-len", "32",
                 "--return-scale", "10", "--target-return", "19", "9", "--quiet"]) == 0
    assert main(["train", "--resume", str(run), "--steps", "25", "--quiet"]) == 0
    ck = str(run / "checkpoints" / "last")
    assert main(["eval", ck, "--target-return", "19", "--episodes", "4", "--num-envs", "2",
                 "--json", str(tmp_path / "e.json")]) == 0
    ev = json.loads((tmp_path / "e.json").read_text())
    assert ev["results"][0]["episodes"] == 4 and len(ev["results"][0]["return_ci95"]) == 2
    assert main(["eval", ck, "--target-return", "19", "--episodes", "4", "--num-envs", "2", "--backend",
                 "onnxruntime", "--json", str(tmp_path / "e2.json")]) == 0
    ev2 = json.loads((tmp_path / "e2.json").read_text())
    assert np.allclose(ev2["results"][0]["returns"], ev["results"][0]["returns"], atol=1e-3)
    assert main(["sweep", ck, "--targets", "5:19:3", "--episodes", "2", "--num-envs", "2",
                 "--output", str(tmp_path / "sw"), "--backend", "onnxruntime"]) == 0
    sw = json.loads((tmp_path / "sw" / "sweep.json").read_text())
    assert [r["target_return"] for r in sw["results"]] == [5.0, 12.0, 19.0]
    # one sweep schema: the campaigns' report reads dt sweep's file as it reads its own
    assert sw["episodes_per_target"] == 2 and sw["dataset_return_max"] > 0 and sw["backend"] == "onnxruntime"
    from decision_transformer import results as C
    camp_keys = set(json.loads((Path(C.__file__).parents[2] / "results" / "dt-hopper-medium-replay-s0" /
                                "sweep.json").read_text()))
    assert {"checkpoint", "env_id", "dataset", "seed", "episodes_per_target", "dataset_return_min",
            "dataset_return_max", "results"} <= set(sw) and camp_keys - set(sw) <= {"run", "checkpoint_step", "top_pct",
                                                                                 "mode", "weights"}
    assert (tmp_path / "sw" / "sweep.png").stat().st_size > 5000
    assert main(["info", ck]) == 0
    assert main(["export", ck, str(tmp_path / "exp")]) == 0
    # the run directory itself stands for its last checkpoint, wherever a checkpoint is accepted
    assert main(["eval", str(run), "--target-return", "19", "--episodes", "4", "--num-envs", "2",
                 "--json", str(tmp_path / "e3.json")]) == 0
    assert json.loads((tmp_path / "e3.json").read_text())["results"] == ev["results"]
    capsys.readouterr()
    assert main(["info", str(run)]) == 0 and '"context_length": 5' in capsys.readouterr().out
    import gymnasium as gym

    from decision_transformer.suite.collect import _Policy
    envs = gym.vector.SyncVectorEnv([lambda: gym.make("LineReach-v0")])
    assert _Policy(str(run), "LineReach-v0", envs, target_return=19).agent is not None      # dt collect --policy RUN
    (tmp_path / "empty" / "checkpoints").mkdir(parents=True)
    assert main(["eval", str(tmp_path / "empty")]) == 2
    assert "run directory without a finished checkpoint" in capsys.readouterr().err


def test_video_renders_headless(tmp_path):
    from decision_transformer import DecisionTransformer, DecisionTransformerConfig
    os.environ.setdefault("MUJOCO_GL", "egl")
    cfg = DecisionTransformerConfig(state_dim=11, act_dim=3, n_layer=1, hidden_size=32, max_ep_len=1000,
                                    return_scale=1000.0, env_id="Hopper-v5")
    DecisionTransformer(cfg).save_pretrained(tmp_path / "ck")
    assert main(["video", str(tmp_path / "ck"), "--target-return", "3600", "-o", str(tmp_path / "v.gif"),
                 "--max-steps", "15"]) == 0
    import imageio.v2 as imageio
    frames = imageio.mimread(tmp_path / "v.gif")
    assert len(frames) >= 5 and frames[0].shape[0] > 100
    from PIL import Image
    assert Image.open(tmp_path / "v.gif").info["duration"] == 70      # every 2nd step at 30 fps: ~real speed (GIF: 10 ms units)
    assert main(["video", str(tmp_path / "ck"), "--target-return", "1", "-o", str(tmp_path / "v.avi")]) == 2


def test_bad_inputs_are_one_line_errors(toy_data, tmp_path, capsys):
    def err(argv):
        assert main(argv) == 2
        lines = [x for x in capsys.readouterr().err.strip().splitlines() if not x.startswith("warning: ")]
        assert len(lines) == 1 and lines[0].startswith("error: "), lines
        return lines[0]
    assert "no such file" in err(["train", "--dataset", str(tmp_path / "none.npz"), "--output", str(tmp_path / "r1")])
    assert "observations (2,) but Hopper-v5 has (11,)" in err(
        ["train", "--dataset", str(_with_env(toy_data, tmp_path)), "--env", "Hopper-v5", "--output", str(tmp_path / "r2")])
    assert not (tmp_path / "r2" / "checkpoints").exists()
    assert "unknown preset 'fast'" in err(["train", "--dataset", toy_data, "--preset", "fast", "--output", str(tmp_path / "r3")])
    ro = tmp_path / "ro"; ro.mkdir(); ro.chmod(0o500)
    if os.geteuid() != 0:                                             # root ignores permissions
        assert "cannot write to" in err(["train", "--dataset", toy_data, "--output", str(ro / "run")])
    from decision_transformer import DecisionTransformer, DecisionTransformerConfig
    DecisionTransformer(DecisionTransformerConfig(state_dim=11, act_dim=3, n_layer=1, hidden_size=32,
                                                  env_id="Hopper-v5")).save_pretrained(tmp_path / "ck")
    assert "cannot write to /proc/x/y" in err(["sweep", str(tmp_path / "ck"), "--targets", "1:2:2", "--output", "/proc/x/y"])
    assert "expects observations of shape (11,) but LineReach-v0 gives (2,)" in err(
        ["eval", str(tmp_path / "ck"), "--env", "LineReach-v0", "--target-return", "5", "--episodes", "1"])
    assert "--target-return must be a number, got 'high'" in err(
        ["eval", str(tmp_path / "ck"), "--target-return", "high", "--episodes", "1"])
    assert "--targets HI must be a number, got 'x'" in err(["sweep", str(tmp_path / "ck"), "--targets", "1:x:3", "--output", str(tmp_path / "s")])
    train(_cfg(toy_data, tmp_path / "r4", steps=5), progress=False)
    assert "already holds a run" in err(["train", "--dataset", toy_data, "--env", "LineReach-v0",
                                         "--output", str(tmp_path / "r4")])
    assert "--resume with different options (lr): a resumed run keeps its options; only --steps may change" in err(
        ["train", "--resume", str(tmp_path / "r4"), "--lr", "0.1"])
    assert "not a run directory (no config.json)" in err(["train", "--resume", str(tmp_path / "nothing")])


def _with_env(npz, tmp_path):
    """The toy data as a Minari-less D4RL file that names its env (LineReach-v0)."""
    import h5py
    d = np.load(npz)
    p = tmp_path / "toy.hdf5"
    with h5py.File(p, "w") as f:
        f["observations"], f["actions"], f["rewards"] = d["observations"], d["actions"], d["rewards"]
        f["terminals"], f["timeouts"] = d["terminations"], d["truncations"]
        f.attrs["env_id"] = "LineReach-v0"
    return p


def test_bc_trains_on_windows_that_end_at_a_uniform_step(toy_data, tmp_path):
    # BC's loss counts the last step only: its windows end at a drawn step (every step a target);
    # DT's start there, as the official get_batch does (test_sampler.py)
    bc = Trainer(_cfg(toy_data, tmp_path / "bc", model="bc", steps=1), progress=False)
    dt = Trainer(_cfg(toy_data, tmp_path / "dt", steps=1), progress=False)
    assert (bc.sampler.anchor, dt.sampler.anchor) == ("end", "start")
    bc.close(); dt.close()


def test_a_bc_run_begun_on_start_anchored_windows_continues_on_them_and_says_so(toy_data, tmp_path):
    # BC runs saved before 2026-11-25 have no anchor in their sampler state: they resume exactly as
    # the uninterrupted run would have gone (start-anchored), with a note; new BC runs are end-anchored
    def old_version(out, steps):                        # BC as trained before the change
        t = Trainer(_cfg(toy_data, out, model="bc", steps=steps, checkpoint_every=10), progress=False)
        t.sampler.anchor = "start"
        t.train()
        t.close()
    old_version(tmp_path / "full", 20)
    old_version(tmp_path / "cut", 10)
    meta_path = tmp_path / "cut" / "checkpoints" / "last" / "trainer.json"
    meta = json.loads(meta_path.read_text())
    del meta["sampler"]["anchor"]                      # as those runs saved it
    meta_path.write_text(json.dumps(meta))
    logs = []
    cfg = TrainConfig(**{**json.loads((tmp_path / "cut" / "config.json").read_text()), "steps": 20})
    train(cfg, resume=True, progress=False, log=logs.append)
    assert any("began on start-anchored windows and continues on them" in m and "new --output" in m for m in logs)
    assert _losses(tmp_path / "full") == _losses(tmp_path / "cut")
    from safetensors.torch import load_file
    a = load_file(str(tmp_path / "full" / "checkpoints" / "last" / "model.safetensors"))
    b = load_file(str(tmp_path / "cut" / "checkpoints" / "last" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow        # two 2,000-step trainings; BC/%BC plumbing runs fast in test_results' campaign tests
def test_bc_and_percent_bc_baselines(toy_data, tmp_path):
    from decision_transformer.data.datasets import load_dataset
    from decision_transformer.models.checkpoint import from_pretrained
    train(_cfg(toy_data, tmp_path / "bc", model="bc", steps=2000, log_every=100), progress=False)
    bc = from_pretrained(tmp_path / "bc" / "checkpoints" / "last")
    assert type(bc).__name__ == "BCModel"
    r_bc = evaluate(bc, "LineReach-v0", [0.0], episodes=20, num_envs=10, seed=1)[0]["return_mean"]
    t = Trainer(_cfg(toy_data, tmp_path / "pbc", model="bc", top_pct=20, steps=2000, log_every=100), progress=False)
    full = load_dataset(toy_data)
    assert 0.15 * full.num_steps < t.ds.num_steps <= 0.2 * full.num_steps
    assert t.ds.episode_returns().min() >= np.percentile(full.episode_returns(), 75)
    t.train()
    pbc = from_pretrained(tmp_path / "pbc" / "checkpoints" / "last")
    r_pbc = evaluate(pbc, "LineReach-v0", [0.0], episodes=20, num_envs=10, seed=1)[0]["return_mean"]
    assert r_pbc > r_bc + 1 and r_pbc > 14     # cloning only good episodes beats cloning all of them
    with pytest.raises(DTError, match="no transformers equivalent"):
        from decision_transformer.models.checkpoint import export_transformers
        export_transformers(tmp_path / "pbc" / "checkpoints" / "last", tmp_path / "x")


def test_eval_a_transformers_directory_with_stats_on_the_command_line(tmp_path, capsys):
    from transformers import DecisionTransformerConfig as HFConfig
    from transformers import DecisionTransformerModel
    hf = DecisionTransformerModel(HFConfig(state_dim=2, act_dim=1, hidden_size=32, n_layer=1, max_ep_len=32))
    hf.save_pretrained(tmp_path / "hf")                      # no mean/std/scale/env in a transformers dir
    np.savetxt(tmp_path / "std.txt", [0.5, 0.5])
    assert main(["eval", str(tmp_path / "hf"), "--env", "LineReach-v0", "--state-mean", "0.1", "-0.1",
                 "--state-std", str(tmp_path / "std.txt"), "--scale", "10", "--target-return", "19",
                 "--episodes", "2", "--num-envs", "2", "--json", str(tmp_path / "e.json")]) == 0
    assert json.loads((tmp_path / "e.json").read_text())["results"][0]["episodes"] == 2
    assert main(["eval", str(tmp_path / "hf"), "--target-return", "19", "--episodes", "1"]) == 2
    assert "does not name its env: pass --env" in capsys.readouterr().err


def test_video_camera_follows_the_robot():
    # gymnasium renders v5 locomotion envs with a FREE camera every frame; a hopper moved 4 m
    # forward leaves that picture. With _follow_body it stays in the middle of the frame.
    os.environ.setdefault("MUJOCO_GL", "egl")
    import gymnasium as gym

    from decision_transformer.evaluation.video import _follow_body

    def robot_column(follow: bool):
        env = gym.make("Hopper-v5", render_mode="rgb_array", width=240, height=240)
        env.reset(seed=0)
        env.render()
        if follow:
            _follow_body(env)
        u = env.unwrapped
        qpos = u.data.qpos.copy()
        qpos[0] += 4.0
        u.set_state(qpos, u.data.qvel.copy())
        f = env.render().astype(int)
        env.close()
        orange = (f[..., 0] > f[..., 2] + 60) & (f[..., 0] > 120)     # the robot's brown-orange body
        cols = np.flatnonzero(orange.any(axis=0))
        return None if cols.size < 3 else cols.mean() / f.shape[1]

    assert robot_column(follow=False) is None                     # walked out of the picture
    c = robot_column(follow=True)
    assert c is not None and 0.3 < c < 0.7


def test_resume_after_a_kill_never_logs_a_step_twice(toy_data, tmp_path):
    import shutil
    run = tmp_path / "r"
    train(_cfg(toy_data, run, steps=30, checkpoint_every=20, log_every=1), progress=False)
    shutil.rmtree(run / "checkpoints" / "00000030")          # as if killed after logging step 30, before its checkpoint
    (run / "checkpoints" / "last").unlink()
    os.symlink("00000020", run / "checkpoints" / "last")
    cfg = TrainConfig(**json.loads((run / "config.json").read_text()))
    cfg.steps = 40
    train(cfg, resume=True, progress=False, log=lambda *a: None)
    steps = [s for s, _ in _losses(run)]
    assert steps == list(range(1, 41))


def _paper_top_pct(returns, lens, frac):
    """The official gym/experiment.py %BC selection, transcribed as the definition to test against:
    sort by return; keep the best; add the next best while the kept steps stay <= int(frac x steps)."""
    num_timesteps = max(int(frac * sum(lens)), 1)
    order = np.argsort(returns)
    n, steps, ind = 1, lens[order[-1]], len(lens) - 2
    while ind >= 0 and steps + lens[order[ind]] <= num_timesteps:
        steps += lens[order[ind]]
        n += 1
        ind -= 1
    return sorted(order[-n:].tolist())


def test_percent_bc_keeps_the_best_episodes_up_to_x_percent_of_the_timesteps():
    from decision_transformer.data.datasets import Episode, TrajectoryDataset
    from decision_transformer.training.trainer import top_episodes
    rng = np.random.default_rng(0)
    lens = rng.integers(5, 200, size=300)
    rets = rng.permutation(300).astype(float)                # distinct returns, unrelated to length
    eps = [Episode(np.full((n, 2), i, np.float32), np.zeros((n, 1), np.float32), np.r_[np.zeros(n - 1), r],
                   np.r_[np.zeros(n - 1, bool), True], np.zeros(n, bool)) for i, (n, r) in enumerate(zip(lens, rets))]
    ds = TrajectoryDataset.from_episodes(eps, "test")
    for pct in (0.1, 1, 10, 25, 50, 99.9):
        got = top_episodes(ds, pct)
        want = _paper_top_pct(rets, lens, pct / 100)
        assert sorted({int(x) for x in got.observations[:, 0]}) == want, pct
        assert got.num_steps <= int(pct / 100 * ds.num_steps) or got.num_episodes == 1
    by_ep = top_episodes(ds, 10, unit="episodes")              # suite v0's rule: 10% of the episodes
    assert by_ep.num_episodes == 30 and by_ep.episode_returns().min() == 270


def test_percent_bc_state_statistics_come_from_all_the_data(toy_data, tmp_path):
    """The paper normalises %BC's states with the whole dataset's mean/std; suite v0's campaign
    (--top-unit episodes) used the subset's."""
    from decision_transformer.data.datasets import load_dataset
    full = load_dataset(toy_data)
    for unit, stats_of in (("timesteps", lambda t: full), ("episodes", lambda t: t.ds)):
        t = Trainer(_cfg(toy_data, tmp_path / unit, model="bc", top_pct=20, top_unit=unit, steps=1), progress=False)
        mean, std = stats_of(t).state_stats()
        assert t.ds.num_steps < full.num_steps
        np.testing.assert_allclose(t.model.config.state_mean, mean)
        np.testing.assert_allclose(t.model.config.state_std, std)
        assert t.model.config.extra["top_unit"] == unit
        t.close()


def test_ema_weights_are_the_moving_average_saved_beside_each_checkpoint_and_resume_exactly(toy_data, tmp_path):
    """--ema-decay d: after each optimizer step ema = d * ema + (1 - d) * weights (starting from the
    first step's weights); checkpoints/<step>/ema/ is a checkpoint of its own; resuming is exact."""
    from decision_transformer.models.checkpoint import from_pretrained
    d = 0.9
    t = Trainer(_cfg(toy_data, tmp_path / "ref", steps=15, checkpoint_every=15, ema_decay=d), progress=False)
    seen = []                                               # the weights after every optimizer step
    t.opt.register_step_post_hook(lambda *a: seen.append({n: p.detach().clone() for n, p in t.model.named_parameters()}))
    t.train()
    want = dict(seen[0])
    for w in seen[1:]:
        want = {n: d * want[n] + (1 - d) * w[n] for n in want}
    ema = from_pretrained(tmp_path / "ref" / "checkpoints" / "last" / "ema")
    raw = from_pretrained(tmp_path / "ref" / "checkpoints" / "last")
    for n, p in ema.named_parameters():
        torch.testing.assert_close(p, want[n], rtol=1e-5, atol=1e-6)
    assert any(not torch.equal(p, q) for p, q in zip(ema.parameters(), raw.parameters()))
    assert ema.config.state_mean == raw.config.state_mean                   # evaluable like the raw weights

    train(_cfg(toy_data, tmp_path / "full", steps=30, checkpoint_every=10, ema_decay=0.95), progress=False)
    train(_cfg(toy_data, tmp_path / "cut", steps=10, checkpoint_every=10, ema_decay=0.95), progress=False)
    cfg = TrainConfig(**json.loads((tmp_path / "cut" / "config.json").read_text()))
    cfg.steps = 30
    train(cfg, resume=True, progress=False, log=lambda *a: None)
    from safetensors.torch import load_file
    a = load_file(str(tmp_path / "full" / "checkpoints" / "last" / "ema" / "model.safetensors"))
    b = load_file(str(tmp_path / "cut" / "checkpoints" / "last" / "ema" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert main(["eval", str(tmp_path / "full" / "checkpoints" / "last" / "ema"), "--target-return", "19",
                 "--episodes", "2", "--num-envs", "2"]) == 0


def test_official_initialisation_matches_the_official_codes_layers():
    """--init official: trunk N(0, 0.02) without the scaled residual init and no position row; the
    DT-level layers at PyTorch's defaults (embedding N(0,1), linear kaiming-uniform)."""
    from decision_transformer import DecisionTransformer, DecisionTransformerConfig
    torch.manual_seed(0)
    cfg = DecisionTransformerConfig(state_dim=11, act_dim=3, hidden_size=128, n_layer=3, max_ep_len=1000)
    hf, off = DecisionTransformer(cfg), DecisionTransformer(cfg).init_official()
    assert abs(hf.embed_timestep.weight.std().item() - 0.02) < 2e-3
    assert abs(off.embed_timestep.weight.std().item() - 1.0) < 0.02                  # nn.Embedding's N(0, 1)
    assert abs(off.embed_return.weight.std().item() - 1 / 3 ** 0.5) < 0.06           # U(-1, 1): fan_in 1
    bound = 1 / 11 ** 0.5                                                              # kaiming-uniform, fan_in 11
    assert off.embed_state.weight.abs().max().item() <= bound and off.embed_state.weight.std().item() > 0.5 * bound
    assert off.predict_action[0].bias.abs().max().item() <= 1 / 128 ** 0.5 and off.predict_action[0].bias.any()
    assert torch.equal(off.encoder.wpe.weight, torch.zeros_like(off.encoder.wpe.weight))
    for name, p in off.encoder.named_parameters():
        if name.endswith((".attn.c_attn.weight", ".mlp.c_fc.weight", "c_proj.weight")):
            assert abs(p.std().item() - 0.02) < 2e-3, name                         # not 0.02 / sqrt(2 n_layer)
        if name.endswith("ln_1.weight"):
            assert torch.equal(p, torch.ones_like(p))
    assert abs(hf.encoder.h[0].attn.c_proj.weight.std().item() - 0.02 / 6 ** 0.5) < 1e-3
    assert set(dict(off.named_parameters())) == set(dict(hf.named_parameters()))   # same layout: transformers loads it


def test_init_option_reaches_the_model(toy_data, tmp_path):
    t = Trainer(_cfg(toy_data, tmp_path / "off", steps=1, init="official"), progress=False)
    assert abs(t.model.embed_timestep.weight.std().item() - 1.0) < 0.1
    assert not t.model.encoder.wpe.weight.any()
    t.close()
    with pytest.raises(DTError, match="--init"):
        _cfg(toy_data, tmp_path / "x", init="xavier")


def test_metrics_have_one_reader(toy_data, tmp_path):
    """rundir.read_metrics: typed rows of metrics.csv, as the trainer writes them (evaluation rows too)."""
    from decision_transformer.rundir import METRICS_COLUMNS, read_metrics
    train(_cfg(toy_data, tmp_path / "run", steps=20, log_every=5, eval_every=10, eval_episodes=2), progress=False)
    rows = read_metrics(tmp_path / "run" / "metrics.csv")
    assert (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0].split(",") == list(METRICS_COLUMNS)
    train_rows = [r for r in rows if r["loss"] is not None]
    assert [(r["step"], r["loss"]) for r in train_rows] == _losses(tmp_path / "run")
    assert all(r["steps_per_s"] > 0 and r["eval_target"] is None for r in train_rows)
    evals = [r for r in rows if r["eval_target"] is not None]
    assert [(r["step"], r["eval_target"]) for r in evals] == [(10, 19.0), (10, 9.0), (20, 19.0), (20, 9.0)]
    assert read_metrics(tmp_path / "nope.csv") == []


def test_resume_damage_and_misuse_are_one_line_and_offer_the_newest_intact_checkpoint(toy_data, tmp_path, capsys):
    """Run-directory files cut short or hand-edited, a checkpoint given as the run, --steps going
    backwards: one line each, naming the file and the fix, and nothing changed on disk."""
    import os
    import shutil
    run = tmp_path / "r"
    train(_cfg(toy_data, run, steps=20, checkpoint_every=10), progress=False)
    ck = run / "checkpoints"

    def err(argv):
        assert main(argv) == 2
        e = capsys.readouterr().err.strip()
        assert e.startswith("error: ") and "\n" not in e and "Traceback" not in e, e
        return e

    def files():
        return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}
    before = files()
    assert f"is one checkpoint of a run, not a run directory: pass the run directory {run}" in err(
        ["train", "--resume", str(ck / "00000010")])
    assert "--steps 5 is below the run's last checkpoint (step 20)" in err(["train", "--resume", str(run), "--steps", "5"])
    assert files() == before                                      # config.json untouched
    assert main(["train", "--resume", str(run)]) == 0             # a finished run: said, not "loss nan"
    out = capsys.readouterr().out
    assert "already at step 20 (--steps 20): nothing to train" in out and "nan" not in out
    ts = ck / "00000020" / "trainer.json"                         # trainer state cut in half
    ts.write_text(before["checkpoints/00000020/trainer.json"].decode()[:40])
    e = err(["train", "--resume", str(run), "--steps", "30"])
    assert "00000020 cannot be resumed from" in e and f"the newest intact checkpoint is step 10: resume from it with " \
        f"`ln -sfn 00000010 {ck / 'last'}`" in e
    ts.write_bytes(before["checkpoints/00000020/trainer.json"])
    shutil.move(ck / "00000020", tmp_path / "away")               # a dangling `last`
    e = err(["train", "--resume", str(run), "--steps", "30"])
    assert "checkpoints/last points at 00000020, which is missing; the newest intact checkpoint is step 10" in e
    assert "already holds a run" in err(["train", "--dataset", toy_data, "--output", str(run)])   # never started over
    os.remove(ck / "last")                                        # the advice works
    os.symlink("00000010", ck / "last")
    assert main(["train", "--resume", str(run), "--steps", "30", "--quiet"]) == 0
    capsys.readouterr()
    text = (run / "config.json").read_text()
    (run / "config.json").write_text(text[:len(text) // 2])      # config.json cut in half
    assert f"{run / 'config.json'} is cut short or not JSON" in err(["train", "--resume", str(run)])
    d = json.loads(text)
    d["lr"] = "fast"                                             # one bad field
    (run / "config.json").write_text(json.dumps(d))
    assert f"{run / 'config.json'}: --lr must be a number, got 'fast'; restore the file" in err(["train", "--resume", str(run)])
    d["lr"], d["turbo"] = 1e-3, True                              # an option this version does not know
    (run / "config.json").write_text(json.dumps(d))
    assert "unknown training option(s): turbo" in err(["train", "--resume", str(run)])
    assert "preset file nowhere.json does not exist" in err(["train", "--dataset", toy_data, "--preset", "nowhere.json"])


def test_resume_takes_the_runs_dataset_spelt_another_way_but_refuses_another_file(toy_data, tmp_path, monkeypatch,
                                                                                 capsys):
    import shutil
    shutil.copy(toy_data, tmp_path / "toy.npz")
    shutil.copy(toy_data, tmp_path / "other.npz")
    monkeypatch.chdir(tmp_path)
    train(_cfg("toy.npz", tmp_path / "r", steps=4, checkpoint_every=2), progress=False)       # a relative path
    assert main(["train", "--resume", str(tmp_path / "r"), "--dataset", str(tmp_path / "toy.npz"), "--steps", "6",
                 "--quiet"]) == 0
    assert main(["train", "--resume", str(tmp_path / "r"), "--dataset", str(tmp_path / "other.npz"), "--steps", "8",
                 "--quiet"]) == 2
    assert "--resume with different options (dataset)" in capsys.readouterr().err
