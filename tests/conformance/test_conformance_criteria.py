"""Every registered importance criterion: one finite score per unit, exact removal of the
units it ranks lowest, a plan that replays, and clear errors for what it cannot work with."""

from __future__ import annotations

import copy

import pytest
import torch

import prunekit
from helpers.conformance import Classifier, classifier_batches
from prunekit.errors import ConfigError
from prunekit.importance import available_importances, get_importance
from prunekit.testing import randomize_weights, run_exact_check

NAMES = available_importances()
X = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def _data(name: str) -> dict[str, object]:
    criterion = get_importance(name)
    needs = criterion.needs_gradients or criterion.needs_activations
    return {"calibration": classifier_batches()} if needs else {}


@pytest.mark.parametrize("name", NAMES)
def test_scores_are_finite_and_one_per_unit(name: str):
    model = randomize_weights(Classifier())
    graph = prunekit.DependencyGraph.build(model, X, on_meta=False)
    scores = prunekit.score_groups(model, graph, name, **_data(name))
    assert set(scores) == {g.name for g in graph.groups}
    for group in graph.groups:
        s = scores[group.name]
        assert s.shape == (group.n_units,) and torch.isfinite(s).all(), group.name
    assert all(p.grad is None for p in model.parameters())  # gradients are cleared after


@pytest.mark.parametrize("name", NAMES)
def test_the_units_it_removes_are_removed_exactly(name: str):
    check = run_exact_check(randomize_weights(Classifier()), X, importance=name, **_data(name))
    assert check.params_after < check.params_before
    assert check.max_diff <= 1e-9


@pytest.mark.parametrize("name", NAMES)
def test_its_plan_replays_on_a_fresh_model(name: str, tmp_path):
    fresh = randomize_weights(Classifier())
    model = copy.deepcopy(fresh)
    result = prunekit.prune(model, X, ratio=0.5, importance=name, **_data(name))
    assert result.plan.settings["importance"] == name
    result.plan.save(tmp_path / "plan.json")
    replayed = prunekit.apply_plan(fresh, prunekit.Plan.load(tmp_path / "plan.json"))
    assert {k: v.shape for k, v in replayed.state_dict().items()} == \
        {k: v.shape for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", NAMES)
def test_bad_input_is_a_config_error(name: str):
    criterion = get_importance(name)
    if criterion.needs_gradients or criterion.needs_activations:
        with pytest.raises(ConfigError, match="calibration"):
            prunekit.prune(Classifier().double(), X, importance=name)
    with pytest.raises(ConfigError, match="unknown importance"):
        prunekit.prune(Classifier().double(), X, importance=name + "-not-registered")
