"""Per-position norms shared across the groups of one scoring pass: computed once, same
scores as without sharing."""

from __future__ import annotations

import torch
from torch import nn

from prunekit.graph.dependency import DependencyGraph
from prunekit.importance import base
from prunekit.importance.base import MemberSlice, PositionNorms
from prunekit.importance.scoring import group_slices, make_importance, named_tensors, score_groups


def test_norms_of_a_tensor_are_computed_once_per_dim_and_ord(monkeypatch) -> None:
    calls: list[tuple[int, float]] = []
    real = base._position_norms

    def counting(tensor, dim, ord, dtype):  # type: ignore[no-untyped-def]
        calls.append((dim, ord))
        return real(tensor, dim, ord, dtype)

    monkeypatch.setattr(base, "_position_norms", counting)
    w = torch.randn(6, 8, 3, 3)
    norms = PositionNorms()
    halves = [MemberSlice("conv.weight", w, 1, torch.arange(4).reshape(4, 1) + 4 * i,
                          norms=norms) for i in range(2)]  # two groups on one tensor
    got = torch.cat([m.unit_norms(2) for m in halves])
    assert calls == [(1, 2)]
    halves[0].unit_norms(1)
    assert calls == [(1, 2), (1, 1)]
    expected = torch.linalg.vector_norm(w.transpose(0, 1).reshape(8, -1), 2, dim=1)
    assert torch.allclose(got, expected)
    alone = MemberSlice("conv.weight", w, 1, torch.arange(8).reshape(8, 1))
    assert torch.equal(alone.unit_norms(2), got)  # no sharing: the same values


class Concat(nn.Module):
    """A convolution fed by a concatenation: its input channels span two groups."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(3, 8, 3, padding=1)
        self.c = nn.Conv2d(16, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c(torch.cat([self.a(x), self.b(x)], 1))


def test_shared_norms_give_the_scores_of_unshared_ones() -> None:
    torch.manual_seed(0)
    model, x = Concat().eval(), torch.randn(1, 3, 8, 8)
    graph = DependencyGraph.build(model, x)
    shared = score_groups(model, graph, "l2")
    tensors = named_tensors(model)
    crit = make_importance("l2")
    for g in graph.groups:
        assert torch.equal(shared[g.name], crit(group_slices(graph, g, tensors)))


def _strided_norms(w: torch.Tensor, dim: int, ord: float) -> torch.Tensor:
    other = [d for d in range(w.dim()) if d != dim]
    return torch.linalg.vector_norm(w, ord=ord, dim=other, dtype=w.dtype)


def test_column_norms_agree_with_torch_on_linear_and_pointwise_weights() -> None:
    torch.manual_seed(0)
    cases = [(torch.randn(300, 64), 1), (torch.randn(32, 96, 1, 1), 1),
             (torch.randn(5, 7, 9, dtype=torch.float64), 2), (torch.randn(2, 3), 1)]
    for w, dim in cases:
        for ord in (1, 2):
            fast = base._column_norms(w, dim, ord, w.dtype)
            assert fast is not None and fast.dtype == w.dtype
            # the same accumulation order as PyTorch's CPU kernel: equal to rounding at most
            assert torch.allclose(fast, _strided_norms(w, dim, ord), rtol=1e-6, atol=0)
            assert torch.equal(base._position_norms(w, dim, ord, w.dtype), fast)


def test_column_norms_leave_other_cases_to_torch() -> None:
    w = torch.randn(16, 8)
    assert base._column_norms(w, 1, 3, w.dtype) is None  # another norm
    assert base._column_norms(w.half(), 1, 2, torch.float32) is None  # converted dtype
    assert base._column_norms(w.t(), 1, 2, w.dtype) is None  # not contiguous
    assert base._column_norms(w.requires_grad_(), 1, 2, w.dtype) is None
    conv = torch.randn(6, 8, 3, 3)  # positions followed by a kernel window: torch's reduction
    assert torch.equal(base._position_norms(conv, 1, 2, conv.dtype), _strided_norms(conv, 1, 2))
