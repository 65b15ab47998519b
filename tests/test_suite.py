import json

import numpy as np
import pytest

from decision_transformer.errors import DTError
from decision_transformer.suite.build import SUITE, pick_levels
from decision_transformer.suite.policies import MLPActor, evaluate, sha256

MANIFEST = json.loads((SUITE / "manifest.json").read_text())
MUJOCO = sorted(k for k, v in MANIFEST.items() if v.get("kind") != "dqn-replay")
GAMES = sorted(k for k, v in MANIFEST.items() if v.get("kind") == "dqn-replay")


@pytest.mark.parametrize("env_id", sorted(MANIFEST))
def test_committed_files_match_their_checksums(env_id):
    for level, e in MANIFEST[env_id].items():
        if "file" in e:
            assert sha256(SUITE / e["file"]) == e["sha256"], (env_id, level)


@pytest.mark.parametrize("env_id", MUJOCO)
def test_committed_policies_reach_their_recorded_returns(env_id):
    for level in ("expert", "medium"):
        e = MANIFEST[env_id][level]
        actor = MLPActor.load(SUITE / e["file"])
        ret = evaluate(actor, env_id, episodes=2, seed=0)       # the manifest used seeds 0-9
        assert abs(np.mean(ret) - e["return_mean"]) < 4 * e["return_std"] + 50, (level, ret)
    ex, med = MANIFEST[env_id]["expert"]["return_mean"], MANIFEST[env_id]["medium"]["return_mean"]
    assert 0.2 * ex < med < 0.5 * ex                            # "about one third of expert"


@pytest.mark.parametrize("env_id", MUJOCO)
def test_medium_replay_is_aligned_transitions(env_id):
    d = np.load(SUITE / MANIFEST[env_id]["medium-replay"]["file"])
    n = MANIFEST[env_id]["medium-replay"]["transitions"]
    assert all(len(d[k]) == n for k in d.files)
    ends = d["terminations"] | d["truncations"]
    cont = ~ends[:-1]                                           # within an episode, s'_t == s_{t+1}
    np.testing.assert_array_equal(d["next_observations"][:-1][cont], d["observations"][1:][cont])
    assert not (d["terminations"] & d["truncations"]).any()


@pytest.mark.parametrize("env_id", GAMES)
def test_committed_game_datasets_unpack_into_whole_episodes(env_id):
    from decision_transformer.suite.pixels import unpack_episodes
    e = MANIFEST[env_id]
    eps = unpack_episodes(SUITE / e["replay"]["file"])
    assert sum(len(x) for x in eps) == e["replay"]["transitions"] and len(eps) == e["replay"]["episodes"]
    assert all(x.observations.dtype == np.uint8 and (x.terminations[-1] or x.truncations[-1]) for x in eps)
    assert abs(np.mean([x.episode_return for x in eps]) - e["replay"]["return_mean"]) < 1e-6
    refs = e["references"]
    assert refs["ref_min_score"] < refs["ref_max_score"] and refs["episodes"] == 100


def test_pick_levels_follows_the_d4rl_recipe():
    ev = [{"steps": s, "mean": m} for s, m in
          [(10, 5), (20, 300), (30, 1100), (40, 900), (50, 2500), (60, 1000), (70, 3300), (80, 3600)]]
    lv = pick_levels(ev)
    assert lv["expert"]["steps"] == 80
    assert lv["medium"]["steps"] == 30      # closest to 1200 *before* first reaching 2400; not 60
    with pytest.raises(DTError, match="no medium snapshot"):
        pick_levels([{"steps": 10, "mean": 100}])


def test_actor_save_load_roundtrip_and_bad_input(tmp_path):
    rng = np.random.default_rng(0)
    a = MLPActor([(rng.normal(size=(4, 8)), rng.normal(size=8)), (rng.normal(size=(8, 2)), rng.normal(size=2))],
                 low=[-2, 0], high=[2, 1], meta={"env_id": "X"})
    a.save(tmp_path / "p.safetensors")
    b = MLPActor.load(tmp_path / "p.safetensors")
    obs = rng.normal(size=(5, 4))
    np.testing.assert_array_equal(a(obs), b(obs))
    assert np.all(b(obs) >= [-2, 0]) and np.all(b(obs) <= [2, 1]) and b.meta == {"env_id": "X"}
    with pytest.raises(DTError, match="expects observations of size 4, got 3: it was trained on X"):
        b(np.zeros(3))
    with pytest.raises(DTError, match="no such policy file"):
        MLPActor.load(tmp_path / "nope.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"garbage")
    with pytest.raises(DTError, match="not a readable safetensors policy"):
        MLPActor.load(tmp_path / "bad.safetensors")


def test_suite_build_small_and_deterministic(tmp_path, monkeypatch):
    import decision_transformer.suite.build as suite
    from decision_transformer.data.datasets import load_dataset
    monkeypatch.setattr(suite, "SIZES", {"random": 500, "medium": 1500, "expert": 1500})
    monkeypatch.setattr(suite, "reference_min_score", lambda env_id: 16.0)
    out = {}
    for run in ("a", "b"):
        monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / run))
        res = suite.build(["Hopper-v5"], None, progress=False, log=lambda *a: None, pin_blas=False)   # in this process
        out[run] = {k: load_dataset(v["path"]) for k, v in res.items()}
    a, b = out["a"], out["b"]
    assert sorted(a) == sorted(f"dt/hopper/{lv}-v0" for lv in suite.LEVELS)
    for k in a:                                              # rebuilt identically
        np.testing.assert_array_equal(a[k].observations, b[k].observations)
        np.testing.assert_array_equal(a[k].actions, b[k].actions)
        assert a[k].metadata["ref_min_score"] == 16.0
        assert a[k].metadata["ref_max_score"] == MANIFEST["Hopper-v5"]["expert"]["return_mean"]
    med, exp, mix = (a[f"dt/hopper/{lv}-v0"] for lv in ("medium", "expert", "medium-expert"))
    assert mix.num_episodes == med.num_episodes + exp.num_episodes
    np.testing.assert_array_equal(mix.observations, np.concatenate([med.observations, exp.observations]))
    assert exp.episode_returns().mean() > 2 * med.episode_returns().mean() > 2 * a["dt/hopper/random-v0"].episode_returns().mean()
    rep = a["dt/hopper/medium-replay-v0"]
    assert rep.num_steps == MANIFEST["Hopper-v5"]["medium-replay"]["transitions"]


def test_suite_build_runs_the_actors_on_the_pinned_blas_kernels(tmp_path, monkeypatch):
    """numpy's OpenBLAS picks kernels by CPU (AVX-512 sums in another order than AVX2, and the episodes
    diverge): a build whose process loaded other kernels than BLAS_CORE runs in a child pinned to them."""
    import decision_transformer.suite.build as suite
    from decision_transformer.data.datasets import load_dataset
    assert suite.blas_core()                            # numpy's bundled OpenBLAS names its kernels
    monkeypatch.setattr(suite, "SIZES", {"random": 500, "medium": 600, "expert": 600})   # passed to the child
    monkeypatch.setattr(suite, "blas_core", lambda: "SkylakeX")      # as on an AVX-512 machine
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "m"))
    logs = []
    res = suite.build(["Hopper-v5"], ["medium"], progress=False, log=logs.append)
    assert res["dt/hopper/medium-v0"]["blas_core"] == suite.BLAS_CORE          # the child ran on them
    assert any("dt/hopper/medium-v0: " in m for m in logs)                     # its log reached ours
    assert 600 <= load_dataset(res["dt/hopper/medium-v0"]["path"]).num_steps < 1600
    with pytest.raises(DTError, match="unknown level 'hard'"):                  # checked before any child starts
        suite.build(["Hopper-v5"], ["hard"])


def test_suite_build_bad_arguments():
    from decision_transformer.suite.build import build
    with pytest.raises(DTError, match="no committed policies for Ant-v5"):
        build(["Ant-v5"])
    with pytest.raises(DTError, match="unknown level 'hard'"):
        build(["Hopper-v5"], ["hard"])
    with pytest.raises(DTError, match="manifest.json not found.*DT_SUITE_DIR"):
        build(["Hopper-v5"], suite_dir="/nonexistent/suite")
