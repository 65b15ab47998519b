import json

import gymnasium as gym
import numpy as np
import pytest

from decision_transformer.data.datasets import (
    DatasetError,
    Episode,
    TrajectoryDataset,
    load_dataset,
)

LENGTHS = [7, 1, 12, 5]


def _episodes(seed=0, lengths=LENGTHS, obs_dim=11, act_dim=3):
    rng = np.random.default_rng(seed)
    eps = []
    for i, T in enumerate(lengths):
        term = np.zeros(T, bool); trunc = np.zeros(T, bool)
        (term if i % 2 == 0 else trunc)[-1] = True
        eps.append(Episode(rng.normal(size=(T, obs_dim)).astype(np.float32),
                           rng.uniform(-1, 1, size=(T, act_dim)).astype(np.float32),
                           rng.normal(size=T).astype(np.float32), term, trunc))
    return eps


def _same(ds, eps):
    assert ds.num_episodes == len(eps) and ds.num_steps == sum(len(e) for e in eps)
    for i, e in enumerate(eps):
        got = ds.episode(i)
        for f in ("observations", "actions", "rewards", "terminations", "truncations"):
            np.testing.assert_array_equal(getattr(got, f), getattr(e, f), err_msg=f"episode {i} {f}")
    np.testing.assert_allclose(ds.episode_returns(), [e.rewards.astype(np.float64).sum() for e in eps])


def _write_minari(tmp_path, monkeypatch, eps, dataset_id="test/hopper/random-v0"):
    import minari
    from minari.data_collector.episode_buffer import EpisodeBuffer
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    rng = np.random.default_rng(1)
    bufs = []
    for i, e in enumerate(eps):
        last = rng.normal(size=(1, e.observations.shape[1])).astype(np.float32)   # s_T (T+1 obs)
        bufs.append(EpisodeBuffer(id=i, observations=list(np.concatenate([e.observations, last])),
                                  actions=list(e.actions), rewards=list(e.rewards),
                                  terminations=list(e.terminations), truncations=list(e.truncations)))
    env = gym.make("Hopper-v5")
    space = gym.spaces.Box(-np.inf, np.inf, (11,), np.float32)
    return minari.create_dataset_from_buffers(dataset_id, bufs, env=env, observation_space=space,
                                              algorithm_name="test", ref_min_score=0.0, ref_max_score=100.0)


def test_minari_roundtrip_drops_the_extra_observation_of_every_episode(tmp_path, monkeypatch):
    eps = _episodes()
    _write_minari(tmp_path, monkeypatch, eps)
    for source in ("test/hopper/random-v0", tmp_path / "minari" / "test" / "hopper" / "random-v0"):
        ds = load_dataset(source)
        _same(ds, eps)                       # T+1 alignment holds for every episode, not just the first
        assert ds.metadata["env_id"] == "Hopper-v5" and ds.metadata["ref_max_score"] == 100.0


def test_minari_datacollector_written_dataset(tmp_path, monkeypatch):
    pytest.importorskip("jax", reason="minari.DataCollector needs minari[create] (jax)")
    import minari
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    env = minari.DataCollector(gym.make("Hopper-v5", max_episode_steps=30))
    seen = []
    for ep in range(3):
        obs, _ = env.reset(seed=ep)
        o, a, r, te, tr = [obs], [], [], [], []
        while True:
            act = env.action_space.sample()
            obs, rew, term, trunc, _ = env.step(act)
            o.append(obs); a.append(act); r.append(rew); te.append(term); tr.append(trunc)
            if term or trunc:
                break
        seen.append((np.array(o[:-1]), np.array(a), np.array(r)))
    env.create_dataset("test/hopper/collected-v0", algorithm_name="random")
    ds = load_dataset("test/hopper/collected-v0")
    assert ds.num_episodes == 3
    for i, (o, a, r) in enumerate(seen):
        e = ds.episode(i)
        np.testing.assert_allclose(e.observations, o, rtol=1e-6)
        np.testing.assert_allclose(e.actions, a, rtol=1e-6)
        np.testing.assert_allclose(e.rewards, r, rtol=1e-6)


def _write_d4rl(path, eps, partial_tail=0, next_obs=True):
    import h5py
    cat = lambda f: np.concatenate([getattr(e, f) for e in eps])
    obs, act, rew, term, trunc = (cat(f) for f in ("observations", "actions", "rewards", "terminations", "truncations"))
    if partial_tail:
        rng = np.random.default_rng(5)
        obs = np.concatenate([obs, rng.normal(size=(partial_tail, obs.shape[1])).astype(np.float32)])
        act = np.concatenate([act, rng.uniform(-1, 1, (partial_tail, act.shape[1])).astype(np.float32)])
        rew = np.concatenate([rew, np.ones(partial_tail, np.float32)])
        term = np.concatenate([term, np.zeros(partial_tail, bool)]); trunc = np.concatenate([trunc, np.zeros(partial_tail, bool)])
    with h5py.File(path, "w") as f:
        f["observations"], f["actions"], f["rewards"] = obs, act, rew
        f["terminals"], f["timeouts"] = term, trunc
        if next_obs:
            f["next_observations"] = obs
    return obs, act, rew


def test_d4rl_hdf5_splits_at_terminals_and_timeouts_and_keeps_a_partial_tail(tmp_path):
    eps = _episodes()
    obs, act, rew = _write_d4rl(tmp_path / "d.hdf5", eps, partial_tail=3)
    ds = load_dataset(tmp_path / "d.hdf5")
    _same(TrajectoryDataset.from_episodes([ds.episode(i) for i in range(4)], "x"), eps)
    tail = ds.episode(4)
    assert ds.num_episodes == 5 and len(tail) == 3 and tail.truncations[-1] and not tail.terminations.any()
    np.testing.assert_array_equal(ds.observations, obs)


def test_hf_parquet_and_arrow_rows(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    eps = _episodes()
    for e in eps:                                    # the HF replay rows have dones only
        e.terminations = e.terminations | e.truncations
        e.truncations = np.zeros_like(e.truncations)
    table = pa.table({"observations": [e.observations.tolist() for e in eps], "actions": [e.actions.tolist() for e in eps],
                      "rewards": [e.rewards.tolist() for e in eps], "dones": [e.terminations.tolist() for e in eps]})
    pq.write_table(table, tmp_path / "rows.parquet")
    _same(load_dataset(tmp_path / "rows.parquet"), eps)
    with pa.OSFile(str(tmp_path / "rows.arrow"), "wb") as sink:     # the `datasets` cache format (IPC stream)
        with pa.ipc.new_stream(sink, table.schema) as w:
            w.write_table(table)
    _same(load_dataset(tmp_path / "rows.arrow"), eps)
    with pa.OSFile(str(tmp_path / "file.arrow"), "wb") as sink:     # and the IPC file format
        with pa.ipc.new_file(sink, table.schema) as w:
            w.write_table(table)
    _same(load_dataset(tmp_path / "file.arrow"), eps)


def test_suite_npz_replay_loads():
    from decision_transformer.suite.build import SUITE
    manifest = json.loads((SUITE / "manifest.json").read_text())
    e = manifest["Hopper-v5"]["medium-replay"]
    ds = load_dataset(SUITE / e["file"])
    assert ds.num_steps == e["transitions"] and ds.num_episodes >= e["episodes"]
    assert ds.observations.shape[1] == 11 and ds.actions.shape[1] == 3


def test_discrete_and_image_fields_are_stored_compactly():
    rng = np.random.default_rng(0)
    eps = [Episode(rng.integers(0, 256, (5, 4, 8, 8), dtype=np.uint8), rng.integers(0, 6, 5),
                   np.ones(5, np.float32), np.eye(5, dtype=bool)[-1], np.zeros(5, bool))]
    ds = TrajectoryDataset.from_episodes(eps, "x", action_space=gym.spaces.Discrete(6))
    assert ds.observations.dtype == np.uint8 and ds.actions.dtype == np.int64 and ds.discrete


# -- the bad-input corpus: one-line errors naming file, episode and field ---------------------

def test_bad_inputs(tmp_path, monkeypatch):
    eps = _episodes()
    bad = _episodes(); bad[2].observations[3, 1] = np.nan
    with pytest.raises(DatasetError, match=r"^f: episode 2, field observations: contains NaN or inf$"):
        TrajectoryDataset.from_episodes(bad, "f")
    bad = _episodes(); bad[1].actions[0, 0] = np.inf
    with pytest.raises(DatasetError, match="episode 1, field actions: contains NaN"):
        TrajectoryDataset.from_episodes(bad, "f")
    bad = _episodes(); bad[3].rewards = bad[3].rewards[:-1]
    with pytest.raises(DatasetError, match="episode 3, field observations: length 5 but 4 rewards"):
        TrajectoryDataset.from_episodes(bad, "f")
    with pytest.raises(DatasetError, match="has no episodes"):
        TrajectoryDataset.from_episodes([], "f")
    space = gym.spaces.Box(-1, 1, (3,), np.float32)
    bad = _episodes(); bad[2].actions[4, 2] = 1.5
    with pytest.raises(DatasetError, match=r"episode 2, field actions: 0.5 outside the action space"):
        TrajectoryDataset.from_episodes(bad, "f", action_space=space)
    bad = _episodes(); bad[2].actions[4, 2] = 1.0005
    with pytest.warns(UserWarning, match="slightly outside"):
        ds = TrajectoryDataset.from_episodes(bad, "f", action_space=space)
    assert ds.actions.max() == 1.0
    # files
    _write_d4rl(tmp_path / "ok.hdf5", eps)
    data = (tmp_path / "ok.hdf5").read_bytes()
    (tmp_path / "cut.hdf5").write_bytes(data[: len(data) // 3])
    with pytest.raises(DatasetError, match=r"cut.hdf5: cannot read HDF5 .*corrupt or truncated"):
        load_dataset(tmp_path / "cut.hdf5")
    import h5py
    with h5py.File(tmp_path / "nokey.hdf5", "w") as f:
        f["observations"] = np.zeros((3, 2))
    with pytest.raises(DatasetError, match=r"nokey.hdf5: missing field\(s\) actions, rewards, terminals"):
        load_dataset(tmp_path / "nokey.hdf5")
    with h5py.File(tmp_path / "len.hdf5", "w") as f:
        f["observations"], f["actions"] = np.zeros((4, 2)), np.zeros((3, 1))
        f["rewards"], f["terminals"] = np.zeros(4), np.zeros(4, bool)
    with pytest.raises(DatasetError, match=r"len.hdf5: field actions: length 3 but 4 rewards"):
        load_dataset(tmp_path / "len.hdf5")
    with pytest.raises(DatasetError, match="no such file"):
        load_dataset(tmp_path / "missing.hdf5")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "nothing"))
    with pytest.raises(DatasetError, match=r"mujoco/hopper/expert-v0: not a file, and no Minari dataset of that id"
                                           r".*minari download mujoco/hopper/expert-v0"):
        load_dataset("mujoco/hopper/expert-v0")
    with pytest.raises(DatasetError, match=r"dt/hopper/medium-v0: .*build it with `dt suite build`"):
        load_dataset("dt/hopper/medium-v0")
    (tmp_path / "x.parquet").write_bytes(b"PAR1garbage")
    with pytest.raises(DatasetError, match="x.parquet: cannot read"):
        load_dataset(tmp_path / "x.parquet")


def test_fields_of_the_wrong_type_or_shape_are_refused_by_data_info_and_train_alike(tmp_path, capsys):
    """What training would refuse, `dt data info` says first: one line each, and `dt train` writes nothing."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from decision_transformer.cli import main
    n = 40
    base = dict(observations=np.zeros((n, 3), np.float32), actions=np.zeros((n, 2), np.float32),
                rewards=np.ones(n, np.float32), terminations=np.arange(n) % 20 == 19, truncations=np.zeros(n, bool))
    cases = {
        "str-rewards": (dict(rewards=np.array(["1.0"] * n)), "field rewards: not numbers (dtype <U3)"),
        "1d-obs": (dict(observations=np.zeros(n, np.float32)), "field observations: one number per step (shape (20,))"),
        "1d-float-actions": (dict(actions=np.zeros(n, np.float32)), "field actions: one float per step"),
        "huge-actions": (dict(actions=np.full((n, 2), 1e30, np.float32)), "field actions: values up to 1e+30, beyond"),
    }
    for name, (over, msg) in cases.items():
        np.savez(tmp_path / f"{name}.npz", **{**base, **over})
        for argv in (["data", "info", str(tmp_path / f"{name}.npz"), "--plot", "none"],
                     ["train", "--dataset", str(tmp_path / f"{name}.npz"), "--output", str(tmp_path / "run")]):
            assert main(argv) == 2, (name, argv)
            err = capsys.readouterr().err.strip()
            assert err.startswith("error: ") and msg in err and "\n" not in err, (name, err)
        assert not (tmp_path / "run").exists()
    rows = pa.table({"observations": [[[0.0, 1.0]] * 5, [[0.0, 1.0, 2.0]] * 5], "actions": [[[0.0]] * 5, [[0.0]] * 5],
                     "rewards": [[1.0] * 5, [1.0] * 5], "dones": [[False] * 4 + [True]] * 2})
    pq.write_table(rows, tmp_path / "ragged.parquet")
    assert main(["data", "info", str(tmp_path / "ragged.parquet"), "--plot", "none"]) == 2
    assert "episode 1, field observations: shape (3,) per step but episode 0 has (2,)" in capsys.readouterr().err
