import json

import numpy as np
import pytest

from decision_transformer.errors import DTError
from decision_transformer.suite.build import SUITE, pick_levels
from decision_transformer.fileio import sha256_file as sha256
from decision_transformer.suite.policies import MLPActor, evaluate

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


def _npz_header(path, name):
    """An array's shape and dtype in an .npz, read from its header (nothing else is decompressed)."""
    import zipfile
    with zipfile.ZipFile(path) as z, z.open(name + ".npy") as f:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(f)
    return shape, dtype


@pytest.mark.parametrize("env_id", GAMES)
def test_committed_game_datasets_hold_whole_episodes(env_id):
    """The replay's episode structure and returns against the manifest, without decompressing its
    frames (half a million of them: the whole unpack is the slow test below)."""
    e = MANIFEST[env_id]
    path = SUITE / e["replay"]["file"]
    with np.load(path, allow_pickle=False) as z:
        off, rew, term, trunc = (z[k] for k in ("offsets", "rewards", "terminations", "truncations"))
        shape = tuple(int(x) for x in z["frame_shape"])
        n = int(np.prod(shape))
        packed = bool(z["packed"])
    obs_shape, obs_dtype = _npz_header(path, "observations")
    assert obs_shape[0] == len(rew) == off[-1] == e["replay"]["transitions"] and len(off) - 1 == e["replay"]["episodes"]
    assert obs_shape[1:] == ((-(-n // 8),) if packed else shape) and obs_dtype == np.uint8
    assert off[0] == 0 and (np.diff(off) > 0).all()
    ends = np.flatnonzero(term | trunc) + 1
    np.testing.assert_array_equal(ends, off[1:])                 # every episode ends at its last step, only there
    returns = np.add.reduceat(rew.astype(np.float64), off[:-1])
    assert abs(returns.mean() - e["replay"]["return_mean"]) < 1e-6
    refs = e["references"]
    assert refs["ref_min_score"] < refs["ref_max_score"] and refs["episodes"] == 100


@pytest.mark.slow        # 12 s: half a million 84x84 frames decompressed (the structure is checked above)
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


@pytest.mark.slow        # 30 s, two v0 builds; the v1 build test runs the same builder in the default run
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


# --- suite v1: SAC actors' own samples, D4RL's recipe ------------------------------------------

def _gaussian_actor(obs_dim=11, act_dim=3, seed=0, mean_scale=0.5, log_std=-0.5):
    rng = np.random.default_rng(seed)
    hidden = [(rng.normal(size=(obs_dim, 16)) / np.sqrt(obs_dim), np.zeros(16))]
    mean = (rng.normal(size=(16, act_dim)) * mean_scale / 4, np.zeros(act_dim))
    ls = (np.zeros((16, act_dim)), np.full(act_dim, log_std))
    return MLPActor(hidden + [mean], low=-np.ones(act_dim), high=np.ones(act_dim), meta={"env_id": "Hopper-v5"},
                    log_std=ls)


def test_gaussian_actor_samples_around_its_mean_and_round_trips(tmp_path):
    a = _gaussian_actor()
    a.save(tmp_path / "sac.safetensors")
    b = MLPActor.load(tmp_path / "sac.safetensors")
    assert b.stochastic and not MLPActor(a.layers, a.low, a.high).stochastic
    obs = np.random.default_rng(1).normal(size=(4, 11))
    np.testing.assert_array_equal(a(obs), b(obs))                       # the mean action, tanh(mu)
    s1, s2 = b.sample(obs, np.random.default_rng(7)), b.sample(obs, np.random.default_rng(7))
    np.testing.assert_array_equal(s1, s2)                               # seeded: reproducible
    draws = np.stack([b.sample(obs, np.random.default_rng(i)) for i in range(4000)])
    assert np.all(np.abs(draws) <= 1)
    u = np.arctanh(np.clip(draws, -1 + 1e-6, 1 - 1e-6))                 # pre-squash: N(mu, sigma^2)
    mu = np.arctanh(b(obs))
    np.testing.assert_allclose(u.mean(0), mu, atol=0.05)
    np.testing.assert_allclose(u.std(0), np.exp(-0.5), rtol=0.05)
    with pytest.raises(DTError, match="deterministic .*cannot be sampled"):
        MLPActor(a.layers, a.low, a.high).sample(obs, np.random.default_rng(0))


def test_pick_levels_v1_judges_by_samples_and_needs_a_d4rl_sized_replay():
    from decision_transformer.suite.build import pick_levels_v1
    expert = [{"steps": s, "mean": m + 200, "sample_mean": m} for s, m in [(100, 2000), (200, 3000), (300, 2900)]]
    medium = [{"steps": s * 1000, "mean": 0, "sample_mean": m} for s, m in
              [(50, 900), (150, 1000), (220, 1300), (260, 950), (300, 2100), (340, 1000)]]
    lv = pick_levels_v1(expert, medium, min_replay=200_000)
    assert lv["expert"]["steps"] == 200                 # the best *sampled* return
    assert lv["medium"]["steps"] == 260_000             # >= 200k, before 2/3 x 3000 (not 340k), closest to 1000
    with pytest.raises(DTError, match="no evaluation at >= 400,000 steps.*--train-freq"):
        pick_levels_v1(expert, medium, min_replay=400_000)
    # judged again on more episodes: the candidates' new means decide, the training run's are kept beside
    seen = []
    lv = pick_levels_v1(expert, medium, min_replay=200_000,
                        rescore=lambda c: seen.extend(r["steps"] for r in c) or {220_000: 1010.0, 260_000: 700.0})
    assert seen == [220_000, 260_000] and lv["medium"]["steps"] == 220_000
    assert (lv["medium"]["sample_mean"], lv["medium"]["training_sample_mean"]) == (1010.0, 1300)


def test_compact_replay_rebuilds_the_same_episodes(tmp_path):
    from decision_transformer.suite.build import _compact_replay, _replay_episodes
    rng = np.random.default_rng(0)
    lens, obs, nxt, term, trunc = [5, 3, 4], [], [], [], []
    for i, n in enumerate(lens):                       # a terminal, a time limit, a partial episode at the cut
        o = rng.normal(size=(n + 1, 2)).astype(np.float32)
        obs.append(o[:-1]); nxt.append(o[1:])
        term.append(np.r_[np.zeros(n - 1, bool), i == 0]); trunc.append(np.r_[np.zeros(n - 1, bool), i == 1])
    full = {"observations": np.concatenate(obs), "next_observations": np.concatenate(nxt),
            "actions": rng.normal(size=(12, 1)).astype(np.float32), "rewards": rng.normal(size=12).astype(np.float32),
            "terminations": np.concatenate(term), "truncations": np.concatenate(trunc)}
    np.savez(tmp_path / "v0.npz", **full)
    small = _compact_replay(full)
    assert "next_observations" not in small and small["final_observations"].shape == (3, 2)
    np.savez(tmp_path / "v1.npz", **small)
    a, b = _replay_episodes(tmp_path / "v0.npz"), _replay_episodes(tmp_path / "v1.npz")
    assert [len(e) for e in a] == [len(e) for e in b] == lens
    for x, y in zip(a, b):
        for k in ("observations", "actions", "rewards", "terminations", "truncations", "final_observation"):
            np.testing.assert_array_equal(getattr(x, k), getattr(y, k))
    assert b[2].truncations[-1] and not b[2].terminations[-1]          # the cut episode: truncated
    # a behaviour run resumed mid-episode: its env was reset, so s'_1 != s_2 inside episode 0
    restarted = dict(full, observations=full["observations"].copy())
    restarted["observations"][2] += 1
    cut = _compact_replay(restarted)
    assert cut["restart_cuts"].tolist() == [1] and cut["truncations"][1] and not full["truncations"][1]
    np.savez(tmp_path / "cut.npz", **cut)
    c = _replay_episodes(tmp_path / "cut.npz")
    assert [len(e) for e in c] == [2, 3, 3, 4] and c[0].truncations[-1]
    np.testing.assert_array_equal(c[0].final_observation, full["next_observations"][1])


def test_suite_v1_build_samples_the_policies_and_names_v1(tmp_path, monkeypatch):
    """A v1 manifest (SAC actors, `collect` recipes, compact replay) builds dt/<env>/<level>-v1 from the
    policies' own samples, deterministically."""
    import decision_transformer.suite.build as suite
    from decision_transformer.data.datasets import load_dataset
    sd = tmp_path / "suite"
    (sd / "Hopper-v5").mkdir(parents=True)
    entry = {"version": "v1"}
    for i, lv in enumerate(("random", "medium", "expert")):
        _gaussian_actor(seed=i, mean_scale=[0.1, 1.0, 2.0][i]).save(sd / "Hopper-v5" / f"{lv}.safetensors")
        entry[lv] = {"file": f"Hopper-v5/{lv}.safetensors", "sha256": sha256(sd / "Hopper-v5" / f"{lv}.safetensors"),
                     "return_mean": 1000.0, "collect": {"steps": 300, "noise": "sample", "seed": i}}
    full = np.load(SUITE / MANIFEST["Hopper-v5"]["medium-replay"]["file"])
    prefix = {k: full[k][:2000] for k in full.files}
    np.savez_compressed(sd / "Hopper-v5" / "medium_replay.npz", **suite._compact_replay(prefix))
    entry["medium-replay"] = {"file": "Hopper-v5/medium_replay.npz", "env_steps": 2000}
    (sd / "manifest.json").write_text(json.dumps({"Hopper-v5": entry}))
    monkeypatch.setattr(suite, "reference_min_score", lambda env_id: 16.0)
    out = {}
    for run in ("a", "b"):
        monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / run))
        res = suite.build(["Hopper-v5"], None, suite_dir=sd, progress=False, log=lambda *a: None, pin_blas=False)
        out[run] = {k: load_dataset(v["path"]) for k, v in res.items()}
    a, b = out["a"], out["b"]
    assert sorted(a) == sorted(f"dt/hopper/{lv}-v1" for lv in suite.LEVELS)
    for k in a:
        np.testing.assert_array_equal(a[k].actions, b[k].actions)
        assert a[k].metadata["ref_max_score"] == 1000.0
    med = a["dt/hopper/medium-v1"]
    assert 300 <= med.num_steps < 300 + 8 * 1000
    actor = MLPActor.load(sd / "Hopper-v5" / "medium.safetensors")
    assert np.abs(med.actions - actor(med.observations)).mean() > 0.1      # samples, not the mean action
    assert a["dt/hopper/medium-replay-v1"].num_steps == 2000
    monkeypatch.setattr(suite, "SUITE_V1", tmp_path / "v1-missing")
    with pytest.raises(DTError, match="suite v1's policies are not committed yet"):
        suite.build(["Hopper-v5"], suite_dir=tmp_path / "v1-missing")


@pytest.mark.slow        # 25 s of SAC training: the maintainers' suite-building path, not a user's
def test_export_v1_from_two_sac_runs(tmp_path):
    """behaviour.py (SAC, --train-freq) -> export_v1 -> suite/v1 files whose actors equal sbx's own."""
    pytest.importorskip("sbx")                               # the `behaviour` extra
    import sbx

    from decision_transformer.suite.behaviour import train_behaviour
    from decision_transformer.suite.build import export_v1
    for name, freq in (("expert", 1), ("medium", 8)):
        train_behaviour("Hopper-v5", tmp_path / name, "sac", total_steps=1200, chunk=400, eval_episodes=1,
                        train_freq=freq, log=lambda *a: None)
    evals = [json.loads(x) for x in (tmp_path / "medium" / "evals.jsonl").read_text().splitlines()]
    assert [e["steps"] for e in evals] == [400, 800, 1200] and all("sample_mean" in e for e in evals)
    assert json.loads((tmp_path / "medium" / "state" / "progress.json").read_text())["train_freq"] == 8
    with pytest.raises(ValueError, match="--train-freq 8 --gradient-steps 1, not 1 and 1"):
        train_behaviour("Hopper-v5", tmp_path / "medium", "sac", total_steps=1600, chunk=400, train_freq=1)
    entry = export_v1(tmp_path / "expert", tmp_path / "medium", "Hopper-v5", suite_dir=tmp_path / "v1",
                      min_replay=0, log=lambda *a: None)
    assert entry["version"] == "v1" and entry["medium-replay"]["transitions"] == entry["medium"]["env_steps"]
    for lv in ("random", "medium", "expert"):
        e = entry[lv]
        assert sha256(tmp_path / "v1" / e["file"]) == e["sha256"] and e["collect"]["noise"] == "sample"
        assert MLPActor.load(tmp_path / "v1" / e["file"]).stochastic
    snap = tmp_path / "medium" / "snapshots" / f"{entry['medium']['env_steps']:08d}.zip"
    model, actor = sbx.SAC.load(str(snap), device="cpu"), MLPActor.load(tmp_path / "v1" / entry["medium"]["file"])
    obs = np.random.default_rng(0).normal(size=(8, 11)).astype(np.float32)
    np.testing.assert_allclose(actor(obs), model.predict(obs, deterministic=True)[0], atol=1e-5)
    d = np.load(tmp_path / "v1" / entry["medium-replay"]["file"])
    assert "next_observations" not in d.files and len(d["rewards"]) == entry["medium"]["env_steps"]
    assert json.loads((tmp_path / "v1" / "manifest.json").read_text())["Hopper-v5"]["expert"] == entry["expert"]


def test_one_dataset_id_rule_for_every_family():
    from decision_transformer.results import Campaign
    from decision_transformer.results_v1 import CampaignV1
    from decision_transformer.suite import build, ids, pixels
    v0, v1 = Campaign(), CampaignV1()
    assert ids.dataset_id("Hopper-v5", "medium") == build.dataset_id("Hopper-v5", "medium") == "dt/hopper/medium-v0"
    assert ids.dataset_id("HalfCheetah-v5", "expert", "v1") == v1.dataset_id("halfcheetah", "expert") \
        == "dt/halfcheetah/expert-v1"
    assert pixels.dataset_id("MinAtar/Breakout-v1") == v0.dataset_id("minatar-breakout", "replay") \
        == "dt/minatar-breakout/replay-v0"
    assert pixels.dataset_id("ALE/Breakout-v5") == v0.dataset_id("atari-breakout", "replay") == "dt/atari-breakout/replay-v0"
    for env in v0.config.envs:                             # the campaign's short names are the ids' env names
        assert v0.dataset_id(env, "medium") == f"dt/{env}/medium-v0"
