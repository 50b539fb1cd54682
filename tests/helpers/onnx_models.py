"""Torch modules exported to ONNX by the tests."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class VisionNet(nn.Module):
    """Conv + BN, depthwise and grouped convs, an equal split into two branches, concat,
    channel shuffle (reshape + transpose), nearest and bilinear resize, a residual add."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.bn = nn.BatchNorm2d(16)
        self.depthwise = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.grouped = nn.Conv2d(16, 16, 3, padding=1, groups=2)
        self.left = nn.Conv2d(8, 8, 1)
        self.right = nn.Conv2d(8, 8, 3, padding=1)
        self.down = nn.Conv2d(16, 16, 3, stride=2, padding=1)
        self.mix = nn.Conv2d(16, 16, 1)
        self.post_bn = nn.BatchNorm2d(32)
        self.head = nn.Linear(32, 10)
        for bn in (self.bn, self.post_bn):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 1.5)
            bn.weight.data.uniform_(0.5, 1.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.stem(x)))
        x = torch.relu(self.grouped(self.depthwise(x)))
        a, b = torch.split(x, 8, dim=1)
        x = torch.cat([self.left(a), self.right(b)], dim=1)
        n, c, h, w = x.shape
        x = x.reshape(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)
        y = F.interpolate(self.down(x), scale_factor=2.0, mode="nearest")
        z = F.interpolate(self.mix(x), scale_factor=0.5, mode="bilinear", align_corners=False)
        x = x + y
        x = torch.cat([x, F.interpolate(z, size=(h, w), mode="bilinear",
                                        align_corners=False)], dim=1)
        x = torch.relu(self.post_bn(x))
        return self.head(x.mean(dim=(2, 3)))


class FoldedNet(nn.Module):
    """Conv + BN pairs that exporters fold into the convs, a flatten and two Linears."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(16)
        self.fc1 = nn.Linear(16 * 4 * 4, 32)
        self.fc2 = nn.Linear(32, 10)
        for bn in (self.bn1, self.bn2):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 1.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 2)
        x = torch.relu(self.bn2(self.conv2(x)))
        x = torch.flatten(x, 1)
        return self.fc2(torch.relu(self.fc1(x)))


class TinyAttention(nn.Module):
    """Self-attention written as MatMul + Softmax: heads split by reshape, LayerNorm, GELU
    feed-forward, mean over tokens, a classifier."""

    def __init__(self, dim: int = 32, heads: int = 4, classes: int = 5) -> None:
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.ff1, self.ff2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, d = x.shape
        h = self.heads

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(b, s, h, d // h).transpose(1, 2)

        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        att = torch.softmax(q @ k.transpose(-1, -2) / (d // h) ** 0.5, dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, s, d)
        x = self.norm(x + self.proj(y))
        x = x + self.ff2(F.gelu(self.ff1(x)))
        return self.head(x.mean(dim=1))


class ChannelsLast(nn.Module):
    """A classifier of ``N x 8 x 8 x 1`` images (the layout Keras exports)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.conv(x.permute(0, 3, 1, 2)))
        return self.fc(y.mean(dim=(2, 3)))
