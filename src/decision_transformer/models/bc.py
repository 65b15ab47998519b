"""Behaviour cloning baseline, as in the official code's MLPBCModel: an MLP on the last K
states (left-padded with zeros, flattened) predicting the action at the last one. %BC is the
same model trained on the top X% of episodes by return (`dt train --model bc --top-pct X`).
Image states go through the Decision Transformer's conv encoder first, frame by frame.

Its config is a PolicyConfig (policy.py) plus the MLP's width, depth and dropout; the model is
registered as "bc", so checkpoints, the Agent, `dt eval` and `dt sweep` take it like any policy.
The target return is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from decision_transformer.models.encoders import image_encoder
from decision_transformer.models.policy import Policy, PolicyConfig, register
from decision_transformer.options import option


@dataclass
class BCConfig(PolicyConfig):
    hidden_size: int = option(128, "MLP width", range="[1, inf)", cli=False)
    n_layer: int = option(3, "MLP layers", range="[1, inf)", cli=False)
    dropout: float = option(0.1, "dropout", range="[0, 1)", cli=False)
    architecture: str = "bc"

    @classmethod
    def from_dict(cls, d: dict) -> "BCConfig":
        if "dropout" not in d and "resid_pdrop" in d:      # BC checkpoints written before BCConfig existed
            d = {**d, "dropout": d["resid_pdrop"]}
        return super().from_dict(d)

    @classmethod
    def from_training(cls, opts, **policy) -> "BCConfig":
        return cls(hidden_size=opts.hidden_size, n_layer=opts.n_layer, dropout=opts.dropout, **policy)


class BCModel(Policy):
    window_anchor = "end"           # training windows end at a uniformly drawn step (sampler.py)

    def __init__(self, config: BCConfig):
        super().__init__()
        cfg = self.config = config
        H, K = cfg.hidden_size, cfg.context_length
        # image states: each frame through the Decision Transformer's conv encoder (encoders.py)
        self.encoder = image_encoder(cfg, H) if cfg.state_type == "image" else None
        layers = [nn.Linear(K * (H if self.encoder is not None else cfg.state_dim), H)]
        for _ in range(cfg.n_layer - 1):
            layers += [nn.ReLU(), nn.Dropout(cfg.dropout), nn.Linear(H, H)]
        layers += [nn.ReLU(), nn.Dropout(cfg.dropout), nn.Linear(H, cfg.act_dim)]
        if cfg.action_type == "continuous" and cfg.action_tanh:
            layers.append(nn.Tanh())
        self.model = nn.Sequential(*layers)

    def _last(self, states):        # (B, L, S) or (B, L, C, H, W) -> (B, act_dim): left-pad to K, flatten
        K = self.config.context_length
        B, L = states.shape[:2]
        if L < K:
            states = torch.cat([states.new_zeros(B, K - L, *states.shape[2:]), states], dim=1)
        x = states[:, -K:]
        if self.encoder is not None:
            x = self.encoder(x)                     # (B, K, H)
        return self.model(x.reshape(B, -1))

    def forward_actions(self, states, actions=None, returns_to_go=None, timesteps=None, attention_mask=None):
        """(B, L, act_dim) with only the last step predicted (the trainer's loss uses that one);
        earlier steps are zeros and masked out of the loss by `loss_positions`."""
        out = torch.zeros(*states.shape[:2], self.config.act_dim, device=states.device)
        if attention_mask is not None:               # padded steps as the Agent pads them: zeros
            states = states * attention_mask.view(*attention_mask.shape, *[1] * (states.ndim - 2)).to(states.dtype)
        out[:, -1] = self._last(states)
        return out

    @staticmethod
    def loss_positions(attention_mask):
        """Only the last step counts: the MLP predicts that one."""
        m = torch.zeros_like(attention_mask, dtype=torch.bool)
        m[:, -1] = True
        return m

    @torch.inference_mode()
    def predict_last_action(self, states, actions=None, returns_to_go=None, timesteps=None, attention_mask=None,
                            token_mask=None):
        return self._last(states)                   # padded states are already zero in the Agent

    def step_forward(self, states, actions, returns_to_go, timesteps, real):
        return self._last(states)                   # the exporter zeroes padded states, as the Agent does

    def save_pretrained(self, path, **kw):
        from decision_transformer.models.checkpoint import save_pretrained
        return save_pretrained(self, path, **kw)


register("bc", BCConfig, BCModel)
