"""Test helpers: the zero-then-remove exactness oracle, and models to test with.

Zero the weights of every unit a plan removes, run the model, remove those units, run
again: the outputs must match (up to float rounding) for every *exact* group. A mismatch in
the number or shape of the outputs is a :class:`~prunekit.VerificationError`.

:func:`randomize_weights` gives a model non-trivial float64 weights (a fresh BatchNorm is
the identity); :func:`hf_example` builds a small Hugging Face model of a family in the
table :mod:`prunekit.hf.families` (random weights; needs ``transformers``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable

import torch
import torch.nn as nn
from torch.utils._pytree import tree_flatten

from .api import prune
from .errors import VerificationError
from .graph.trace import as_args
from .plan.document import Plan
from .surgery.apply import apply_plan
from .plan.verify import slice_inputs

__all__ = ["ExactCheck", "check_exact", "exactness_gap", "hf_example", "lossless_pair",
           "randomize_weights", "run_exact_check", "zero_planned_units"]


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


def _max_diff(before: list[torch.Tensor], after: list[torch.Tensor]) -> float:
    if len(before) != len(after):
        raise VerificationError(f"the pruned model returns {len(after)} tensors, not "
                                f"{len(before)}")
    diff = 0.0
    for a, b in zip(before, after):
        if a.shape != b.shape:
            raise VerificationError(f"output shape changed from {tuple(a.shape)} to "
                                    f"{tuple(b.shape)}")
        if a.numel():
            diff = max(diff, float((a.double() - b.double()).abs().max()))
    return diff


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
    diff = _max_diff(y0, _run(model, slice_inputs(example_inputs, plan)))
    after = sum(p.numel() for p in model.parameters())
    return ExactCheck(diff, plan, model, before, after)


def check_exact(model_factory_or_model: nn.Module | Callable[[], nn.Module],
                example_inputs: Any, **prune_options: Any) -> float:
    """Max absolute output difference between the zeroed model and the pruned one."""
    return run_exact_check(model_factory_or_model, example_inputs, **prune_options).max_diff


def exactness_gap(model: nn.Module, example_inputs: Any, **prune_options: Any) -> float:
    """:func:`check_exact` on ``model`` (pruned in place), refusing a plan that removes
    nothing (:class:`~prunekit.VerificationError`)."""
    check = run_exact_check(model, example_inputs, **prune_options)
    if not any(any(d) for d in check.plan.tensors.values()):
        raise VerificationError("the plan removes nothing, so exactness says nothing")
    return check.max_diff


@torch.no_grad()
def randomize_weights(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random parameters (``N(0, 0.25)``) and BatchNorm statistics, in float64, eval mode."""
    g = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    for name, b in model.named_buffers():
        if name.endswith("running_var"):
            b.copy_(torch.rand(b.shape, generator=g) + 0.5)
        elif name.endswith("running_mean"):
            b.copy_(torch.randn(b.shape, generator=g) * 0.2)
    return model.double().eval()


def hf_example(model_type: str, head: str = "base", *, seed: int = 0,
               attn_implementation: str | None = None, **settings: Any) -> nn.Module:
    """A small Hugging Face model of ``model_type`` (random weights, seeded, eval mode).

    The config is the family row's example (:mod:`prunekit.hf.families`) with ``settings``
    on top; ``head`` is ``"base"``, ``"causal"``, ``"classifier"`` or
    ``"image-classifier"``.
    """
    import transformers

    from .hf.families import HEADS, example_of

    example = example_of(model_type)
    config = getattr(transformers, example.config_class)(**{**example.settings, **settings})
    options = {} if attn_implementation is None else {"attn_implementation": attn_implementation}
    torch.manual_seed(seed)
    return getattr(transformers, HEADS[head]).from_config(config, **options).eval()
