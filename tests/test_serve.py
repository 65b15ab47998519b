"""dt serve without a browser: what it offers (catalog), one episode equal to dt eval's, the sweep
from files or computed once, bad requests as one message, and app.py as a Space runs it."""

import importlib.util
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from decision_transformer.cli import main
from decision_transformer.errors import DTError

# looked up, not imported: importing Gradio costs every pytest-xdist worker 4 s at collection
if importlib.util.find_spec("gradio") is None:
    pytest.skip("Gradio is not installed (pip install -e '.[serve]')", allow_module_level=True)
from decision_transformer.serve import catalog  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
FALLS = MODELS / "hopper-medium-replay"        # its episodes end in ~100 steps: cheap to play


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MUJOCO_GL", os.environ.get("MUJOCO_GL", "egl"))


def test_discover_offers_each_published_model_and_any_run_or_checkpoint(tmp_path):
    entries = catalog.discover([MODELS])
    assert sorted(entries) == sorted(d.name for d in MODELS.iterdir() if (d / "config.json").is_file())
    # a checkpoint directory and a run directory (its last checkpoint) given by themselves
    shutil.copytree(FALLS, tmp_path / "ck")
    run = tmp_path / "run"
    (run / "checkpoints" / "00000010").mkdir(parents=True)
    for f in ("config.json", "model.safetensors"):
        shutil.copy(FALLS / f, run / "checkpoints" / "00000010" / f)
    (run / "checkpoints" / "last").symlink_to("00000010")
    (run / "config.json").write_text(json.dumps({"steps": 10}))
    both = catalog.discover([tmp_path / "ck", run])
    assert sorted(both) == ["ck", "run"]
    assert both["run"].checkpoint == (run / "checkpoints" / "00000010").resolve()
    assert both["ck"].env_id == "Hopper-v5"


@pytest.mark.parametrize("make,msg", [
    (lambda d: d / "nowhere", "no such directory"),
    (lambda d: d, "holds no checkpoint or run directory"),
])
def test_a_path_that_offers_no_model_is_one_line(tmp_path, make, msg):
    with pytest.raises(DTError, match=msg):
        catalog.discover([make(tmp_path)])


def test_the_target_range_is_the_datasets_and_defaults_to_the_cards_target():
    e = catalog.entry_of(MODELS / "hopper-medium")
    cfg = json.loads((MODELS / "hopper-medium" / "config.json").read_text())["decision_transformer"]["extra"]
    card = json.loads((MODELS / "hopper-medium" / "results.json").read_text())
    step = catalog.slider_step(cfg["ref_min_score"], 1.2 * card["dataset_return_max"])
    assert e.high == math.ceil(1.2 * card["dataset_return_max"] / step) * step          # 1.2x the best episode
    assert e.low == math.floor(cfg["ref_min_score"] / step) * step                      # no lowest: the random policy's
    assert "random policy" in e.low_from and e.best == card["dataset_return_max"]
    assert e.default == min(card["target_return"], e.high)


@pytest.mark.parametrize("name,target,seed,msg", [
    ("nope", 100, 0, "unknown model 'nope': pick one of"),
    ("m", float("nan"), 0, "must be a number from"),
    ("m", float("inf"), 0, "must be a number from"),
    ("m", 1e9, 0, "must be a number from"),
    ("m", "abc", 0, "must be a number, got 'abc'"),
    ("m", 100, -1, "seed must be a whole number"),
    ("m", 100, 1.5, "seed must be a whole number"),
    ("m", 100, None, "seed must be a whole number"),
])
def test_a_bad_request_is_one_message(name, target, seed, msg):
    entries = {"m": catalog.entry_of(FALLS, "m")}
    with pytest.raises(DTError, match=msg):
        catalog.check_request(entries, name, target, seed)


def test_an_episode_is_dt_evals_episode_and_its_video_plays(tmp_path, capsys):
    e = catalog.entry_of(FALLS)
    played = catalog.play(e, 1500.0, 7, tmp_path)
    assert main(["eval", str(FALLS), "--target-return", "1500", "--episodes", "1", "--num-envs", "1", "--seed", "7",
                 "--backend", played.backend, "--json", str(tmp_path / "e.json")]) == 0
    ref = json.loads((tmp_path / "e.json").read_text())["results"][0]
    assert played.total == pytest.approx(ref["return_mean"], abs=1e-6) and len(played.rewards) == ref["length_mean"]
    assert played.returns_so_far[-1] == pytest.approx(played.total) and played.return_to_go[0] == 1500.0
    head = played.video.read_bytes()[:12]
    assert head[4:8] == b"ftyp" and played.video.stat().st_size > 10_000        # an MP4 (H.264, yuv420p)


def test_a_minatar_model_plays_and_renders_its_frames(tmp_path):
    from decision_transformer.evaluation.evaluate import evaluate
    from decision_transformer.models.dt import DecisionTransformer, DecisionTransformerConfig
    import torch
    torch.manual_seed(0)
    DecisionTransformer(DecisionTransformerConfig(
        state_type="image", state_shape=[4, 10, 10], act_dim=3, action_type="discrete", hidden_size=32, n_layer=1,
        context_length=4, return_scale=1.0, env_id="MinAtar/Breakout-v1", target_returns=[5.0], max_ep_len=200,
    )).save_pretrained(tmp_path / "minatar")
    e = catalog.entry_of(tmp_path / "minatar")
    played = catalog.play(e, 5.0, 3, tmp_path / "out")
    from decision_transformer.models.checkpoint import from_pretrained
    ref = evaluate(from_pretrained(tmp_path / "minatar"), e.env_id, [5.0], episodes=1, num_envs=1, seed=3, threads=1)[0]
    assert played.total == pytest.approx(ref["return_mean"]) and played.video.stat().st_size > 1000


def test_the_sweep_comes_from_the_models_files_else_is_computed_once_and_cached(tmp_path, monkeypatch):
    import decision_transformer.evaluation.evaluate as ev
    calls = []
    real = ev.evaluation_record
    monkeypatch.setattr(ev, "evaluation_record", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    e = catalog.entry_of(FALLS)
    assert catalog.cached_sweep(e, 3, 1) is None
    first = catalog.sweep(e, points=3, episodes=1)
    again = catalog.sweep(e, points=3, episodes=1)
    assert len(calls) == 1 and calls[0] == pytest.approx(list(np.linspace(e.low, e.high, 3)))
    assert first["results"] == again["results"] and again["from"].startswith("cache")
    # a sweep.json beside the model wins (the schema of dt sweep and the campaigns)
    shutil.copytree(FALLS, tmp_path / "m")
    (tmp_path / "m" / "sweep.json").write_text(json.dumps({"results": [{"target_return": 0, "return_mean": 1},
                                                                       {"target_return": 9, "return_mean": 2}]}))
    own = catalog.sweep(catalog.entry_of(tmp_path / "m"), points=3, episodes=1)
    assert own["from"].endswith("sweep.json") and len(calls) == 1


def test_dt_serve_with_a_bad_path_is_one_line(tmp_path, capsys):
    assert main(["serve", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "no such directory" in err[0]


def test_app_py_builds_the_page_over_models(monkeypatch):
    import runpy
    monkeypatch.delenv("DT_MODELS_DIR", raising=False)
    ns = runpy.run_path(str(ROOT / "app.py"), run_name="app")        # not __main__: built, not launched
    demo = ns["demo"]
    assert sorted(demo.page.entries) == sorted(catalog.discover([MODELS]))


def test_a_checkpoint_trained_now_records_its_datasets_lowest_return_and_the_range_starts_there(tmp_path):
    import toyenv
    from decision_transformer.data.datasets import load_dataset
    data = toyenv.make_dataset(tmp_path / "toy.npz", episodes=30)
    assert main(["train", "--dataset", str(data), "--env", "LineReach-v0", "--output", str(tmp_path / "run"),
                 "--steps", "2", "--context-length", "4", "--hidden-size", "16", "--n-layer", "1", "--max-ep-len", "32",
                 "--return-scale", "10", "--target-return", "19", "--num-threads", "1", "--quiet"]) == 0
    rets = load_dataset(str(data)).episode_returns()
    e = catalog.entry_of(tmp_path / "run")
    step = catalog.slider_step(rets.min(), 1.2 * rets.max())
    assert e.low == math.floor(rets.min() / step) * step and e.low_from == "the dataset's lowest return"
    assert e.high == math.ceil(1.2 * rets.max() / step) * step and e.default == 19.0


@pytest.mark.parametrize("damage", ["truncate", "type-swap"])
def test_a_damaged_sweep_cache_or_card_is_done_without(tmp_path, damage):
    e = catalog.entry_of(FALLS)
    first = catalog.sweep(e, points=2, episodes=1)
    path = catalog._cache_path(e, 2, 1)
    text = path.read_text()
    path.write_text(text[: len(text) // 2] if damage == "truncate"
                    else json.dumps({**first, "results": [{k: str(v) for k, v in r.items()} for r in first["results"]]}))
    again = catalog.sweep(e, points=2, episodes=1)                      # computed again, the same numbers
    assert again["from"] == "computed now, cached" and [r["return_mean"] for r in again["results"]] == \
        [r["return_mean"] for r in first["results"]]
    shutil.copytree(FALLS, tmp_path / "m")
    card = json.loads((tmp_path / "m" / "results.json").read_text())
    (tmp_path / "m" / "results.json").write_text("{" if damage == "truncate" else json.dumps(
        {**card, "target_return": "3600", "dataset_return_max": "x"}))
    d = catalog.entry_of(tmp_path / "m")
    assert d.default == catalog.entry_of(FALLS).default or damage == "truncate"
    assert d.high > d.low and math.isfinite(d.default)
