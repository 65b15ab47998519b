"""Pixels and discrete actions: the Atari protocol on a real ALE env, MinAtar frames, frame
stacks rebuilt by the sampler, uint8 through Minari, the conv models, sampling at evaluation,
the DQN replay stream, and a MinAtar run end to end."""

import json

import cv2
import gymnasium as gym
import numpy as np
import pytest
import torch

from decision_transformer.cli import main
from decision_transformer.data.datasets import Episode, TrajectoryDataset, load_dataset
from decision_transformer.data.frames import PackedFrames
from decision_transformer.data.sampler import WindowSampler
from decision_transformer.envs import family, frame_stack, make_env
from decision_transformer.errors import DTError

BREAKOUT = "ALE/Breakout-v5"
MINATAR = "MinAtar/Breakout-v1"


# -- environments -----------------------------------------------------------------------------

def test_atari_env_follows_the_paper_protocol():
    env = make_env(BREAKOUT)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    ale = env.unwrapped.ale
    assert ale.getFloat("repeat_action_probability") == 0.0          # no sticky actions
    assert env.unwrapped._frameskip == 1                              # frame-skip is the wrapper's (max-pooled)
    assert (obs[0] == obs[3]).all()                                   # the stack starts as 4 x the reset frame
    frames = set()
    for s in range(6):                                                # up to 30 no-ops at reset, seeded
        env.reset(seed=s)
        frames.add(ale.getEpisodeFrameNumber())
    assert all(1 <= f <= 30 for f in frames) and len(frames) > 1
    sticky = make_env(BREAKOUT, sticky=True)                          # data collection, as DQN-Replay
    assert sticky.unwrapped.ale.getFloat("repeat_action_probability") == 0.25
    assert frame_stack(BREAKOUT) == 4 and family(BREAKOUT) == "atari"


def test_atari_step_is_a_max_pool_of_the_last_two_of_four_frames():
    """One wrapped step = 4 raw frames with the same action; the new frame is the pixel-wise max
    of the last two, grey, resized to 84x84 (INTER_AREA); no-ops at reset drawn from the same RNG."""
    import ale_py
    gym.register_envs(ale_py)
    wrapped = make_env(BREAKOUT)
    raw = gym.make(BREAKOUT, frameskip=1, repeat_action_probability=0.0, obs_type="grayscale")
    wrapped.reset(seed=3)
    raw.reset(seed=3)
    for _ in range(int(raw.unwrapped.np_random.integers(1, 31))):    # the wrapper's no-op draw
        raw.step(0)
    for action in (1, 2, 2, 3, 0):                                    # FIRE, then move
        obs, *_ = wrapped.step(action)
        last = []
        for _ in range(4):
            f, *_ = raw.step(action)
            last.append(f)
        want = cv2.resize(np.maximum(last[2], last[3]), (84, 84), interpolation=cv2.INTER_AREA)
        np.testing.assert_array_equal(obs[-1], want)


def test_minatar_frames_are_channels_first_binary_uint8():
    env = make_env(MINATAR, render_mode="rgb_array")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4, 10, 10) and obs.dtype == np.uint8 and set(np.unique(obs)) <= {0, 1}
    assert env.observation_space.shape == (4, 10, 10)
    assert env.render().shape == (160, 160, 3)
    assert env.spec is None or True                                   # wrapped: the time limit is ours
    a, b = make_env(MINATAR), make_env(MINATAR)                       # seeded: the same episode
    for e in (a, b):
        e.reset(seed=5)
    for _ in range(50):
        oa, ra, *_ = a.step(1)
        ob, rb, *_ = b.step(1)
        assert (oa == ob).all() and ra == rb


def test_unknown_game_is_one_line():
    with pytest.raises(DTError, match="cannot make env 'MinAtar/Pong-v1'"):
        make_env("MinAtar/Pong-v1")


# -- data -------------------------------------------------------------------------------------

def _frame_episode(T, start, shape=(1, 6, 6), discrete=4):
    """Frames whose pixels all equal (start + t) % 250: the frame index is readable from the pixels."""
    obs = np.stack([np.full(shape, (start + t) % 250, np.uint8) for t in range(T + 1)])
    return Episode.from_steps(list(obs), list(np.arange(T) % discrete), [1.0] * T, [False] * (T - 1) + [True],
                              [False] * T)


def test_sampler_rebuilds_frame_stacks_within_episodes():
    eps = [_frame_episode(T, 10 * i) for i, T in enumerate((3, 7, 5))]
    ds = TrajectoryDataset.from_episodes(eps, "test", metadata={"frame_stack": 4})
    assert ds.state_shape == (4, 6, 6)
    s = WindowSampler(ds, K=4, batch_size=64, scale=1.0, max_ep_len=16, seed=0)
    batch = s.sample()
    st, mask, ts = batch["states"].numpy(), batch["attention_mask"].numpy().astype(bool), batch["timesteps"].numpy()
    assert st.shape == (64, 4, 4, 6, 6) and st.dtype == np.uint8
    idx, _, _ = WindowSampler(ds, K=4, batch_size=64, scale=1.0, max_ep_len=16, seed=0).sample_indices()
    ep = np.searchsorted(ds.offsets, idx, side="right") - 1
    for b in range(64):
        for k in range(4):
            if not mask[b, k]:
                assert (st[b, k] == 0).all()                       # padding: zero frames
                continue
            t, e = ts[b, k], ep[b, k]
            want = [10 * e + max(t - 3 + j, 0) for j in range(4)]  # oldest first, first frame repeated
            assert [int(st[b, k, j, 0, 0]) for j in range(4)] == want


def test_uint8_frames_round_trip_through_minari(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    from decision_transformer.suite.collect import write_minari
    rng = np.random.default_rng(0)
    eps = []
    for T in (5, 9):
        obs = rng.integers(0, 2, size=(T + 1, 4, 10, 10), dtype=np.uint8)
        eps.append(Episode.from_steps(list(obs), list(rng.integers(0, 3, T)), list(rng.random(T)),
                                      [False] * (T - 1) + [True], [False] * T))
    path = write_minari("test/minatar-v0", tmp_path / "mds", eps, MINATAR, 0.0, 10.0, "test", False)
    ds = load_dataset(path)
    assert ds.observations.dtype == np.uint8 and ds.observations.shape == (14, 4, 10, 10)
    np.testing.assert_array_equal(ds.observations, np.concatenate([e.observations for e in eps]))
    assert ds.discrete and ds.actions.dtype == np.int64 and ds.frame_stack == 1
    # Atari: one frame per step stored, the stack size in the metadata
    frames = [rng.integers(0, 256, size=(6, 1, 84, 84), dtype=np.uint8)]
    ep = Episode.from_steps(list(frames[0]), [0, 1, 2, 3, 1], [0.0, 1, 0, 0, 4], [False] * 4 + [True], [False] * 5)
    path = write_minari("test/atari-v0", tmp_path / "ads", [ep], BREAKOUT, 1.0, 20.0, "test", False)
    ds = load_dataset(path)
    assert ds.observations.shape == (5, 1, 84, 84) and ds.frame_stack == 4 and ds.state_shape == (4, 84, 84)
    assert isinstance(ds.observations, PackedFrames)                 # Atari frames are held packed
    np.testing.assert_array_equal(np.asarray(ds.observations), frames[0][:5])
    raw = load_dataset(path, pack_frames=False).observations
    assert isinstance(raw, np.ndarray) and (raw == frames[0][:5]).all()
    # and written back from a loaded dataset (episodes are packed views)
    back = ds.episode(0)
    back.final_observation = back.observations[-1]
    again = load_dataset(write_minari("test/atari2-v0", tmp_path / "ads2", [back], BREAKOUT, 1.0, 20.0,
                                      "test", False), pack_frames=False)
    assert (again.observations[:4] == frames[0][:4]).all()


def _screens(n: int, seed: int = 0) -> np.ndarray:
    """Atari-like frames: a dark screen with a few bright blocks (they compress, like real ones)."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, 1, 84, 84), np.uint8)
    for f in out:
        for _ in range(4):
            y, x = rng.integers(0, 80, 2)
            f[0, y:y + 4, x:x + rng.integers(2, 8)] = rng.integers(50, 256)
    return out


def test_packed_frames_read_like_the_array():
    raw = _screens(50)
    x = PackedFrames.pack(raw)
    assert x.shape == raw.shape and len(x) == 50 and x.ndim == 4 and x.dtype == np.uint8
    assert x.nbytes == raw.nbytes and x.packed_nbytes < raw.nbytes / 5
    np.testing.assert_array_equal(x[7], raw[7])
    np.testing.assert_array_equal(x[-1], raw[-1])
    idx = np.array([[3, 3, 49], [0, -2, 3]])                         # repeats and negatives, any shape
    np.testing.assert_array_equal(x[idx], raw[idx])
    view = x[10:20]                                                  # a slice is a packed view
    assert isinstance(view, PackedFrames) and len(view) == 10
    np.testing.assert_array_equal(np.asarray(view), raw[10:20])
    np.testing.assert_array_equal(view[np.array([0, 9])], raw[[10, 19]])
    np.testing.assert_array_equal(np.stack(list(view)), raw[10:20])
    np.testing.assert_array_equal(x[::7], raw[::7])
    assert len(x[30:30]) == 0 and np.asarray(x[30:30]).shape == (0, 1, 84, 84)
    assert x.astype(np.uint8, copy=False) is x
    for bad in (50, -51):
        with pytest.raises(IndexError):
            x[bad]
    with pytest.raises(IndexError):
        x[np.array([1, 50])]
    with pytest.raises(TypeError):
        x[np.ones(50, bool)]


def test_sampler_batches_are_the_same_from_packed_and_raw_frames():
    raw = _screens(300, seed=1)
    eps, at = [], 0
    for T in (40, 120, 7, 133):
        eps.append(Episode(raw[at:at + T], np.arange(T) % 4, np.ones(T), np.eye(1, T, T - 1, dtype=bool)[0],
                           np.zeros(T, bool)))
        at += T
    md = {"frame_stack": 4}
    plain = TrajectoryDataset.from_episodes(eps, "raw", metadata=md)
    packed = TrajectoryDataset.from_episodes(eps, "packed", metadata=md, observations=PackedFrames.pack(raw))
    a, b = (WindowSampler(d, K=30, batch_size=16, scale=1.0, max_ep_len=200, seed=3) for d in (plain, packed))
    for _ in range(3):
        x, y = a.sample(), b.sample()
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


# -- models -----------------------------------------------------------------------------------

@pytest.mark.parametrize("shape,encoder", [((4, 84, 84), "nature"), ((6, 10, 10), "minatar")])
@pytest.mark.parametrize("arch", ["dt", "bc"])
def test_conv_models_train_on_uint8_frames(shape, encoder, arch):
    from decision_transformer.models.policy import build, lookup
    cfg = lookup(arch)[0](state_type="image", state_shape=list(shape), act_dim=5, action_type="discrete",
                          context_length=3, hidden_size=32, n_layer=1, **({"n_head": 2} if arch == "dt" else {}))
    assert cfg.state_encoder == encoder and cfg.state_dim == int(np.prod(shape))
    m = build(cfg)
    g = torch.Generator().manual_seed(0)
    s = torch.randint(0, 2 if encoder == "minatar" else 256, (4, 3, *shape), dtype=torch.uint8, generator=g)
    a = torch.randint(0, 5, (4, 3), generator=g)
    R, ts, mask = torch.randn(4, 3, 1, generator=g), torch.arange(3).repeat(4, 1), torch.ones(4, 3)
    out = m.forward_actions(s, a, R, ts, mask)
    assert out.shape == (4, 3, 5)
    pos = m.loss_positions(mask)
    torch.nn.functional.cross_entropy(out[pos], a[pos]).backward()
    assert all(p.grad is not None for n, p in m.named_parameters() if n.startswith(("embed_state", "encoder.net", "encoder.proj")))
    m.eval()
    last = m.predict_last_action(s, a, R, ts)
    torch.testing.assert_close(last, m.forward_actions(s, a, R, ts, mask)[:, -1], rtol=1e-4, atol=1e-5)


def test_nature_encoder_refuses_small_frames():
    from decision_transformer.models.dt import DecisionTransformerConfig
    with pytest.raises(ValueError, match="36x36"):
        DecisionTransformerConfig(state_type="image", state_shape=[4, 10, 10], state_encoder="nature")


def test_embed_tanh_changes_the_embeddings_only_when_asked():
    from decision_transformer.models.dt import (
        DecisionTransformer,
        DecisionTransformerConfig,
    )
    torch.manual_seed(0)
    m = DecisionTransformer(DecisionTransformerConfig(state_dim=3, act_dim=2, hidden_size=16))
    s, a, R = torch.randn(2, 4, 3), torch.randn(2, 4, 2), 100 * torch.randn(2, 4, 1)
    r0, _, _ = m.embed_modalities(s, a, R)
    m.config.embed_tanh = True
    r1, _, _ = m.embed_modalities(s, a, R)
    torch.testing.assert_close(r1, torch.tanh(r0))


# -- evaluation -------------------------------------------------------------------------------

def _tiny_discrete_model(seed=0):
    from decision_transformer.models.dt import (
        DecisionTransformer,
        DecisionTransformerConfig,
    )
    torch.manual_seed(seed)
    return DecisionTransformer(DecisionTransformerConfig(
        state_type="image", state_shape=[4, 10, 10], act_dim=3, action_type="discrete", hidden_size=32, n_layer=1,
        context_length=4, return_scale=1.0, env_id=MINATAR, target_returns=[5.0], max_ep_len=1000))


def test_sampled_actions_are_deterministic_under_a_seed_and_follow_the_temperature():
    from decision_transformer.inference.agent import Agent
    m = _tiny_discrete_model()
    obs = np.random.default_rng(0).integers(0, 2, (8, 4, 10, 10)).astype(np.uint8)
    runs = []
    for seed in (1, 1, 2):
        ag = Agent(m, num_envs=8, target_return=5.0, deterministic=False, seed=seed)
        runs.append(np.stack([ag.act(obs) for _ in range(1)] + [(ag.observe(np.zeros(8)), ag.act(obs))[1]
                                                                 for _ in range(20)]))
    assert (runs[0] == runs[1]).all() and (runs[0] != runs[2]).any()
    cold = Agent(m, num_envs=8, target_return=5.0, deterministic=False, seed=0, temperature=1e-4)
    greedy = Agent(m, num_envs=8, target_return=5.0)
    assert (cold.act(obs) == greedy.act(obs)).all()                   # T -> 0 is the argmax
    with pytest.raises(DTError, match="temperature"):
        Agent(m, num_envs=1, target_return=5.0, temperature=0.0)


def test_evaluate_with_sampling_is_deterministic_for_a_seed():
    from decision_transformer.evaluation.evaluate import evaluate
    m = _tiny_discrete_model()
    a = evaluate(m, MINATAR, [5.0], episodes=4, num_envs=4, seed=3, sample=True, temperature=2.0)
    b = evaluate(m, MINATAR, [5.0], episodes=4, num_envs=4, seed=3, sample=True, temperature=2.0)
    assert a[0]["returns"] == b[0]["returns"]


# -- the DQN replay stream --------------------------------------------------------------------

def test_dqn_stream_holds_every_step_and_the_replay_sample_round_trips(tmp_path):
    from decision_transformer.suite.dqn import read_stream, replay_dataset, train_dqn
    from decision_transformer.suite.pixels import pack_episodes, unpack_episodes
    run = tmp_path / "dqn"
    train_dqn(MINATAR, run, total_steps=1200, chunk=600, eval_episodes=1, log=lambda m: None)
    train_dqn(MINATAR, run, total_steps=1800, chunk=600, eval_episodes=1, log=lambda m: None)   # resumed
    prog = json.loads((run / "progress.json").read_text())
    assert prog["steps"] == 1800 and prog["resumed_at"] == [1200] and prog["schedule_steps"] == 1200
    buffers = read_stream(run)
    eps = [e for b in buffers for e in b]
    assert len(buffers) == 3 and sum(len(e) for e in eps) == 1800
    assert all(e.observations.dtype == np.uint8 and e.observations.shape[1:] == (4, 10, 10) for e in eps)
    assert all(e.terminations[-1] or e.truncations[-1] for e in eps)
    assert all(not (e.terminations[:-1] | e.truncations[:-1]).any() for e in eps)
    sample, recipe = replay_dataset(run, 500, seed=0)
    assert recipe["transitions"] >= 500 and recipe["transitions"] == sum(len(e) for e in sample)
    assert sum(recipe["episodes_per_buffer"]) == len(sample)
    np.savez_compressed(tmp_path / "r.npz", **pack_episodes(sample))
    back = unpack_episodes(tmp_path / "r.npz")
    for x, y in zip(sample, back):
        for f in ("observations", "actions", "rewards", "terminations", "truncations", "final_observation"):
            np.testing.assert_array_equal(getattr(x, f), getattr(y, f))


def test_committed_policy_acts_like_the_snapshot_with_its_optimizer_reset(tmp_path):
    from stable_baselines3 import DQN

    from decision_transformer.suite.pixels import slim_policy
    env = make_env(MINATAR)
    model = DQN("MlpPolicy", env, learning_starts=0, train_freq=1, buffer_size=1_000, seed=0, device="cpu")
    model.learn(200)                                  # Adam has state to reset
    model.save(tmp_path / "snap.zip")
    slim_policy(tmp_path / "snap.zip", tmp_path / "policy.zip")
    a, b = DQN.load(tmp_path / "snap.zip", device="cpu"), DQN.load(tmp_path / "policy.zip", device="cpu")
    for (ka, va), (kb, vb) in zip(a.policy.state_dict().items(), b.policy.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)       # online and target networks, bit for bit
    obs = np.random.default_rng(0).integers(0, 2, (64, *env.observation_space.shape), dtype=np.uint8)
    np.testing.assert_array_equal(a.predict(obs, deterministic=True)[0], b.predict(obs, deterministic=True)[0])
    old, new = a.policy.optimizer.state_dict()["state"], b.policy.optimizer.state_dict()["state"]
    assert old and old.keys() == new.keys()
    assert any(v.abs().sum() > 0 for st in old.values() for v in st.values())
    assert all(not v.any() for st in new.values() for v in st.values())
    assert (tmp_path / "policy.zip").stat().st_size < 0.75 * (tmp_path / "snap.zip").stat().st_size


def test_reference_scores_are_cached_until_a_better_snapshot_appears(tmp_path, monkeypatch):
    from decision_transformer.suite import collect, pixels
    played = []
    monkeypatch.setattr(pixels, "_greedy", lambda snap, env_id, n, seed: played.append(snap.name) or [10.0 * len(played)] * n)
    monkeypatch.setattr(collect, "reference_min_score", lambda *a: 0.5)
    evals = tmp_path / "evals.jsonl"
    evals.write_text(json.dumps({"steps": 100, "mean": 1.0}) + "\n" + json.dumps({"steps": 200, "mean": 0.5}) + "\n")
    first = pixels.reference_scores(tmp_path, MINATAR, log=lambda m: None)
    assert pixels.reference_scores(tmp_path, MINATAR, log=lambda m: None) == first       # cached
    assert played == ["000000100.zip"] and first["ref_max_score"] == 10.0 and first["ref_min_score"] == 0.5
    with evals.open("a") as f:                                     # trained further: a better snapshot
        f.write(json.dumps({"steps": 300, "mean": 2.0}) + "\n")
    again = pixels.reference_scores(tmp_path, MINATAR, log=lambda m: None)
    assert played == ["000000100.zip", "000000300.zip"]
    assert again["best_snapshot_steps"] == 300 and again["ref_max_score"] == 20.0


# -- end to end -------------------------------------------------------------------------------

def test_minatar_end_to_end_through_the_cli(tmp_path, monkeypatch, capsys):
    """collect a few hundred steps -> train 50 steps (cross-entropy falls) -> evaluate 2 episodes
    -> video; evaluation is deterministic under a seed."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    data, run = tmp_path / "data", tmp_path / "run"
    assert main(["collect", "--env", MINATAR, "--policy", "random", "--steps", "400", "--num-envs", "4",
                 "--output", str(data), "--quiet", "--ref-min-score", "0", "--ref-max-score", "10"]) == 0
    ds = load_dataset(data)
    assert ds.observations.dtype == np.uint8 and ds.discrete
    assert main(["train", "--dataset", str(data), "--env", MINATAR, "--output", str(run), "--steps", "50",
                 "--context-length", "5", "--hidden-size", "32", "--n-layer", "1", "--n-head", "2", "--lr", "3e-3",
                 "--warmup-steps", "1", "--return-scale", "1", "--log-every", "5", "--checkpoint-every", "50",
                 "--target-return", "3", "--quiet"]) == 0
    rows = [r.split(",") for r in (run / "metrics.csv").read_text().splitlines()[1:]]
    losses = [float(r[1]) for r in rows if r[1]]
    assert np.mean(losses[-3:]) < np.mean(losses[:3])                 # cross-entropy falls
    cfg = json.loads((run / "checkpoints" / "last" / "config.json").read_text())["decision_transformer"]
    assert cfg["state_encoder"] == "minatar" and cfg["action_type"] == "discrete"
    outs = []
    for _ in range(2):
        assert main(["eval", str(run), "--episodes", "2", "--num-envs", "2", "--seed", "4", "--sample",
                     "--json", str(tmp_path / "e.json")]) == 0
        outs.append(json.loads((tmp_path / "e.json").read_text())["results"][0]["returns"])
    assert outs[0] == outs[1]
    assert main(["video", str(run), "--target-return", "3", "-o", str(tmp_path / "v.gif"), "--max-steps", "30"]) == 0
    assert (tmp_path / "v.gif").stat().st_size > 0
    assert main(["eval", str(run), "--episodes", "1", "--temperature", "2"]) == 2
    assert "--temperature applies to --sample" in capsys.readouterr().err


def test_max_episode_steps_cuts_evaluation_episodes(tmp_path, capsys):
    from decision_transformer.evaluation.evaluate import evaluate
    m = _tiny_discrete_model()
    res = evaluate(m, MINATAR, [5.0], episodes=4, num_envs=2, seed=0, max_episode_steps=3)[0]
    assert res["length_mean"] <= 3
    m.save_pretrained(tmp_path / "m")
    assert main(["eval", str(tmp_path / "m"), "--episodes", "2", "--max-episode-steps", "0"]) == 2
    assert "--max-episode-steps must be in [1, 10000000], got 0" in capsys.readouterr().err
