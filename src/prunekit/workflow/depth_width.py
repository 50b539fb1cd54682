"""A run's ``depth_width`` step: one MACs target met by whole blocks removed and channels
thinned, the fastest mix as measured at the serving batch
(:func:`prunekit.recover.choose_depth_width`), in place of channel pruning alone."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..allocate.depth import choose_depth_width
from ..errors import BudgetError
from ..plan.document import Plan
from .config import RunConfig

__all__ = ["choose_depth_and_width"]


def choose_depth_and_width(model: nn.Module, example: torch.Tensor, samples: torch.Tensor,
                           config: RunConfig, metric: Callable[[nn.Module], float],
                           dense_metric: float, log: Callable[[str], None]
                           ) -> tuple[nn.Module, Plan, dict[str, Any]]:
    """The chosen pruned copy of ``model``, its plan and the report's ``depth_width``
    section (every candidate as measured). Candidates are timed at ``out.serving_batch``
    (validation ``samples``, repeated when there are fewer) or at batch 1; with a budget,
    each is evaluated by ``metric`` before any fine-tuning."""
    settings = config.depth_width
    assert settings is not None
    batch = config.out.serving_batch or 1
    index = torch.arange(batch) % max(1, samples.shape[0])
    timing = samples[index].to(example.dtype) if batch > 1 else example[:1]
    log(f"depth + width: {settings.macs_reduction:g}x fewer MACs, candidates timed at batch "
        f"{batch}" + (f", metric budget {settings.budget:g}" if settings.budget is not None
                      else ""))
    choice = choose_depth_width(
        model, example, settings.macs_reduction, timing_inputs=timing, steps=settings.steps,
        rank_by=settings.rank_by,  # type: ignore[arg-type]
        base=config.prune, rounds=settings.rounds, threads=config.out.threads,
        metric=metric if settings.budget is not None else None, budget=settings.budget,
        width=settings.width)  # type: ignore[arg-type]
    for c in choice.candidates:
        shown = "" if c.metric is None else f", metric {c.metric:.4g}"
        log(f"  {len(c.blocks)} block(s) ({c.ranking}): {c.macs_reduction:.2f}x MACs, "
            f"{c.ms:.2f} ms, {c.speedup:.2f}x faster{shown}"
            + ("" if c.acceptable else ", over budget"))
    if choice.chosen is None or choice.model is None or choice.plan is None:
        raise BudgetError(f"no depth + width candidate stayed within the metric budget "
                          f"{settings.budget:g} of the dense {dense_metric:.4g} before "
                          "fine-tuning: raise depth_width.budget (--budget) or lower the "
                          "target")
    log(f"depth + width: chose {len(choice.chosen.blocks)} block(s) removed "
        f"({choice.chosen.ranking} ranking), {choice.chosen.speedup:.2f}x faster at batch "
        f"{batch}")
    return choice.model, choice.plan, choice.to_dict()
