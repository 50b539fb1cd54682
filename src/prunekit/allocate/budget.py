"""The reverse of allocation: the largest compression whose *measured* metric drop stays
within a budget.

Bisection on the logarithm of the reduction factor: each trial allocates ratios from the
sensitivity curves (:func:`.allocate.allocate`), prunes a copy, optionally recovers it
(``recover(model)``, e.g. a short fine-tuning), and measures the metric. The drop is assumed
to grow with the reduction.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from torch import nn

from ..api import prune
from ..plan.config import PruneConfig
from ..errors import ConfigError
from ..train.finetune import MetricFn, accuracy, evaluate
from .ratios import Allocation, CostModel, allocate, log_midpoint, max_reduction
from .sensitivity import SensitivityResult

__all__ = ["BudgetSearch", "BudgetTrial", "search_budget"]


@dataclass(frozen=True)
class BudgetTrial:
    """One measured allocation."""

    target: float
    reduction: float
    metric: float
    drop: float
    within: bool
    ratios: dict[str, float]


@dataclass
class BudgetSearch:
    """The best allocation found (``None`` if even the smallest trial broke the budget)."""

    best: Allocation | None
    best_trial: BudgetTrial | None
    model: nn.Module | None
    trials: list[BudgetTrial] = field(default_factory=list)


def search_budget(model: nn.Module, example_inputs: Any, val_loader: Iterable[Any],
                  sensitivity: SensitivityResult, budget: float, *,
                  metric: Literal["macs", "params"] = "macs", base: PruneConfig | None = None,
                  metric_fn: MetricFn = accuracy, trials: int = 6, low: float = 1.25,
                  recover: Callable[[nn.Module], None] | None = None) -> BudgetSearch:
    """Largest reduction (``metric``: MACs or parameters) whose measured drop <= ``budget``.

    ``budget`` is in metric units (0.005 = half a point of accuracy in [0, 1]). ``model``
    is not changed; the best pruned copy is returned in ``model`` of the result.
    """
    if not budget >= 0:
        raise ConfigError(f"search_budget budget must be >= 0 (metric units), got {budget!r}")
    if not isinstance(trials, int) or trials < 1:
        raise ConfigError(f"search_budget trials must be an integer >= 1, got {trials!r}")
    if not low > 1.0:
        raise ConfigError(f"search_budget low must be > 1 (times fewer), got {low!r}")
    costs = CostModel(model, example_inputs, base or PruneConfig(), metric)
    baseline = evaluate(model, val_loader, metric_fn)
    sign = 1.0 if sensitivity.mode == "max" else -1.0
    result = BudgetSearch(None, None, None)

    def attempt(target: float) -> bool:
        kwargs: dict[str, Any] = {
            "macs_reduction" if metric == "macs" else "params_reduction": target}
        alloc = allocate(model, example_inputs, sensitivity, costs=costs, **kwargs)
        candidate = copy.deepcopy(model)
        prune(candidate, example_inputs, config=alloc.config)
        if recover is not None:
            recover(candidate)
        value = evaluate(candidate, val_loader, metric_fn)
        drop = sign * (baseline - value)
        trial = BudgetTrial(target, alloc.reduction, value, drop, drop <= budget,
                            dict(alloc.ratios))
        result.trials.append(trial)
        if trial.within and (result.best is None or alloc.reduction > result.best.reduction):
            result.best, result.best_trial, result.model = alloc, trial, candidate
        return trial.within

    hi = max_reduction(costs, sensitivity)
    if hi <= low:
        attempt(hi)
        return result
    if attempt(hi):
        return result
    lo = low
    if not attempt(lo):
        return result
    for _ in range(trials - 2):
        mid = log_midpoint(lo, hi)
        if attempt(mid):
            lo = mid
        else:
            hi = mid
    return result
