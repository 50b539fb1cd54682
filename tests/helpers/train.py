"""Small data and models shared by the fine-tuning tests: three Gaussian blobs, an MLP, and
the same MLP taking its input by keyword (for dict batches)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def blobs(n: int = 256, seed: int = 0) -> tuple[DataLoader, DataLoader]:
    """Train and validation loaders over three 2-D Gaussian blobs (3 classes)."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=gen)
    centers = torch.tensor([[2.0, 0.0], [-2.0, 0.0], [0.0, 2.5]])
    x = centers[y] + 0.5 * torch.randn(n, 2, generator=gen)
    train = DataLoader(TensorDataset(x[: n // 2], y[: n // 2]), batch_size=32, shuffle=True,
                       generator=torch.Generator().manual_seed(seed))
    val = DataLoader(TensorDataset(x[n // 2:], y[n // 2:]), batch_size=64)
    return train, val


def mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3))


class KeywordModel(nn.Module):
    """``mlp()`` called as ``model(features=x)``."""

    def __init__(self) -> None:
        super().__init__()
        self.net = mlp()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


def keyword_batches(loader: DataLoader) -> list[tuple[dict[str, torch.Tensor], torch.Tensor]]:
    return [({"features": x}, y) for x, y in loader]
