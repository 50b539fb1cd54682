"""A small CNN for the 8x8 digits: conv-bn-relu blocks, global average pool, linear head."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ConfigError

__all__ = ["DigitsCNN"]


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class DigitsCNN(nn.Module):
    """Three conv-bn-relu blocks (8x8 → 8x8 → pool 4x4 → 4x4), global pool and a linear head.

    Every conv is followed by BatchNorm and has no bias, so each output channel is one clean
    prunable unit; the classifier's outputs are never pruned.
    """

    def __init__(self, widths: Sequence[int] = (32, 64, 128), num_classes: int = 10,
                 in_channels: int = 1) -> None:
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if len(widths) != 3 or min(widths) < 1:
            raise ConfigError(f"widths must be three positive integers, got {widths!r}")
        self.widths = widths
        self.features = nn.Sequential(
            _block(in_channels, widths[0]),
            _block(widths[0], widths[1]),
            nn.MaxPool2d(2),
            _block(widths[1], widths[2]),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(widths[2], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))
