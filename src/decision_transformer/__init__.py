"""Decision Transformer: offline RL as sequence modelling, weight-compatible with `transformers`."""

from decision_transformer.models.bc import BCConfig, BCModel  # noqa: E402  (registers "bc"; the registry is policy.py)
from decision_transformer.models.dt import (
    DecisionTransformer,
    DecisionTransformerConfig,
)
from decision_transformer.models.odt import (  # noqa: E402  (registers "odt")
    OnlineDecisionTransformer,
    OnlineDecisionTransformerConfig,
)

__version__ = "0.1.0"
__all__ = ["DecisionTransformer", "DecisionTransformerConfig", "OnlineDecisionTransformer",
           "OnlineDecisionTransformerConfig", "BCModel", "BCConfig", "Agent", "__version__"]


def __getattr__(name):  # lazy: importing the package must not pull gymnasium/numpy-heavy bits
    if name == "Agent":
        from decision_transformer.inference.agent import Agent
        return Agent
    raise AttributeError(name)
