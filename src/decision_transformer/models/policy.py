"""What every model is to the rest of the toolkit: a policy config and a registry of models.

A registered model is an nn.Module with
- `config`: a PolicyConfig subclass (its `architecture` names the model in the registry);
- `forward_actions(states, actions, returns_to_go, timesteps, attention_mask) -> (B, L, act_dim)`:
  what training fits (MSE for continuous actions, cross-entropy on logits for discrete ones);
- `loss_positions(attention_mask) -> bool mask`: which of those positions the loss counts;
- `window_anchor`: "start" or "end", how the training sampler places windows (sampler.py):
  "end" for a model whose loss counts the last position only, so every step is a target;
- `predict_last_action(states, actions, returns_to_go, timesteps, attention_mask=None,
  token_mask=None) -> (B, act_dim)`: the action at the window's last step, what the Agent and
  evaluate() call.

Checkpoints store `config.to_dict()`; loading dispatches on its `architecture` (`config_from_dict`,
`build`). Models register themselves when their module is imported, and the package imports
them all, so this module imports none of them: no import cycle.

To add a model: a PolicyConfig subclass with `architecture = "<name>"` and `from_training`, a
module with the interface above, and `register("<name>", Config, Model)` at the module's end.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

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


_REGISTRY: dict[str, tuple[type, type]] = {}


def register(name: str, config_cls: type, model_cls: type) -> None:
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
