"""Suite v1's campaign (`dt results run`, results_v1.py): the A/B stage's plan, its runs and its page."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import toyenv  # noqa: F401  (registers LineReach-v0)

from decision_transformer import results_v1 as V
from decision_transformer.errors import RunBusy
from decision_transformer.report import v1 as page

ROOT = Path(__file__).resolve().parents[1]
TOY = dict(env_id="LineReach-v0", context_length=5, hidden_size=32, n_layer=2, n_head=1, dropout=0.1,
           lr=1e-3, warmup_steps=50, return_scale=10.0, max_ep_len=32, target_returns=[19.0, 9.0], log_every=10)


@pytest.fixture
def tiny_v1(tmp_path, monkeypatch):
    """The real v1 campaign code on a toy plan: one dataset, 2 seeds, budgets 10/20 steps, init A/B at 10."""
    import h5py
    npz = np.load(toyenv.make_dataset(tmp_path / "toy.npz", episodes=100))
    data = tmp_path / "toy.hdf5"
    with h5py.File(data, "w") as f:
        f["observations"], f["actions"], f["rewards"] = npz["observations"], npz["actions"], npz["rewards"]
        f["terminals"], f["timeouts"] = npz["terminations"], npz["truncations"]
        f.attrs["env_id"], f.attrs["ref_min_score"], f.attrs["ref_max_score"] = "LineReach-v0", 7.0, 19.0
    preset = tmp_path / "toy.json"
    preset.write_text(json.dumps(TOY))
    config = V.CampaignV1Config(
        envs={"toy": "LineReach-v0"}, presets={"toy": str(preset)}, levels=("mixed",), seeds=(0, 1),
        ab_datasets=(("toy", "mixed"),), checkpoint_every=5, curve_episodes=3, eval_episodes=4, best_seed=50,
        recipes={"dt": {"init": "transformers", "steps": 20, "evals": (10, 20)},
                 "dtoff": {"init": "official", "steps": 10, "evals": (10,)},
                 "dtnt": {"init": "transformers", "timestep_embedding": False, "steps": 10, "evals": (10,)}},
        datasets={"toy-mixed": str(data)}, poll_seconds=0.2, eval_backend="torch", odt_datasets=(), stage2=None)
    return V.CampaignV1(runs=tmp_path / "runs", results=tmp_path / "results", models=tmp_path / "models",
                        log=lambda *a: None, config=config)


def test_the_ab_plan_is_consistent_and_breadth_first(monkeypatch):
    monkeypatch.setattr(V.CampaignV1, "suite_has", lambda self, env: True)     # every env's v1 policies committed
    camp = V.CampaignV1(runs="/nonexistent", results="/nonexistent")
    tasks = camp.plan()
    odt = {t.name for t in camp._odt_tasks()}
    assert odt and all(n in {t.name for t in tasks} for n in odt) and all("odt" in n for n in odt)   # `--only odt`
    assert not any("odt" in t.name for t in tasks if t.name not in odt)
    # the other datasets get the A/B's chosen arm once odt_recipe is set, their data tasks from the main plan
    import dataclasses
    chosen = V.CampaignV1(runs="/nonexistent", results="/nonexistent",
                          config=dataclasses.replace(camp.config, odt_recipe=("odtnt", "adamw")))
    assert chosen.odt_arms("hopper", "medium-replay") == [("odtnt", "adamw")] and not camp.odt_arms("hopper", "medium-replay")
    assert len(chosen.odt_arms("hopper", "medium")) == 4
    more = [t for t in chosen._odt_tasks() if "-hopper-medium-s" not in t.name]                # the five others
    assert {t.action for t in more} == {"train", "evaluate_odt", "finetune"} and len(more) == 5 * 3 * 4
    assert all(t.name.split(":")[1].startswith(("odtnt-", "odtntadamw-")) for t in more)
    full = chosen.plan()
    assert len({t.name for t in full}) == len(full) and all(nd in {t.name for t in full} for t in full for nd in t.needs)
    tasks = [t for t in tasks if t.name not in odt]
    names = [t.name for t in tasks]
    c = camp.config
    assert len(names) == len(set(names)) and all(nd in names for t in tasks for nd in t.needs)
    trains = [n for n in names if n.startswith("train:")]
    runs = len(c.seeds) * len(c.ab_datasets)
    # dt in stages: 20k, then 50k, and no further until 50k is evaluated (budget_decision); dtoff and dtnt in 1
    assert camp.budget_decision() == (None, 50_000) and camp.stage2_recipe() is None
    assert len(trains) == runs * (2 + 2)
    steps = [int(n.rsplit("@", 1)[1]) for n in trains]
    assert steps == sorted(steps)                                       # every run to 20k before any to 50k
    assert names.index(trains[0]) > max(i for i, n in enumerate(names) if not n.startswith("train:"))
    evals = [n for n in names if n.startswith("eval:")]
    assert len(evals) == runs * 2 * (2 + 2)                             # raw + EMA at each budget
    assert len([n for n in names if n.startswith("best:")]) == 2 * runs     # dt's once its last step is known
    nt = camp.train_config("dtnt-hopper-medium-s0", "hopper", "medium", "dtnt", 0, 20_000)
    assert (nt.init, nt.timestep_embedding) == ("transformers", False)
    cfg = camp.train_config("dtoff-hopper-medium-replay-s1", "hopper", "medium-replay", "dtoff", 1, 20_000)
    assert (cfg.init, cfg.ema_decay, cfg.seed, cfg.num_threads, cfg.dataset) == \
        ("official", c.ema_decay, 1, 1, "dt/hopper/medium-replay-v1")
    assert cfg.timestep_embedding is True
    assert camp.train_config("x", "hopper", "medium", "dt", 0, 10).init == "transformers"
    pbc = camp.train_config("x", "hopper", "medium", "pbc10", 0, 10)
    assert (pbc.model, pbc.top_pct, pbc.top_unit) == ("bc", 10.0, "timesteps")


def test_v1_campaign_runs_and_its_page_is_made_from_the_files(tiny_v1, tmp_path):
    camp = tiny_v1
    camp.run()
    assert all(s == "done" for _, s in camp.status())
    r = camp.results / "dt-toy-mixed-s0"
    raw, ema = (json.loads((r / f"eval-00000020{x}.json").read_text()) for x in ("", "-ema"))
    assert raw["weights"] == "raw" and ema["weights"] == "ema" and raw["checkpoint_step"] == 20
    assert [x["target_return"] for x in raw["results"]] == [19.0, 9.0] and raw["results"][0]["episodes"] == 4
    assert raw["results"][0]["returns"] != ema["results"][0]["returns"] or raw["results"][1]["returns"] != ema["results"][1]["returns"]
    curve = json.loads((r / "curve" / "00000015.json").read_text())
    assert len(curve["results"]) == 1 and curve["results"][0]["episodes"] == 3            # first target only
    best = json.loads((r / "eval-best.json").read_text())
    assert best["checkpoint_step"] == camp.best_step("dt-toy-mixed-s0") and best["seed"] == 50
    assert len(best["results"]) == 1 and best["weights"] == "raw"                          # at the first target
    off = json.loads((camp.runs / "dtoff-toy-mixed-s1" / "config.json").read_text())
    assert off["init"] == "official" and off["ema_decay"] == camp.config.ema_decay and off["steps"] == 10
    assert off["timestep_embedding"] is True
    nt = json.loads((camp.runs / "dtnt-toy-mixed-s1" / "config.json").read_text())
    assert (nt["init"], nt["timestep_embedding"]) == ("transformers", False)
    # every DT evaluation records how far the action moves with the return-to-go and the timestep
    moved = {m: json.loads((camp.results / f"{m}-toy-mixed-s0" / "eval-00000010.json").read_text())["conditioning"]
             for m in ("dt", "dtnt")}
    assert moved["dtnt"]["timestep_plus_100"] == 0 < moved["dt"]["timestep_plus_100"] and moved["dt"]["windows"] == 512
    assert "conditioning" in ema and "conditioning" not in curve
    # the page: the budget row is what the two seeds' files imply
    page.write_report_v1(camp, docs=tmp_path / "docs")
    md = (tmp_path / "docs" / "results.md").read_text()
    per_seed = [100 * (np.array(json.loads((camp.results / f"dt-toy-mixed-s{k}" / "eval-00000020.json").read_text())
                                ["results"][0]["returns"]) - 7.0) / 12.0 for k in (0, 1)]
    x = np.concatenate(per_seed)
    row = next(line for line in md.splitlines() if line.startswith("| 20 |"))
    assert row.startswith(f"| 20 | {x.mean():.1f} ± {x.std():.1f} [")
    assert f"({per_seed[0].mean():.1f}, {per_seed[1].mean():.1f})" in row
    assert "| official |" in md and "| raw |" in md and "pending" not in md.split("## 2.")[1]
    assert "![v1-curves-toy-mixed](figures/v1-curves-toy-mixed.png)" in md.split("## 3.")[0]        # the learning curves
    assert (tmp_path / "docs" / "figures" / "v1-curves-toy-mixed.png").stat().st_size > 0
    init = md.split("## 3. A/B: initialisation and timestep embedding")[1].split("## 4.")[0]
    nt_row = next(line for line in init.splitlines() if line.startswith("| transformers, no timestep embedding |"))
    assert nt_row.endswith(" / 0.000, " + nt_row.rsplit(", ", 1)[1]) and nt_row.count(" / 0.000") == 2   # both seeds
    d = json.loads((camp.results / "datasets" / "toy-mixed.json").read_text())
    assert f"| {camp.dataset_id('toy', 'mixed')} | {d['episodes']:,} | {d['steps']:,} | {d['return_mean']:.0f} / " in md
    # a missing seed makes the cell pending, never a pooled number: the seeds done so far are named as such
    (camp.results / "dt-toy-mixed-s1" / "eval-00000020.json").unlink()
    page.write_report_v1(camp, docs=tmp_path / "docs")
    row = next(line for line in (tmp_path / "docs" / "results.md").read_text().splitlines() if line.startswith("| 20 |"))
    assert row.split("|")[2].strip() == f"pending (so far: seed 0 {per_seed[0].mean():.1f})"


def test_odt_pretrains_finetunes_with_each_optimiser_and_reaches_the_page(tiny_v1, tmp_path):
    import dataclasses
    pre, ft = tmp_path / "odt-pre.json", tmp_path / "odt-ft.json"
    pre.write_text(json.dumps({**TOY, "model": "odt", "steps": 10, "optimizer": "lamb", "warmup_steps": 5}))
    ft.write_text(json.dumps({"online_steps": 120, "num_envs": 2, "updates_per_round": 3, "batch_size": 16,
                              "eval_return": 19.0, "explore_return": 25.0, "eval_context": 3, "eval_every": 60,
                              "eval_episodes": 2, "checkpoint_every": 60, "buffer_size": 50, "lr": 1e-3}))
    nt = tmp_path / "odt-pre-nt.json"                            # a second pretraining variant: no timestep embedding
    nt.write_text(json.dumps({**json.loads(pre.read_text()), "timestep_embedding": False}))
    config = dataclasses.replace(tiny_v1.config, seeds=(0, 1), odt_datasets=(("toy", "mixed"),),
                                 odt_pretrain={"odt": str(pre), "odtnt": str(nt)}, odt_finetune={"toy": str(ft)})
    camp = V.CampaignV1(runs=tiny_v1.runs, results=tiny_v1.results, models=tiny_v1.models, log=lambda *a: None,
                        config=config)
    tasks = camp._odt_tasks()
    assert [t.name for t in tasks if t.action == "finetune"] == [          # optimiser by optimiser, seeds within
        "finetune:odtlamb-toy-mixed-s0", "finetune:odtlamb-toy-mixed-s1",
        "finetune:odtadamw-toy-mixed-s0", "finetune:odtadamw-toy-mixed-s1",
        "finetune:odtntlamb-toy-mixed-s0", "finetune:odtntlamb-toy-mixed-s1",
        "finetune:odtntadamw-toy-mixed-s0", "finetune:odtntadamw-toy-mixed-s1"]
    assert camp._odt_estimate(1.0) == {}                        # nothing measured yet: not priced
    assert camp.run(only="odt") > len(tasks)                    # fine-tuning went in chunks of 60 env steps
    assert all(t.done() for t in camp._odt_tasks())
    est = camp._odt_estimate(1.0)                               # priced from its own runs: nothing left
    assert est["odt_h"] == 0 and est["odt_pretrain_steps_per_s"] > 0 and est["odt_finetune_ms_per_env_step"] >= 0
    more = V.CampaignV1(runs=camp.runs, results=camp.results, models=camp.models, log=lambda *a: None,
                        config=dataclasses.replace(config, seeds=(0, 1, 2)))       # a third seed, left to do
    left = more._odt_estimate(2.0)          # its 2 pretrainings, 4 fine-tunings, 6 evaluations at these rates
    assert left["odt_pretrain_steps_per_s"] == est["odt_pretrain_steps_per_s"]
    assert left["odt_h"] * 3600 == pytest.approx(2 * 10 / est["odt_pretrain_steps_per_s"] + 4 * 120 *
                                                 est["odt_finetune_ms_per_env_step"] / 1e3 + 6 * config.eval_episodes * 2.0)
    r = camp.results
    off = json.loads((r / "odt-toy-mixed-s0" / "eval-00000010.json").read_text())
    assert off["architecture"] == "odt" and off["context_length"] == 3 and off["results"][0]["target_return"] == 19.0
    assert off["results"][0]["episodes"] == 4
    assert json.loads((camp.runs / "odtnt-toy-mixed-s0" / "config.json").read_text())["timestep_embedding"] is False
    assert json.loads((camp.runs / "odt-toy-mixed-s0" / "config.json").read_text())["timestep_embedding"] is True
    assert json.loads((r / "odtntlamb-toy-mixed-s1" / "finetune.json").read_text())["pretrained"] == "odtnt-toy-mixed-s1"
    cond = {v: json.loads((r / f"{v}-toy-mixed-s0" / "eval-00000010.json").read_text())["conditioning"]
            for v in ("odt", "odtnt")}                               # the evaluation records what the action reads
    assert cond["odtnt"]["timestep_plus_100"] == 0 < cond["odt"]["timestep_plus_100"]   # no timestep, nothing to read
    assert cond["odt"]["windows"] == 512
    assert "conditioning" in json.loads((r / "odtntlamb-toy-mixed-s0" / "eval-last.json").read_text())
    for opt in ("lamb", "adamw"):
        done = json.loads((r / f"odt{opt}-toy-mixed-s1" / "finetune.json").read_text())
        assert done["env_steps"] >= 120 and done["optimizer"] == opt and done["pretrained"] == "odt-toy-mixed-s1"
        saved = json.loads((camp.runs / f"odt{opt}-toy-mixed-s1" / "config.json").read_text())
        assert saved["optimizer"] == opt and saved["online_steps"] == 120 and saved["eval_context"] == 3
        assert saved["lr"] == {"lamb": 1e-3, "adamw": 1e-4}[opt]          # the preset's, or the arm's override
        last = json.loads((r / f"odt{opt}-toy-mixed-s1" / "eval-last.json").read_text())
        assert last["checkpoint_step"] == done["env_steps"] and last["results"][0]["episodes"] == 4
        assert len((r / f"odt{opt}-toy-mixed-s1" / "metrics.csv").read_text().splitlines()) == 3   # 60, 120
    readme = tmp_path / "README.md"          # the README's generated block: the same figures
    readme.write_text("# x\n<!-- generated: odt (by the report) -->\nstale\n<!-- end: odt -->\nkept\n")
    assert readme in page.write_report_v1(camp, docs=tmp_path / "docs")
    md = (tmp_path / "docs" / "results.md").read_text()
    sec = md[md.index("## 6. Online fine-tuning"):]
    offline = page.pooled([json.loads((r / f"odt-toy-mixed-s{s}" / "eval-00000010.json").read_text()) for s in (0, 1)])
    moved = ", ".join(f"{c['return_to_go_x2']:.3f} / {c['timestep_plus_100']:.3f}" for c in (
        json.loads((r / f"odt-toy-mixed-s{s}" / "eval-00000010.json").read_text())["conditioning"] for s in (0, 1)))
    assert f"| offline, `{pre}` (pretrained, 10 steps) | {page.fmt(offline)} | | | {moved} |" in sec
    online = page.pooled([json.loads((r / f"odtlamb-toy-mixed-s{s}" / "eval-last.json").read_text()) for s in (0, 1)])
    gain = np.mean(online["seed_means"]) - np.mean(offline["seed_means"])
    assert f"| online, LAMB (120 env steps) | {page.fmt(online)} | {gain:+.1f} (" in sec
    online_ad = page.pooled([json.loads((r / f"odtadamw-toy-mixed-s{s}" / "eval-last.json").read_text()) for s in (0, 1)])
    offline_nt = page.pooled([json.loads((r / f"odtnt-toy-mixed-s{s}" / "eval-00000010.json").read_text()) for s in (0, 1)])
    online_nt = page.pooled([json.loads((r / f"odtntadamw-toy-mixed-s{s}" / "eval-last.json").read_text()) for s in (0, 1)])
    gain_nt = np.mean(online_nt["seed_means"]) - np.mean(offline_nt["seed_means"])
    assert f"| online, AdamW, from `{nt}` (120 env steps) | {page.fmt(online_nt)} | {gain_nt:+.1f} (" in sec
    assert f"Beside it, `--preset {nt}`: the same with timestep_embedding false (`--no-timestep-embedding`" in sec
    alphas = [float(list(csv.DictReader(open(r / f"odtlamb-toy-mixed-s{s}" / "metrics.csv")))[-1]["temperature"])
              for s in (0, 1)]                                    # alpha at the end, from each run's metrics.csv
    assert f" | {alphas[0]:.2g}, {alphas[1]:.2g} |" in sec
    assert "(LAMB (lr 0.001), AdamW (lr 0.0001); the first is the paper's)" in sec
    assert "The bar (a gain of at least 15 points, 2 seeds): " in sec and "pending" not in sec
    ab = next(line for line in sec.splitlines() if line.startswith("The optimiser A/B, from "))
    gain_ad = np.mean(online_ad["seed_means"]) - np.mean(offline["seed_means"])
    assert f"LAMB {gain:+.1f}, AdamW {gain_ad:+.1f}; " in ab and f"--preset {ft}` fine-tunes with AdamW, " in ab
    assert ("the arm with the larger mean gain." in ab) == (gain_ad >= gain)
    block = readme.read_text()
    assert "stale" not in block and block.endswith("<!-- end: odt -->\nkept\n") and "pending" not in block
    assert f"- pretrained with `--preset {pre}`: offline {offline['mean']:.1f} -> LAMB {online['mean']:.1f} ({gain:+.1f})" in block
    assert f"offline {offline_nt['mean']:.1f} -> " in block and f"AdamW {online_nt['mean']:.1f} ({gain_nt:+.1f})" in block
    assert "120 online env steps of `--preset " in block and "- the bar, a gain of +15: " in block
    # the curve: evaluations in the first round past 60 and 120 env steps (80 and 120 here), both seeds a row
    curve = [line for line in sec.split("| env steps |")[1].splitlines()[2:] if line.startswith("| ")]
    assert [line.split("|")[1].strip() for line in curve] == ["60", "120"]
    assert all(cell.count(",") == 1 for line in curve for cell in line.split("|")[2:6]), curve   # (seed 0, seed 1)
    assert sec.split("| env steps |")[1].splitlines()[0].count("|") == 4        # four arms: 2 variants x 2 optimisers


def test_hierarchical_ci_widens_when_seeds_disagree():
    rng = np.random.default_rng(0)
    same = [rng.normal(50, 10, 100) for _ in range(3)]
    apart = [rng.normal(m, 10, 100) for m in (20, 50, 80)]
    w = lambda ci: ci[1] - ci[0]                           # noqa: E731
    from decision_transformer.evaluation.stats import hierarchical_ci
    assert w(hierarchical_ci(apart)) > 5 * w(hierarchical_ci(same))
    assert hierarchical_ci(same)[0] < 50 < hierarchical_ci(same)[1]


def test_behaviour_runs_are_tasks_before_stage2_for_the_envs_the_suite_lacks(tmp_path, monkeypatch):
    """`dt results run` trains suite v1's missing behaviour policies (sbx SAC in a one-thread child
    process), exports them, then builds their data: one command from nothing to the campaign."""
    import dataclasses
    import subprocess
    monkeypatch.setattr(V.CampaignV1, "suite_has", lambda self, env: env == "hopper")
    base = V.CampaignV1(runs=tmp_path / "runs", results=tmp_path / "results", log=lambda *a: None)
    camp = V.CampaignV1(runs=base.runs, results=base.results, log=lambda *a: None,
                        config=dataclasses.replace(base.config, stage2={"budget": 20_000, "model": "dt"}))
    names = [t.name for t in camp.plan()]
    beh = [n for n in names if n.startswith("behaviour")]
    assert beh == ["behaviour:walker2d-medium", "behaviour:walker2d-expert", "behaviour-export:walker2d",
                   "behaviour:halfcheetah-medium", "behaviour:halfcheetah-expert", "behaviour-export:halfcheetah"]
    trains = [i for i, n in enumerate(names) if n.startswith("train:") and "odt" not in n]
    stage1 = [i for i in trains if names[i].startswith("train:dt") and any(f"-hopper-{lv}-s" in names[i]
                                                                          for lv in ("medium-replay", "medium-expert"))]
    stage2 = [i for i in trains if names[i].startswith("train:bc-walker2d")]
    first = [i for i in stage1 if names[i].endswith("@20000")]
    assert max(first) < names.index(beh[0]) < names.index(beh[-1]) < min(stage2)
    assert max(stage2) < min(i for i in stage1 if names[i].endswith("@50000"))   # the budget A/B's longer legs: last
    est = camp._behaviour_estimate()                 # priced from hopper's committed runs (suite/v1/manifest.json)
    rm, rx = est["behaviour_rates"]["medium"], est["behaviour_rates"]["expert"]
    assert 10 < rx < rm < 1000 and est["behaviour_h"] == pytest.approx((2 * 1_000_000 / rm + 2 * 500_000 / rx) / 3600)
    calls = []

    def run(cmd, env, stdout, stderr, preexec_fn, check):
        calls.append((cmd, env))
        d = Path(cmd[cmd.index("--run-dir") + 1]) / "state"
        d.mkdir(parents=True)
        (d / "progress.json").write_text(json.dumps({"steps": 40_000}))
        return subprocess.CompletedProcess(cmd, 1 if "--stop-return" not in cmd else 0)
    monkeypatch.setattr(subprocess, "run", run)
    t = {t.name: t for t in camp.plan()}["behaviour:walker2d-medium"]
    assert camp._progress(t) == ""
    camp.execute(t)
    cmd, env = calls[0]
    assert cmd[1:] == ["-m", "decision_transformer.suite.behaviour", "--env", "Walker2d-v5", "--algo", "sac",
                       "--steps", "1000000", "--train-freq", "8", "--run-dir", str(camp.runs / "sac-walker2d-medium"),
                       "--stop-return", "2000.0"]
    assert env["OMP_NUM_THREADS"] == "1" and "intra_op_parallelism_threads=1" in env["XLA_FLAGS"]
    assert camp._progress(t) == ", 40,000 of 1,000,000 env steps" and not t.done()
    assert camp._behaviour_estimate()["behaviour_h"] == pytest.approx(est["behaviour_h"] - 40_000 / rm / 3600)
    (camp.runs / "sac-walker2d-medium" / "state" / "progress.json").write_text(json.dumps({"steps": 40_000,
                                                                                          "wall": 100.0}))
    own = camp._behaviour_estimate()                 # a run under way: priced at its own rate so far
    assert own["behaviour_own"] == {"sac-walker2d-medium": 400.0}
    assert own["behaviour_h"] == pytest.approx(est["behaviour_h"] - 1_000_000 / rm / 3600 + 960_000 / 400 / 3600)
    monkeypatch.setattr(camp, "estimate", lambda: {"dt_steps_per_s": 5.0, "dt_measured": "-", "bc_steps_per_s": 400.0,
                                                   "eval_s_per_env_step": 1e-3, "bc_eval_s_per_env_step": 2e-4, "stage1_train_h": 1.0,
                                                   "stage1_eval_h": 1.0, "stage2_h": {20_000: 1.0}, **own})
    assert f"missing behaviour policies: {own['behaviour_h']:.1f} (sbx SAC at full length, `sac-walker2d-medium` at " \
           f"its own rate so far, 400 env steps/s, the others priced from the committed envs' runs: medium {rm:.0f} " \
           f"env steps/s, expert {rx:.0f} env steps/s;" in "\n".join(page.estimate_lines(camp))
    (camp.runs / "sac-walker2d-medium" / "state" / "finished.json").write_text("{}")
    assert t.done()
    from decision_transformer.errors import DTError
    with pytest.raises(DTError, match=r"sac-walker2d-expert exited with 1: see .*train.log"):
        camp.behaviour("walker2d", "expert")
    import decision_transformer.suite.build as build
    got = []
    monkeypatch.setattr(build, "export_v1", lambda expert, medium, env_id, suite_dir, log: got.append(
        (Path(expert).name, Path(medium).name, env_id)) or {"version": "v1", "expert": {
            "file": "Walker2d-v5/expert.safetensors", "env_steps": 500_000, "return_mean": 4000.0, "sha256": "x"}})
    camp.export_behaviour("walker2d")
    assert got == [("sac-walker2d-expert", "sac-walker2d-medium", "Walker2d-v5")]
    rec = json.loads((camp.results / "behaviour" / "walker2d.json").read_text())
    assert rec["levels"] == {"expert": {"file": "Walker2d-v5/expert.safetensors", "env_steps": 500_000,
                                        "return_mean": 4000.0}}
    monkeypatch.setattr(V.CampaignV1, "suite_has", lambda self, env: env != "halfcheetah")   # exported: no tasks
    assert [t.name for t in camp._behaviour_tasks()] == [n for n in beh if "halfcheetah" in n]


def test_a_paired_ci_sees_a_gain_that_seeds_spread_far_apart_would_hide():
    from decision_transformer.evaluation.stats import hierarchical_ci, paired_seed_ci
    rng = np.random.default_rng(1)
    a = [rng.normal(m, 10, 100) for m in (20, 50, 80)]
    b = [rng.normal(m + 5, 10, 100) for m in (20, 50, 80)]           # 5 better on every seed
    assert hierarchical_ci(b)[0] < hierarchical_ci(a)[1]                # apart, their CIs overlap
    lo, hi = paired_seed_ci(a, b)
    assert 0 < lo < 5 < hi < 10
    lo, hi = paired_seed_ci(a, [rng.normal(m + d, 10, 100) for m, d in ((20, -8), (50, 2), (80, 12))])
    assert lo < 0 < hi                                                  # the seeds disagree: no decision


def test_estimate_prices_what_is_left_from_measured_times(tmp_path):
    camp = V.CampaignV1(runs=tmp_path / "runs", results=ROOT / "results" / "v1-none")   # no v1 run yet
    est = camp.estimate(v0_results=ROOT / "results")
    assert 1 < est["dt_steps_per_s"] < 50 and est["bc_steps_per_s"] > est["dt_steps_per_s"]
    c = camp.config
    dt_steps = len(c.seeds) * len(c.ab_datasets) * sum(rec["steps"] for rec in camp.stage1_recipes().values())
    assert camp.stage1_recipes()["dt"]["steps"] == c.ab_eval_steps[1] < c.ab_steps   # no leg past an unevaluated one
    assert est["stage1_train_h"] == pytest.approx(dt_steps / est["dt_steps_per_s"] / 3600)
    assert est["stage2_h"][20_000] < est["stage2_h"][50_000] < est["stage2_h"][100_000]
    assert "stage 1" in "\n".join(page.estimate_lines(camp)) and "they did not record their machine" in est["dt_measured"]
    # stage 2 at 20k, counted by hand: stage 1's A/B runs (the same DT runs) are not priced again
    b, ep = 20_000, 1000 * est["eval_s_per_env_step"]
    runs = len(c.envs) * len(c.levels) * len(c.seeds)
    new = runs - len(c.ab_datasets) * len(c.seeds)
    dt_run = b / est["dt_steps_per_s"] + ep * (2 * c.eval_episodes            # the reported weights', 2 targets
                                               + b // c.checkpoint_every * c.curve_episodes + c.eval_episodes)
    assert est["bc_eval_s_per_env_step"] < est["eval_s_per_env_step"] / 2      # an MLP's forward: priced at its own
    base_run = c.baseline_steps / est["bc_steps_per_s"] + 1000 * est["bc_eval_s_per_env_step"] * c.eval_episodes
    sweeps = len(c.envs) * len(c.sweep_levels) * len(c.seeds) * c.sweep_points * c.sweep_episodes * ep
    best_of_stage1 = (runs - new) * c.eval_episodes * ep          # their best checkpoints (first target): once the budget is decided
    assert est["stage2_h"][b] == pytest.approx((new * dt_run + 2 * runs * base_run + sweeps + best_of_stage1) / 3600)
    planned = V.CampaignV1(runs=tmp_path / "runs", results=ROOT / "results" / "v1-none",
                           config=V.CampaignV1Config(stage2={"budget": b, "model": "dt"})).estimate(v0_results=ROOT / "results")
    assert list(planned["stage2_h"]) == [b]          # planned: its own tasks priced, the same work in all
    assert planned["stage1_train_h"] + planned["stage1_eval_h"] + planned["stage2_h"][b] == pytest.approx(
        est["stage1_train_h"] + est["stage1_eval_h"] + est["stage2_h"][b])
    assert "as planned: 20k steps" in "\n".join(page.estimate_lines(V.CampaignV1(
        runs=tmp_path / "runs", results=ROOT / "results" / "v1-none", config=V.CampaignV1Config(stage2={"budget": b, "model": "dt"}))))
    total = est["stage1_train_h"] + est["stage1_eval_h"] + est.get("behaviour_h", 0) + est.get("odt_h", 0) + est["stage2_h"][b]
    assert c.stage2_max_budget == b and f"- in all, with stage 2 at 20k steps: {total:.0f} core-hours, {total / 2:.0f} hours " \
        "of wall time for two one-thread workers" in "\n".join(page.estimate_lines(camp))


def test_the_dt_price_is_the_newest_run_sessions_speed_with_its_machine_named(tmp_path):
    """Rows logged while other jobs shared the cores (an old session) do not price what is left."""
    machine = {"cpu": "AMD EPYC", "isa": "AVX2", "threads": 1, "torch": "2.13.0", "device": "cpu"}

    def run(name, sessions, rates):
        d = V._mk(tmp_path / name)
        (d / "sessions.jsonl").write_text("".join(json.dumps({"time": t, "step": st, "machine": machine}) + "\n"
                                                  for t, st in sessions))
        (d / "metrics.csv").write_text("step,loss,lr,steps_per_s,eval_target,eval_return_mean,eval_return_std\n" + "".join(
            f"{100 * (i + 1)},0.5,0.0001,{r},,,\n" for i, r in enumerate(rates)))
        return d
    old = run("dt-a", [("2026-12-01T10:00:00Z", 0)], [2.0] * 20)
    new = run("dt-b", [("2026-12-07T08:00:00Z", 0), ("2026-12-07T09:00:00Z", 1500)], [4.0] * 15 + [9.0] * 3)
    rate, where = V._newest_session_rate([old, new])
    assert rate == 4.0                  # the newest session with 10 rows or more (the last one has 3)
    assert where == "the median of the newest run session's 15 log rows: dt-b from step 0, started 2026-12-07 on " \
                    "AMD EPYC (AVX2), one thread"
    (new / "sessions.jsonl").unlink()
    assert V._newest_session_rate([old, new])[0] == 2.0
    (old / "sessions.jsonl").unlink()
    assert V._newest_session_rate([old, new]) is None      # estimate() then takes the median of every row


def test_stage1_decides_budget_weights_and_recipe_by_paired_cis_and_plans_stage2_by_itself(tmp_path, monkeypatch):
    """stage2 "auto": the 100k leg is trained only if 50k beats 20k; the EMA and the other recipes
    win only where their paired CI lies above 0 on one A/B dataset and below it on none."""
    monkeypatch.setattr(V.CampaignV1, "suite_has", lambda self, env: True)
    camp = V.CampaignV1(runs=tmp_path / "runs", results=tmp_path / "results", log=lambda *a: None)
    c = camp.config
    rng = np.random.default_rng(0)
    noise = {(env, level, s): rng.normal(0, 30, 100) for env, level in c.ab_datasets for s in c.seeds}

    def put(model, step, ema, shift):                      # returns = a shared per-episode part + shift: paired
        for env, level in c.ab_datasets:
            for s in c.seeds:
                p = V._mk(camp.results / V.run_name(model, env, level, s)) / f"eval-{V.ckpt_name(step)}{'-ema' if ema else ''}.json"
                rets = (1000 + noise[(env, level, s)] + shift(level, s)).tolist()
                p.write_text(json.dumps({"results": [{"returns": rets, "target_return": 3600.0,
                                                      "refs": {"min": 0.0, "max": 1000.0}}]}))

    def trains():
        return sorted(t.name for t in camp.plan() if t.action == "train" and "odt" not in t.name)
    put("dt", 20_000, False, lambda level, s: 0)
    assert camp.beats(("dt", 20_000, False), ("dt", 50_000, False)) is None and camp.budget_decision() == (None, 50_000)
    assert "| 100,000 | trained only if 50k beats the budget before it" in "\n".join(page.budget_ema_section(camp))
    lines = "\n".join(page.decisions_lines(camp))          # the CPU's cap is the first budget: its EMA row, no wait
    assert "| weights: EMA against raw at 20k (stage 2's budget on the CPU) | pending | pending | pending |" in lines
    assert "pending until the rows at 20k are decided (the weights and the recipes; it does not wait" in lines
    put("dt", 50_000, False, lambda level, s: [-20, 10, 30][s])           # the seeds disagree: 50k does not win
    g = camp.paired_gain(("dt", 20_000, False), ("dt", 50_000, False), "hopper", "medium-replay")
    assert g[0] == pytest.approx((-2 + 1 + 3) / 3) and g[1] < 0 < g[2]
    assert camp.beats(("dt", 20_000, False), ("dt", 50_000, False)) is False
    assert camp.budget_decision() == (20_000, 50_000)
    assert not any("@100000" in n for n in trains())                   # the 100k leg is not trained here
    assert camp.stage2_recipe() is None                                # the EMA and the recipes: pending
    assert "not trained here (50k did not beat 20k" in "\n".join(page.budget_ema_section(camp))
    put("dt", 20_000, True, lambda level, s: 40 if level == "medium-replay" else 0)    # better on one, worse on none
    put("dtoff", 20_000, False, lambda level, s: -50)                     # worse everywhere
    put("dtnt", 20_000, False, lambda level, s: 0)                        # the same
    assert camp.stage2_recipe() == {"budget": 20_000, "model": "dt", "ema": True}
    plan = {t.name for t in camp.plan()}
    assert "train:bc-walker2d-medium-s0@20000" in plan                 # stage 2 planned by itself
    assert "best:dt-hopper-medium-replay-s0" in plan                   # dt's last step is known now
    lines = "\n".join(page.decisions_lines(camp))
    assert "| budget: 50k against 20k steps (raw weights) | +0.7 [" in lines and "| 20k kept |" in lines
    assert "| weights: EMA against raw at 20k | +4.0 [+3." in lines and "| EMA wins |" in lines
    assert "Stage 2's recipe, so decided: 20,000 steps, transformers, EMA weights." in lines
    put("dtnt", 20_000, False, lambda level, s: 25 + s)                   # now the no-timestep recipe wins
    assert camp.stage2_recipe()["model"] == "dtnt"
    put("dt", 50_000, False, lambda level, s: 60)                         # 50k wins: the 100k leg is trained, then decided
    assert camp.budget_decision() == (None, 100_000) and any("@100000" in n for n in trains())
    assert camp.stage2_recipe() == {"budget": 20_000, "model": "dtnt", "ema": True}   # the CPU's cap: no wait
    order = [t.name for t in camp.plan() if t.action == "train"]
    assert order.index("train:dtnt-walker2d-medium-s2@20000") < order.index("train:dt-hopper-medium-replay-s0@100000")
    assert "so decided: 20,000 steps (the CPU campaign's; the budget A/B: pending), transformers, no timestep " \
           "embedding, EMA weights. Stage 2 trains at 20,000 steps here" in "\n".join(page.decisions_lines(camp))
    put("dt", 100_000, False, lambda level, s: 60)                        # no better than 50k
    assert camp.budget_decision() == (50_000, 100_000)
    assert camp.stage2_recipe() == {"budget": 20_000, "model": "dtnt", "ema": True, "chosen_budget": 50_000}
    assert "train:bc-walker2d-medium-s0@20000" in {t.name for t in camp.plan()}
    assert not any(t.name.startswith("train:dtnt-walker2d") and t.step != 20_000 for t in camp.plan())
    lines = "\n".join(page.decisions_lines(camp))
    assert "so decided: 50,000 steps, transformers, no timestep embedding, EMA weights. Stage 2 trains at 20,000 steps " \
           "here" in lines and "50,000-step budget is left to a GPU session" in lines
    assert "| weights: EMA against raw at 20k (stage 2's budget on the CPU) | +4.0 [" in lines
    assert "| weights: EMA against raw at 50k | pending | pending | pending |" in lines
    import dataclasses
    camp = V.CampaignV1(runs=camp.runs, results=camp.results, log=lambda *a: None,
                        config=dataclasses.replace(c, stage2_max_budget=None))
    assert camp.stage2_recipe() is None                                # the EMA at 50k: not evaluated
    put("dt", 50_000, True, lambda level, s: 60)
    assert camp.stage2_recipe() == {"budget": 50_000, "model": "dtnt", "ema": False}
    for f in camp.results.glob("dt-*/eval-00100000.json"):                 # no cap: until decided, no stage 2
        f.unlink()
    assert camp.budget_decision() == (None, 100_000) and camp.stage2_recipe() is None


def test_an_extra_arm_far_behind_on_its_first_seed_is_not_run_on_the_others(tmp_path, monkeypatch):
    """config.screen: the timestep-embedding arm's seeds 1 and 2 are trained only if its seed 0
    comes within the margin of the budget runs' seed 0 on at least one A/B dataset."""
    monkeypatch.setattr(V.CampaignV1, "suite_has", lambda self, env: True)
    camp = V.CampaignV1(runs=tmp_path / "runs", results=tmp_path / "results", log=lambda *a: None)
    c = camp.config
    assert c.screen == {"dtnt": 15.0}

    def put(model, level, score):                        # seed 0, 20k steps, 100 episodes; refs 0..1000
        p = V._mk(camp.results / V.run_name(model, "hopper", level, 0)) / f"eval-{V.ckpt_name(20_000)}.json"
        p.write_text(json.dumps({"results": [{"returns": [score * 10.0 + (i % 3 - 1) for i in range(100)],
                                              "target_return": 3600.0, "refs": {"min": 0.0, "max": 1000.0}}]}))

    def names():
        return {t.name for t in camp.plan()}
    later = {"train:dtnt-hopper-medium-replay-s1@20000", "eval:dtnt-hopper-medium-expert-s2@20000"}
    assert later <= names()
    put("dt", "medium-replay", 43.0)
    put("dt", "medium-expert", 94.0)
    put("dtnt", "medium-replay", 20.0)                    # 23 behind on one dataset, the other not evaluated yet
    assert camp.screened_out("dtnt") is None and later <= names()
    put("dtnt", "medium-expert", 85.0)                    # within 15 on one: it runs on
    assert camp.screened_out("dtnt") is None and later <= names()
    put("dtnt", "medium-expert", 40.0)                    # more than 15 behind on every dataset
    assert camp.screened_out("dtnt") == [pytest.approx((43.0, 20.0), abs=0.02), pytest.approx((94.0, 40.0), abs=0.02)]
    plan = names()
    assert not any(n for n in plan if n.split(":")[1].startswith("dtnt-") and ("-s1" in n or "-s2" in n))
    assert {"train:dtnt-hopper-medium-replay-s0@20000", "best:dtnt-hopper-medium-expert-s0"} <= plan
    assert "dtnt" not in dict(camp.challengers()) and "dtoff" in dict(camp.challengers())
    put("dtoff", "medium-replay", 0.0)                    # not screened: always 3 seeds
    put("dtoff", "medium-expert", 0.0)
    assert camp.screened_out("dtoff") is None and "train:dtoff-hopper-medium-replay-s2@20000" in names()
    init = "\n".join(page.init_section(camp))
    assert "| transformers, no timestep embedding | 20.0 ± 0.1 [" in init and "(seed 0 only: screened out) |" in init
    lines = "\n".join(page.decisions_lines(camp))
    assert "seed 0 at 20k (the screen) | -23.0 (20.0 vs 43.0) | -54.0 (40.0 vs 94.0) | screened out: more than 15 " \
           "behind on every dataset" in lines and "Screened on seed 0 first" in lines


@pytest.mark.parametrize("stage2", [{"budget": 20_000, "model": "dt"}, {"budget": 50_000, "model": "dtoff", "ema": True}])
def test_stage2_plan_reuses_stage1_runs_without_duplicates(stage2):
    c = V.CampaignV1Config(stage2=stage2)
    tasks = V.CampaignV1(runs="/nonexistent", results="/nonexistent", config=c).plan()
    names = [t.name for t in tasks]
    assert len(names) == len(set(names)) and all(nd in names for t in tasks for nd in t.needs)
    b, m = stage2["budget"], stage2["model"]
    dts = {n.split(":")[1].split("@")[0] for n in names if n.startswith(f"train:{m}-")}
    assert len(dts) == len(c.envs) * len(c.levels) * len(c.seeds)        # stage 1's hopper runs among them
    sfx = "-ema" if stage2.get("ema") else ""
    assert all(f"eval:{r}@{b}{sfx}" in names and f"train:{r}@{b}" in names for r in dts)
    # a new run evaluates only the weights the page reports, and its raw curve (the best checkpoint)
    ab = {V.run_name(m, env, level, seed) for env, level in c.ab_datasets for seed in c.seeds}
    new = sorted(dts - ab)
    other = "" if sfx else "-ema"
    assert new and not any(f"eval:{r}@{b}{other}" in names for r in new)
    curve = [n for n in names if n.startswith(f"curve-eval:{new[0]}@")]
    assert set(curve) == {f"curve-eval:{new[0]}@{s}{sfx}" for s in range(c.checkpoint_every, b + 1, c.checkpoint_every)}
    best = next(t for t in tasks if t.name == f"best:{new[0]}@{b}")
    assert best.args == {"run": new[0], "ema": bool(sfx), "upto": b} and set(best.needs) == set(curve)
    # it waits for the checkpoint it may choose (a run directory lost after its curve was committed:
    # the training is redone, deterministically, so that its best checkpoint exists again)
    assert best.after == [V.CampaignV1(runs="/nonexistent", results="/nonexistent", config=c)._ck(new[0], b, bool(sfx))]
    assert best in next(t for t in tasks if t.name == f"train:{new[0]}@{b}").feeds
    stage1 = sorted(ab) if m == "dt" else []
    assert all(f"eval:{r}@{b}" in names and f"eval:{r}@{b}-ema" in names for r in stage1)      # stage 1's as they were
    # trained seed-major (every dataset's first seed first), the levels with a bar before expert
    trains = [t for t in tasks if t.action == "train" and t.run in dts | {V.run_name(x, e, lv, sd) for x in c.baselines
                                                                              for e in c.envs for lv in c.levels for sd in c.seeds}
              and t.step == b and t.run not in ab]
    seeds = [t.args["seed"] for t in trains]
    assert seeds == sorted(seeds, key=c.seeds.index) and len(set(seeds)) == len(c.seeds)
    first = [t.args["level"] for t in trains if t.args["seed"] == c.seeds[0]]
    assert first == sorted(first, key=c.stage2_level_order.index) and first[-1] == "expert"
    for base in c.baselines:
        assert len([n for n in names if n.startswith(f"train:{base}-")]) == len(c.envs) * len(c.levels) * len(c.seeds)
    assert len([n for n in names if n.startswith("sweep:")]) == len(c.envs) * len(c.sweep_levels) * len(c.seeds)
    assert len([n for n in names if n.startswith("publish:")]) == len(c.envs) * len(c.levels)          # twelve
    assert names.index(next(n for n in names if n.startswith("train:"))) > names.index(next(n for n in names if n.startswith("sweep:")))


def test_stage2_runs_and_reaches_the_page(tiny_v1, tmp_path, monkeypatch):
    import dataclasses
    from decision_transformer.models.checkpoint import save_pretrained
    monkeypatch.setattr(V.CampaignV1, "publish_model", lambda self, model, dest: save_pretrained(model, dest))  # no GIF
    camp = tiny_v1
    camp.config = dataclasses.replace(camp.config, stage2={"budget": 10, "model": "dt"}, baseline_steps=10,
                                      sweep_levels=("mixed",), sweep_points=3, sweep_episodes=2, seeds=(0, 1, 2))
    camp.run()
    assert all(s == "done" for _, s in camp.status())
    pub = json.loads((camp.results / "published" / "toy-mixed.json").read_text())
    means = [np.mean(json.loads((camp.results / f"dt-toy-mixed-s{k}" / "eval-00000010.json").read_text())
                     ["results"][0]["returns"]) for k in (0, 1, 2)]
    assert pub["seed"] == sorted(range(3), key=lambda k: (means[k], k))[1]          # the median seed
    assert pub["run"] == f"dt-toy-mixed-s{pub['seed']}" and pub["weights"] == "raw"
    bc = json.loads((camp.results / "bc-toy-mixed-s1" / "eval-00000010.json").read_text())
    pbc = json.loads((camp.runs / "pbc10-toy-mixed-s0" / "config.json").read_text())
    assert bc["architecture"] == "bc" and len(bc["results"]) == 1                 # BC: one target
    assert (pbc["top_pct"], pbc["top_unit"], pbc["steps"]) == (10.0, "timesteps", 10)
    sw = json.loads((camp.results / "dt-toy-mixed-s0" / "sweep.json").read_text())
    assert len(sw["results"]) == 3 and sw["checkpoint_step"] == 10
    # runs/ lost and a publication to redo: only the published seed's run is trained again
    import shutil
    shutil.rmtree(camp.runs)
    assert all(s == "done" for _, s in camp.status())
    (camp.results / "published" / "toy-mixed.json").unlink()
    todo = {n for n, s in camp.status() if s != "done"}
    assert todo == {"publish:toy-mixed", f"train:{pub['run']}@10"}
    publish = next(t for t in camp.plan() if t.name == "publish:toy-mixed")
    assert publish.after == [camp._ck(pub["run"], 10)] and not camp.ready(publish)
    camp.run()
    assert json.loads((camp.results / "published" / "toy-mixed.json").read_text()) == pub
    assert sorted(p.name for p in camp.runs.iterdir() if p.is_dir() and p.name != ".locks") == [pub["run"]]
    near = page._sweep_at_expert(camp, "toy", "mixed")          # the sweep's target nearest the expert reference, 19
    i = int(np.argmin([abs(r["target_return"] - 19.0) for r in sw["results"]]))
    at = np.concatenate([100 * (np.array(json.loads((camp.results / f"dt-toy-mixed-s{k}" / "sweep.json").read_text())
                                         ["results"][i]["returns"]) - 7) / 12 for k in (0, 1, 2)])
    assert near == (sw["results"][i]["target_return"], pytest.approx(at.mean()))
    with monkeypatch.context() as m:                              # the medium-expert bar shows it beside the headline
        m.setattr(page, "_sweep_at_expert", lambda camp, env, level: (3400.0, 95.0))
        bars = "\n".join(page.bars_section(camp))
    assert f"| {camp.dataset_id('toy', 'medium-expert')}: DT >= 90 at the expert target | pending (the sweep's target " \
           "nearest the expert's return, 3400: 95.0) | pending |" in bars
    page.write_report_v1(camp, docs=tmp_path / "docs")
    md = (tmp_path / "docs" / "results.md").read_text()
    row = next(line for line in md.split("## 5.")[1].splitlines() if line.startswith("| /"))
    cells = [c.strip() for c in row.split("|")[1:-1]]
    assert all(c != "pending" for c in cells[1:6]), row                       # data, DT last and best, BC, 10%BC
    x = np.concatenate([100 * (np.array(json.loads((camp.results / f"dt-toy-mixed-s{k}" / "eval-00000010.json")
                                                   .read_text())["results"][0]["returns"]) - 7) / 12 for k in (0, 1, 2)])
    assert cells[2].startswith(f"{x.mean():.1f} ± {x.std():.1f} [")
    # the best checkpoint beside it: of the checkpoints up to stage 2's budget, though stage 1's runs train on past it
    bests = [json.loads((camp.results / f"dt-toy-mixed-s{k}" / "eval-best-00000010.json").read_text()) for k in (0, 1, 2)]
    assert all(b["checkpoint_step"] <= 10 and len(b["results"]) == 1 for b in bests)
    xb = np.concatenate([100 * (np.array(b["results"][0]["returns"]) - 7) / 12 for b in bests])
    assert cells[3].startswith(f"{xb.mean():.1f} ± {xb.std():.1f} [")
    assert cells[3].endswith(f"({', '.join(str(b['checkpoint_step']) for b in bests)})")
    assert "### The bars" in md and "sweep rho >= 0.8" in md
    # the rho bar's evidence: the sweeps, seeds pooled, a row and a figure per dataset
    sw_row = next(line for line in md.split("### Return conditioning")[1].splitlines()
                  if line.startswith(f"| {camp.dataset_id('toy', 'mixed')} |"))
    assert sw_row.split("|")[2].strip() == "0, 1, 2"
    assert f"| {page._sweep_rho(camp, 'toy', 'mixed'):.2f} (" in sw_row
    assert (tmp_path / "docs" / "figures" / "v1-sweep-toy-mixed.png").stat().st_size > 0
    assert "(figures/v1-sweeps.png)" in md
    d = json.loads((camp.results / "datasets" / "toy-mixed.json").read_text())
    # beside the best achieved return, the share of the data's episodes returning that much, from
    # the dataset record's exact histogram of episode returns
    ds = camp.dataset("toy", "mixed")
    ep_r, ep_len = ds.episode_returns(), ds.lengths
    h = d["return_histogram"]
    assert (h["edges"][0], h["edges"][-1]) == (pytest.approx(ep_r.min()), pytest.approx(ep_r.max()))
    assert sum(h["episodes"]) == len(ep_r) and sum(h["steps"]) == ep_len.sum() == ds.num_steps
    sws = [json.loads((camp.results / f"dt-toy-mixed-s{k}" / "sweep.json").read_text())["results"] for k in range(3)]
    best_achieved = max(np.concatenate([sw[i]["returns"] for sw in sws]).mean() for i in range(len(sws[0])))
    assert sw_row.split("|")[4].strip().startswith(f"{best_achieved:.0f} (")
    share = float(sw_row.split("|")[5].strip().rstrip("%")) / 100
    assert share == pytest.approx(page.share_at_or_above(h, best_achieved), abs=6e-4)
    bin_width = (h["edges"][-1] - h["edges"][0]) / len(h["episodes"])   # exact but for the episodes in its bin
    assert (ep_r >= best_achieved + bin_width).mean() - 1e-9 <= share <= (ep_r >= best_achieved - bin_width).mean() + 1e-9
    below = means[pub["seed"]] < d["return_mean"]
    bar = next(line for line in md.splitlines() if line.startswith("| no published checkpoint below"))
    assert bar.startswith("| no published checkpoint below its dataset's mean return at its first target | 1 published")
    assert bar.endswith("| MISSED |" if below else "| met |") and ("models/toy-mixed" in bar) == below
    # the published model's results.json and card: its dataset, its evaluation, the rule
    res = json.loads((camp.models / "toy-mixed" / "results.json").read_text())
    d = json.loads((camp.results / "datasets" / "toy-mixed.json").read_text())
    assert (res["dataset_return_mean"], res["dataset_return_max"]) == (d["return_mean"], d["return_max"])
    assert res["mean_reward"] == pytest.approx(means[pub["seed"]], rel=1e-4) and res["seed"] == pub["seed"]
    assert res["at_or_above_dataset_mean"] == (means[pub["seed"]] >= d["return_mean"])
    card = (camp.models / "toy-mixed" / "README.md").read_text()
    assert f"Published run: seed {pub['seed']} (raw weights)" in card and "median" in card
    # the card's command re-evaluates the published weights episode for episode
    cmd = res["eval_command"]
    assert f"Check it: `{cmd}`" in card and cmd.startswith("dt eval models/toy-mixed --episodes 4 ")
    from decision_transformer.cli import main
    args = cmd.split()[2:]
    assert main(["eval", str(camp.models / "toy-mixed"), *args[1:], "--json", str(tmp_path / "again.json")]) == 0
    ev = json.loads((camp.results / pub["run"] / "eval-00000010.json").read_text())
    again = json.loads((tmp_path / "again.json").read_text())
    assert [r["returns"] for r in again["results"]] == [r["returns"] for r in ev["results"]]
    assert "--init transformers" in card and f"--seed {pub['seed']}" in card and "suite v1" in card
    # a seed's sweep missing: the seeds so far, plotted and named as such; the bar waits for all
    (camp.results / "dt-toy-mixed-s2" / "sweep.json").unlink()
    page.write_report_v1(camp, docs=tmp_path / "docs")
    md = (tmp_path / "docs" / "results.md").read_text()
    sw_row = next(line for line in md.split("### Return conditioning")[1].splitlines()
                  if line.startswith(f"| {camp.dataset_id('toy', 'mixed')} |"))
    assert sw_row.split("|")[2].strip() == "0, 1 so far" and page._sweep_rho(camp, "toy", "mixed") is None


def test_v1_builds_every_level_of_an_env_once(tmp_path, monkeypatch):
    """A data task builds the whole env (medium-expert reuses medium and expert), under one lock per env."""
    from decision_transformer.data.datasets import MissingDataset
    calls = []
    import decision_transformer.suite.build as build
    monkeypatch.setattr(build, "build", lambda envs, levels, **kw: calls.append((envs, levels, kw["suite_dir"])))
    monkeypatch.setattr("decision_transformer.data.datasets.load_dataset",
                        lambda did: (_ for _ in ()).throw(MissingDataset(did)) if not calls else did)
    camp = V.CampaignV1(runs=tmp_path / "runs", results=tmp_path / "results")
    assert camp.dataset("hopper", "medium-expert") == "dt/hopper/medium-expert-v1"
    assert calls == [(["Hopper-v5"], None, build.SUITE_V1)]
    assert camp.build_unit("hopper", "medium") == camp.build_unit("hopper", "expert") != camp.build_unit("walker2d", "medium")
    calls.clear()                                   # another worker is building walker2d: this one moves on
    from decision_transformer.fileio import try_lock
    held = try_lock(camp.runs / ".locks" / f"{camp.build_unit('walker2d', 'medium')}.lock", "dt suite build")
    with pytest.raises(RunBusy, match=r"its data \(dt/walker2d/medium-replay-v1\) are being built by pid \d+$"):
        camp.dataset("walker2d", "medium-replay")
    assert calls == []
    held.close()
    assert camp.dataset("walker2d", "medium-replay") == "dt/walker2d/medium-replay-v1"


def test_odt_datasets_without_suite_v1_policies_fall_back_to_suite_v0(monkeypatch, tmp_path):
    """The issue: ODT on suite v1 where it exists, else v0. An env of odt_more_datasets that suite v1
    has no policies for runs on v0's data, its level marked `-v0` in every name, built by v0's builder;
    once v1 has the env, the same datasets are v1's."""
    import dataclasses
    monkeypatch.setattr(V.CampaignV1, "suite_has", lambda self, env: env == "hopper")
    base = V.CampaignV1(runs=tmp_path / "runs", results=tmp_path / "results", log=lambda *a: None)
    camp = V.CampaignV1(runs=base.runs, results=base.results, log=lambda *a: None,
                        config=dataclasses.replace(base.config, odt_recipe=("odt", "adamw")))
    assert camp.odt_all_datasets() == [("hopper", "medium"), ("hopper", "medium-replay"), ("walker2d", "medium-v0"),
                                       ("walker2d", "medium-replay-v0"), ("halfcheetah", "medium-v0"),
                                       ("halfcheetah", "medium-replay-v0")]
    assert V.suite_level("medium-replay-v0") == ("medium-replay", "v0") and V.suite_level("medium-replay") == \
        ("medium-replay", "v1")
    V._mk(camp.results / "odt-walker2d-medium-v0-s0")          # begun on v0: stays there when v1 arrives
    monkeypatch.setattr(V.CampaignV1, "suite_has", lambda self, env: env in ("hopper", "walker2d"))
    assert camp.odt_all_datasets()[2:4] == [("walker2d", "medium-v0"), ("walker2d", "medium-replay")]
    (camp.results / "odt-walker2d-medium-v0-s0").rmdir()
    monkeypatch.setattr(V.CampaignV1, "suite_has", lambda self, env: env == "hopper")
    assert camp.odt_arms("walker2d", "medium-replay-v0") == [("odt", "adamw")]
    assert camp.dataset_id("walker2d", "medium-replay-v0") == "dt/walker2d/medium-replay-v0"
    assert camp.dataset_id("hopper", "medium-replay") == "dt/hopper/medium-replay-v1"
    order = [t.name for t in camp._odt_tasks()]
    tasks = {t.name: t for t in camp._odt_tasks()}
    first_s1 = order.index("train:odt-hopper-medium-replay-s1@10000")     # every v0 dataset is built before seed 1
    assert all(order.index(f"data:{e}-{lv}") < first_s1 for e, lv in camp.odt_all_datasets()[2:])
    data = tasks["data:walker2d-medium-v0"]
    assert data.suite_env is None and camp.ready(data)             # v0's policies are committed: buildable now
    assert not camp.ready(next(t for t in camp.plan() if t.name == "data:walker2d-medium"))   # v1's still wait
    ft = tasks["finetune:odtadamw-walker2d-medium-v0-s1"]
    assert ft.args["pretrained"] == "odt-walker2d-medium-v0-s1" and ft.needs == ["data:walker2d-medium-v0"]
    cfg = camp.odt_finetune_config(ft.args["run"], ft.args["pretrained"], 10_000, "walker2d", "medium-v0", 1, "adamw")
    assert cfg.dataset == "dt/walker2d/medium-v0" and cfg.env_id == "Walker2d-v5"
    assert camp.train_config("odt-walker2d-medium-v0-s1", "walker2d", "medium-v0", "odt", 1, 10).dataset == \
        "dt/walker2d/medium-v0"
    calls = []                                       # v0's builder, that one level, under that level's lock
    import decision_transformer.suite.build as build
    monkeypatch.setattr(build, "build", lambda envs, levels, **kw: calls.append((envs, levels, kw.get("suite_dir"))))
    camp.build_dataset("walker2d", "medium-replay-v0")
    assert calls == [(["Walker2d-v5"], ["medium-replay"], None)]
    assert camp.build_unit("walker2d", "medium-v0") != camp.build_unit("walker2d", "medium-replay-v0")
    assert V.CampaignV1(runs=base.runs, results=base.results,
                        config=dataclasses.replace(base.config, odt_fallback=None)).odt_all_datasets()[2] == \
        ("walker2d", "medium")                       # no fallback: it waits for suite v1
    sec = "\n".join(page.odt_section(camp))          # the page says which suite, before any result
    assert "**dt/walker2d/medium-replay-v0** (suite v0's data: suite v1 has no behaviour policies for walker2d yet, " \
           "section 1): fine-tuning `--preset cpu-walker2d`" in sec
    assert "**dt/hopper/medium-replay-v1**: fine-tuning" in sec and "suite v0 here and D4RL v2 there" in sec
    monkeypatch.setattr(V.CampaignV1, "suite_has", lambda self, env: True)
    assert ("walker2d", "medium") in camp.odt_all_datasets()


def test_the_other_odt_datasets_wait_for_the_ab_then_run_its_arm_with_the_largest_mean_gain(tmp_path, monkeypatch):
    """odt_recipe "auto": nothing planned on the other datasets until every arm of the A/B has every
    seed evaluated on both sides; then the arm with the largest mean gain, paired by seed."""
    import dataclasses
    monkeypatch.setattr(V.CampaignV1, "suite_has", lambda self, env: True)
    camp = V.CampaignV1(runs=tmp_path / "runs", results=tmp_path / "results", log=lambda *a: None)
    c = camp.config
    assert c.odt_recipe == "auto" and camp.chosen_odt_arm() is None and camp.odt_arms("hopper", "medium-replay") == []

    def put(run, name, returns):
        p = V._mk(camp.results / run) / name
        p.write_text(json.dumps({"results": [{"returns": returns, "target_return": 3600.0,
                                              "refs": {"min": 0.0, "max": 1000.0}}]}))
    offline = {"odt": [100, 200, 300], "odtnt": [400, 400, 400]}
    online = {("odt", "lamb"): [600, 700, 800], ("odt", "adamw"): [500, 900, 700],      # gains 500, 500
              ("odtnt", "lamb"): [900, 1000, 1100], ("odtnt", "adamw"): [1000, 1200, 1200]}   # 600, 733
    for v, rets in offline.items():
        for s, r in zip(c.seeds, rets):
            put(V.run_name(v, "hopper", "medium", s), f"eval-{V.ckpt_name(camp.odt_pretrain_steps(v))}.json", [r, r])
    for (v, o), rets in online.items():
        for s, r in zip(c.seeds, rets):
            if (v, o, s) != ("odtnt", "adamw", 2):                  # one seed of one arm still running
                put(V.run_name(f"{v}{o}", "hopper", "medium", s), "eval-last.json", [r - 50, r + 50])
    assert set(camp.odt_gains()) == {("odt", "lamb"), ("odt", "adamw"), ("odtnt", "lamb")}
    assert camp.odt_gains()[("odtnt", "lamb")] == [500, 600, 700] and camp.chosen_odt_arm() is None
    put(V.run_name("odtntadamw", "hopper", "medium", 2), "eval-last.json", [1200])
    assert camp.chosen_odt_arm() == ("odtnt", "adamw") and camp.odt_arms("hopper", "medium-replay") == [("odtnt", "adamw")]
    names = [t.name for t in camp._odt_tasks()]
    assert "finetune:odtntadamw-hopper-medium-replay-s2" in names
    others = [(e, lv) for e, lv in c.odt_more_datasets if e in c.envs]      # seed by seed: every env's seed 0 first
    tunes = [n for n in names if n.startswith("finetune:") and "-hopper-medium-s" not in n]
    assert tunes == [f"finetune:{V.run_name('odtntadamw', e, lv, s)}" for s in c.seeds for e, lv in others]
    assert names.index(f"eval:{V.run_name('odtntadamw', *others[0], 0)}") < names.index(
        f"train:{V.run_name('odtnt', *others[1], 0)}@{camp.odt_pretrain_steps('odtnt')}")
    assert "The other datasets below run AdamW from `--preset odt-cpu-notime`: the A/B's arm with the largest mean " \
           "gain" in "\n".join(page.odt_section(camp))
    readme = page.odt_readme_lines(camp)       # nothing measured on the others yet: one line names them all
    assert readme[-1].startswith("Planned or under way with AdamW from `--preset odt-cpu-notime`, the arm the A/B chose: "
                                 "`dt/hopper/medium-replay-v1`, `dt/walker2d/medium-v1`, ")
    assert not any(ln.startswith("Measured on `dt/walker2d") for ln in readme)
    assert "highest online score is another" not in "\n".join(page.odt_section(camp))   # that arm is also the best
    put(V.run_name("odtnt", "walker2d", "medium", 0), f"eval-{V.ckpt_name(camp.odt_pretrain_steps('odtnt'))}.json", [300])
    readme = "\n".join(page.odt_readme_lines(camp))    # one seed measured: its figures, before the pooled ones
    assert "Measured on `dt/walker2d/medium-v1` (3 seeds, 1 evaluated so far, last checkpoint" in readme
    assert "offline pending (so far: seed 0 30.0) -> AdamW pending\n" in readme
    put(V.run_name("odtntadamw", "walker2d", "medium", 0), "eval-last.json", [450])
    assert "offline pending (so far: seed 0 30.0) -> AdamW pending (so far: seed 0 45.0 (+15.0))" in "\n".join(
        page.odt_readme_lines(camp))
    fixed = V.CampaignV1(runs=camp.runs, results=camp.results, config=dataclasses.replace(c, odt_recipe=("odt", "lamb")))
    assert fixed.chosen_odt_arm() == ("odt", "lamb")
    assert "run LAMB from `--preset odt-cpu`: as `odt_recipe` sets it. The arm with the highest online score is " \
           "another, AdamW from `--preset odt-cpu-notime` (112.0 against 70.0)" in "\n".join(page.odt_section(fixed))
    assert V.CampaignV1(runs=camp.runs, results=camp.results,
                        config=dataclasses.replace(c, odt_recipe=None)).odt_arms("hopper", "medium-replay") == []


def test_finetune_builds_its_dataset_when_this_machine_lacks_it(tmp_path, monkeypatch):
    """runs/ kept, the Minari root lost: the fine-tuning builds the data its buffer is seeded from,
    as a training does, instead of failing on the missing dataset."""
    camp = V.CampaignV1(runs=tmp_path / "runs", results=tmp_path / "results", log=lambda *a: None)
    calls = []
    monkeypatch.setattr(camp, "_dataset_exists", lambda env, level: False)

    def dataset(env, level):
        calls.append((env, level))
        raise RuntimeError("built")
    monkeypatch.setattr(camp, "dataset", dataset)
    with pytest.raises(RuntimeError, match="built"):
        camp.finetune("odtlamb-hopper-medium-s0", "odt-hopper-medium-s0", 10000, "hopper", "medium", 0, "lamb")
    assert calls == [("hopper", "medium")]


def test_the_odt_bar_is_met_by_one_finished_arm_and_missed_only_when_all_have_finished():
    from decision_transformer.report.v1 import odt_verdict
    arms = [("odt", "lamb"), ("odt", "adamw"), ("odtnt", "lamb")]
    assert odt_verdict({}, arms) == ("pending", None)
    assert odt_verdict({("odt", "lamb"): [14, 15], ("odt", "adamw"): [16, 17]}, arms) == ("met", ("odt", "adamw"))
    assert odt_verdict({("odt", "lamb"): [14, 15]}, arms) == ("pending", ("odt", "lamb"))
    assert odt_verdict({a: [10, 12] for a in arms}, arms) == ("MISSED", arms[0])


def test_the_page_says_what_the_odt_recipe_changes_in_the_papers_from_the_presets(tmp_path):
    from decision_transformer.report.v1 import paper_recipe_lines
    camp = V.CampaignV1(runs=tmp_path / "runs", results=tmp_path / "results")
    lines = paper_recipe_lines(camp, "hopper", "medium", camp.odt_arms("hopper", "medium"))
    pre = {ln.split("`")[1]: ln for ln in lines if ln.startswith("- pretraining")}
    assert "timestep_embedding true (paper false)" in pre["--preset odt-cpu"]
    assert "timestep_embedding" not in pre["--preset odt-cpu-notime"] and "hidden_size 64 (paper 512)" in pre["--preset odt-cpu-notime"]
    ft = [ln for ln in lines if ln.startswith("- fine-tuning")]
    assert len(ft) == 2 and all("online_steps 100000 (paper 200000)" in ln for ln in ft)
    assert "optimizer" not in ft[0] and 'optimizer "adamw" (paper "lamb")' in ft[1]        # LAMB is the paper's
    assert paper_recipe_lines(camp, "toy", "mixed", [("odt", "lamb")]) == []


def test_fallback_data_with_clipped_actions_is_set_aside_for_suite_v1(monkeypatch, tmp_path):
    """Fallback data the ODT's tanh-Gaussian head cannot model (its data task measured more than
    SATURATION_WARN of its action components at +-1) is set aside: the seeds begun on it finish and
    stay on the page, no new ones start, and the dataset runs on suite v1 instead, waiting for its data."""
    import dataclasses
    monkeypatch.setattr(V.CampaignV1, "suite_has", lambda self, env: env == "hopper")
    base = V.CampaignV1(runs=tmp_path / "runs", results=tmp_path / "results", log=lambda *a: None)
    camp = V.CampaignV1(runs=base.runs, results=base.results, log=lambda *a: None,
                        config=dataclasses.replace(base.config, odt_recipe=("odt", "adamw")))

    def measured(env, level, sat):
        (V._mk(camp.results / "datasets") / f"{env}-{level}.json").write_text(json.dumps({"actions_at_bounds": sat}))
    measured("walker2d", "medium-v0", 0.28)
    measured("halfcheetah", "medium-v0", 0.35)
    measured("halfcheetah", "medium-replay-v0", 0.05)                   # below the line: it runs on v0
    V._mk(camp.runs / "odt-walker2d-medium-v0-s0")                      # begun on v0 before it was measured
    assert camp.odt_all_datasets()[2:] == [("walker2d", "medium-v0"), ("walker2d", "medium"),
                                           ("walker2d", "medium-replay-v0"), ("halfcheetah", "medium"),
                                           ("halfcheetah", "medium-replay-v0")]
    assert camp.odt_unfit("walker2d", "medium-v0") == 0.28 and camp.odt_unfit("walker2d", "medium") is None
    assert camp.odt_seeds("walker2d", "medium-v0") == [0] and camp.odt_seeds("walker2d", "medium") == [0, 1, 2]
    names = {t.name for t in camp._odt_tasks()}
    assert "finetune:odtadamw-walker2d-medium-v0-s0" in names and "train:odt-walker2d-medium-v0-s1@10000" not in names
    assert {"finetune:odtadamw-walker2d-medium-s2", "finetune:odtadamw-halfcheetah-medium-replay-v0-s2"} <= names
    assert not any("halfcheetah-medium-v0" in n for n in names)
    tasks = {t.name: t for t in camp.plan()}
    assert not camp.ready(tasks[tasks["train:odt-walker2d-medium-s0@10000"].needs[0]])   # v1's data waits
    sec = "\n".join(page.odt_section(camp))          # the page says why, before and after any run
    assert "**dt/walker2d/medium-v0** (suite v0's data, set aside after seed 0: below the table)" in sec
    assert "Set aside: 28% of this dataset's action components lie at +-1" in sec
    assert "**dt/halfcheetah/medium-v1** (waits for suite v1's data: its halfcheetah behaviour policies are not " \
           "committed yet, section 1; suite v0's `dt/halfcheetah/medium-v0`, with 35% of its action components at " \
           "+-1, is set aside)" in sec


def test_the_page_says_how_many_envs_suite_v1_has(tmp_path, monkeypatch):
    import decision_transformer.suite.build as build
    monkeypatch.setattr(build, "SUITE_V1", tmp_path)
    camp = V.CampaignV1(runs=tmp_path / "runs", results=tmp_path / "results")
    envs = list(camp.config.envs.values())
    (tmp_path / "manifest.json").write_text(json.dumps({envs[0]: {}}))
    assert page.suite_lines(camp)[0] == (f"Suite v1's behaviour policies are committed for 1 of {len(envs)} envs "
                                         f"({envs[0]}); docs/suite.md says where the others stand.")
    (tmp_path / "manifest.json").write_text(json.dumps({e: {} for e in envs}))
    assert page.suite_lines(camp)[0].endswith(f"{len(envs)} of {len(envs)} envs ({', '.join(envs)}); docs/suite.md "
                                              "describes them.")


def test_the_page_sets_the_papers_targets_against_this_suites_expert_and_d4rls(tmp_path):
    """A suite whose expert is weaker than D4RL's asks the DT to go further past its data at the paper's
    target: the page says by how much, env by env, from the data's references."""
    from decision_transformer.report.page import D4RL_REFS
    camp = V.CampaignV1(runs=tmp_path / "runs", results=tmp_path / "results")
    assert page.targets_lines(camp) == []                                   # no data yet: nothing to say
    for env, ref in (("hopper", 3300.0), ("walker2d", 3125.0)):
        V._mk(camp.results / "datasets")
        (camp.results / "datasets" / f"{env}-expert.json").write_text(json.dumps({"ref_max_score": ref, "return_max": ref + 100}))
    text = "\n".join(page.targets_lines(camp))
    assert "| hopper | 3600 / 1800 | 3300 (3400) | 1.09 | 1.11 |" in text                 # as in the paper
    assert f"| walker2d | 5000 / 2500 | 3125 (3225) | 1.60 | {5000 / D4RL_REFS['walker2d'][1]:.2f} |" in text
    assert "On walker2d (1.60x against 1.09x) the first target lies further above the expert than in the paper" in text
    assert "halfcheetah" not in text


def test_the_dataset_return_histogram_and_the_share_above_a_return():
    from decision_transformer.report.v1 import share_at_or_above
    from decision_transformer.results import return_histogram
    r, lengths = np.array([0.0, 1.0, 2.0, 3.0, 10.0]), np.array([5, 5, 5, 5, 80])
    h = return_histogram(r, lengths, bins=10)                       # bins 1 wide from 0 to 10
    assert h["episodes"] == [1, 1, 1, 1, 0, 0, 0, 0, 0, 1] and h["steps"][-1] == 80 and sum(h["steps"]) == 100
    assert share_at_or_above(h, -5.0) == 1.0 and share_at_or_above(h, 11.0) == 0.0
    assert share_at_or_above(h, 5.0) == pytest.approx(0.2)          # only the 10
    assert share_at_or_above(h, 2.5) == pytest.approx(0.5)          # half of 2's bin, 3's, the 10: 2.5 of 5
    assert return_histogram(np.zeros(0), np.zeros(0, dtype=int)) is None
