import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import hf_and_ours

from decision_transformer import Agent
from decision_transformer.errors import DTError
from decision_transformer.inference.reference import BlogEpisode

MEAN = np.linspace(-0.5, 0.5, 11)
STD = np.linspace(0.5, 2.0, 11)


def _models():
    hf, ours = hf_and_ours()
    with torch.no_grad():                       # larger actions: the hopper actually moves
        hf.predict_action[0].weight.mul_(3)
        ours.predict_action[0].weight.mul_(3)
    return hf, ours


def _env(steps, seed):
    env = gym.make("Hopper-v5", terminate_when_unhealthy=False, max_episode_steps=steps)
    obs, _ = env.reset(seed=seed)
    return env, obs


def _blog(hf):
    return BlogEpisode(hf, MEAN, STD, target_return=3600.0, scale=1000.0, K=20, state_dim=11, act_dim=3)


BACKENDS = ["torch", "onnxruntime"]


def _blog_run(lengths, steps):
    """The blog's loop (transformers' model) in len(lengths) Hopper envs, each cut at its length and
    reset then: per step, every env's observation, the blog's action, reward and end. The envs follow
    the blog's actions, so the run is the same whichever Agent is compared with it afterwards."""
    torch.manual_seed(0)
    hf, ours = _models()
    envs, obs = map(list, zip(*[_env(n, seed=i) for i, n in enumerate(lengths)]))
    blogs = [_blog(hf) for _ in envs]
    record = []
    for step in range(steps):
        row = []
        for i, env in enumerate(envs):
            o = obs[i]
            ref = blogs[i].act(o)
            obs[i], r, term, trunc, _ = env.step(ref)
            blogs[i].observe(r)
            if term or trunc:
                obs[i], _ = env.reset(seed=100 + step)
                blogs[i] = _blog(hf)
            row.append((o, ref, r, term or trunc))
        record.append(row)
    return ours, record


def _replay(agent, record):
    """The Agent on the blog run's observations: its largest difference from the blog's actions, and
    how many episodes each env ended."""
    worst, ends = 0.0, [0] * len(record[0])
    for row in record:
        got = agent.act(np.stack([o for o, _, _, _ in row]))
        worst = max(worst, max(float(np.abs(ref - g).max()) for (_, ref, _, _), g in zip(row, got)))
        agent.observe(np.array([r for _, _, r, _ in row]), np.array([d for _, _, _, d in row]))
        ends = [e + d for e, (_, _, _, d) in zip(ends, row)]
    return worst, ends


@pytest.fixture(scope="module")
def one_env_run():
    return _blog_run([130], 130)


@pytest.fixture(scope="module")
def four_env_run():
    return _blog_run([23, 57, 101, 140], 180)


@pytest.mark.parametrize("backend", BACKENDS)
def test_single_env_matches_blog_loop_past_the_window(backend, one_env_run):
    ours, record = one_env_run
    agent = Agent(ours, num_envs=1, target_return=3600, state_mean=MEAN, state_std=STD, scale=1000, backend=backend)
    worst, ends = _replay(agent, record)
    assert ends == [1] and record[-1][0][3] and worst <= 1e-5          # one episode of 130 steps, past K=20


@pytest.mark.parametrize("backend", BACKENDS)
def test_four_envs_ending_at_different_steps_match_blog_loop(backend, four_env_run):
    ours, record = four_env_run
    agent = Agent(ours, num_envs=4, target_return=3600, state_mean=MEAN, state_std=STD, scale=1000, backend=backend)
    worst, ends = _replay(agent, record)
    assert ends == [7, 3, 1, 1] and worst <= 1e-5


def test_agent_is_o_k_per_step_and_buffers_do_not_grow():
    _, ours = _models()
    agent = Agent(ours, num_envs=2, target_return=1000, scale=1000)
    ptrs = [b.ctypes.data for b in agent._bufs]
    for _ in range(50):
        agent.act(np.zeros((2, 11)))
        agent.observe([1.0, 2.0], [False, False])
    assert [b.ctypes.data for b in agent._bufs] == ptrs
    assert agent._s.shape == (2, 40, 11)          # a ring of 2K steps, allocated once
    assert agent.t.tolist() == [50, 50]
    np.testing.assert_allclose(agent.rtg, [1.0 - 0.05, 1.0 - 0.1], rtol=1e-5)


def test_timestep_is_clamped_to_the_embedding_table():
    _, ours = _models()
    agent = Agent(ours, target_return=1.0, scale=1.0)
    agent.t[:] = 5000
    agent.act(np.zeros(11))
    assert agent._ts[0, agent.p - 1] == ours.config.max_ep_len - 1


def test_env_checkpoint_dimension_mismatch_is_a_clear_error():
    _, ours = _models()
    agent = Agent(ours, num_envs=2, target_return=3600, scale=1000)
    with pytest.raises(DTError, match=r"shape \(2, 17\) but the agent expects \(2, 11\).*environment the checkpoint"):
        agent.act(np.zeros((2, 17)))
    with pytest.raises(DTError, match="state_mean has 17 values"):
        Agent(ours, target_return=1, state_mean=np.zeros(17), state_std=np.ones(17))
    with pytest.raises(DTError, match="no target return"):
        Agent(ours)
    with pytest.raises(DTError, match="NaN"):
        agent.act(np.full((2, 11), np.nan))
    with pytest.raises(DTError, match="before act"):
        Agent(ours, target_return=1).observe([0.0])


def test_cached_mode_equals_exact_until_the_window_slides_and_after_resets():
    _, ours = _models()
    lengths = [23, 57, 101]
    envs, obs = zip(*[_env(n, seed=i) for i, n in enumerate(lengths)])
    envs, obs = list(envs), np.stack(obs)
    ex = Agent(ours, num_envs=3, target_return=3600, state_mean=MEAN, state_std=STD, scale=1000)
    ca = Agent(ours, num_envs=3, target_return=3600, state_mean=MEAN, state_std=STD, scale=1000, mode="cached")
    since_reset = np.zeros(3, int)
    late = 0.0
    for step in range(130):
        a, b = ex.act(obs), ca.act(obs)
        d = np.abs(a - b).max(axis=1)
        fresh = since_reset < 20                                # nothing has left the window yet
        assert d[fresh].max(initial=0) <= 1e-5, (step, d)
        late = max(late, d[~fresh].max(initial=0))
        rewards, dones = np.zeros(3), np.zeros(3, bool)
        for i, env in enumerate(envs):
            obs[i], rewards[i], term, trunc, _ = env.step(a[i])
            dones[i] = term or trunc
            if dones[i]:
                obs[i], _ = env.reset(seed=50 + step)
        ex.observe(rewards, dones); ca.observe(rewards, dones)
        since_reset = np.where(dones, 0, since_reset + 1)
    assert 0 < late < 0.2                                       # approximate afterwards, not exact


def test_cached_mode_bad_arguments():
    _, ours = _models()
    with pytest.raises(DTError, match="mode must be 'exact' or 'cached'"):
        Agent(ours, target_return=1, mode="fast")


@pytest.mark.parametrize("image", [False, True])
def test_onnx_backend_discrete_and_pixel_models_match_torch(image):
    from decision_transformer import DecisionTransformer, DecisionTransformerConfig
    torch.manual_seed(0)
    kw = dict(state_type="image", state_shape=[2, 84, 84]) if image else dict(state_dim=6)
    cfg = DecisionTransformerConfig(act_dim=4, hidden_size=32, n_layer=2, n_head=2, context_length=5,
                                    max_ep_len=50, return_scale=10.0, action_type="discrete", **kw)
    m = DecisionTransformer(cfg)
    agents = [Agent(m, num_envs=3, target_return=5.0, backend=b) for b in BACKENDS]
    rng = np.random.default_rng(0)
    for _ in range(25):
        obs = rng.integers(0, 256, (3, 2, 84, 84), dtype=np.uint8) if image else rng.standard_normal((3, 6))
        a, b = (ag.act(obs) for ag in agents)
        assert np.array_equal(a, b)
        r, d = rng.standard_normal(3), rng.random(3) < 0.15
        for ag in agents:
            ag.observe(r, d)


def test_backend_bad_arguments():
    _, ours = _models()
    with pytest.raises(DTError, match="backend must be 'torch' or 'onnxruntime'"):
        Agent(ours, target_return=1, backend="tvm")
    with pytest.raises(DTError, match="runs the exact mode only"):
        Agent(ours, target_return=1, mode="cached", backend="onnxruntime")
    from decision_transformer import BCConfig, BCModel
    bc = BCModel(BCConfig(state_dim=11, act_dim=3, context_length=5))
    with pytest.raises(DTError, match="runs Decision Transformers; this is a 'bc' model"):
        Agent(bc, target_return=1, backend="onnxruntime")


def test_onnx_backend_without_onnxruntime_is_a_clear_error(monkeypatch):
    import sys
    _, ours = _models()
    monkeypatch.setitem(sys.modules, "onnxruntime", None)      # `import onnxruntime` now fails
    with pytest.raises(DTError, match="needs ONNX Runtime: pip install onnxruntime onnx"):
        Agent(ours, target_return=1, backend="onnxruntime")


def test_onnx_agents_share_one_export_until_the_weights_change(monkeypatch):
    """An evaluation builds an Agent per target and thread group: the same weights are exported once,
    and weights changed in place (training between evaluations) are exported again, never served stale."""
    from decision_transformer import DecisionTransformer, DecisionTransformerConfig
    from decision_transformer.inference import onnx as onnx_backend
    m = DecisionTransformer(DecisionTransformerConfig(state_dim=4, act_dim=2, hidden_size=16, n_layer=1,
                                                      context_length=3, max_ep_len=20))
    calls = []
    real = torch.onnx.export
    monkeypatch.setattr(torch.onnx, "export", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    monkeypatch.setattr(onnx_backend, "_CACHE", type(onnx_backend._CACHE)())
    obs = np.random.default_rng(0).standard_normal((2, 4))
    a1 = Agent(m, num_envs=2, target_return=5.0, backend="onnxruntime").act(obs)
    a2 = Agent(m, num_envs=2, target_return=5.0, backend="onnxruntime").act(obs)
    Agent(m, num_envs=3, target_return=5.0, backend="onnxruntime")        # another batch: another graph
    assert len(calls) == 2 and np.array_equal(a1, a2)
    with torch.no_grad():
        m.predict_action[0].bias.add_(0.5)                                # an optimiser step, in place
    a3 = Agent(m, num_envs=2, target_return=5.0, backend="onnxruntime").act(obs)
    assert len(calls) == 3
    np.testing.assert_allclose(a3, Agent(m, num_envs=2, target_return=5.0).act(obs), atol=1e-5)
    assert np.abs(a3 - a1).max() > 1e-3
