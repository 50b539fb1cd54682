"""Op rules one at a time, and the refusal to guess through unknown ops."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import prunekit
from prunekit.graph import DependencyGraph


class TopK(nn.Module):
    """Channels pass through an op with no rule (topk over channels)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.head = nn.Conv2d(4, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        y = torch.topk(y, 4, dim=1).values
        return self.head(y)


def test_unknown_op_blocks_and_is_named_when_asked_for():
    model = TopK()
    graph = DependencyGraph.build(model, torch.randn(1, 3, 8, 8))
    assert all(g.name != "conv" for g in graph.groups)
    assert any("topk" in r.what for r in graph.unsupported)
    with pytest.raises(prunekit.UnsupportedOpError) as err:
        prunekit.prune(model, torch.randn(1, 3, 8, 8), overrides={"conv": 0.5})
    message = str(err.value)
    assert "topk" in message and "ignore=" in message and "conv" in message


def test_flatten_maps_one_channel_to_a_block_of_features():
    model = nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 4 * 4, 5))
    graph = DependencyGraph.build(model, torch.randn(2, 3, 6, 6))
    (group,) = graph.groups
    linear = next(m for m in group.members if m.tensor == "3.weight")
    assert linear.dim == 1 and linear.index.shape == (6, 16)
    assert linear.index[2].tolist() == list(range(32, 48))


def test_concat_offsets_consumer_columns():
    class Cat(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 4, 1), nn.Conv2d(3, 5, 1)
            self.c = nn.Conv2d(9, 2, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.c(torch.cat([self.a(x), self.b(x)], dim=1))

    graph = DependencyGraph.build(Cat(), torch.randn(1, 3, 4, 4))
    b = graph.group_named("b")
    consumer = next(m for m in b.members if m.tensor == "c.weight")
    assert consumer.index.ravel().tolist() == list(range(4, 9))


def test_residual_add_couples_producers():
    class Res(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 4, 1), nn.Conv2d(4, 4, 1)
            self.head = nn.Conv2d(4, 2, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.a(x)
            return self.head(y + self.b(y))

    graph = DependencyGraph.build(Res(), torch.randn(1, 3, 4, 4))
    (group,) = graph.groups
    tensors = {m.tensor for m in group.members}
    assert {"a.weight", "b.weight", "head.weight"} <= tensors


def test_hard_coded_channel_slice_is_blocked():
    class Slice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv2d(3, 8, 1)
            self.head = nn.Conv2d(4, 2, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.a(x)[:, :4])

    graph = DependencyGraph.build(Slice(), torch.randn(1, 3, 4, 4))
    assert all(g.name != "a" for g in graph.groups)


class Halves(nn.Module):
    def __init__(self, explicit_sizes: bool) -> None:
        super().__init__()
        self.explicit_sizes = explicit_sizes
        self.a = nn.Conv2d(3, 8, 1)
        self.left, self.right = nn.Conv2d(4, 2, 1), nn.Conv2d(4, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x)
        left, r = torch.split(h, [4, 4], dim=1) if self.explicit_sizes else h.chunk(2, dim=1)
        return torch.cat([self.left(left), self.right(r)], dim=1)


def lopsided(explicit_sizes: bool) -> nn.Module:
    """Scores that would take more from one half than from the other."""
    torch.manual_seed(0)
    model = Halves(explicit_sizes)
    with torch.no_grad():
        model.a.weight[:4] *= 0.01
        model.a.bias[:4] *= 0.01
    return model


def test_chunk_keeps_its_pieces_equal():
    x = torch.randn(1, 3, 4, 4)
    (group,) = prunekit.DependencyGraph.build(lopsided(False), x).groups
    assert group.name == "a" and group.n_units == 4
    assert next(m for m in group.members if m.tensor == "a.weight").index.tolist() == \
        [[0, 4], [1, 5], [2, 6], [3, 7]]  # position p of both halves goes together
    result = prunekit.prune(lopsided(False), x, ratio=0.5, scope="global", normalize="none")
    assert result.skipped == [] and result.model.a.out_channels == 4
    assert result.model(x).shape == (1, 4, 4, 4)


def test_split_with_hard_coded_sizes_and_unequal_pruning_is_caught_by_verification():
    x = torch.randn(1, 3, 4, 4)
    reference = prunekit.DependencyGraph.build(lopsided(True), x)
    assert sorted(g.name for g in reference.groups) == ["a", "a#2"]  # one group per half
    result = prunekit.prune(lopsided(True), x, ratio=0.5, scope="global", normalize="none")
    assert result.model(x).shape == (1, 4, 4, 4)
    assert {"a", "a#2"} & set(result.skipped)


class Gate(nn.Module):
    """A custom opaque module whose (deliberately broken) handler cannot couple it."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale[:, None, None]


@prunekit.register_handler(Gate)
class BrokenGateHandler(prunekit.graph.handlers.base.Handler):
    opaque = True

    def couple(self, ctx):  # type: ignore[no-untyped-def]
        raise ValueError("cannot read this call")


class GatedNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.gate = Gate(8)
        self.mid = nn.Conv2d(8, 8, 1)
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.mid(self.gate(self.conv(x)))))


def test_a_failing_handler_blocks_its_module_like_an_unknown_op():
    x = torch.randn(1, 3, 8, 8)
    graph = DependencyGraph.build(GatedNet(), x)
    assert any("handler failed" in r.what and r.module == "gate" for r in graph.unsupported)
    assert [g.name for g in graph.groups] == ["mid"]  # conv feeds the gate: kept whole
    result = prunekit.prune(GatedNet(), x, ratio=0.5)
    assert result.model.conv.out_channels == 8 and result.model.mid.out_channels == 4
    with pytest.raises(prunekit.UnsupportedOpError, match="handler failed.*ignore="):
        prunekit.prune(GatedNet(), x, overrides={"conv": 0.5})
