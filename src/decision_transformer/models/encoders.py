"""State encoders for image states: (B, L, C, H, W) frames -> (B, L, hidden) embeddings.

- NatureCNN, the Atari DT's state encoder (the paper's official Atari code): Nature-DQN's three convolutions on 0-255
  frames (scaled to [0, 1]), Linear to the width, Tanh.
- MinAtarCNN, MinAtar's network (Young & Tian, 2019) as an encoder: one 3x3 convolution with 16
  filters on the 0/1 frames as they are, Linear to the width, Tanh.

`image_encoder(cfg, hidden)` picks by `cfg.state_encoder` (policy.py chooses by frame size when
it is not given). The Decision Transformer and the BC baseline share these, so their comparison
is on equal terms.
"""

from __future__ import annotations

import torch
import torch.nn as nn


class _FrameEncoder(nn.Module):
    def __init__(self, shape, hidden: int, net: nn.Module, scale: float):
        super().__init__()
        c, h, w = shape
        self.net = net
        with torch.no_grad():
            n = self.net(torch.zeros(1, c, h, w)).shape[1]
        self.proj = nn.Sequential(nn.Linear(n, hidden), nn.Tanh())
        self.shape, self.scale = list(shape), float(scale)

    def forward(self, s):  # (B, L, C, H, W) -> (B, L, hidden)
        B, L = s.shape[:2]
        x = s.reshape(B * L, *self.shape).float()
        if self.scale != 1.0:
            x = x * self.scale
        return self.proj(self.net(x)).view(B, L, -1)


class NatureCNN(_FrameEncoder):
    """(B, L, C, 84, 84) frames, uint8 0-255 -> (B, L, hidden)."""

    def __init__(self, shape, hidden: int):
        c = shape[0]
        super().__init__(shape, hidden, nn.Sequential(
            nn.Conv2d(c, 32, 8, stride=4), nn.ReLU(), nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(), nn.Flatten()), scale=1 / 255)


class MinAtarCNN(_FrameEncoder):
    """(B, L, C, 10, 10) frames, 0/1 -> (B, L, hidden)."""

    def __init__(self, shape, hidden: int):
        super().__init__(shape, hidden, nn.Sequential(nn.Conv2d(shape[0], 16, 3, stride=1), nn.ReLU(), nn.Flatten()),
                         scale=1.0)


ENCODERS = {"nature": NatureCNN, "minatar": MinAtarCNN}


def image_encoder(cfg, hidden: int) -> nn.Module:
    return ENCODERS[cfg.state_encoder](cfg.state_shape, hidden)
