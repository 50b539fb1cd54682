"""Apply a plan: slice tensors in place and update module attributes. Apply never scores."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn as nn

from ..decompose.records import parse_records, replay_factorizations
from ..depth.remove import remove_recorded_blocks
from ..errors import PlanError
from ..graph.handlers import handler_for
from ..plan.document import Plan, architecture_fingerprint


def _owner(model: nn.Module, name: str,
           modules: dict[str, nn.Module] | None = None) -> tuple[nn.Module, str]:
    module_name, _, local = name.rpartition(".")
    found = (modules or {}).get(module_name)
    if found is not None:
        return found, local
    try:
        return model.get_submodule(module_name), local
    except AttributeError:
        raise PlanError(
            f"the plan names tensor {name!r}, but the model has no module {module_name!r}: "
            "the plan was made for another architecture") from None


_OTHER_ARCHITECTURE = (
    "the plan was made for another architecture (or an already pruned model): its "
    "fingerprint of parameter and buffer names and shapes does not match this model; "
    "apply plans to a fresh, unpruned instance of the architecture they were made for")


def check_plan_fits(model: nn.Module, plan: Plan) -> None:
    """Raise :class:`PlanError` unless the model is the architecture the plan was made for."""
    if plan.architecture and plan.architecture != architecture_fingerprint(model) \
            and not plan.blocks:  # with blocks, the fingerprint is checked before removing them
        raise PlanError(_OTHER_ARCHITECTURE)
    tensors: dict[str, torch.Tensor] = dict(model.named_parameters())
    tensors.update(dict(model.named_buffers()))
    for name, shape in plan.original_shapes.items():
        if name not in tensors:
            raise PlanError(f"the plan names tensor {name!r}, which this model does not have: "
                            "the plan was made for another architecture")
        if list(tensors[name].shape) != list(shape):
            raise PlanError(
                f"tensor {name!r} has shape {list(tensors[name].shape)} in this model but "
                f"{list(shape)} in the plan: apply plans to a fresh, unpruned instance of the "
                "architecture they were made for")
    modules = dict(model.named_modules())
    for name in plan.attributes:
        if name not in modules:
            raise PlanError(f"the plan updates module {name!r}, which this model does not have")


@torch.no_grad()
def apply_plan(model: nn.Module, plan: Plan, *, check: bool = True,
               factor_weights: Literal["compute", "empty"] = "compute") -> nn.Module:
    """Prune ``model`` in place as the plan says and return it.

    Tensors keep their identity (``.data`` is replaced), so tied weights stay tied and
    peak memory stays near the model's size plus its largest tensor. ``check=False`` skips
    the architecture check (for a plan just built from this very model). Factorizations the
    plan records (``plan.decompositions``) are replayed after the pruning: with factors
    computed from the model's weights (``factor_weights="compute"``; activation-aware ones
    need :func:`prunekit.decompose.api.replay`), or as layers of the right shape with
    uninitialised weights for loading saved ones (``"empty"``).
    """
    if plan.blocks:  # whole blocks go first; the rest of the plan fits the model without them
        if check and plan.architecture and plan.architecture != architecture_fingerprint(model):
            raise PlanError(_OTHER_ARCHITECTURE)
        remove_recorded_blocks(model, plan.blocks)
        check = check and bool(plan.original_shapes)
    records = parse_records(plan.decompositions)
    if records and factor_weights == "compute" and any(r.activation_aware for r in records):
        replay_factorizations(model, records, weights="compute")  # refuses before any change
    if check:
        check_plan_fits(model, plan)
    modules = dict(model.named_modules())
    touched: set[str] = set()
    for name, dims in plan.tensors.items():
        module, local = _owner(model, name, modules)
        tensor = getattr(module, local)
        data = tensor.data
        for dim, removed in sorted(dims.items()):
            if not removed:
                continue
            keep = np.ones(data.shape[dim], dtype=bool)
            try:
                if min(removed) < 0:
                    raise IndexError("negative index")
                keep[removed] = False
            except (IndexError, TypeError):
                raise PlanError(f"the plan removes indices {removed[:5]}... from dim {dim} of "
                                f"{name!r}, which has {data.shape[dim]} positions") from None
            if data.is_meta:  # a shape-only copy: what index_select gives there, directly
                size = list(data.shape)
                size[dim] = int(keep.sum())
                # torch.empty, not new_empty: on meta that runs a Python decomposition
                data = torch.empty(size, dtype=data.dtype, device=data.device)
            else:
                data = data.index_select(dim, torch.from_numpy(np.flatnonzero(keep)).to(data.device))
        tensor.data = data
        if isinstance(tensor, nn.Parameter):
            tensor.grad = None
        touched.add(name.rpartition(".")[0])
    for name, attrs in plan.attributes.items():
        module = _module(modules, name)
        handler_for(module).set_attributes(module, attrs)
        touched.add(name)
    if touched:
        touched.add("")  # the root refreshes model-level state (e.g. a Hugging Face config)
    for name in touched:
        module = _module(modules, name)
        handler_for(module).after_apply(module)
    if records:
        replay_factorizations(model, records, weights=factor_weights)
    return model


def _module(modules: dict[str, nn.Module], name: str) -> nn.Module:
    try:
        return modules[name]
    except KeyError:
        raise PlanError(f"the plan names module {name!r}, which this model does not have: "
                        "the plan was made for another architecture") from None
