"""`dt export CKPT --format onnx OUT`: a standalone model that runs with onnxruntime alone and
acts exactly as our Agent does."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from decision_transformer.cli import main
from decision_transformer.envs import make_env
from decision_transformer.inference.agent import Agent
from decision_transformer.models.checkpoint import from_pretrained

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"

RUNNER = """
import sys
sys.modules["torch"] = None                      # the export must not need torch
sys.path.insert(0, sys.argv[1])
import numpy as np
from onnx_policy import OnnxPolicy
d = np.load(sys.argv[2])
p = OnnxPolicy(sys.argv[1])
p.reset(float(d["target"]))
acts = []
for obs, r in zip(d["obs"], d["rewards"]):
    acts.append(np.asarray(p.act(obs), dtype=np.float64))
    p.observe(float(r))
np.save(sys.argv[3], np.stack(acts))
"""


def _episode_with_agent(model, env_id, target, steps, seed=0):
    """Our Agent (torch, exact mode) in the env: observations, rewards and its actions."""
    env = make_env(env_id)
    agent = Agent(model, num_envs=1, target_return=target)
    obs, _ = env.reset(seed=seed)
    O, Rw, A = [], [], []
    for _ in range(steps):
        a = agent.act(obs[None])[0]
        O.append(obs), A.append(np.asarray(a, dtype=np.float64))
        obs, r, term, trunc, _ = env.step(a)
        Rw.append(r)
        agent.observe([r], [term or trunc])
        if term or trunc:
            break
    return np.stack(O), np.array(Rw), np.stack(A)


def _onnx_actions(out, obs, rewards, target, tmp_path):
    np.savez(tmp_path / "ep.npz", obs=obs, rewards=rewards, target=target)
    (tmp_path / "runner.py").write_text(RUNNER)
    subprocess.run([sys.executable, str(tmp_path / "runner.py"), str(out), str(tmp_path / "ep.npz"),
                    str(tmp_path / "acts.npy")], check=True)
    return np.load(tmp_path / "acts.npy")


@pytest.mark.skipif(not (ROOT / "models" / "hopper-medium" / "model.safetensors").is_file(),
                    reason="the published hopper-medium checkpoint is not in this checkout")
def test_exported_hopper_policy_acts_as_ours_for_200_steps_without_torch(tmp_path):
    src = ROOT / "models" / "hopper-medium"
    out = tmp_path / "onnx"
    assert main(["export", str(src), "--format", "onnx", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.onnx", "onnx_policy.py"]
    model = from_pretrained(src)
    obs, rew, acts = _episode_with_agent(model, "Hopper-v5", 3600.0, 200)
    assert len(obs) == 200                                       # a whole 200-step stretch, no early fall
    got = _onnx_actions(out, obs, rew, 3600.0, tmp_path)
    np.testing.assert_allclose(got, acts, atol=2e-5, rtol=0)
    assert "onnxruntime" in (out / "README.md").read_text()


def test_exported_bc_and_discrete_policies_act_as_ours(tmp_path):
    # BC (vector states): the fixture run
    out = tmp_path / "bc"
    assert main(["export", str(FIXTURES / "bc-run"), "--format", "onnx", str(out)]) == 0
    model = from_pretrained(FIXTURES / "bc-run")
    import toyenv  # noqa: F401  (registers LineReach-v0)
    obs, rew, acts = _episode_with_agent(model, "LineReach-v0", 19.0, 40)
    np.testing.assert_allclose(_onnx_actions(out, obs, rew, 19.0, tmp_path), acts, atol=2e-5, rtol=0)
    # a MinAtar DT (uint8 frames, discrete actions: the argmax)
    import torch

    from decision_transformer.models.dt import (
        DecisionTransformer,
        DecisionTransformerConfig,
    )
    torch.manual_seed(0)
    m = DecisionTransformer(DecisionTransformerConfig(
        state_type="image", state_shape=[4, 10, 10], act_dim=3, action_type="discrete", hidden_size=32, n_layer=2,
        n_head=2, context_length=5, return_scale=1.0, env_id="MinAtar/Breakout-v1", target_returns=[5.0],
        max_ep_len=1000))
    m.save_pretrained(tmp_path / "mdt")
    assert main(["export", str(tmp_path / "mdt"), "--format", "onnx", str(tmp_path / "monnx")]) == 0
    obs, rew, acts = _episode_with_agent(m, "MinAtar/Breakout-v1", 5.0, 60)
    np.testing.assert_array_equal(_onnx_actions(tmp_path / "monnx", obs, rew, 5.0, tmp_path), acts)


def test_export_refuses_to_replace_what_it_did_not_write(tmp_path, capsys):
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep")
    assert main(["export", str(FIXTURES / "dt-run"), "--format", "onnx", str(other)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["export", str(FIXTURES / "dt-run"), "--format", "onnx", str(other), "--overwrite"]) == 2
    assert "not an ONNX export" in capsys.readouterr().err and (other / "notes.txt").read_text() == "keep"
    out = tmp_path / "x"
    assert main(["export", str(FIXTURES / "dt-run"), "--format", "onnx", str(out)]) == 0
    assert main(["export", str(FIXTURES / "dt-run"), "--format", "onnx", str(out), "--overwrite"]) == 0
    cfg = json.loads((out / "config.json").read_text())["decision_transformer"]
    assert cfg["architecture"] == "dt"
