"""Automatic per-group ratios: reach a MACs, parameter or latency target while losing the
least metric.

MACs and parameters are predicted from the dependency graph (no surgery); latency from a
measured :class:`.latency.LatencyTable`. Metric losses come from the sensitivity curves
(:mod:`.sensitivity`; :func:`uniform_sensitivity` is a prior when none were measured), made
monotone and interpolated on a grid of ``step``. A greedy walk repeatedly takes the move (one
group to a higher ratio) with the smallest predicted loss per unit of cost saved until the
target is met, then lowers any group it can while the target still holds. Group losses are
assumed additive. With ``round_fast=True`` every ratio is lowered so its kept count is a fast
size of the table.
"""

from __future__ import annotations

import dataclasses
import glob
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from ..plan.config import PruneConfig
from ..errors import ConfigError
from ..graph.dependency import DependencyGraph
from ..plan.selection import predicted_macs, predicted_params, removed_flags, select_local
from .latency import LatencyTable
from .sensitivity import DEFAULT_RATIOS, SensitivityResult

__all__ = ["Allocation", "CostModel", "allocate", "loss_curve", "uniform_sensitivity"]

Metric = Literal["macs", "params", "latency"]


@dataclass(frozen=True)
class Allocation:
    """Chosen ratio per group key, predicted cost reduction and metric loss, and the config."""

    ratios: dict[str, float]
    reduction: float
    predicted_drop: float
    target: float
    metric: Metric
    config: PruneConfig
    predicted_ms: float | None = None  # from the latency table, when one was given

    def to_dict(self) -> dict[str, Any]:
        data = {"ratios": dict(self.ratios), "reduction": self.reduction,
                "predicted_drop": self.predicted_drop, "target": self.target,
                "metric": self.metric}
        if self.predicted_ms is not None:
            data["predicted_ms"] = self.predicted_ms
        return data


class CostModel:
    """Predicted MACs, parameters or latency (ms, from ``latency_table``) of ``model`` for
    per-group-key ratios (no surgery)."""

    def __init__(self, model: nn.Module, example_inputs: Any, base: PruneConfig,
                 metric: Metric = "macs", latency_table: LatencyTable | None = None) -> None:
        if metric not in ("macs", "params", "latency"):
            raise ConfigError(f"cost metric must be 'macs', 'params' or 'latency', got {metric!r}")
        if metric == "latency" and latency_table is None:
            raise ConfigError("the latency cost needs latency_table=LatencyTable.measure("
                              "model, example_inputs) (or LatencyTable.load(path))")
        if latency_table is not None:
            latency_table.check_model(model)
        self.model, self.base, self.metric = model, base, metric
        self.table = latency_table
        self.graph = DependencyGraph.build(model, example_inputs, ignore=base.ignore)
        self.groups = list(self.graph.groups)
        self._scores = {g.name: torch.zeros(g.n_units) for g in self.groups}
        self.base_cost = self.cost({})

    def config(self, ratios: dict[str, float]) -> PruneConfig:
        """A local-scope :class:`PruneConfig` with one override per group key."""
        overrides = {glob.escape(k): float(r) for k, r in ratios.items() if r > 0}
        return dataclasses.replace(self.base, ratio=0.0, scope="local", overrides=overrides,
                                   flops_reduction=None, params_reduction=None)

    def cost(self, ratios: dict[str, float]) -> float:
        if self.metric == "latency":
            assert self.table is not None
            return self.table.predict_ms(ratios, self.base)
        selection = select_local(self.groups, self._scores, self.config(ratios), 0.0)
        sizes = self.graph.predicted_sizes(removed_flags(self.graph, selection))
        if self.metric == "macs":
            return float(predicted_macs(self.graph, sizes))
        return float(predicted_params(self.model, self.graph, sizes))

    def reduction(self, ratios: dict[str, float]) -> float:
        return self.base_cost / max(self.cost(ratios), 1.0)


def loss_curve(sens: SensitivityResult, key: str, grid: np.ndarray) -> np.ndarray:
    """Metric loss of ``key`` at each ratio of ``grid``: the measured drops, clipped at 0,
    made non-decreasing and linearly interpolated (0 at ratio 0; beyond the largest measured
    ratio, the last value)."""
    drops = np.maximum.accumulate(np.maximum(np.asarray(sens.drops(key), dtype=float), 0.0))
    return np.interp(grid, [0.0] + list(sens.ratios), np.r_[0.0, drops])


def uniform_sensitivity(keys: Iterable[str], ratios: Sequence[float] = DEFAULT_RATIOS,
                        power: float = 2.0) -> SensitivityResult:
    """A prior, not a measurement: every group loses ``ratio ** power`` of a metric of 1.0.

    With no measured sensitivities, allocation then minimises cost alone while the convex
    prior (``power`` > 1) spreads pruning over the groups rather than emptying a few.
    """
    if not power > 0:
        raise ConfigError(f"uniform_sensitivity power must be > 0, got {power!r}")
    ratios = [float(r) for r in ratios]
    keys = list(keys)
    if not keys:
        raise ConfigError("uniform_sensitivity needs at least one group key")
    return SensitivityResult(1.0, ratios, {k: [1.0 - r ** power for r in ratios] for k in keys},
                             {}, "max")


def _latency_target(latency_reduction: float | None, latency_ms: float | None,
                    table: LatencyTable | None) -> float | None:
    """The latency target as a reduction factor (None: no latency target)."""
    if latency_reduction is None and latency_ms is None:
        return None
    if table is None:
        raise ConfigError("a latency target needs latency_table=LatencyTable.measure(model, "
                          "example_inputs) (or LatencyTable.load(path)) measured on this device")
    if latency_ms is None:
        return latency_reduction
    if isinstance(latency_ms, bool) or not isinstance(latency_ms, (int, float)) or \
            not math.isfinite(latency_ms) or latency_ms <= 0:
        raise ConfigError(f"latency_ms must be a finite number of milliseconds > 0, "
                          f"got {latency_ms!r}")
    return max(1.0, table.dense_ms / float(latency_ms))


def allocate(model: nn.Module, example_inputs: Any, sensitivity: SensitivityResult, *,
             macs_reduction: float | None = None, params_reduction: float | None = None,
             latency_reduction: float | None = None, latency_ms: float | None = None,
             latency_table: LatencyTable | None = None, round_fast: bool = False,
             base: PruneConfig | None = None, step: float = 0.05,
             costs: CostModel | None = None) -> Allocation:
    """Per-group ratios reaching ``macs_reduction`` (or ``params_reduction``, or
    ``latency_reduction``, or ``latency_ms``) × fewer, chosen to lose the least metric
    according to ``sensitivity``; ratios stay within its range.

    Latency targets are predicted by ``latency_table`` (:class:`.latency.LatencyTable`);
    ``round_fast=True`` (which also needs the table) rounds every kept count up to a fast
    size. The returned ``config`` prunes exactly these ratios with ``prunekit.prune``. If
    the target is out of reach, every group ends at the largest measured ratio (for a
    latency target a ``RuntimeWarning`` says so).
    """
    targets: dict[Metric, float | None] = {"macs": macs_reduction, "params": params_reduction,
               "latency": latency_reduction if latency_ms is None else latency_ms}
    if sum(v is not None for v in targets.values()) != 1 or (
            latency_reduction is not None and latency_ms is not None):
        raise ConfigError("allocate needs exactly one target: macs_reduction=..., "
                          "params_reduction=..., latency_reduction=... or latency_ms=... "
                          "(e.g. macs_reduction=10.0)")
    metric: Metric = next(k for k, v in targets.items() if v is not None)
    if latency_table is None and costs is not None:
        latency_table = costs.table
    if round_fast and latency_table is None:
        raise ConfigError("round_fast=True needs latency_table=LatencyTable.measure(model, "
                          "example_inputs): fast sizes are measured")
    lat = _latency_target(latency_reduction, latency_ms, latency_table)
    target = float(lat if metric == "latency" else targets[metric])  # type: ignore[arg-type]
    if not target >= 1.0:
        raise ConfigError(f"allocate target must be >= 1 (times fewer), got {target!r}")
    if not 0.0 < step <= 0.5:
        raise ConfigError(f"allocate step must be in (0, 0.5], got {step!r}")
    costs = costs if costs is not None else CostModel(
        model, example_inputs, base or PruneConfig(), metric, latency_table)
    if costs.metric != metric:
        raise ConfigError(f"costs measure {costs.metric!r} but the target is {metric!r}")
    table = latency_table
    keys = [k for k in sensitivity.curves if any(g.name.split("#", 1)[0] == k
                                                  for g in costs.groups)]
    if table is not None and (metric == "latency" or round_fast):
        keys = [k for k in keys if k in table.groups]
    if not keys:
        raise ConfigError("none of the sensitivity result's groups is a prunable group of this "
                          "model" + (" with a latency table entry" if table is not None else "")
                          + "; run analyze_sensitivity (and LatencyTable.measure) on the same "
                          "model first")
    top = max(sensitivity.ratios)
    grid = np.round(np.arange(0.0, top + 1e-9, step), 6)
    if grid[-1] < top:
        grid = np.r_[grid, top]
    loss = {k: loss_curve(sensitivity, k, grid) for k in keys}
    effective = {k: grid for k in keys}
    if round_fast:
        assert table is not None
        effective = {k: np.asarray([table.round_ratio(k, float(r), costs.base) for r in grid])
                     for k in keys}
        loss = {k: np.interp(effective[k], grid, loss[k]) for k in keys}
    level = {k: 0 for k in keys}

    def ratios_of(levels: dict[str, int]) -> dict[str, float]:
        return {k: float(effective[k][i]) for k, i in levels.items()
                if i > 0 and effective[k][i] > 0}

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
    floor = 1e-12 if metric == "latency" else 1.0
    reduction = costs.base_cost / max(current, floor)
    if metric == "latency" and current > goal * (1 + 1e-9):
        warnings.warn(f"latency target {target:.3g}x is out of reach: the table predicts "
                      f"{reduction:.3g}x with the analysed groups at up to ratio {top:g}; "
                      "measure sensitivities at larger ratios or lower the target",
                      RuntimeWarning, stacklevel=2)
    predicted = table.predict_ms(ratios, costs.base) if table is not None and all(
        k in table.groups for k in ratios) else None
    return Allocation(ratios, reduction, drop, target, metric, costs.config(ratios), predicted)


def max_reduction(costs: CostModel, sensitivity: SensitivityResult) -> float:
    """The reduction with every analysed group at its largest measured ratio."""
    top = max(sensitivity.ratios)
    return costs.reduction({k: top for k in sensitivity.curves})


def log_midpoint(lo: float, hi: float) -> float:
    return math.exp((math.log(lo) + math.log(hi)) / 2)
