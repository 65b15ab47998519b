"""Decision Transformer: offline RL as sequence modelling, weight-compatible with `transformers`."""

from .model import DecisionTransformer, DecisionTransformerConfig

__version__ = "0.1.0"
__all__ = ["DecisionTransformer", "DecisionTransformerConfig", "Agent", "__version__"]


def __getattr__(name):  # lazy: importing the package must not pull gymnasium/numpy-heavy bits
    if name == "Agent":
        from .agent import Agent
        return Agent
    raise AttributeError(name)
