"""The Online Decision Transformer's policy (Zheng, Zhang and Grover, ICML 2022): the paper's DT
with a stochastic action head, registered as `odt`.

The trunk, embeddings and every inference path are the DT's (dt.py); what differs is the head and
the loss:
- the head gives a diagonal Gaussian over pre-tanh actions, mean mu and log-std bounded softly to
  [log_std_min, log_std_max]; the action is tanh of a draw (a tanh-squashed Gaussian);
- training minimises the negative log-likelihood of the data's actions minus alpha x the policy's
  entropy, the entropy estimated from one reparameterised draw per position (the squashed
  Gaussian's entropy has no closed form);
- alpha is learned as a log-temperature toward a target entropy (default -act_dim), SAC's rule:
  it falls while the entropy is above the target and rises while it is below.
Evaluation acts with the mean action tanh(mu), through the exact Agent and the ONNX export like
every model. `transformers.DecisionTransformerModel` has no such head: these checkpoints load in
this toolkit only.

The paper trains the temperature with its own optimiser (Adam); here it is one more parameter of
the model, in a parameter group of its own (`param_groups`) without weight decay and, under LAMB,
without the trust ratio: Adam's update, at the network's learning rate and schedule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from decision_transformer.models.dt import DecisionTransformer, DecisionTransformerConfig
from decision_transformer.models.policy import register
from decision_transformer.options import option

_EPS = 1e-6
SATURATION_WARN = 0.1    # data_warnings: above this fraction of action components at +-1 (datasets.action_saturation)


@dataclass
class OnlineDecisionTransformerConfig(DecisionTransformerConfig):
    """The DT's fields plus the stochastic head's."""
    log_std_min: float = option(-5.0, "lower bound of the head's log-std", cli=False)
    log_std_max: float = option(2.0, "upper bound of the head's log-std", cli=False)
    init_temperature: float = option(0.1, "initial entropy weight alpha", range="(0, inf)", cli=False)
    target_entropy: float | None = option(None, "the entropy alpha steers toward (None: -act_dim)", cli=False)
    architecture: str = "odt"

    def __post_init__(self):
        super().__post_init__()
        if self.action_type != "continuous":
            raise ValueError("the odt model has a Gaussian head: continuous actions only (use dt for discrete ones)")
        if self.log_std_min >= self.log_std_max:
            raise ValueError(f"log_std_min {self.log_std_min} must be below log_std_max {self.log_std_max}")


class GaussianHead(nn.Module):
    """h (..., H) -> the mean action tanh(mu) (..., act_dim); `params(h)` -> (mu, log_std)."""

    def __init__(self, H: int, act_dim: int, log_std_min: float, log_std_max: float):
        super().__init__()
        self.linear = nn.Linear(H, 2 * act_dim)
        self.lo, self.hi = log_std_min, log_std_max

    def params(self, h):
        mu, raw = self.linear(h).chunk(2, dim=-1)
        return mu, self.lo + 0.5 * (self.hi - self.lo) * (torch.tanh(raw) + 1.0)

    def forward(self, h):
        return torch.tanh(self.params(h)[0])


def squashed_log_prob(u, mu, log_std):
    """log density of a = tanh(u) under the tanh-squashed Gaussian N(mu, exp(log_std)), summed over
    the action's dimensions: the Gaussian's log density of u minus log |da/du| = log(1 - tanh(u)^2),
    written 2 (log 2 - u - softplus(-2u)) for stability."""
    z = (u - mu) * torch.exp(-log_std)
    gauss = -0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)
    jac = 2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))
    return (gauss - jac).sum(dim=-1)


class OnlineDecisionTransformer(DecisionTransformer):
    def __init__(self, config: OnlineDecisionTransformerConfig | None = None, **kwargs):
        cfg = config or OnlineDecisionTransformerConfig(**kwargs)
        super().__init__(cfg)
        self.predict_action = GaussianHead(cfg.hidden_size, cfg.act_dim, cfg.log_std_min, cfg.log_std_max)
        self.predict_action.apply(self._init_weights)
        self.log_temperature = nn.Parameter(torch.tensor(math.log(cfg.init_temperature)))

    @property
    def target_entropy(self) -> float:
        t = self.config.target_entropy
        return -float(self.config.act_dim) if t is None else float(t)

    def forward_actions(self, states, actions, returns_to_go, timesteps, attention_mask=None):
        """(B, L, 2 act_dim): the head's mu and log-std at every state token (action_loss's input)."""
        mu, log_std = self.predict_action.params(
            self.state_features(states, actions, returns_to_go, timesteps, attention_mask))
        return torch.cat((mu, log_std), dim=-1)

    def action_loss(self, pred, target):
        """Per position: -log p(target) - alpha x entropy, plus the temperature's own loss
        alpha x (entropy - target entropy), each side seeing the other as a constant."""
        mu, log_std = pred.chunk(2, dim=-1)
        a = target.clamp(-1 + _EPS, 1 - _EPS)
        nll = -squashed_log_prob(torch.atanh(a), mu, log_std)
        u = mu + torch.exp(log_std) * torch.randn_like(mu)          # one reparameterised draw
        entropy = -squashed_log_prob(u, mu, log_std)
        alpha = self.log_temperature.exp()
        return nll - alpha.detach() * entropy + alpha * (entropy - self.target_entropy).detach()

    def param_groups(self) -> list[dict]:
        """The network's parameters, then the temperature: no weight decay, no trust ratio (Adam's step)."""
        rest = [p for p in self.parameters() if p is not self.log_temperature]
        return [{"params": rest}, {"params": [self.log_temperature], "weight_decay": 0.0, "trust_ratio": False}]

    @torch.inference_mode()
    def sample_last_action(self, states, actions, returns_to_go, timesteps, token_mask=None, generator=None):
        """A draw from the policy at the window's last step, (B, act_dim): exploration."""
        x = self.embed(states, actions, returns_to_go, timesteps)[:, :-1]
        T = x.shape[1]
        h = self.encoder(x, token_mask, query=slice(T - 1, T))[:, 0]
        mu, log_std = self.predict_action.params(h)
        noise = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return torch.tanh(mu + torch.exp(log_std) * noise)

    @staticmethod
    def data_warnings(ds) -> list[str]:
        """Clipped actions: their tanh-Gaussian likelihood is fitted with a wide std, and the policy's
        samples, the fine-tuner's exploration, swing between the bounds."""
        sat = ds.action_saturation()
        if sat is None or sat <= SATURATION_WARN:
            return []
        return [f"{sat:.0%} of the dataset's action components lie at +-1 (clipped, as a deterministic policy plus "
                "noise makes them): the Gaussian head fits them with a wide std, so sampled actions, the fine-tuner's "
                "exploration, swing between the bounds (docs/suite.md, 'Clipped actions and the Online DT'); a "
                "stochastic behaviour policy's own samples, as D4RL's and suite v1's, avoid it"]

    @staticmethod
    def transformers_compatible(config) -> bool:
        return False


register("odt", OnlineDecisionTransformerConfig, OnlineDecisionTransformer)
