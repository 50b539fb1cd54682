"""Models whose forward breaks when some of their channels are removed."""

from __future__ import annotations

import torch
from torch import nn


class Halves(nn.Module):
    """A hard-coded split: removing channels of ``a`` breaks the forward."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(4, 8), nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left, right = torch.split(self.a(x), [4, 4], dim=-1)
        return self.b(x) + (left * right).sum(-1, keepdim=True)
