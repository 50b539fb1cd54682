"""Test helpers: the zero-then-remove exactness check of a plan.

Zero the weights of every unit a plan removes, run the model, remove those units, run
again: the outputs must match (up to float rounding) for every *exact* group.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn as nn
from torch.utils._pytree import tree_flatten

from .api import prune
from .graph.trace import as_args
from .plan import Plan
from .surgery import apply_plan
from .verify import slice_inputs

__all__ = ["ExactCheck", "check_exact", "exactness_gap", "lossless_pair", "run_exact_check",
           "zero_planned_units"]


def _named_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    tensors: dict[str, torch.Tensor] = dict(model.named_parameters(remove_duplicate=False))
    tensors.update(dict(model.named_buffers(remove_duplicate=False)))
    return tensors


@torch.no_grad()
def zero_planned_units(model: nn.Module, plan: Plan) -> nn.Module:
    """Set to zero, in place, every slice of every tensor that ``plan`` will remove."""
    tensors = _named_tensors(model)
    for name, dims in plan.tensors.items():
        if name not in tensors:
            raise KeyError(f"the plan names tensor {name!r}, which the model does not have")
        tensor = tensors[name]
        for dim, removed in dims.items():
            if removed:
                index = torch.as_tensor(removed, dtype=torch.long, device=tensor.device)
                tensor.data.index_fill_(int(dim), index, 0)
    return model


def lossless_pair(model: nn.Module, example_inputs: Any, **prune_options: Any
                  ) -> tuple[nn.Module, nn.Module, Plan]:
    """``(model, pruned, plan)``: ``model`` with every unit the plan removes zeroed in place,
    and a pruned copy of it, so that both compute the same function (``exact_only=True``).

    A recovery method (re-fitting, distillation) should find nothing to change in such a pair.
    """
    plan = prune(copy.deepcopy(model), example_inputs, exact_only=True, **prune_options).plan
    zero_planned_units(model, plan)
    return model, apply_plan(copy.deepcopy(model), plan), plan


def _run(model: nn.Module, inputs: Any) -> list[torch.Tensor]:
    args, kwargs = as_args(inputs)
    model.eval()
    with torch.no_grad():
        out = model(*args, **kwargs)
    return [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]


@dataclass
class ExactCheck:
    """Outcome of :func:`run_exact_check`."""

    max_diff: float
    plan: Plan
    model: nn.Module  # the original model, now pruned by ``plan``
    params_before: int
    params_after: int


def run_exact_check(model_factory_or_model: nn.Module | Callable[[], nn.Module],
                    example_inputs: Any, **prune_options: Any) -> ExactCheck:
    """Plan on a copy (``exact_only=True``), zero the planned units in the model, run it,
    apply the plan, run again on the kept input features, and compare the outputs."""
    if isinstance(model_factory_or_model, nn.Module):
        model = model_factory_or_model
    else:
        model = model_factory_or_model()
    before = sum(p.numel() for p in model.parameters())
    planned = copy.deepcopy(model)
    plan = prune(planned, example_inputs, exact_only=True, **prune_options).plan
    zero_planned_units(model, plan)
    y0 = _run(model, example_inputs)
    apply_plan(model, plan)
    y1 = _run(model, slice_inputs(example_inputs, plan))
    assert len(y0) == len(y1), f"the pruned model returns {len(y1)} tensors, not {len(y0)}"
    diff = 0.0
    for a, b in zip(y0, y1):
        assert a.shape == b.shape, f"output shape changed from {tuple(a.shape)} to {tuple(b.shape)}"
        if a.numel():
            diff = max(diff, float((a.double() - b.double()).abs().max()))
    after = sum(p.numel() for p in model.parameters())
    return ExactCheck(diff, plan, model, before, after)


def check_exact(model_factory_or_model: nn.Module | Callable[[], nn.Module],
                example_inputs: Any, **prune_options: Any) -> float:
    """Max absolute output difference between the zeroed model and the pruned one."""
    return run_exact_check(model_factory_or_model, example_inputs, **prune_options).max_diff


def exactness_gap(model: nn.Module, example_inputs: Any, **prune_options: Any) -> float:
    """Plan on a deep copy (``exact_only=True``), zero the planned units in ``model``, run
    it, apply the plan, run on the kept input features; return the max abs output diff.

    ``model`` ends up pruned in place. Asserts that the plan removes something and that
    the output shapes do not change.
    """
    planned = copy.deepcopy(model)
    plan = prune(planned, example_inputs, exact_only=True, **prune_options).plan
    assert plan.tensors and any(any(d) for d in plan.tensors.values()), "the plan removes nothing"
    zero_planned_units(model, plan)
    y0 = _run(model, example_inputs)
    apply_plan(model, plan)
    y1 = _run(model, slice_inputs(example_inputs, plan))
    assert len(y0) == len(y1), f"the pruned model returns {len(y1)} tensors, not {len(y0)}"
    diff = 0.0
    for a, b in zip(y0, y1):
        assert a.shape == b.shape, f"output shape changed from {tuple(a.shape)} to {tuple(b.shape)}"
        if a.numel():
            diff = max(diff, float((a.double() - b.double()).abs().max()))
    return diff
