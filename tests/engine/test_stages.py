"""The staged engine API: score → select → plan → verify → apply, one name per group, and
remove_units, which removes exactly the chosen units (verified, reusing a graph)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

import prunekit
from prunekit.errors import ConfigError, VerificationError
from prunekit.testing import randomize_weights, zero_planned_units

from helpers.broken import Halves


def _model() -> nn.Module:
    return randomize_weights(nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(),
                                           nn.Conv2d(8, 6, 3), nn.ReLU(), nn.Flatten(),
                                           nn.Linear(6 * 4 * 4, 3)))


X = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def test_the_stages_compose_to_what_prune_does():
    config = prunekit.PruneConfig(ratio=0.5)
    model = _model()
    graph = prunekit.DependencyGraph.build(model, X)
    scores = prunekit.score_groups(model, graph, config.criterion())
    assert set(scores) == {g.name for g in graph.groups} == {"0", "3"}
    selection = prunekit.select_units(model, graph, scores, config)
    plan = prunekit.build_plan(model, graph, selection, config.settings())
    assert prunekit.verify_plan(model, X, graph, plan, selection) is None
    prunekit.apply_plan(model, plan)
    reference = prunekit.prune(_model(), X, config=config)
    assert plan.tensors == reference.plan.tensors and plan.attributes == reference.plan.attributes
    assert torch.equal(model(X), reference.model(X))


def test_remove_units_removes_exactly_the_chosen_units():
    model = _model()
    graph = prunekit.DependencyGraph.build(model, X)
    chosen = {"0": [1, 5, 6], "3": [0]}
    before = copy.deepcopy(model)
    result = prunekit.remove_units(model, X, chosen, graph=graph)
    assert {g.name: g.removed for g in result.plan.groups} == chosen
    assert model[0].out_channels == 5 and model[3].out_channels == 5
    zero_planned_units(before, result.plan)  # the same units zeroed: the same function
    torch.testing.assert_close(model(X), before(X), rtol=0, atol=1e-12)
    assert result.plan.settings == {"selection": "chosen units", "split_units": "inner"}


def test_remove_units_reuses_a_graph_only_while_it_fits(monkeypatch):
    model = _model()
    graph = prunekit.DependencyGraph.build(model, X)
    with torch.no_grad():
        model[0].weight.mul_(2.0)  # weights change, shapes do not: the graph still fits
    traced = []
    original = prunekit.DependencyGraph.build
    monkeypatch.setattr(prunekit.DependencyGraph, "build",
                        lambda *a, **k: traced.append(1) or original(*a, **k))
    prunekit.remove_units(model, X, {"0": [2]}, graph=graph)
    assert traced == []  # no new trace
    with pytest.raises(ConfigError, match="another architecture"):
        prunekit.remove_units(model, X, {"0": [3]}, graph=graph)  # the model shrank
    prunekit.remove_units(model, X, {"0": [3]})  # builds the graph of the smaller model
    assert traced == [1] and model[0].out_channels == 6


@pytest.mark.parametrize("units,match", [
    ({"nope": [0]}, "no group 'nope'"),
    ({"0": [8]}, "has 8 units"),
    ({"0": [-1]}, "cannot remove unit -1"),
    ({"0": list(range(8))}, "keep at least one"),
    ({"0": ["a"]}, "integer indices"),
])
def test_bad_choices_are_config_errors_and_change_nothing(units, match):
    model = _model()
    state = copy.deepcopy(model.state_dict())
    with pytest.raises(ConfigError, match=match):
        prunekit.remove_units(model, X, units)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_a_choice_that_breaks_the_forward_is_refused_and_the_model_left_alone():
    model = Halves()
    state = copy.deepcopy(model.state_dict())
    name = prunekit.DependencyGraph.build(model, torch.randn(2, 4)).groups[0].name
    with pytest.raises(VerificationError, match="cannot remove the chosen units.*split"):
        prunekit.remove_units(model, torch.randn(2, 4), {name: [0]})
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_selection_from_units_sorts_and_deduplicates():
    graph = prunekit.DependencyGraph.build(_model(), X)
    selection = prunekit.selection_from_units(graph, {"0": [5, 1, 5]})
    assert list(selection) == ["0"] and np.array_equal(selection["0"], [1, 5])


def test_plan_verified_leaves_breaking_groups_whole_with_a_reason():
    model = Halves()
    x = torch.randn(2, 4)
    graph = prunekit.DependencyGraph.build(model, x)
    config = prunekit.PruneConfig(ratio=0.5)
    scores = prunekit.score_groups(model, graph)
    verified = prunekit.plan_verified(
        model, x, graph, graph.groups,
        lambda active: prunekit.select_units(model, graph, scores, config, active))
    assert set(verified.skipped) == {g.name for g in graph.groups}
    assert all("split" in reason for reason in verified.skipped.values())
    assert verified.plan.removed_units == 0
