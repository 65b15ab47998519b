import json
import os

import gymnasium as gym
import numpy as np
import pytest

from decision_transformer import DecisionTransformer, DecisionTransformerConfig
from decision_transformer.cli import main
from decision_transformer.data.datasets import load_dataset
from decision_transformer.errors import DTError
from decision_transformer.suite.collect import collect


@pytest.fixture(autouse=True)
def _minari_root(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))


def _replay_matches_env(ds, env_id, seed0, num_envs):
    """Every episode's observations follow from replaying its actions in a fresh env (T+1 aligned)."""
    env = gym.make(env_id)
    e = ds.episode(0)                        # the first episode to finish: from one of the envs
    for seed in range(seed0, seed0 + num_envs):
        obs, _ = env.reset(seed=seed)
        if np.allclose(e.observations[0], obs, rtol=1e-6):
            break
    else:
        raise AssertionError("the first observation is no env's reset observation")
    for t in range(len(e) - 1):
        obs, r, *_ = env.step(e.actions[t])
        np.testing.assert_allclose(e.observations[t + 1], obs, rtol=1e-5, atol=1e-6)
        assert abs(e.rewards[t] - r) < 1e-4


def test_random_collect_is_aligned_and_deterministic(tmp_path):
    a = collect("Hopper-v5", "random", "test/rand-v0", episodes=6, num_envs=3, seed=4, progress=False)
    b = collect("Hopper-v5", "random", str(tmp_path / "again"), episodes=6, num_envs=3, seed=4, progress=False)
    da, db = load_dataset(a), load_dataset(b)
    assert da.num_episodes == 6 and da.metadata["env_id"] == "Hopper-v5"
    np.testing.assert_array_equal(da.observations, db.observations)
    np.testing.assert_array_equal(da.actions, db.actions)
    assert np.all(np.abs(da.actions) <= 1)
    _replay_matches_env(da, "Hopper-v5", 4, 3)


def test_collect_from_an_sb3_zip_uses_its_actor(tmp_path):
    from stable_baselines3 import TD3

    from decision_transformer.suite.policies import from_sb3_zip
    m = TD3("MlpPolicy", "Pendulum-v1", seed=0, policy_kwargs={"net_arch": [32, 32]})
    m.save(tmp_path / "td3.zip")
    path = collect("Pendulum-v1", str(tmp_path / "td3.zip"), "test/td3-v0", episodes=2, num_envs=2, progress=False,
                   ref_min_score=-1500.0, ref_max_score=-150.0)
    ds = load_dataset(path)
    actor = from_sb3_zip(tmp_path / "td3.zip")
    np.testing.assert_allclose(ds.actions, actor(ds.observations), atol=1e-5)
    np.testing.assert_allclose(ds.actions, m.predict(ds.observations, deterministic=True)[0], atol=1e-5)
    assert ds.metadata["ref_min_score"] == -1500.0 and ds.metadata["ref_max_score"] == -150.0


def test_collect_from_a_dt_checkpoint_and_dimension_mismatch(tmp_path):
    cfg = DecisionTransformerConfig(state_dim=3, act_dim=1, n_layer=1, hidden_size=32, max_ep_len=200,
                                    return_scale=100.0, context_length=5)
    DecisionTransformer(cfg).save_pretrained(tmp_path / "dt")
    path = collect("Pendulum-v1", str(tmp_path / "dt"), "test/dt-v0", episodes=2, num_envs=2, progress=False,
                   target_return=-100.0, noise="gaussian:0.1")
    assert load_dataset(path).num_episodes == 2
    with pytest.raises(DTError, match="state_dim 3 does not match Hopper-v5's observations \\(11\\)"):
        collect("Hopper-v5", str(tmp_path / "dt"), "test/x-v0", episodes=1, progress=False, target_return=1.0)


def test_ctrl_c_writes_finished_episodes_only(tmp_path, monkeypatch):
    calls = {"done": 0, "after": 0}
    real_step = gym.vector.SyncVectorEnv.step

    def step(self, actions):                      # Ctrl-C a few steps after the 3rd episode ends
        if calls["done"] >= 3:
            calls["after"] += 1
            if calls["after"] == 5:
                raise KeyboardInterrupt
        out = real_step(self, actions)
        calls["done"] += int((out[2] | out[3]).sum())
        return out
    monkeypatch.setattr(gym.vector.SyncVectorEnv, "step", step)
    with pytest.raises(KeyboardInterrupt):
        collect("Hopper-v5", "random", "test/cut-v0", episodes=1000, num_envs=2, seed=0, progress=False)
    ds = load_dataset("test/cut-v0")
    assert 3 <= ds.num_episodes < 1000
    assert np.all(ds.terminations | ds.truncations == np.isin(np.arange(ds.num_steps), ds.offsets[1:] - 1))
    root = tmp_path / "minari" / "test"
    assert sorted(os.listdir(root)) == ["cut-v0"]                 # no temp directory left behind


def test_a_failing_write_leaves_nothing(tmp_path, monkeypatch):
    import minari

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(minari, "create_dataset_from_buffers", boom)
    with pytest.raises(OSError):
        collect("Hopper-v5", "random", "test/fail-v0", episodes=2, progress=False)
    assert not (tmp_path / "minari" / "test" / "fail-v0").exists()
    assert os.listdir(tmp_path / "minari" / "test") == []


def test_cli_collect_info_and_errors(tmp_path, capsys):
    assert main(["collect", "--env", "Hopper-v5", "--policy", "random", "--episodes", "3", "--output", "test/c-v0",
                 "--quiet"]) == 0
    assert main(["data", "info", "test/c-v0", "--plot", str(tmp_path / "h.png")]) == 0
    out = capsys.readouterr().out
    info = json.loads(out[out.index("{"):])
    assert info["episodes"] == 3 and (tmp_path / "h.png").stat().st_size > 1000
    for argv, msg in [
        (["--output", "test/c-v0"], "already exists"),
        (["--output", "test/d-v0", "--noise", "pink:1"], "bad --noise"),
        (["--output", "test/d-v0", "--ref-min-score", "0"], "give both --ref-min-score and --ref-max-score"),
        (["--output", "a//b-v0"], "bad output"),
    ]:
        assert main(["collect", "--env", "Hopper-v5", "--policy", "random", "--episodes", "1", "--quiet", *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and msg in err[0], err
    assert main(["collect", "--env", "Hopper-v5", "--policy", "nope.pt", "--episodes", "1", "--output", "test/e-v0"]) == 2
    assert "use 'random'" in capsys.readouterr().err


def test_discrete_actions_collect_and_load_compactly(tmp_path):
    path = collect("CartPole-v1", "random", "test/cartpole-v0", episodes=5, num_envs=2, seed=0, progress=False,
                   noise="epsilon:0.3")
    ds = load_dataset(path)
    assert ds.discrete and ds.actions.dtype == np.int64 and set(np.unique(ds.actions)) <= {0, 1}
    assert ds.num_episodes == 5 and ds.observations.shape[1] == 4


def test_ctrl_c_while_writing_says_nothing_was_written(tmp_path, monkeypatch, capsys):
    """Issue #11, class 7: a Ctrl-C that lands in the dataset write (e.g. the second of two) says so."""
    import minari
    import toyenv  # noqa: F401  (registers LineReach-v0)

    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(minari, "create_dataset_from_buffers", interrupted)
    out = tmp_path / "d"
    assert main(["collect", "--env", "LineReach-v0", "--policy", "random", "--episodes", "2", "--num-envs", "1",
                 "--output", str(out), "--quiet"]) == 130
    err = capsys.readouterr().err
    assert f"interrupted while writing the dataset: nothing was written to {out}" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []               # no dataset, no temp directory


def test_noise_sample_draws_from_a_sac_actor_and_refuses_a_deterministic_one(tmp_path):
    """`--noise sample`: the policy's own stochastic actions (suite v1), replayable and seeded."""
    from decision_transformer.suite.policies import MLPActor
    rng = np.random.default_rng(0)
    hidden, mean = (rng.normal(size=(11, 8)) / 4, np.zeros(8)), (rng.normal(size=(8, 3)) / 4, np.zeros(3))
    sac = MLPActor([hidden, mean], -np.ones(3), np.ones(3), log_std=(np.zeros((8, 3)), np.full(3, -1.0)))
    sac.save(tmp_path / "sac.safetensors")
    a = collect("Hopper-v5", str(tmp_path / "sac.safetensors"), "test/sac-v0", steps=200, num_envs=2, seed=3,
                noise="sample", progress=False)
    b = collect("Hopper-v5", str(tmp_path / "sac.safetensors"), str(tmp_path / "again"), steps=200, num_envs=2, seed=3,
                noise="sample", progress=False)
    da, db = load_dataset(a), load_dataset(b)
    np.testing.assert_array_equal(da.actions, db.actions)
    resid = np.arctanh(np.clip(da.actions, -0.999999, 0.999999)) - np.arctanh(sac(da.observations))
    assert abs(resid.std() - np.exp(-1.0)) < 0.05                  # sigma = exp(log_std) around tanh(mu)
    _replay_matches_env(da, "Hopper-v5", 3, 2)
    MLPActor([hidden, mean], -np.ones(3), np.ones(3)).save(tmp_path / "td3.safetensors")
    with pytest.raises(DTError, match="^noise sample .* is deterministic: .* or noise gaussian:SIGMA$"):
        collect("Hopper-v5", str(tmp_path / "td3.safetensors"), "test/td3-v9", steps=10, noise="sample", progress=False)
