"""Automatic allocation: the predicted reduction is met by the real pruned model, the
choice follows the curves, plans compose exactly, and the budget search respects its budget."""

from __future__ import annotations

import copy

import pytest
import torch

import prunekit
from prunekit.errors import ConfigError
from prunekit.measure import count_macs, count_parameters
from prunekit.recover import (
    CostModel,
    SensitivityResult,
    allocate,
    compose_plans,
    search_budget,
)
from prunekit.train import evaluate


def _fake_curves(cheap: str) -> SensitivityResult:
    """Synthetic curves: ``cheap`` costs almost nothing to prune, the others a lot."""
    ratios = [0.1 * i for i in range(1, 10)]
    curves = {k: [1.0 - (0.001 if k == cheap else 0.1) * i for i in range(1, 10)]
              for k in ("features.0.0", "features.1.0", "features.3.0")}
    return SensitivityResult(1.0, ratios, curves, {}, "max")


@pytest.mark.parametrize("target", [2.0, 6.0, 20.0])
def test_macs_target_is_met_on_the_real_model(trained, digits, target) -> None:
    x = digits.x_val[:1]
    alloc = allocate(trained, x, _fake_curves("features.3.0"), macs_reduction=target)
    assert alloc.reduction >= target
    model = copy.deepcopy(trained)
    prunekit.prune(model, x, config=alloc.config)
    measured = count_macs(trained, x) / count_macs(model, x)
    assert measured == pytest.approx(alloc.reduction, rel=0.02)


@pytest.mark.numerics
def test_allocation_prefers_the_insensitive_group(trained, digits) -> None:
    x = digits.x_val[:1]
    alloc = allocate(trained, x, _fake_curves("features.3.0"), macs_reduction=1.5)
    assert set(alloc.ratios) == {"features.3.0"}
    alloc = allocate(trained, x, _fake_curves("features.1.0"), macs_reduction=1.5)
    assert set(alloc.ratios) == {"features.1.0"}
    assert alloc.predicted_drop < 0.01


def test_params_target_and_errors(trained, digits) -> None:
    x = digits.x_val[:1]
    alloc = allocate(trained, x, _fake_curves("features.3.0"), params_reduction=3.0)
    model = copy.deepcopy(trained)
    prunekit.prune(model, x, config=alloc.config)
    assert count_parameters(trained) / count_parameters(model) >= 3.0 * 0.98
    with pytest.raises(ConfigError, match="exactly one target"):
        allocate(trained, x, _fake_curves("x"))
    with pytest.raises(ConfigError, match=">= 1"):
        allocate(trained, x, _fake_curves("x"), macs_reduction=0.5)
    costs = CostModel(trained, x, prunekit.PruneConfig())
    assert costs.reduction({}) == pytest.approx(1.0)


def test_composed_plan_replays_two_steps(trained, digits) -> None:
    x = digits.x_val[:1]
    twice = copy.deepcopy(trained)
    first = prunekit.prune(twice, x, ratio=0.3).plan
    second = prunekit.prune(twice, x, ratio=0.4, scope="global").plan
    plan = compose_plans(first, second)
    replay = prunekit.apply_plan(copy.deepcopy(trained), prunekit.Plan.from_dict(plan.to_dict()))
    a, b = twice.state_dict(), replay.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(twice(digits.x_val), replay(digits.x_val))


@pytest.mark.numerics
def test_budget_search_stays_within_budget(trained, digits, val) -> None:
    x = digits.x_val[:1]
    sens = _fake_curves("features.3.0")
    baseline = evaluate(trained, val)
    found = search_budget(trained, x, val, sens, budget=0.02, trials=4)
    assert found.trials and len(found.trials) <= 4
    assert all(t.within == (t.drop <= 0.02) for t in found.trials)
    if found.best is not None:
        assert baseline - evaluate(found.model, val) <= 0.02 + 1e-9
        assert found.best.reduction == max(t.reduction for t in found.trials if t.within)
