"""The Online Decision Transformer's policy (`--model odt`, models/odt.py): its head and loss against
torch.distributions, its inference paths against each other, its temperature's direction, and the
whole `dt` pipeline on it."""

import json

import numpy as np
import pytest
import torch
import toyenv

from decision_transformer import OnlineDecisionTransformer, OnlineDecisionTransformerConfig
from decision_transformer.cli import main
from decision_transformer.models.odt import squashed_log_prob


def _model(**kw):
    cfg = dict(state_dim=3, act_dim=2, context_length=4, hidden_size=16, n_layer=1, n_head=2, max_ep_len=50,
               resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return OnlineDecisionTransformer(OnlineDecisionTransformerConfig(**{**cfg, **kw}))


def _batch(B=5, L=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(B, L, 3, generator=g)
    a = torch.rand(B, L, 2, generator=g) * 1.98 - 0.99
    R = torch.randn(B, L, 1, generator=g)
    t = torch.arange(L).repeat(B, 1)
    mask = torch.ones(B, L)
    mask[1, :2] = 0                                     # left padding, as the sampler and the Agent pad
    return s, a, R, t, mask


def test_log_prob_is_the_tanh_squashed_gaussian_of_torch_distributions():
    from torch.distributions import Normal, TransformedDistribution
    from torch.distributions.transforms import TanhTransform
    g = torch.Generator().manual_seed(1)
    mu, log_std = torch.randn(64, 3, generator=g), torch.randn(64, 3, generator=g).clamp(-3, 1)
    a = torch.rand(64, 3, generator=g) * 1.9 - 0.95
    ref = TransformedDistribution(Normal(mu, log_std.exp()), [TanhTransform()]).log_prob(a).sum(-1)
    torch.testing.assert_close(squashed_log_prob(torch.atanh(a), mu, log_std), ref, atol=1e-4, rtol=1e-4)


def test_the_loss_is_nll_minus_alpha_entropy_and_trains_alpha_toward_the_target():
    m = _model()
    s, a, R, t, mask = _batch()
    pred = m.forward_actions(s, a, R, t, mask)
    assert pred.shape == (5, 4, 4)
    mu, log_std = pred.chunk(2, -1)
    assert ((log_std >= -5) & (log_std <= 2)).all()
    keep = mask.bool()
    torch.manual_seed(3)
    loss = m.action_loss(pred[keep], a[keep])
    torch.manual_seed(3)                                  # the same draw for the entropy estimate
    u = mu[keep] + log_std[keep].exp() * torch.randn_like(mu[keep])
    entropy = -squashed_log_prob(u, mu[keep], log_std[keep])
    nll = -squashed_log_prob(torch.atanh(a[keep]), mu[keep], log_std[keep])
    alpha = m.log_temperature.exp()
    torch.testing.assert_close(loss, nll - alpha.detach() * entropy + alpha.detach() * (entropy + 2.0), atol=1e-5,
                               rtol=1e-5)
    loss.mean().backward()                                # alpha's gradient: alpha x (mean entropy - target)
    torch.testing.assert_close(m.log_temperature.grad, (alpha * (entropy.mean() + 2.0)).detach(), atol=1e-5, rtol=1e-5)
    for target, falls in ((-100.0, True), (100.0, False)):      # entropy above the target: alpha falls
        m = _model(target_entropy=target)
        opt = torch.optim.Adam([m.log_temperature], lr=0.05)
        before = m.log_temperature.item()
        for _ in range(10):
            opt.zero_grad()
            m.action_loss(m.forward_actions(s, a, R, t, mask)[keep], a[keep]).mean().backward()
            opt.step()
        assert (m.log_temperature.item() < before) == falls


def test_every_inference_path_gives_the_mean_action():
    m = _model().eval()
    s, a, R, t, mask = _batch()
    with torch.no_grad():
        mean_last = torch.tanh(m.forward_actions(s, a, R, t, mask)[:, -1, :2])
    torch.testing.assert_close(m.predict_last_action(s, a, R, t, attention_mask=mask), mean_last, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(m.step_forward(s, a, R, t, mask.bool()), mean_last, atol=1e-5, rtol=1e-5)
    draws = torch.stack([m.sample_last_action(s, a, R, t, generator=torch.Generator().manual_seed(k)) for k in range(200)])
    assert draws.abs().max() < 1 and draws.std(0).min() > 0.01          # a distribution, inside (-1, 1)
    same = m.sample_last_action(s, a, R, t, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(same, m.sample_last_action(s, a, R, t, generator=torch.Generator().manual_seed(7)))


def test_the_agent_samples_from_the_policy_when_asked():
    from decision_transformer import Agent, DecisionTransformer, DecisionTransformerConfig
    from decision_transformer.errors import DTError
    m = _model(target_returns=[1.0]).eval()
    obs = np.random.default_rng(0).normal(size=(3, 3))
    mean = Agent(m, num_envs=3).act(obs)
    a1 = Agent(m, num_envs=3, deterministic=False, seed=5).act(obs)
    a2 = Agent(m, num_envs=3, deterministic=False, seed=5).act(obs)
    np.testing.assert_array_equal(a1, a2)                      # seeded
    assert np.abs(a1 - mean).max() > 1e-3 and np.abs(a1).max() < 1
    dt = DecisionTransformer(DecisionTransformerConfig(state_dim=3, act_dim=2, n_layer=1, hidden_size=16,
                                                       target_returns=[1.0]))
    with pytest.raises(DTError, match="deterministic head: sampling continuous actions needs a stochastic policy"):
        Agent(dt, deterministic=False)


def test_discrete_actions_are_refused_in_one_line():
    with pytest.raises(ValueError, match="continuous actions only"):
        _model(action_type="discrete")


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory):
    return str(toyenv.make_dataset(tmp_path_factory.mktemp("toy") / "toy.npz"))


def test_odt_trains_evaluates_sweeps_and_exports_through_dt(toy_data, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--dataset", toy_data, "--env", "LineReach-v0", "--model", "odt", "--output", str(run),
                 "--steps", "400", "--context-length", "5", "--hidden-size", "32", "--n-layer", "2",
                 "--max-ep-len", "32", "--return-scale", "10", "--target-return", "19", "9", "--warmup-steps", "50",
                 "--lr", "1e-3", "--checkpoint-every", "200", "--quiet"]) == 0
    from decision_transformer.models.checkpoint import from_pretrained
    model = from_pretrained(run)
    assert isinstance(model, OnlineDecisionTransformer) and model.log_temperature.item() != np.log(0.1)
    assert main(["eval", str(run), "--episodes", "20", "--num-envs", "10", "--seed", "1",
                 "--json", str(tmp_path / "e.json")]) == 0
    hi, lo = json.loads((tmp_path / "e.json").read_text())["results"]
    assert hi["return_mean"] > 12 and hi["return_mean"] > lo["return_mean"]   # it learned, and follows the target
    assert main(["sweep", str(run), "--targets", "5:19:2", "--episodes", "2", "--num-envs", "2",
                 "--output", str(tmp_path / "sw")]) == 0
    assert main(["export", str(run), "--format", "onnx", str(tmp_path / "onnx")]) == 0
    import onnxruntime as ort
    sess = ort.InferenceSession(str(tmp_path / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    K, rng = 5, np.random.default_rng(0)
    feeds = {"states": rng.normal(size=(3, K, 2)).astype(np.float32), "actions": np.zeros((3, K, 1), np.float32),
             "returns_to_go": np.full((3, K, 1), 19.0, np.float32), "timesteps": np.tile(np.arange(K), (3, 1)),
             "attention_mask": np.ones((3, K), np.float32)}
    feeds = {i.name: feeds[i.name] for i in sess.get_inputs()}        # raw observations and returns: the graph
    mean, std = np.array(model.config.state_mean, np.float32), np.array(model.config.state_std, np.float32)
    want = model.predict_last_action(torch.from_numpy((feeds["states"] - mean) / std), torch.from_numpy(feeds["actions"]),
                                     torch.from_numpy(feeds["returns_to_go"] / 10.0), torch.from_numpy(feeds["timesteps"]))
    np.testing.assert_allclose(sess.run(None, feeds)[0], want.numpy(), atol=1e-5)
    capsys.readouterr()
    assert main(["export", str(run), str(tmp_path / "hf")]) == 2                   # not transformers-compatible
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "transformers" in err
