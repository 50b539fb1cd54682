"""Automatic per-group ratios: reach a MACs or parameter target while losing the least metric.

Costs are predicted from the dependency graph (no surgery); metric losses come from the
sensitivity curves (:mod:`.sensitivity`), made monotone and interpolated on a grid of
``step``. A greedy walk repeatedly takes the move (one group to a higher ratio) with the
smallest predicted loss per unit of cost saved until the target is met, then lowers any
group it can while the target still holds. Group losses are assumed additive.
"""

from __future__ import annotations

import dataclasses
import glob
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from ..config import PruneConfig
from ..errors import ConfigError
from ..graph.dependency import DependencyGraph
from ..planner import predicted_macs, predicted_params, removed_flags, select_local
from .sensitivity import SensitivityResult

__all__ = ["Allocation", "CostModel", "allocate"]


@dataclass(frozen=True)
class Allocation:
    """Chosen ratio per group key, predicted cost reduction and metric loss, and the config."""

    ratios: dict[str, float]
    reduction: float
    predicted_drop: float
    target: float
    metric: Literal["macs", "params"]
    config: PruneConfig

    def to_dict(self) -> dict[str, Any]:
        return {"ratios": dict(self.ratios), "reduction": self.reduction,
                "predicted_drop": self.predicted_drop, "target": self.target,
                "metric": self.metric}


class CostModel:
    """Predicted MACs or parameters of ``model`` for per-group-key ratios (no surgery)."""

    def __init__(self, model: nn.Module, example_inputs: Any, base: PruneConfig,
                 metric: Literal["macs", "params"] = "macs") -> None:
        if metric not in ("macs", "params"):
            raise ConfigError(f"cost metric must be 'macs' or 'params', got {metric!r}")
        self.model, self.base, self.metric = model, base, metric
        self.graph = DependencyGraph.build(model, example_inputs, ignore=base.ignore)
        self.groups = list(self.graph.groups)
        self._scores = {g.id: torch.zeros(g.n_units) for g in self.groups}
        self.base_cost = self.cost({})

    def config(self, ratios: dict[str, float]) -> PruneConfig:
        """A local-scope :class:`PruneConfig` with one override per group key."""
        overrides = {glob.escape(k): float(r) for k, r in ratios.items() if r > 0}
        return dataclasses.replace(self.base, ratio=0.0, scope="local", overrides=overrides,
                                   flops_reduction=None, params_reduction=None)

    def cost(self, ratios: dict[str, float]) -> float:
        selection = select_local(self.groups, self._scores, self.config(ratios), 0.0)
        sizes = self.graph.predicted_sizes(removed_flags(self.graph, selection))
        if self.metric == "macs":
            return float(predicted_macs(self.graph, sizes))
        return float(predicted_params(self.model, self.graph, sizes))

    def reduction(self, ratios: dict[str, float]) -> float:
        return self.base_cost / max(self.cost(ratios), 1.0)


def _loss_grid(sens: SensitivityResult, key: str, grid: np.ndarray) -> np.ndarray:
    drops = np.maximum.accumulate(np.maximum(np.asarray(sens.drops(key), dtype=float), 0.0))
    return np.interp(grid, [0.0] + list(sens.ratios), np.r_[0.0, drops])


def allocate(model: nn.Module, example_inputs: Any, sensitivity: SensitivityResult, *,
             macs_reduction: float | None = None, params_reduction: float | None = None,
             base: PruneConfig | None = None, step: float = 0.05,
             costs: CostModel | None = None) -> Allocation:
    """Per-group ratios reaching ``macs_reduction`` (or ``params_reduction``) × fewer, chosen
    to lose the least metric according to ``sensitivity``; ratios stay within its range.

    The returned ``config`` prunes exactly these ratios with ``prunekit.prune``. If the
    target is out of reach, every group ends at the largest measured ratio.
    """
    if (macs_reduction is None) == (params_reduction is None):
        raise ConfigError("allocate needs exactly one target: macs_reduction=... or "
                          "params_reduction=... (e.g. macs_reduction=10.0)")
    target = float(macs_reduction if macs_reduction is not None else params_reduction)  # type: ignore[arg-type]
    if not target >= 1.0:
        raise ConfigError(f"allocate target must be >= 1 (times fewer), got {target!r}")
    if not 0.0 < step <= 0.5:
        raise ConfigError(f"allocate step must be in (0, 0.5], got {step!r}")
    metric: Literal["macs", "params"] = "macs" if macs_reduction is not None else "params"
    costs = costs if costs is not None else CostModel(model, example_inputs,
                                                      base or PruneConfig(), metric)
    keys = [k for k in sensitivity.curves if any(g.name.split("#", 1)[0] == k
                                                  for g in costs.groups)]
    if not keys:
        raise ConfigError("none of the sensitivity result's groups is a prunable group of this "
                          "model; run analyze_sensitivity on the same model first")
    top = max(sensitivity.ratios)
    grid = np.round(np.arange(0.0, top + 1e-9, step), 6)
    if grid[-1] < top:
        grid = np.r_[grid, top]
    loss = {k: _loss_grid(sensitivity, k, grid) for k in keys}
    level = {k: 0 for k in keys}

    def ratios_of(levels: dict[str, int]) -> dict[str, float]:
        return {k: float(grid[i]) for k, i in levels.items() if i > 0}

    current = costs.cost({})
    goal = costs.base_cost / target
    while current > goal * (1 + 1e-9):
        best: tuple[float, float, str, int] | None = None
        for k in keys:
            for j in range(level[k] + 1, len(grid)):
                trial = dict(level, **{k: j})
                saved = current - costs.cost(ratios_of(trial))
                if saved <= 0:
                    continue
                price = (loss[k][j] - loss[k][level[k]]) / saved
                cand = (price, -saved, k, j)
                if best is None or cand[:2] < best[:2]:
                    best = cand
        if best is None:
            break  # nothing left to remove
        level[best[2]] = best[3]
        current = costs.cost(ratios_of(level))
    # give back what the target does not need, the costliest losses first
    improved = True
    while improved and current <= goal * (1 + 1e-9):
        improved = False
        for k in sorted(keys, key=lambda k: -loss[k][level[k]]):
            if level[k] == 0:
                continue
            trial = dict(level, **{k: level[k] - 1})
            cost = costs.cost(ratios_of(trial))
            if cost <= goal * (1 + 1e-9):
                level, current, improved = trial, cost, True
    ratios = ratios_of(level)
    drop = float(sum(loss[k][level[k]] for k in keys))
    return Allocation(ratios, costs.base_cost / max(current, 1.0), drop, target, metric,
                      costs.config(ratios))


def max_reduction(costs: CostModel, sensitivity: SensitivityResult) -> float:
    """The reduction with every analysed group at its largest measured ratio."""
    top = max(sensitivity.ratios)
    return costs.reduction({k: top for k in sensitivity.curves})


def log_midpoint(lo: float, hi: float) -> float:
    return math.exp((math.log(lo) + math.log(hi)) / 2)
