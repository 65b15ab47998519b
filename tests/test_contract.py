"""The model contract (models/policy.py): a new model is one module plus its registration.

The model below lives in this test file only: registered, it trains, evaluates, sweeps and
exports to ONNX through the `dt` command with src/ untouched, with its own loss."""

import json
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn as nn
import toyenv

from decision_transformer.cli import main
from decision_transformer.models import policy
from decision_transformer.models.policy import Policy, PolicyConfig, register
from decision_transformer.options import option


@dataclass
class LastStateConfig(PolicyConfig):
    width: int = option(16, "hidden width", range="[1, inf)", cli=False)
    architecture: str = "last-state-l1"

    @classmethod
    def from_training(cls, opts, **policy):
        return cls(**policy)


class LastStateModel(Policy):
    """An MLP on the window's last state, fitted with an L1 loss (not the default squared error)."""
    window_anchor = "end"
    losses = 0                                    # how often the trainer asked for this model's loss

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.net = nn.Sequential(nn.Linear(config.state_dim, config.width), nn.ReLU(),
                                 nn.Linear(config.width, config.act_dim), nn.Tanh())

    def forward_actions(self, states, actions, returns_to_go, timesteps, attention_mask=None):
        return self.net(states)

    @staticmethod
    def loss_positions(attention_mask):
        m = torch.zeros_like(attention_mask, dtype=torch.bool)
        m[:, -1] = True
        return m

    def action_loss(self, pred, target):
        type(self).losses += 1
        return (pred - target).abs().mean(-1)

    @torch.inference_mode()
    def predict_last_action(self, states, actions, returns_to_go, timesteps, attention_mask=None, token_mask=None):
        return self.net(states[:, -1])

    def step_forward(self, states, actions, returns_to_go, timesteps, real):
        return self.net(states[:, -1])


@pytest.fixture
def registered():
    register("last-state-l1", LastStateConfig, LastStateModel)
    yield
    policy._REGISTRY.pop("last-state-l1", None)


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory):
    return str(toyenv.make_dataset(tmp_path_factory.mktemp("toy") / "toy.npz"))


def test_a_model_defined_outside_src_trains_evaluates_sweeps_and_exports(registered, toy_data, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--dataset", toy_data, "--env", "LineReach-v0", "--model", "last-state-l1", "--output", str(run),
                 "--steps", "30", "--context-length", "4", "--max-ep-len", "32", "--return-scale", "10",
                 "--target-return", "19", "--warmup-steps", "5", "--lr", "1e-3", "--quiet"]) == 0
    assert LastStateModel.losses == 30                                   # the trainer used the model's own loss
    cfg = json.loads((run / "checkpoints" / "last" / "config.json").read_text())
    assert cfg["decision_transformer"]["architecture"] == "last-state-l1" and "n_layer" not in cfg   # no transformers keys
    assert main(["eval", str(run), "--episodes", "4", "--num-envs", "2", "--json", str(tmp_path / "e.json")]) == 0
    ev = json.loads((tmp_path / "e.json").read_text())
    assert ev["results"][0]["episodes"] == 4 and np.isfinite(ev["results"][0]["return_mean"])
    assert main(["sweep", str(run), "--targets", "5:19:2", "--episodes", "2", "--num-envs", "2",
                 "--output", str(tmp_path / "sw"), "--ref-min-score", "0", "--ref-max-score", "20"]) == 0
    sw = json.loads((tmp_path / "sw" / "sweep.json").read_text())["results"]
    assert [r["target_return"] for r in sw] == [5.0, 19.0]
    assert [r["normalized_x100"] for r in sw] == pytest.approx([r["return_mean"] * 5 for r in sw])   # (R - 0) / 20 x 100
    assert main(["export", str(run), "--format", "onnx", str(tmp_path / "onnx")]) == 0
    import onnxruntime as ort
    from decision_transformer.models.checkpoint import from_pretrained
    model = from_pretrained(run)
    sess = ort.InferenceSession(str(tmp_path / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    K, rng = 4, np.random.default_rng(0)
    obs = rng.normal(size=(3, K, model.config.state_dim)).astype(np.float32)
    feeds = {"states": obs, "actions": np.zeros((3, K, model.config.act_dim), np.float32),
             "returns_to_go": np.full((3, K, 1), 19.0, np.float32), "timesteps": np.tile(np.arange(K), (3, 1)),
             "attention_mask": np.ones((3, K), np.float32)}
    feeds = {i.name: feeds[i.name] for i in sess.get_inputs()}
    mean, std = np.array(model.config.state_mean, np.float32), np.array(model.config.state_std, np.float32)
    want = model.net(torch.from_numpy((obs[:, -1] - mean) / std)).detach().numpy()
    np.testing.assert_allclose(sess.run(None, feeds)[0], want, atol=1e-5)
    assert main(["export", str(run), str(tmp_path / "hf")]) == 2                   # not transformers-compatible
    assert "no transformers equivalent" in capsys.readouterr().err


def test_registration_checks_the_contract():
    class NoStep(Policy):
        def forward_actions(self, *a):
            return None

        def predict_last_action(self, *a, **k):
            return None
    @dataclass
    class XConfig(PolicyConfig):
        architecture: str = "x"
    with pytest.raises(TypeError, match="^model 'x' cannot be registered: NoStep does not implement step_forward$"):
        register("x", XConfig, NoStep)
    with pytest.raises(TypeError, match="does not subclass models.policy.Policy"):
        register("last-state-l1", LastStateConfig, nn.Linear)
    with pytest.raises(TypeError, match="its config's architecture is 'last-state-l1'"):
        register("other", LastStateConfig, LastStateModel)
    assert "x" not in policy.architectures() and "other" not in policy.architectures()
