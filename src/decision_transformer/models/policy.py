"""What every model is to the rest of the toolkit: the `Policy` contract, its config and the registry.

A model subclasses `Policy` (an nn.Module) and registers itself with `register(name, Config,
Model)` at the end of its module; registration checks the contract, so a model that misses a
part fails there, in one line, not deep inside the trainer or the Agent. The contract:

- `config`: an instance of its PolicyConfig subclass (`architecture` = its registry name);
- `window_anchor`: "start" or "end", how the training sampler places windows (sampler.py):
  "end" for a model whose loss counts the last position only, so every step is a target;
- `forward_actions(states, actions, returns_to_go, timesteps, attention_mask) -> (B, L, act_dim)`:
  what training fits;
- `loss_positions(attention_mask) -> bool mask`: which of those positions the loss counts
  (default: every real step);
- `action_loss(pred, target) -> per-position losses`: the model's loss on the counted positions
  (default: squared error summed over action dimensions / act_dim for continuous actions,
  cross-entropy on logits for discrete ones); the trainer averages it, over ranks too;
- `predict_last_action(states, actions, returns_to_go, timesteps, attention_mask=None,
  token_mask=None) -> (B, act_dim)`: the action at the window's last step, what the Agent calls;
- `step_forward(states, actions, returns_to_go, timesteps, real) -> (N, act_dim)`: the same, on
  normalised states and scaled returns-to-go with a (N, K) bool mask of real steps, written
  without data-dependent branches: the graph `dt export --format onnx` traces;
- `param_groups() -> list[dict]`: its parameters as optimiser groups (default: one group of them
  all); a group may set `weight_decay` and `trust_ratio` (LAMB's, training/optim.py);
- `data_warnings(ds) -> list[str]`: what about a dataset would make this model train or explore
  badly, one line each (the trainer and `dt finetune` print them and go on; default: none);
- `transformers_compatible(config) -> bool`: whether `transformers.DecisionTransformerModel`
  can load its checkpoints (default: no).
Saving and loading need nothing more: checkpoint.py writes any registered model's config and
weights, and reads them back through the registry.

Checkpoints store `config.to_dict()`; loading dispatches on its `architecture` (`config_from_dict`,
`build`). Models register themselves when their module is imported, and the package imports
them all, so this module imports none of them: no import cycle.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import asdict, dataclass, field, fields

import torch.nn as nn
import torch.nn.functional as F

from decision_transformer.errors import CheckpointError, DTError
from decision_transformer.options import check, option


@dataclass
class PolicyConfig:
    """The fields every policy shares: its spaces and what evaluation needs. Declared with their
    valid ranges (options.py), so a config from any source, a checkpoint file included, is checked."""
    state_dim: int = option(17, "vector states: features; image states: C*H*W (set from state_shape)",
                            range="[1, inf)", cli=False)
    act_dim: int = option(4, "continuous: action dimensions; discrete: number of actions", range="[1, inf)", cli=False)
    max_ep_len: int = option(4096, "rows of the timestep embedding (timesteps are clamped below it)",
                             range="[1, inf)", cli=False)
    action_tanh: bool = True        # continuous head squashed to [-1, 1]
    action_type: str = option("continuous", "or discrete (actions are indices, the head gives logits)",
                              choices=("continuous", "discrete"), cli=False)
    state_type: str = option("vector", "or image (states (C, H, W) uint8 frames)", choices=("vector", "image"), cli=False)
    state_shape: list[int] | None = option(None, "image states: [C, H, W], e.g. [4, 84, 84]", range="[1, inf)", cli=False)
    state_encoder: str | None = option(None, "image states: 'nature' (Nature-DQN conv, 0-255 frames of 36x36 or more) "
                                       "or 'minatar' (one 3x3 conv, small 0/1 frames); None picks by frame size",
                                       choices=("nature", "minatar"), cli=False)
    # --- what evaluation needs (all optional for a bare model) ---
    context_length: int = option(20, "K, timesteps per window", range="[1, inf)", cli=False)
    return_scale: float | None = option(None, "returns-to-go are divided by this (1000 for MuJoCo)",
                                        range="(0, inf)", cli=False)
    state_mean: list[float] | None = option(None, "per-feature state mean", cli=False)
    state_std: list[float] | None = option(None, "per-feature state std", range="(0, inf)", cli=False)
    env_id: str | None = option(None, "the env the policy acts in", cli=False)
    target_returns: list[float] | None = option(None, "default evaluation targets (unscaled)", cli=False)
    extra: dict = field(default_factory=dict)  # free-form metadata (dataset, reference scores, ...)
    architecture: str = ""           # the registry name, set by each subclass

    def __post_init__(self):
        try:
            check(self)
        except DTError as e:                     # a bad value in Python code: the Pythonic exception
            raise ValueError(str(e)) from None
        if self.state_type == "image":
            if not self.state_shape or len(self.state_shape) != 3:
                raise ValueError("state_type='image' needs state_shape=[C, H, W], e.g. [4, 84, 84]")
            self.state_shape = [int(v) for v in self.state_shape]
            self.state_dim = math.prod(self.state_shape)
            if self.state_encoder is None:
                self.state_encoder = "nature" if min(self.state_shape[1:]) >= 36 else "minatar"
            if self.state_encoder == "nature" and min(self.state_shape[1:]) < 36:
                raise ValueError(f"the 'nature' encoder needs frames of 36x36 or more, got {self.state_shape}: "
                                 "use state_encoder='minatar'")
        for k in ("state_mean", "state_std"):
            v = getattr(self, k)
            if v is not None and self.state_type == "vector" and len(v) != self.state_dim:
                raise ValueError(f"{k} has {len(v)} values but state_dim is {self.state_dim}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        """Build from a saved config (unknown keys are ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


class Policy(nn.Module):
    """The contract every registered model fulfils (module docstring). Subclasses implement the
    abstract parts; the defaults suit a model that fits every real step of its windows."""

    window_anchor = "start"

    def forward_actions(self, states, actions, returns_to_go, timesteps, attention_mask=None):
        raise NotImplementedError

    def predict_last_action(self, states, actions, returns_to_go, timesteps, attention_mask=None, token_mask=None):
        raise NotImplementedError

    def step_forward(self, states, actions, returns_to_go, timesteps, real):
        raise NotImplementedError

    @staticmethod
    def loss_positions(attention_mask):
        """Every real (unpadded) step counts in the loss."""
        return attention_mask.bool()

    def action_loss(self, pred, target):
        """(n, act_dim) predictions and their targets at the counted positions -> (n,) losses:
        mean squared error over the action's dimensions (continuous), cross-entropy (discrete)."""
        if self.config.action_type == "discrete":
            return F.cross_entropy(pred, target, reduction="none")
        return ((pred - target) ** 2).mean(-1)

    def param_groups(self) -> list[dict]:
        """The parameters as optimiser groups: one group, the optimiser's settings for all."""
        return [{"params": list(self.parameters())}]

    @staticmethod
    def data_warnings(ds) -> list[str]:
        """Nothing about a dataset troubles this model."""
        return []

    @staticmethod
    def transformers_compatible(config) -> bool:
        return False


_REQUIRED = ("forward_actions", "predict_last_action", "step_forward")
_REGISTRY: dict[str, tuple[type, type]] = {}


def register(name: str, config_cls: type, model_cls: type) -> None:
    """Add a model to the registry, after checking it fulfils the contract."""
    problems = []
    if not (inspect.isclass(config_cls) and issubclass(config_cls, PolicyConfig)):
        problems.append(f"its config {config_cls!r} is not a PolicyConfig subclass")
    elif config_cls.__dataclass_fields__["architecture"].default != name:
        problems.append(f"its config's architecture is {config_cls.__dataclass_fields__['architecture'].default!r}")
    if not (inspect.isclass(model_cls) and issubclass(model_cls, Policy)):
        problems.append(f"{model_cls!r} does not subclass models.policy.Policy")
    else:
        missing = [m for m in _REQUIRED if getattr(model_cls, m) is getattr(Policy, m)]
        if missing:
            problems.append(f"{model_cls.__name__} does not implement {', '.join(missing)}")
        if model_cls.window_anchor not in ("start", "end"):
            problems.append(f"window_anchor is {model_cls.window_anchor!r}, not 'start' or 'end'")
    if problems:
        raise TypeError(f"model {name!r} cannot be registered: " + "; ".join(problems))
    _REGISTRY[name] = (config_cls, model_cls)


def lookup(name: str) -> tuple[type, type]:
    if name not in _REGISTRY:
        raise CheckpointError(f"unknown model architecture {name!r}: this version knows {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def architectures() -> list[str]:
    return sorted(_REGISTRY)


def config_from_dict(d: dict) -> PolicyConfig:
    """The config a saved dict describes (files without `architecture` are Decision Transformers)."""
    return lookup(d.get("architecture") or "dt")[0].from_dict(d)


def build(cfg: PolicyConfig):
    """The (freshly initialised) model a config describes."""
    return lookup(cfg.architecture)[1](cfg)
