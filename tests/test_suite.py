import json
from pathlib import Path

import numpy as np
import pytest

from decision_transformer.errors import DTError
from decision_transformer.policies import MLPActor, evaluate, sha256
from decision_transformer.suite import SUITE, pick_levels

MANIFEST = json.loads((SUITE / "manifest.json").read_text())


@pytest.mark.parametrize("env_id", sorted(MANIFEST))
def test_committed_files_match_their_checksums(env_id):
    for level, e in MANIFEST[env_id].items():
        if "file" in e:
            assert sha256(SUITE / e["file"]) == e["sha256"], (env_id, level)


@pytest.mark.parametrize("env_id", sorted(MANIFEST))
def test_committed_policies_reach_their_recorded_returns(env_id):
    for level in ("expert", "medium"):
        e = MANIFEST[env_id][level]
        actor = MLPActor.load(SUITE / e["file"])
        ret = evaluate(actor, env_id, episodes=2, seed=0)       # the manifest used seeds 0-9
        assert abs(np.mean(ret) - e["return_mean"]) < 4 * e["return_std"] + 50, (level, ret)
    ex, med = MANIFEST[env_id]["expert"]["return_mean"], MANIFEST[env_id]["medium"]["return_mean"]
    assert 0.2 * ex < med < 0.5 * ex                            # "about one third of expert"


@pytest.mark.parametrize("env_id", sorted(MANIFEST))
def test_medium_replay_is_aligned_transitions(env_id):
    d = np.load(SUITE / MANIFEST[env_id]["medium-replay"]["file"])
    n = MANIFEST[env_id]["medium-replay"]["transitions"]
    assert all(len(d[k]) == n for k in d.files)
    ends = d["terminations"] | d["truncations"]
    cont = ~ends[:-1]                                           # within an episode, s'_t == s_{t+1}
    np.testing.assert_array_equal(d["next_observations"][:-1][cont], d["observations"][1:][cont])
    assert not (d["terminations"] & d["truncations"]).any()


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
