"""The quick verification (one plain forward of the pruned shape-only copy) accepts exactly
the plans the full re-trace accepts, and leaves locating a mismatch to the full trace."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest
import torch
from torch import nn

import prunekit
from prunekit.plan import verify
from prunekit.plan.selection import removed_flags

from helpers.conformance import HANDLERS

from helpers.broken import Halves


def _plans(model: nn.Module, x: Any, graph: prunekit.DependencyGraph, ratio: float = 0.5,
           alone: int = 4) -> list[tuple[prunekit.Plan, dict[str, Any]]]:
    """A plan at ``ratio`` over every group, and one per group pruned alone (a few)."""
    scores = prunekit.score_groups(model, graph)
    config = prunekit.PruneConfig(ratio=ratio)
    selections = [prunekit.select_units(model, graph, scores, config)]
    for g in graph.groups[:alone]:
        selections.append(prunekit.select_units(model, graph, scores, config, [g]))
    return [(prunekit.build_plan(model, graph, s), s) for s in selections
            if any(len(v) for v in s.values())]


def _agree(model: nn.Module, x: Any) -> list[bool]:
    """For each plan: the quick verdict, checked against the full comparison."""
    graph = prunekit.DependencyGraph.build(model, x)
    verdicts = []
    for plan, selection in _plans(model, x, graph):
        removed = removed_flags(graph, selection)
        sizes = graph.predicted_sizes(removed)
        on_meta = graph.on_meta
        quick = verify.runs_as_predicted(verify._pruned_copy(model, plan, on_meta),
                                         verify._pruned_inputs(x, plan, on_meta), graph, sizes)
        full = verify.compare_traces(model, x, graph, plan, removed, sizes, on_meta)
        assert quick == (full is None), (plan.groups, full)
        verdicts.append(quick)
    return verdicts


@pytest.mark.parametrize("name", sorted(HANDLERS))
def test_quick_and_full_verification_agree_on_every_handled_module(name: str) -> None:
    example = HANDLERS[name]
    if example.needs and importlib.util.find_spec(example.needs) is None:
        pytest.skip(f"needs {example.needs}")
    torch.manual_seed(0)
    assert _agree(example.build().eval(), example.inputs())


class FixedView(nn.Module):
    """A view by hard-coded sizes: removing channels of ``conv`` breaks it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.head = nn.Conv2d(3, 8, 3), nn.Linear(8 * 4 * 4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x).view(x.shape[0], 8 * 4 * 4))


class SwallowsErrors(nn.Module):
    """A forward that catches a failing branch and carries on along another path."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(4, 8), nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x)
        try:
            h = h.view(x.shape[0], 2, 4).flatten(1)
        except RuntimeError:
            h = torch.cat([h, h.new_zeros(x.shape[0], 8 - h.shape[1])], 1)
        return self.b(h)


@pytest.mark.parametrize("model, x", [(Halves(), torch.randn(2, 4)),
                                      (FixedView(), torch.randn(2, 3, 6, 6)),
                                      (SwallowsErrors(), torch.randn(2, 4))])
def test_the_quick_check_rejects_plans_that_break_the_forward(model: nn.Module, x: Any) -> None:
    verdicts = _agree(model.eval(), x)
    assert verdicts and not any(verdicts)


def test_a_plan_that_verifies_is_settled_without_a_full_trace(monkeypatch) -> None:
    traced: list[int] = []
    real = verify.record_trace
    monkeypatch.setattr(verify, "record_trace", lambda *a, **k: traced.append(1) or real(*a, **k))
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 3))
    prunekit.prune(model.eval(), torch.randn(1, 3, 8, 8), ratio=0.5)
    assert not traced and model[0].out_channels == 4
    result = prunekit.prune(Halves().eval(), torch.randn(2, 4), ratio=0.5)
    assert traced and result.skipped  # the full trace located the split
