"""The Online Decision Transformer's policy (`--model odt`, models/odt.py): its head and loss against
torch.distributions, its inference paths against each other, its temperature's direction, and the
whole `dt` pipeline on it."""

import csv
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



def test_without_a_timestep_embedding_no_path_sees_the_timestep(tmp_path):
    """timestep_embedding False (the Online DT's default): a frozen zero table, through training,
    official re-initialisation, the exact and cached inference paths and a checkpoint round trip."""
    from decision_transformer import DecisionTransformer, DecisionTransformerConfig
    from decision_transformer.inference.cached import KVCache
    from decision_transformer.models.checkpoint import from_pretrained, is_transformers_compatible
    m = _model(timestep_embedding=False)
    s, a, R, t, mask = _batch()
    later = t + 17
    torch.testing.assert_close(m.forward_actions(s, a, R, t, mask), m.forward_actions(s, a, R, later, mask))
    assert not m.embed_timestep.weight.requires_grad and m.embed_timestep.weight.abs().max() == 0
    m.init_official()
    assert not m.embed_timestep.weight.requires_grad and m.embed_timestep.weight.abs().max() == 0
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2, weight_decay=0.1)
    m.action_loss(m.forward_actions(s, a, R, t, mask)[mask.bool()], a[mask.bool()]).mean().backward()
    opt.step()
    assert m.embed_timestep.weight.abs().max() == 0
    m.eval()
    torch.testing.assert_close(m.predict_last_action(s, a, R, t, attention_mask=mask),
                               m.predict_last_action(s, a, R, later, attention_mask=mask))
    with_time = _model().eval()                      # the DT's default: the same inputs at other timesteps differ
    assert (with_time.predict_last_action(s, a, R, t, attention_mask=mask)
            - with_time.predict_last_action(s, a, R, later, attention_mask=mask)).abs().max() > 1e-4
    cache = KVCache(m, num_envs=5, K=4)
    for k in range(4):                               # the KV cache, step by step, at shifted timesteps
        out = cache.step(s[:, k], R[:, k, 0], later[:, k], a[:, k - 1] if k else torch.zeros(5, 2),
                         torch.full((5,), k > 0))
    full = m.predict_last_action(s, a, R, t)
    torch.testing.assert_close(out, full, atol=1e-5, rtol=1e-5)
    m.save_pretrained(tmp_path / "ck")
    back = from_pretrained(tmp_path / "ck")
    assert back.config.timestep_embedding is False and not back.embed_timestep.weight.requires_grad
    dt = dict(state_dim=3, act_dim=2, n_layer=1, hidden_size=16)       # a DT without one is not transformers'
    assert is_transformers_compatible(DecisionTransformerConfig(**dt))
    assert not is_transformers_compatible(DecisionTransformer(DecisionTransformerConfig(**dt, timestep_embedding=False)).config)


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




def test_conditioning_measures_what_the_action_reads(toy_data):
    """evaluation/conditioning.py: a model blind to its return-to-go (a zero return embedding) or to
    its timestep (none) moves by exactly 0 when that input changes, and by more than 0 otherwise."""
    from decision_transformer.data.datasets import load_dataset
    from decision_transformer.evaluation.conditioning import CHANGES, conditioning
    ds = load_dataset(toy_data)
    kw = dict(state_dim=2, act_dim=1, max_ep_len=32, return_scale=10.0, initializer_range=0.5)
    blind = _model(**kw)
    torch.nn.init.zeros_(blind.embed_return.weight)
    torch.nn.init.zeros_(blind.embed_return.bias)
    rec = conditioning(blind.train(), ds, windows=64)
    assert blind.training and set(CHANGES) <= set(rec) and rec["windows"] == 64
    assert rec["return_to_go_x2"] == rec["return_to_go_x0.5"] == 0 and rec["timestep_plus_100"] > 1e-3
    timeless = _model(**kw, timestep_embedding=False)
    rec = conditioning(timeless, ds, windows=64)
    assert rec["timestep_plus_100"] == 0 and rec["return_to_go_x2"] > 1e-6 and rec["return_to_go_x0.5"] > 1e-6
    assert conditioning(timeless, ds, windows=64) == rec                                   # seeded windows

def test_no_timestep_embedding_is_a_flag_and_a_preset_field(toy_data, tmp_path):
    """--no-timestep-embedding (the default stays on), saved in the run and in its checkpoints."""
    from decision_transformer.models.checkpoint import from_pretrained
    base = ["train", "--dataset", toy_data, "--env", "LineReach-v0", "--model", "odt", "--steps", "2", "--context-length",
            "3", "--hidden-size", "8", "--n-layer", "1", "--max-ep-len", "32", "--return-scale", "10", "--quiet"]
    assert main([*base, "--output", str(tmp_path / "off"), "--no-timestep-embedding"]) == 0
    assert main([*base, "--output", str(tmp_path / "on")]) == 0
    assert json.loads((tmp_path / "off" / "config.json").read_text())["timestep_embedding"] is False
    assert from_pretrained(tmp_path / "off").config.timestep_embedding is False
    assert from_pretrained(tmp_path / "on").config.timestep_embedding is True
    from decision_transformer.options import read_preset
    from decision_transformer.training.trainer import PRESETS
    assert read_preset("odt-cpu-notime", PRESETS) == {**read_preset("odt-cpu", PRESETS), "timestep_embedding": False}


@pytest.fixture(scope="module")
def weak_odt(tmp_path_factory):
    """An odt pretrained briefly on weak LineReach data (mostly random actions)."""
    d = tmp_path_factory.mktemp("weak")
    rng, env = np.random.default_rng(0), toyenv.LineReach()
    cols = {k: [] for k in ("observations", "actions", "rewards", "terminations", "truncations")}
    for ep in range(100):
        obs, _ = env.reset(seed=ep)
        k, done = 0.0, False
        while not done:
            a = (k * toyenv.expert(obs) + (1 - k) * rng.uniform(-1, 1, 1)).astype(np.float32)
            nobs, r, term, trunc, _ = env.step(a)
            for key, v in zip(cols, (obs, a, r, term, trunc)):
                cols[key].append(v)
            obs, done = nobs, term or trunc
    np.savez(d / "weak.npz", **{k: np.asarray(v) for k, v in cols.items()})
    assert main(["train", "--dataset", str(d / "weak.npz"), "--env", "LineReach-v0", "--model", "odt", "--output",
                 str(d / "pre"), "--steps", "150", "--context-length", "5", "--hidden-size", "32", "--n-layer", "2",
                 "--max-ep-len", "32", "--return-scale", "10", "--target-return", "19", "--warmup-steps", "50",
                 "--lr", "1e-3", "--quiet"]) == 0
    return d / "pre"


FT = ["--num-envs", "10", "--updates-per-round", "20", "--batch-size", "64", "--eval-episodes", "20", "--lr", "1e-3",
      "--warmup-steps", "10", "--explore-return", "25", "--quiet",
      "--num-threads", "1"]  # one thread in every process: the kill test compares a subprocess with this one


def test_finetune_raises_a_weak_models_return(weak_odt, tmp_path, capsys):
    from decision_transformer.evaluation.evaluate import evaluate
    from decision_transformer.models.checkpoint import from_pretrained
    before = evaluate(from_pretrained(weak_odt), "LineReach-v0", [19.0], episodes=40, num_envs=10, seed=10_000)[0]
    assert main(["finetune", str(weak_odt), "--output", str(tmp_path / "ft"), "--online-steps", "6000",
                 "--eval-every", "2000", "--checkpoint-every", "2000", *FT]) == 0
    after = evaluate(from_pretrained(tmp_path / "ft"), "LineReach-v0", [19.0], episodes=40, num_envs=10, seed=10_000)[0]
    assert after["return_mean"] > before["return_mean"] + 3 and after["return_mean"] > 12, (before, after)   # 9.1 -> 14.3 (13.1 with --seed 1 or 2)
    rows = (tmp_path / "ft" / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("env_steps,round,updates,loss,temperature") and len(rows) == 4   # 2000, 4000, 6000
    assert "fine-tuned: return" in capsys.readouterr().out
    assert main(["eval", str(tmp_path / "ft"), "--episodes", "2", "--num-envs", "2"]) == 0       # a checkpoint like any
    assert any((tmp_path / "ft" / "tb").iterdir())


def test_finetune_resumes_to_the_weights_of_an_uninterrupted_run(weak_odt, tmp_path):
    from safetensors.torch import load_file
    common = [str(weak_odt), "--eval-every", "400", "--checkpoint-every", "400", *FT, "--optimizer", "lamb",
              "--eval-context", "3",                   # LAMB's state and the shorter context go through a resume too
              "--updates-per-round", "10", "--eval-episodes", "4"]     # fewer than FT's: exactness, not learning
    assert main(["finetune", *common, "--output", str(tmp_path / "a"), "--online-steps", "1200"]) == 0
    assert main(["finetune", *common, "--output", str(tmp_path / "b"), "--online-steps", "800"]) == 0   # stopped there
    assert main(["finetune", "--resume", str(tmp_path / "b"), "--online-steps", "1200", "--quiet"]) == 0
    wa, wb = (load_file(str(tmp_path / r / "checkpoints" / "last" / "model.safetensors")) for r in ("a", "b"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert (tmp_path / "a" / "metrics.csv").read_text() == (tmp_path / "b" / "metrics.csv").read_text()
    from decision_transformer.rundir import read_sessions          # each start and resume, with its machine
    assert [(s["step"], s["machine"]["device"]) for s in read_sessions(tmp_path / "b" / "sessions.jsonl")] == \
        [(0, "cpu"), (800, "cpu")]
    # killed (SIGKILL) after its first checkpoint, mid-way: resumed, the same weights and metrics again
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path
    tests = Path(__file__).parent
    p = subprocess.Popen([sys.executable, "-c", "import sys, toyenv; from decision_transformer.cli import main; "
                          "sys.exit(main())", "finetune", *common, "--output", str(tmp_path / "c"), "--online-steps",
                          "1200"], cwd=tests, env={**os.environ, "PYTHONPATH": str(tests)})
    first, deadline = tmp_path / "c" / "checkpoints" / "00000400", time.time() + 120
    while not first.exists() and time.time() < deadline and p.poll() is None:
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert first.exists() and not (tmp_path / "c" / "checkpoints" / "00001200").exists()
    assert main(["finetune", "--resume", str(tmp_path / "c"), "--online-steps", "1200", "--quiet"]) == 0
    wc = load_file(str(tmp_path / "c" / "checkpoints" / "last" / "model.safetensors"))
    assert all(torch.equal(wa[k], wc[k]) for k in wa)
    assert (tmp_path / "a" / "metrics.csv").read_text() == (tmp_path / "c" / "metrics.csv").read_text()


def test_finetune_stopped_by_sigterm_saves_after_its_round_and_resumes_exactly(weak_odt, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from safetensors.torch import load_file
    common = [str(weak_odt), "--eval-every", "400", "--checkpoint-every", "100000", *FT, "--updates-per-round", "10",
              "--eval-episodes", "4", "--online-steps", "1200"]
    tests = Path(__file__).parent
    p = subprocess.Popen([sys.executable, "-c", "import sys, toyenv; from decision_transformer.cli import main; "
                          "sys.exit(main())", "finetune", *common, "--output", str(tmp_path / "s")], cwd=tests,
                         env={**os.environ, "PYTHONPATH": str(tests)}, stderr=subprocess.PIPE, text=True)
    metrics, deadline = tmp_path / "s" / "metrics.csv", time.time() + 120
    while time.time() < deadline and p.poll() is None and not (metrics.exists() and len(metrics.read_text().splitlines()) > 1):
        time.sleep(0.02)
    p.send_signal(signal.SIGTERM)
    err = p.communicate(timeout=60)[1]
    assert p.returncode == 128 + signal.SIGTERM, err
    step = int((tmp_path / "s" / "checkpoints" / "last").resolve().name)
    assert 400 <= step < 1200
    assert err.strip().splitlines()[-1].startswith("stopped by SIGTERM after round ") and \
        f"({step:,} env steps of 1,200)" in err and f"`dt finetune --resume {tmp_path / 's'}` continues it exactly" in err
    assert main(["finetune", "--resume", str(tmp_path / "s"), "--quiet"]) == 0
    assert main(["finetune", *common, "--output", str(tmp_path / "whole")]) == 0
    a, b = (load_file(str(tmp_path / r / "checkpoints" / "last" / "model.safetensors")) for r in ("s", "whole"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert metrics.read_text() == (tmp_path / "whole" / "metrics.csv").read_text()


def test_a_finetune_preset_fills_the_options_and_flags_override_it(weak_odt, tmp_path):
    preset = tmp_path / "p.json"
    preset.write_text(json.dumps({"updates_per_round": 3, "batch_size": 16, "optimizer": "lamb", "eval_context": 2,
                                  "num_envs": 2, "lr": 0.5}))
    assert main(["finetune", str(weak_odt), "--preset", str(preset), "--lr", "1e-4", "--online-steps", "40",
                 "--eval-episodes", "2", "--output", str(tmp_path / "ft"), "--quiet", "--num-threads", "1"]) == 0
    saved = json.loads((tmp_path / "ft" / "config.json").read_text())
    assert {k: saved[k] for k in ("updates_per_round", "batch_size", "optimizer", "eval_context", "num_envs", "lr",
                                  "buffer_size")} == {"updates_per_round": 3, "batch_size": 16, "optimizer": "lamb",
                                                      "eval_context": 2, "num_envs": 2, "lr": 1e-4, "buffer_size": 1000}


def test_updates_per_env_step_scales_each_rounds_updates_with_the_steps_it_collected(weak_odt, tmp_path):
    """--updates-per-env-step x: round(x * steps) gradient steps after a round (at least 1), whatever
    --updates-per-round says: short exploration episodes cost no more updates per env step."""
    assert main(["finetune", str(weak_odt), "--updates-per-env-step", "0.5", "--updates-per-round", "999",
                 "--num-envs", "2", "--online-steps", "60", "--eval-every", "20", "--eval-episodes", "2",
                 "--batch-size", "16", "--output", str(tmp_path / "ft"), "--quiet", "--num-threads", "1"]) == 0
    rows = list(csv.DictReader(open(tmp_path / "ft" / "metrics.csv")))
    env, rounds, updates = (int(rows[-1][k]) for k in ("env_steps", "round", "updates"))
    assert env >= 60 and abs(updates - 0.5 * env) <= rounds          # each round rounds its share once
    assert json.loads((tmp_path / "ft" / "config.json").read_text())["updates_per_env_step"] == 0.5


def test_finetune_bad_input_is_one_line(weak_odt, tmp_path, capsys):
    from decision_transformer import DecisionTransformer, DecisionTransformerConfig
    DecisionTransformer(DecisionTransformerConfig(state_dim=2, act_dim=1, n_layer=1, hidden_size=16, max_ep_len=32,
                                                  env_id="LineReach-v0", target_returns=[19.0])).save_pretrained(tmp_path / "dt")
    for argv, msg in [
        ([str(tmp_path / "dt"), "--output", str(tmp_path / "x")], "a 'dt' model with a deterministic head: online fine-tuning"),
        ([str(weak_odt), "--env", "Hopper-v5", "--output", str(tmp_path / "x")], "but the checkpoint was trained on (2,)"),
        ([str(weak_odt), "--buffer-size", "1", "--batch-size", "64", "--output", str(tmp_path / "x")],
         "the replay buffer holds 20 steps, fewer than a batch (--batch-size 64)"),
        (["--output", str(tmp_path / "x")], "give the checkpoint to fine-tune"),
        ([str(weak_odt), "--preset", "nosuch", "--output", str(tmp_path / "x")], "unknown preset 'nosuch': choose one "
                                                                                 "of cpu-halfcheetah, cpu-hopper, cpu-walker2d,"),
        ([str(weak_odt), "--preset", str(tmp_path / "bad.json"), "--output", str(tmp_path / "x")],
         "not fine-tuning options a preset can set: checkpoint, steps"),
        ([str(weak_odt), "--preset", str(tmp_path / "lr.json"), "--output", str(tmp_path / "x")], "--lr must be > 0"),
        (["--resume", str(weak_odt), "--preset", "walker2d"], "--preset cannot be given with it"),
    ]:
        (tmp_path / "bad.json").write_text('{"steps": 5, "checkpoint": "y", "lr": 0.1}')
        (tmp_path / "lr.json").write_text('{"lr": -1}')
        assert main(["finetune", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and msg in err and "\n" not in err, err
        assert not (tmp_path / "x").exists()


def test_clipped_actions_are_measured_and_warned_about(weak_odt, tmp_path, capsys):
    """Actions clipped to the box (a deterministic policy plus noise) sit at +-1, where the tanh-Gaussian
    head can only put them with a wide std: `dt data info` measures the fraction, and `dt train --model
    odt` and `dt finetune` say so in one line each and go on; the weak data's actions do not trip it."""
    weak = weak_odt.parent / "weak.npz"
    d = dict(np.load(weak))
    d["actions"] = np.clip(d["actions"] * 3, -1, 1).astype(np.float32)
    np.savez(tmp_path / "clipped.npz", **d)
    assert main(["data", "info", str(tmp_path / "clipped.npz"), "--plot", "none"]) == 0
    sat = json.loads(capsys.readouterr().out)["actions_at_bounds"]
    assert sat == pytest.approx(float((np.abs(d["actions"]) >= 1 - 1e-3).mean())) and sat > 0.5
    base = ["--env", "LineReach-v0", "--model", "odt", "--steps", "2", "--context-length", "3", "--hidden-size", "8",
            "--n-layer", "1", "--max-ep-len", "32", "--return-scale", "10", "--quiet"]
    assert main(["train", "--dataset", str(tmp_path / "clipped.npz"), *base, "--output", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    warnings = [line for line in out.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and f"{sat:.0%} of the dataset's action components lie at +-1" in warnings[0]
    assert main(["train", "--dataset", str(weak), *base, "--output", str(tmp_path / "w")]) == 0
    assert "warning" not in capsys.readouterr().out
    ft = ["--online-steps", "1", "--num-envs", "2", "--updates-per-round", "1", "--eval-episodes", "2", "--quiet"]
    assert main(["finetune", str(weak_odt), "--dataset", str(tmp_path / "clipped.npz"), "--output",
                 str(tmp_path / "ft"), *ft]) == 0
    assert "warning: " in capsys.readouterr().out
    assert main(["finetune", str(weak_odt), "--output", str(tmp_path / "ft2"), *ft]) == 0
    assert "warning" not in capsys.readouterr().out
