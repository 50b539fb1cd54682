"""Sensitivity analysis: prune one group alone at several ratios and measure the metric.

No fine-tuning: each point is a fresh deep copy of the model, pruned by
:func:`prunekit.prune` with a per-group override (every other group keeps ratio 0), then
evaluated on the validation loader. Groups are addressed by the override key the planner
matches (the group name up to ``#``), so groups sharing a producing module are measured
together. The result is plain data (JSON) and can be plotted with :mod:`.plots`.
"""

from __future__ import annotations

import copy
import glob
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from torch import nn

from ..api import prune
from ..plan.config import PruneConfig
from ..errors import ConfigError, PlanError
from ..files import JsonDocument
from ..graph.dependency import DependencyGraph
from ..train.finetune import MetricFn, accuracy, evaluate

__all__ = ["SensitivityConfig", "SensitivityResult", "analyze_sensitivity", "group_keys"]

FORMAT = "prunekit.sensitivity"
DEFAULT_RATIOS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass(frozen=True)
class SensitivityConfig:
    """What to measure.

    - ``ratios``: increasing fractions in (0, 1) to prune each group alone.
    - ``groups``: glob patterns of group keys to analyse (empty: every prunable group).
    - ``importance``, ``ignore``, ``round_to``: as in :class:`prunekit.PruneConfig`.
    - ``mode``: ``"max"`` when a higher metric is better (accuracy), else ``"min"``.
    """

    ratios: tuple[float, ...] = DEFAULT_RATIOS
    groups: tuple[str, ...] = ()
    importance: str = "l2"
    ignore: tuple[str, ...] = ()
    round_to: int = 1
    mode: Literal["max", "min"] = "max"

    def __post_init__(self) -> None:
        ratios = tuple(float(r) for r in self.ratios)
        if not ratios or any(not 0.0 < r < 1.0 for r in ratios) or list(ratios) != sorted(set(ratios)):
            raise ConfigError(f"SensitivityConfig.ratios must be strictly increasing numbers in "
                              f"(0, 1), e.g. (0.1, 0.2, ..., 0.9); got {self.ratios!r}")
        if self.mode not in ("max", "min"):
            raise ConfigError(f"SensitivityConfig.mode must be 'max' or 'min', got {self.mode!r}")
        object.__setattr__(self, "ratios", ratios)
        object.__setattr__(self, "groups", tuple(self.groups))
        object.__setattr__(self, "ignore", tuple(self.ignore))
        PruneConfig(importance=self.importance, round_to=self.round_to)  # validates both


@dataclass
class SensitivityResult(JsonDocument):
    """Metric of the unpruned model and, per group key, the metric at each ratio."""

    document: ClassVar[str] = "sensitivity result"

    baseline: float
    ratios: list[float]
    curves: dict[str, list[float]]
    units: dict[str, int] = field(default_factory=dict)
    mode: str = "max"
    seconds: float = 0.0

    def drops(self, key: str) -> list[float]:
        """Metric lost at each ratio (positive = worse), for one group key."""
        sign = 1.0 if self.mode == "max" else -1.0
        return [sign * (self.baseline - m) for m in self.curves[key]]

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "baseline": self.baseline, "ratios": self.ratios,
                "curves": self.curves, "units": self.units, "mode": self.mode,
                "seconds": self.seconds}

    @classmethod
    def from_dict(cls, data: Any) -> SensitivityResult:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise PlanError(f"not a prunekit sensitivity result (missing format {FORMAT!r})")
        return cls(float(data["baseline"]), [float(r) for r in data["ratios"]],
                   {k: [float(v) for v in vs] for k, vs in data["curves"].items()},
                   {k: int(v) for k, v in data.get("units", {}).items()},
                   str(data.get("mode", "max")), float(data.get("seconds", 0.0)))



def group_keys(graph: DependencyGraph, patterns: Iterable[str] = ()) -> dict[str, int]:
    """Override keys of the graph's groups (name up to ``#``) and their unit counts."""
    import fnmatch

    keys: dict[str, int] = {}
    pats = list(patterns)
    for g in graph.groups:
        key = g.name.split("#", 1)[0]
        if pats and not any(fnmatch.fnmatchcase(key, p) for p in pats):
            continue
        keys[key] = keys.get(key, 0) + g.n_units
    if pats and not keys:
        raise ConfigError(f"SensitivityConfig.groups {pats!r} match no prunable group; group "
                          f"keys look like {[g.name for g in graph.groups[:3]]!r}")
    return keys


def analyze_sensitivity(model: nn.Module, example_inputs: Any, val_loader: Iterable[Any], *,
                        config: SensitivityConfig | None = None, metric_fn: MetricFn = accuracy,
                        on_point: Callable[[str, float, float], None] | None = None
                        ) -> SensitivityResult:
    """Prune each group alone at each ratio (on a copy) and record the validation metric.

    ``model`` is not changed. ``on_point(key, ratio, metric)`` is called after each point.
    """
    import time

    config = config if config is not None else SensitivityConfig()
    start = time.perf_counter()
    graph = DependencyGraph.build(model, example_inputs, ignore=config.ignore)
    keys = group_keys(graph, config.groups)
    baseline = evaluate(model, val_loader, metric_fn)
    curves: dict[str, list[float]] = {}
    for key in keys:
        curve = []
        for ratio in config.ratios:
            candidate = copy.deepcopy(model)
            prune(candidate, example_inputs, config=PruneConfig(
                ratio=0.0, importance=config.importance, ignore=config.ignore,
                round_to=config.round_to, overrides={glob.escape(key): ratio}))
            metric = evaluate(candidate, val_loader, metric_fn)
            curve.append(metric)
            if on_point is not None:
                on_point(key, ratio, metric)
        curves[key] = curve
    return SensitivityResult(baseline, list(config.ratios), curves, keys, config.mode,
                             time.perf_counter() - start)
