"""``prunekit.prune``: discover → score → plan → verify → apply, in one call."""

from __future__ import annotations

import fnmatch
import warnings
from typing import Any
from collections.abc import Iterable

import torch.nn as nn

from .plan.config import PruneConfig
from .engine import (PruneResult, check_example_inputs, check_pruned_outputs, plan_verified)
from .errors import ConfigError, UnsupportedOpError
from .graph.dependency import DependencyGraph
from .importance.base import Importance
from .plan.selection import select_units
from ._internal.runtime import cyclic_gc_paused
from .importance.scoring import LossFn, score_groups
from .surgery.apply import apply_plan

__all__ = ["PruneResult", "prune"]


@cyclic_gc_paused()
def prune(model: nn.Module, example_inputs: Any, ratio: float = 0.5, *,
          config: PruneConfig | None = None, importance: str | Importance = "l2",
          calibration: Iterable[Any] | None = None, loss_fn: LossFn | None = None,
          **options: Any) -> PruneResult:
    """Structurally prune ``model`` in place and return the result.

    Defaults: channel granularity, L2-magnitude importance, the same ratio in every group,
    and the model's outputs never change shape. Other settings are fields of
    :class:`PruneConfig` (pass ``config=`` or keyword ``options``). ``calibration`` (a few
    batches) and ``loss_fn(model, batch)`` feed gradient and activation criteria.
    """
    if config is None:
        config = PruneConfig(ratio=ratio, importance=importance, **options)
    elif options:
        raise ConfigError(f"pass settings either in config= or as keywords, not both: {sorted(options)}")
    if example_inputs is None:
        raise ConfigError("example_inputs is required: a tensor (or tuple/dict of tensors) "
                          "shaped like one real batch, e.g. torch.randn(1, 3, 224, 224)")
    criterion = config.criterion()
    graph = DependencyGraph.build(model, example_inputs, ignore=config.ignore,
                                  input_features=config.input_features,
                                  on_meta=not criterion.needs_activations,
                                  split_units=config.split_units)
    check_example_inputs(model, example_inputs, graph)
    for pattern in config.overrides:
        graph.matching_groups(pattern)
    groups = [g for g in graph.groups if g.exact or not config.exact_only]
    scores = score_groups(model, graph, criterion, groups, calibration, loss_fn)
    verified = plan_verified(
        model, example_inputs, graph, groups,
        lambda active: select_units(model, graph, scores, config, active),
        config.settings(), verify=config.verify)
    plan = verified.plan
    skipped = [g.name for g in groups if g.name in verified.skipped]
    skip_reasons = {name: verified.skipped[name] for name in skipped}
    plan.settings["skipped_groups"] = skipped
    _refuse_skipped_overrides(config, [g.name for g in groups], skip_reasons)
    if skip_reasons:
        name, reason = next(iter(skip_reasons.items()))
        warnings.warn(f"prunekit left {len(skip_reasons)} group(s) whole, e.g. {name!r}: "
                      f"{reason}. PruneResult.skip_reasons lists them all.", stacklevel=3)

    apply_plan(model, plan, check=False)  # the plan was just built from this model
    if not config.verify:  # otherwise a pruned copy already ran and matched every shape
        check_pruned_outputs(model, example_inputs, graph, plan)
    return PruneResult(model, plan, graph, skipped, skip_reasons)


def _refuse_skipped_overrides(config: PruneConfig, names: list[str],
                              skip_reasons: dict[str, str]) -> None:
    """An override must not come to nothing silently: refuse one whose groups were all skipped."""
    for pattern, ratio in config.overrides.items():
        matched = [name for name in names if fnmatch.fnmatchcase(name, pattern)]
        if ratio > 0 and matched and all(name in skip_reasons for name in matched):
            raise UnsupportedOpError(f"cannot prune {matched[0]!r} (asked for by override "
                                     f"{pattern!r}): {skip_reasons[matched[0]]}")
