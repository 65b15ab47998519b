"""The results campaign (`dt results`), its report, the published checkpoints and the run lock."""

import json
import os
import re
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
import toyenv

from decision_transformer import results as C
from decision_transformer.cli import main
from decision_transformer.errors import RunBusy
from decision_transformer.training.trainer import TrainConfig, Trainer, train

ROOT = Path(__file__).resolve().parents[1]
MODELS = sorted(p for p in (ROOT / "models").glob("*") if (p / "config.json").is_file())
TOY = dict(env_id="LineReach-v0", context_length=5, hidden_size=32, n_layer=2, n_head=1, dropout=0.1,
           lr=1e-3, warmup_steps=50, return_scale=10.0, max_ep_len=32, target_returns=[19.0, 9.0], log_every=10)


@pytest.fixture(scope="module")
def toy_h5(tmp_path_factory):
    """Toy data as a D4RL file that names its env and its reference returns."""
    import h5py
    d = tmp_path_factory.mktemp("toy")
    npz = np.load(toyenv.make_dataset(d / "toy.npz", episodes=100))
    p = d / "toy.hdf5"
    with h5py.File(p, "w") as f:
        f["observations"], f["actions"], f["rewards"] = npz["observations"], npz["actions"], npz["rewards"]
        f["terminals"], f["timeouts"] = npz["terminations"], npz["truncations"]
        f.attrs["env_id"], f.attrs["ref_min_score"], f.attrs["ref_max_score"] = "LineReach-v0", 7.0, 19.0
    preset = d / "toy.json"
    preset.write_text(json.dumps(TOY))
    return p, preset


@pytest.fixture
def tiny_campaign(toy_h5, tmp_path, monkeypatch):
    """The real campaign code on a toy plan: one env, one level, 20-step budget."""
    data, preset = toy_h5
    return C.Campaign(runs=tmp_path / "runs", results=tmp_path / "results", models=tmp_path / "models",
                      log=lambda *a: None, config=toy_config(data, preset))


def toy_config(data, preset, **kw):
    """The campaign's config for one toy env and level, at toy sizes."""
    base = dict(envs={"toy": "LineReach-v0"}, presets={"toy": str(preset)}, levels=("mixed",), budget=20,
                checkpoint_every=10, curve=("toy", "mixed", 30), curve_episodes=4, eval_episodes=6,
                baseline_seeds=(0, 1), sweep_levels=("mixed",), sweep_points=3, sweep_episodes=3,
                publish_levels=(), games={}, atari={}, datasets={"toy-mixed": str(data)}, poll_seconds=0.2, eval_backend="torch")
    return C.CampaignConfig(**{**base, **kw})


def test_plan_covers_the_issue_and_is_consistent():
    tasks = C.Campaign(runs="/nonexistent", results="/nonexistent").plan()
    names = [t.name for t in tasks]
    assert len(names) == len(set(names))
    assert all(nd in names for t in tasks for nd in t.needs)
    kinds = lambda k: [n for n in names if n.startswith(k + ":")]
    c = C.CampaignConfig()
    games = len(c.games) * 3 * len(c.game_seeds) + len(c.atari)              # MinAtar: DT, BC, %BC x 3 seeds; Atari DT
    assert len(kinds("train")) == 12 * (1 + 2 * len(c.baseline_seeds)) + games   # DT + BC + %BC, 12 datasets
    assert len(kinds("eval")) == 12 * (1 + 2 * len(c.baseline_seeds)) + games
    assert len(kinds("curve-eval")) == c.curve[2] // c.checkpoint_every
    assert len(kinds("publish")) == 9 + len(c.demo_candidates) - 1               # hopper-mr is both
    assert len(kinds("sweep")) == 6 + len(c.games) and len(kinds("video")) == len(c.atari)
    # tasks are data: a Campaign method and its arguments, nothing to parse out of a name
    assert all(callable(getattr(C.Campaign, t.action)) and json.dumps(t.args) for t in tasks)
    assert names.index("curve-train:dt-hopper-medium-replay-s0") < names.index("train:dt-walker2d-medium-s0")


def test_a_stopped_training_ends_the_worker_not_only_its_task(tiny_campaign, monkeypatch):
    """SIGTERM / Ctrl-C in a training (Interrupted: its checkpoint saved) stops the worker, where a
    failed task would be logged and the worker would go on with the others."""
    import signal
    from decision_transformer.errors import Interrupted
    camp, logged, ran = tiny_campaign, [], []
    camp.log = logged.append
    real = camp.execute

    def execute(task):
        ran.append(task)
        if task.action == "train":
            raise Interrupted("stopped by SIGTERM at step 5 of 10, where RUN has its checkpoint; ...", signal.SIGTERM)
        real(task)
    monkeypatch.setattr(camp, "execute", execute)
    with pytest.raises(Interrupted):
        camp.run()
    assert ran[-1].action == "train" and [t.action for t in ran].count("train") == 1
    assert logged[-1].endswith("; this worker stops") and not any("FAILED" in line for line in logged)


def test_campaign_runs_skips_and_resumes(tiny_campaign):
    camp = tiny_campaign
    n = camp.run()
    # every task ran (trainings in checkpoint-sized chunks) but the curve run's dataset's budget
    # training: the curve run made its checkpoint
    assert n >= len(camp.plan()) - 1
    assert all(s == "done" for _, s in camp.status())
    ev = json.loads((camp.results / "dt-toy-mixed-s0" / "eval.json").read_text())
    assert ev["checkpoint_step"] == 20 and [r["target_return"] for r in ev["results"]] == [19.0, 9.0]
    assert all(r["episodes"] == 6 and len(r["returns"]) == 6 and "normalized_x100" in r for r in ev["results"])
    bc = json.loads((camp.results / "pbc10-toy-mixed-s1" / "eval.json").read_text())
    assert bc["architecture"] == "bc" and bc["top_pct"] == 10.0 and len(bc["results"]) == 1
    assert sorted(p.name for p in (camp.results / "dt-toy-mixed-s0" / "curve").glob("*.json")) == \
        ["00000010.json", "00000020.json", "00000030.json"]
    assert camp.run() == 0                             # everything done: nothing is redone
    # losing an evaluation redoes only it; raising the budget resumes the runs instead of retraining
    (camp.results / "bc-toy-mixed-s1" / "eval.json").unlink()
    assert camp.run() == 1
    before = (camp.runs / "bc-toy-mixed-s0" / "metrics.csv").read_text()
    import dataclasses
    camp.config = dataclasses.replace(camp.config, budget=30)
    camp.run(only="train:bc-toy-mixed-s0")
    after = (camp.runs / "bc-toy-mixed-s0" / "metrics.csv").read_text()
    assert after.startswith(before) and after.splitlines()[-1].startswith("30,")


def test_a_machine_without_the_checkpoints_retrains_only_what_is_missing(tiny_campaign):
    """A fresh clone has results/ and models/ but no runs/: finished work is not trained again."""
    import shutil
    camp = tiny_campaign
    camp.run()
    shutil.rmtree(camp.runs)
    assert all(s == "done" for _, s in camp.status())
    assert camp.run() == 0 and not any(camp.runs.glob("*-toy-*"))
    # a lost evaluation brings back its training (and only that one)
    (camp.results / "pbc10-toy-mixed-s1" / "eval.json").unlink()
    assert dict(camp.status())["train:pbc10-toy-mixed-s1"] == "todo"
    camp.run()
    assert sorted(p.name for p in camp.runs.glob("*-toy-*")) == ["pbc10-toy-mixed-s1"]
    assert (camp.results / "pbc10-toy-mixed-s1" / "eval.json").is_file()
    # the learning curve's training is needed again only if one of its evaluations is missing
    (camp.results / "dt-toy-mixed-s0" / "curve" / "00000030.json").unlink()
    assert dict(camp.status())["curve-train:dt-toy-mixed-s0"] == "todo"


def test_report_is_made_from_the_run_files(tiny_campaign, tmp_path):
    from decision_transformer.report.page import write_report
    camp = tiny_campaign
    camp.run()
    written = write_report(camp, docs=tmp_path / "docs")
    md = (tmp_path / "docs" / "results-v0.md").read_text()
    for f in ("curve.png", "results.png", "sweeps.png", "sweep-toy-mixed.png"):
        assert (tmp_path / "docs" / "figures" / f).stat().st_size > 1000 and any(p.name == f for p in written)
    # the DT cell is exactly what eval.json implies: 100 (R - 7) / (19 - 7), pooled, mean ± std
    ev = json.loads((camp.results / "dt-toy-mixed-s0" / "eval.json").read_text())["results"][0]
    s = 100 * (np.array(ev["returns"]) - 7.0) / 12.0
    row = next(line for line in md.splitlines() if line.startswith(f"| {camp.dataset_id('toy', 'mixed')} |"))
    assert f"| {s.mean():.1f} ± {s.std():.1f} [" in row
    # BC pools both seeds' episodes
    bcs = np.concatenate([100 * (np.array(json.loads((camp.results / f"bc-toy-mixed-s{k}" / "eval.json").read_text())
                                          ["results"][0]["returns"]) - 7.0) / 12.0 for k in (0, 1)])
    assert f"| {bcs.mean():.1f} ± {bcs.std():.1f} [" in row
    assert "pending" not in row and "Measured so far: 3 of 3 checkpoints" in md
    # a missing run shows as pending, never as a number
    (camp.results / "pbc10-toy-mixed-s0" / "eval.json").unlink()
    write_report(camp, docs=tmp_path / "docs")
    row = next(line for line in (tmp_path / "docs" / "results-v0.md").read_text().splitlines()
               if line.startswith(f"| {camp.dataset_id('toy', 'mixed')} |"))
    assert row.split("|")[5].strip() == "pending"


def test_a_sweep_written_by_dt_sweep_appears_in_the_report(tiny_campaign, tmp_path):
    """One sweep schema: `dt sweep --output RESULTS/<run>` stands for the campaign's sweep on the page."""
    from decision_transformer.cli import main
    from decision_transformer.report.page import write_report
    camp = tiny_campaign
    camp.run()
    run = camp.results / "dt-toy-mixed-s0"
    (run / "sweep.json").unlink()
    ck = camp.runs / "dt-toy-mixed-s0" / "checkpoints" / "00000020"
    assert main(["sweep", str(ck), "--targets", "3:21:4", "--episodes", "2", "--num-envs", "2", "--output", str(run)]) == 0
    sw = json.loads((run / "sweep.json").read_text())
    write_report(camp, docs=tmp_path / "docs")
    md = (tmp_path / "docs" / "results-v0.md").read_text()
    row = next(line for line in md.split("## 3.")[1].splitlines() if line.startswith(f"| {camp.dataset_id('toy', 'mixed')} |"))
    m = [r["return_mean"] for r in sw["results"]]
    assert row.startswith(f"| {camp.dataset_id('toy', 'mixed')} | {m[0]:.0f} (3) → {m[-1]:.0f} (21) |"), row


def test_checkpoint_at_budget_equals_a_run_of_that_length(toy_h5, tmp_path):
    """The campaign reads the budget-B result of the learning-curve run from its step-B checkpoint."""
    from safetensors.torch import load_file
    data, preset = toy_h5
    cfg = lambda out, steps: TrainConfig.from_sources(str(preset), {"dataset": str(data), "output": str(tmp_path / out),
                                                                    "steps": steps, "checkpoint_every": 20})
    train(cfg("long", 60), progress=False)
    train(cfg("short", 20), progress=False)
    a = load_file(str(tmp_path / "long" / "checkpoints" / "00000020" / "model.safetensors"))
    b = load_file(str(tmp_path / "short" / "checkpoints" / "last" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_run_directory_has_one_writer(toy_h5, tmp_path, capsys):
    data, preset = toy_h5
    cfg = TrainConfig.from_sources(str(preset), {"dataset": str(data), "output": str(tmp_path / "r"), "steps": 10})
    first = Trainer(cfg, progress=False)
    with pytest.raises(RunBusy, match=r"is in use by pid \d+ \(dt train --output .*r\)"):
        Trainer(cfg, progress=False)
    assert main(["train", "--dataset", str(data), "--preset", str(preset), "--steps", "10",
                 "--output", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "in use by pid" in err and len(err.splitlines()) == 1
    first.train()                                      # the holder finishes; the lock is released
    cfg.steps = 20
    train(cfg, resume=True, progress=False, log=lambda *a: None)
    assert (tmp_path / "r" / "checkpoints" / "00000020").is_dir()


def test_two_workers_share_the_plan(tiny_campaign):
    """Two workers in parallel do every task once (a task's lock keeps the other away)."""
    camp = tiny_campaign
    done = []
    logs = []
    camp.log = lambda msg: (logs.append(msg), done.append(msg.split("] ", 1)[1].split(" done in")[0])
                            if " done in " in msg else None)
    errors = []

    def work():
        try:
            C.Campaign(camp.runs, camp.results, camp.models, log=camp.log, config=camp.config).run()
        except Exception as e:             # surfaced below
            errors.append(e)
    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, [m for m in logs if "FAILED" in m]
    # each task once, by one of them; the budget training of the curve's run is done by whichever worker
    # reaches that run first (the run directory's lock orders them, and both orders give the same weights)
    assert len(done) == len(set(done))
    assert set(done) - {"train:dt-toy-mixed-s0"} == {t.name for t in camp.plan()} - {"train:dt-toy-mixed-s0"}
    assert all(s == "done" for _, s in camp.status())


@pytest.mark.skipif(not MODELS, reason="no published checkpoint under models/ yet")
@pytest.mark.parametrize("d", MODELS, ids=[p.name for p in MODELS])
def test_published_checkpoints_load_in_both_libraries_and_cards_match(d, monkeypatch, capsys):
    from transformers import DecisionTransformerModel

    from decision_transformer import DecisionTransformer
    from decision_transformer.report.card import metric_value
    env, level = d.name.split("-", 1)
    c = C.CampaignConfig()
    assert env in c.envs and c.published(env, level)
    res = json.loads((d / "results.json").read_text())
    if res["dataset"].endswith("-v1"):       # republished by the suite-v1 campaign (results/v1/published/)
        pub = json.loads((ROOT / "results" / "v1" / "published" / f"{d.name}.json").read_text())
        run, results = pub["run"], ROOT / "results" / "v1"
        ev_file = results / run / f"eval-{C.ckpt_name(pub['checkpoint_step'])}{'-ema' if pub['weights'] == 'ema' else ''}.json"
        assert (res["seed"], res["checkpoint_step"], res["weights"]) == (pub["seed"], pub["checkpoint_step"], pub["weights"])
    else:                                    # the first campaign's (suite v0)
        run, results = C.run_name("dt", env, level, 0), ROOT / "results"
        ev_file = results / run / "eval.json"
    ours = DecisionTransformer.from_pretrained(d)
    hf = DecisionTransformerModel.from_pretrained(d).eval()
    cfg = ours.config
    assert cfg.state_mean and cfg.state_std and cfg.return_scale == 1000.0 and cfg.env_id == c.envs[env]
    g = torch.Generator().manual_seed(0)
    B, L = 2, cfg.context_length
    batch = dict(states=torch.randn(B, L, cfg.state_dim, generator=g), actions=torch.rand(B, L, cfg.act_dim, generator=g),
                 returns_to_go=torch.rand(B, L, 1, generator=g) * 3, timesteps=torch.arange(L).repeat(B, 1),
                 attention_mask=torch.ones(B, L))
    with torch.no_grad():
        a = ours(**batch)[1]
        b = hf(**batch, return_dict=False)[1]
    assert torch.allclose(a, b, atol=1e-5)
    # the card and results.json say what the committed evaluation says
    ev = json.loads(ev_file.read_text())
    r0 = ev["results"][0]
    assert (res["mean_reward"], res["std_reward"], res["n_eval_episodes"], res["target_return"]) == \
        (r0["return_mean"], r0["return_std"], r0["episodes"], r0["target_return"])
    assert res["normalized_score_x100"] == r0["normalized_x100"] and res["checkpoint_step"] == ev["checkpoint_step"]
    data = json.loads((results / "datasets" / f"{env}-{level}.json").read_text())
    assert res["dataset"] == data["dataset"] and (res["dataset_return_mean"], res["dataset_return_max"]) == \
        (data["return_mean"], data["return_max"])
    card = (d / "README.md").read_text()
    head = card.split("---")[1]
    for line in ("library_name: decision-transformer", "pipeline_tag: reinforcement-learning", "- offline-rl",
                 "- decision-transformer", f"- {cfg.env_id}", f"name: {ev['dataset']}", "type: mean_reward",
                 f"value: {metric_value(res)}"):
        assert line in head, line
    for r in res["all_targets"]:
        assert f"| {r['target_return']:g} | {r['return_mean']:.1f} ± {r['return_std']:.1f} |" in card
    assert (d / "replay.gif").stat().st_size < 2_000_000
    # the card's snippet runs as written (from the repository root), one episode in the env, cut at
    # 50 steps (an expert's 1000-step episode is the same code run longer, 5 s a card)
    snippet = card.split("## Use", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(ROOT)
    import gymnasium as gym
    make = gym.make
    monkeypatch.setattr(gym, "make", lambda env_id, **kw: make(env_id, **{"max_episode_steps": 50, **kw}))
    ns = {}
    exec(compile(snippet, f"{d.name}/README.md", "exec"), ns)
    assert ns["done"] and ns["ret"] > 0


def test_models_folder_stays_small():
    total = sum(p.stat().st_size for p in (ROOT / "models").rglob("*") if p.is_file()) if (ROOT / "models").is_dir() else 0
    assert total < 60e6


@pytest.mark.skipif(not any("return_conditioning" in json.loads(f.read_text()) for f in C.MODELS.glob("*/results.json")),
                    reason="no swept checkpoint under models/ is published yet")
def test_demo_sweeps_the_pretrained_checkpoint(tmp_path, monkeypatch):
    """`dt demo` end to end at toy sizes: the report's sweep comes from the committed checkpoint."""
    from decision_transformer.demo import pick_pretrained, run_demo, sweep_targets
    from decision_transformer.models.checkpoint import from_pretrained
    PRETRAINED, _ = pick_pretrained()
    pre = from_pretrained(C.MODELS / PRETRAINED)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    rep = run_demo(tmp_path / "demo", steps_per_level=300, train_steps=3, episodes=2, video_steps=3,
                   progress=False, log=lambda *a: None, max_episode_steps=100)
    assert rep["sweep"]["checkpoint"] == f"models/{PRETRAINED}" and rep["sweep"]["env_id"] == pre.config.env_id
    best = pre.config.extra["dataset_best_return"]
    targets = [r["target_return"] for r in rep["sweep"]["results"]]
    assert targets == sweep_targets(pre) and targets[0] == 0 and 0.5 * best < targets[-1] <= best
    assert rep["training"]["steps"] == 3
    md = (tmp_path / "demo" / "report.md").read_text()
    assert f"pretrained checkpoint models/{PRETRAINED}" in md and "Achieved return goes from" in md and (tmp_path / "demo" / "sweep.png").stat().st_size > 1000


def test_demo_conditioning_sentence_reads_the_sweep():
    from decision_transformer.demo import conditioning_sentence
    sweep = [{"target_return": t, "return_mean": m, "episodes": 10} for t, m in [(0, 190), (960, 1103), (1910, 1662), (3440, 1540)]]
    s = conditioning_sentence(sweep, 3824.0)
    assert s.startswith("Achieved return goes from 190 at target 0 to 1540 at target 3440 (highest 1662, at target 1910;")
    assert "best episode returned 3824" in s and "achieved mean 0.80, 10 episodes per target" in s


def test_demo_without_the_pretrained_checkpoint_fails_first(tmp_path, monkeypatch):
    from decision_transformer import demo
    from decision_transformer.errors import DTError
    monkeypatch.setattr(C, "MODELS", tmp_path / "nowhere")
    with pytest.raises(DTError, match="no pretrained checkpoint with a return-conditioning sweep.*DT_MODELS_DIR"):
        demo.run_demo(tmp_path / "demo", progress=False, log=lambda *a: None)
    assert not (tmp_path / "demo" / "data").exists()                  # nothing collected


def test_only_selects_the_matching_tasks_and_what_they_need(tmp_path):
    """`--only X`: the tasks whose names contain X, and every task they need, transitively (their data),
    in plan order; every task stays known by name, so a need held back holds its task back too."""
    from decision_transformer.results import Task, select_tasks
    t = lambda name, *needs: Task(name, "noop", {}, [tmp_path / name], needs=list(needs))  # noqa: E731
    plan = [t("behaviour:a"), t("data:a"), t("data:b"), t("train:odt-a", "data:a"), t("eval:odt-a", "train:odt-a"),
            t("train:dt-b", "data:b")]
    tasks, by_name = select_tasks(plan, "odt")
    assert [x.name for x in tasks] == ["data:a", "train:odt-a", "eval:odt-a"] and len(by_name) == len(plan)
    assert select_tasks(plan, "eval:")[0] == [plan[1], plan[3], plan[4]]
    assert select_tasks(plan, None)[0] == plan
    # a task that waits for a file (`after`: the checkpoint a fine-tuning starts from, or that checkpoint's
    # EMA weights) brings the training that writes it, whose name `only` may not match
    ck = tmp_path / "runs" / "odt-a" / "checkpoints" / "00000010"
    plan = [t("data:a"), Task("train:odt-a@10", "train", {}, [ck / "model.safetensors"], needs=["data:a"]),
            Task("finetune:odtadamw-a", "noop", {}, [tmp_path / "ft"], after=[ck / "model.safetensors"]),
            Task("eval:odt-a@10-ema", "noop", {}, [tmp_path / "ev"], after=[ck / "ema" / "model.safetensors"]),
            Task("eval:odt-b", "noop", {}, [tmp_path / "evb"], after=[tmp_path / "elsewhere" / "model.safetensors"])]
    assert [x.name for x in select_tasks(plan, "odtadamw-a")[0]] == ["data:a", "train:odt-a@10", "finetune:odtadamw-a"]
    assert [x.name for x in select_tasks(plan, "-ema")[0]] == ["data:a", "train:odt-a@10", "eval:odt-a@10-ema"]
    assert [x.name for x in select_tasks(plan, "odt-b")[0]] == ["eval:odt-b"]         # no task writes it: none added


def test_status_names_the_worker_and_the_step(tiny_campaign):
    from decision_transformer.fileio import try_lock
    camp = tiny_campaign
    camp.run(only="data:")
    camp.run(only="train:bc-toy-mixed-s0")
    (camp.runs / ".locks").mkdir(exist_ok=True)
    with try_lock(camp.runs / ".locks" / "train_bc-toy-mixed-s1.lock", "train:bc-toy-mixed-s1"):
        run = camp.runs / "bc-toy-mixed-s1"                  # a run in flight, before its first checkpoint
        run.mkdir()
        (run / "config.json").write_text((camp.runs / "bc-toy-mixed-s0" / "config.json").read_text())
        rows = (camp.runs / "bc-toy-mixed-s0" / "metrics.csv").read_text().splitlines()
        (run / "metrics.csv").write_text("\n".join(rows[:2]) + "\n")
        st = dict(camp.status())
    step = int(rows[1].split(",")[0])
    assert st["train:bc-toy-mixed-s1"] == f"running (pid {os.getpid()}, step {step} of 20)"
    assert st["train:bc-toy-mixed-s0"] == "done" and st["eval:bc-toy-mixed-s1"] == "todo"


def test_a_waiting_worker_says_once_what_it_waits_for(tiny_campaign):
    """A worker whose tasks are held by another logs one line naming the first and why, not one per
    poll, then goes on once the other lets go."""
    import time
    from decision_transformer.fileio import try_lock
    camp = tiny_campaign
    camp.run(only="data:")
    logs = []
    camp.log = logs.append
    (camp.runs / ".locks").mkdir(exist_ok=True)
    lock = try_lock(camp.runs / ".locks" / "train_bc-toy-mixed-s0.lock", "train:bc-toy-mixed-s0")
    worker = threading.Thread(target=camp.run, kwargs={"only": "eval:bc-toy-mixed-s0"})
    worker.start()
    deadline = time.time() + 30
    while time.time() < deadline and not any("waiting" in m for m in logs):
        time.sleep(0.05)
    time.sleep(3 * camp.config.poll_seconds)                 # several polls: still one line
    lock.close()
    worker.join(60)
    waits = [m for m in logs if "waiting" in m]
    assert len(waits) == 1 and waits[0].endswith("waiting for other workers: train:bc-toy-mixed-s0 is held by "
                                                 "another worker")
    assert not worker.is_alive() and dict(camp.status())["eval:bc-toy-mixed-s0"] == "done"


def test_a_task_that_crashes_does_not_stop_the_worker(tiny_campaign, monkeypatch):
    camp = tiny_campaign
    logs = []
    camp.log = logs.append
    monkeypatch.setattr(C.Campaign, "sweep", lambda self, **kw: 1 / 0)
    with pytest.raises(C.DTError, match=r"1 task\(s\) failed: sweep:dt-toy-mixed-s0"):
        camp.run()
    assert any("ZeroDivisionError" in m for m in logs)
    assert [n for n, s in camp.status() if s != "done"] == ["sweep:dt-toy-mixed-s0"]   # everything else was done


def test_the_demo_picks_the_candidate_that_follows_the_target_best(tmp_path, monkeypatch):
    from decision_transformer import demo
    monkeypatch.setattr(C, "MODELS", tmp_path)
    for name, rho in (("hopper-medium-replay", -0.2), ("hopper-medium-expert", 0.7), ("halfcheetah-medium-replay", 0.9),
                      ("walker2d-medium", None)):                        # not swept: never a candidate
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.safetensors").write_bytes(b"")
        info = {"checkpoint_step": 20000} | ({} if rho is None else {"return_conditioning": {"spearman_rho": rho}})
        (tmp_path / name / "results.json").write_text(json.dumps(info))
    assert demo.pick_pretrained()[0] == "halfcheetah-medium-replay"    # any env: the best-conditioned
    (tmp_path / "halfcheetah-medium-replay" / "model.safetensors").unlink()   # weights missing: not a candidate
    assert demo.pick_pretrained()[0] == "hopper-medium-expert"
    (tmp_path / "hopper-medium-expert" / "results.json").unlink()            # not published: the next one
    assert demo.pick_pretrained()[0] == "hopper-medium-replay"


def test_minatar_tasks_run_and_reach_the_report(tmp_path, monkeypatch):
    """The campaign's MinAtar part (issue #12) on a tiny plan: a random-policy dataset, one seed,
    20-step runs; the report's section 4 row is what eval.json implies."""
    from decision_transformer.report.page import write_report
    from decision_transformer.suite.collect import rollout_episodes, write_minari
    eps, _ = rollout_episodes("MinAtar/Breakout-v1", "random", steps=600, num_envs=4, seed=0, progress=False)
    data = write_minari("test/mb-v0", tmp_path / "mb", eps, "MinAtar/Breakout-v1", 0.2, 8.0, "test", False)
    preset = tmp_path / "tiny.json"
    preset.write_text(json.dumps({"context_length": 4, "hidden_size": 16, "n_layer": 1, "n_head": 2, "lr": 1e-3,
                                  "warmup_steps": 1, "return_scale": 1.0, "max_ep_len": 1000, "log_every": 10}))
    config = C.CampaignConfig(games={"minatar-breakout": "MinAtar/Breakout-v1"}, atari={}, game_seeds=(0,),
                              game_budget=20, game_checkpoint_every=10, game_preset=str(preset), eval_episodes=3,
                              sweep_points=3, sweep_episodes=2, datasets={"minatar-breakout-replay": str(data)})
    camp = C.Campaign(runs=tmp_path / "runs", results=tmp_path / "results", models=tmp_path / "models",
                      log=lambda *a: None, config=config)
    camp.run(only="minatar")
    assert all(s == "done" for n, s in camp.status() if "minatar" in n)
    ev = json.loads((camp.results / "dt-minatar-breakout-replay-s0" / "eval.json").read_text())
    d = json.loads((camp.results / "datasets" / "minatar-breakout-replay.json").read_text())
    assert ev["checkpoint_step"] == 20 and ev["results"][0]["target_return"] == d["return_max"]
    assert len(json.loads((camp.results / "dt-minatar-breakout-replay-s0" / "sweep.json").read_text())["results"]) == 3
    write_report(camp, docs=tmp_path / "docs")
    md = (tmp_path / "docs" / "results-v0.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| MinAtar/Breakout-v1 | DT |"))
    s = 100 * (np.array(ev["results"][0]["returns"]) - 0.2) / 7.8
    assert f"| {s.mean():.1f} ± {s.std():.1f} [" in row
    verdict = next(line for line in md.splitlines() if line.startswith("**DT against the baselines**"))
    assert re.search(r"MinAtar/Breakout-v1: against BC, (DT above BC|BC above DT|no clear difference); "
                     r"against 10%BC, (DT above 10%BC|10%BC above DT|no clear difference)\.", verdict), verdict
    assert (tmp_path / "docs" / "figures" / "sweeps-minatar.png").stat().st_size > 1000


def test_atari_end_to_end_tasks_and_their_stage_times(tmp_path, monkeypatch):
    """The campaign's Atari part on a tiny plan: random-policy frames, a 4-step run, 2 episodes,
    a short GIF; the report's section 5 lists each stage with its time."""
    from decision_transformer.report.page import write_report
    from decision_transformer.suite.collect import rollout_episodes, write_minari
    eps, _ = rollout_episodes("ALE/Breakout-v5", "random", steps=300, num_envs=2, seed=0, progress=False)
    data = write_minari("test/ab-v0", tmp_path / "ab", eps, "ALE/Breakout-v5", 1.0, 20.0, "test", False)
    preset = tmp_path / "tiny.json"
    preset.write_text(json.dumps({"context_length": 3, "hidden_size": 16, "n_layer": 1, "n_head": 2,
                                  "return_scale": 1.0, "max_ep_len": 2000, "log_every": 2, "warmup_steps": 1}))
    config = C.CampaignConfig(games={}, atari={"atari-breakout": ("ALE/Breakout-v5", 5.0)}, atari_budget=4,
                              atari_checkpoint_every=2, atari_batch=2, atari_episodes=2, atari_max_steps=25,
                              atari_video_steps=12, atari_preset=str(preset), datasets={"atari-breakout-replay": str(data)})
    camp = C.Campaign(runs=tmp_path / "runs", results=tmp_path / "results", models=tmp_path / "models",
                      log=lambda *a: None, config=config)
    camp.run(only="atari")
    run = camp.results / "dt-atari-breakout-replay-s0"
    ev = json.loads((run / "eval.json").read_text())
    assert ev["checkpoint_step"] == 4 and ev["max_episode_steps"] == 25
    assert ev["results"][0]["target_return"] == 5.0 and ev["results"][0]["length_mean"] <= 25
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["batch_size"] == 2 and cfg["env_id"] == "ALE/Breakout-v5"
    assert json.loads((run / "video.json").read_text())["steps"] <= 12 and (run / "replay.gif").stat().st_size > 0
    import decision_transformer.suite.policies as policies
    monkeypatch.setattr(policies, "SUITE", tmp_path / "suite")
    (tmp_path / "suite").mkdir()
    write_report(camp, docs=tmp_path / "docs")
    md = (tmp_path / "docs" / "results-v0.md").read_text()
    sec = md[md.index("## 5. Atari end to end"):]
    assert "| training (`dt train --preset atari`) | 4 steps |" in sec and "| behaviour DQN (`dt suite dqn`) | pending" in sec
    assert f"target 5: return {ev['results'][0]['return_mean']:.1f}" in sec
    capped = ev["results"][0]["length_mean"] >= 25                  # a random-ish policy may or may not finish
    assert ("All 2 evaluation episodes ran to the 25-step cap." in sec) == capped
    # with the behaviour DQN in the manifest: its row, its learning curve and how weak it is
    (tmp_path / "suite" / "manifest.json").write_text(json.dumps({"ALE/Breakout-v5": {
        "training": {"total_env_steps": 50_000, "wall_seconds": 1800.0, "eval_curve_10ep": [[25_000, 3.0], [50_000, 7.5]]},
        "references": {"ref_min_score": 1.5, "ref_max_score": 8.25}}}))
    write_report(camp, docs=tmp_path / "docs")
    md = (tmp_path / "docs" / "results-v0.md").read_text()
    sec = md[md.index("## 5. Atari end to end"):]
    assert "| 50,000 env steps; best evaluation 7.5 at step 50,000; reference random 1.5, best DQN 8.2" in sec
    assert "reaches 8.2 (its best snapshot, 100 episodes), where the Nature DQN scored 401.2" in sec
    assert "0.2M frames, 0.5 h on one CPU core" in sec
    assert "![atari-breakout DQN](figures/atari-breakout-dqn.png)" in sec
    assert (tmp_path / "docs" / "figures" / "atari-breakout-dqn.png").stat().st_size > 1000


def test_budget_text_on_a_complete_curve_says_whether_longer_training_pays():
    from decision_transformer.report.page import _budget_text
    xs = list(range(5_000, 100_001, 5_000))
    swings = {x: 5.0 + 30.0 * ((x // 5_000) % 2) for x in xs}                 # no trend, big swings
    rising = {x: x / 2_000 for x in xs}                                        # steady climb
    for curve, want in ((swings, "the budget stays at 20,000 steps"), (rising, "understates what longer training")):
        table = {3600.0: [{"mean": curve[x]} for x in xs]}
        txt = _budget_text(xs, table, [3600.0], 100_000, 20_000)
        assert want in txt and "still training" not in txt, txt
