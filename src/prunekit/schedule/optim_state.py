"""Slice optimizer state along with a plan, so training continues on the pruned model.

:func:`prunekit.apply_plan` keeps every parameter's identity (it replaces ``.data``), so an
optimizer built before the surgery still holds the right parameter objects; only its
per-parameter state is stale. :func:`check_sliceable` refuses, *before anything is changed*,
any optimizer whose state prunekit cannot follow (a state tensor of an unknown shape, state
that is a list, tensors kept outside ``optimizer.state``, an optimizer that holds none of the
model's parameters); :func:`slice_optimizer_state` then removes the plan's positions from
every state tensor shaped like its parameter (SGD ``momentum_buffer``, Adam / AdamW
``exp_avg``, ``exp_avg_sq``, ``max_exp_avg_sq``, Adagrad ``sum``, ...). Scalars such as
``step`` are kept; param groups keep their hyper-parameters.

:func:`optimizer_state_to_bytes` / :func:`load_optimizer_state` store
``optimizer.state_dict()`` as safetensors (tensors + JSON metadata), nothing pickled.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from safetensors.torch import save

from ..errors import ConfigError
from ..files import read_safetensors_document
from ..plan.document import Plan

__all__ = ["check_sliceable", "load_optimizer_state", "optimizer_state_to_bytes",
           "slice_optimizer_state"]

FORMAT = "prunekit.optimizer_state"
VERSION = "1"
#: attributes of ``torch.optim.Optimizer`` itself: hooks, defaults, state, groups
_OWN = {"state", "param_groups", "defaults"}


def _tensors_in(value: Any, allowed: frozenset[int] = frozenset()) -> bool:
    """Whether ``value`` holds tensors other than those whose ``id`` is ``allowed``."""
    if isinstance(value, torch.Tensor):
        return id(value) not in allowed
    if isinstance(value, Mapping):
        return any(_tensors_in(v, allowed) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_tensors_in(v, allowed) for v in value)
    return False


def check_sliceable(optimizers: Iterable[torch.optim.Optimizer], model: nn.Module) -> None:
    """Raise :class:`~prunekit.ConfigError` unless every optimizer's state can follow the
    removal of channels from any parameter of ``model``.

    Call before the surgery: nothing is changed. The error names the optimizer class, the
    parameter and the state key.
    """
    params = dict(model.named_parameters())
    model_ids = frozenset(id(p) for p in params.values())
    for opt in optimizers:
        name = type(opt).__name__
        if not isinstance(opt, torch.optim.Optimizer):
            raise ConfigError(f"{name} is not a torch.optim.Optimizer; pass the optimizers "
                              "that train the model being pruned")
        for attr, value in vars(opt).items():
            if attr not in _OWN and _tensors_in(value, model_ids):  # e.g. LBFGS's _params
                raise ConfigError(
                    f"optimizer {name} keeps tensors in attribute {attr!r}, outside "
                    "optimizer.state, which prunekit cannot slice when channels are removed; "
                    "use an optimizer whose per-parameter state lives in optimizer.state "
                    "(SGD, Adam, AdamW, ...)")
        held = {id(p) for g in opt.param_groups for p in g["params"]}
        if not held & model_ids:
            raise ConfigError(
                f"optimizer {name} holds none of the model's parameters (it keeps them "
                "elsewhere, e.g. a flattened copy), so its state cannot follow the removed "
                "channels; build the optimizer on model.parameters()")
        for pname, p in params.items():
            state = opt.state.get(p)
            if not state:
                continue
            for key, value in state.items():
                if isinstance(value, torch.Tensor):
                    if tuple(value.shape) == tuple(p.shape) or value.numel() == 1:
                        continue
                    raise ConfigError(
                        f"optimizer {name}: state {key!r} of parameter {pname!r} has shape "
                        f"{tuple(value.shape)}, neither the parameter's shape "
                        f"{tuple(p.shape)} nor a scalar, so prunekit cannot slice it; the "
                        "model was left unchanged")
                if _tensors_in(value):
                    raise ConfigError(
                        f"optimizer {name}: state {key!r} of parameter {pname!r} is a "
                        f"{type(value).__name__} of tensors, which prunekit cannot slice; "
                        "the model was left unchanged")


def _keep_index(size: int, removed: list[int], device: torch.device) -> torch.Tensor:
    keep = np.ones(size, dtype=bool)
    keep[removed] = False
    return torch.from_numpy(np.flatnonzero(keep)).to(device)


@torch.no_grad()
def slice_optimizer_state(optimizers: Iterable[torch.optim.Optimizer], model: nn.Module,
                          plan: Plan) -> int:
    """Remove the plan's positions from every state tensor shaped like its parameter was.

    Call right *after* :func:`prunekit.apply_plan` (parameters keep their identity, so the
    optimizers still hold them) and after :func:`check_sliceable` passed before it. Returns
    the number of state tensors sliced.
    """
    params = dict(model.named_parameters())
    sliced = 0
    for opt in optimizers:
        for pname, dims in plan.tensors.items():
            p = params.get(pname)
            old = plan.original_shapes.get(pname)
            if p is None or old is None or not any(dims.values()):
                continue
            state = opt.state.get(p)
            if not state:
                continue
            for key, value in list(state.items()):
                if not isinstance(value, torch.Tensor) or list(value.shape) != list(old) \
                        or (value.numel() == 1 and p.numel() != 1):
                    continue
                data = value
                for dim, removed in sorted(dims.items()):
                    if removed:
                        data = data.index_select(dim, _keep_index(data.shape[dim], removed,
                                                                  data.device))
                state[key] = data.contiguous()
                sliced += 1
    return sliced


# -- storage without pickle ---------------------------------------------------------------
def optimizer_state_to_bytes(state: Mapping[str, Any]) -> bytes:
    """``optimizer.state_dict()`` as safetensors bytes: tensors by ``state/<index>/<key>``,
    the rest (param groups, scalars) as JSON metadata."""
    tensors: dict[str, torch.Tensor] = {}
    per_param: dict[str, dict[str, Any]] = {}
    for index, entry in dict(state["state"]).items():
        items: dict[str, Any] = {}
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                path = f"state/{int(index)}/{key}"
                tensors[path] = value.detach().to("cpu").contiguous().clone()
                items[key] = {"__tensor__": path}
            elif value is None or isinstance(value, (bool, int, float, str)):
                items[key] = value
            else:
                raise ConfigError(f"optimizer state {key!r} of parameter {index} is a "
                                  f"{type(value).__name__}; only tensors and plain values "
                                  "can be stored without pickle")
        per_param[str(int(index))] = items
    groups = []
    for group in state["param_groups"]:
        plain: dict[str, Any] = {}
        for key, value in group.items():
            if isinstance(value, torch.Tensor):
                if value.numel() != 1:
                    raise ConfigError(f"param group entry {key!r} is a tensor of shape "
                                      f"{tuple(value.shape)}; only scalars can be stored")
                plain[key] = {"__scalar_tensor__": value.item()}
            elif isinstance(value, tuple):
                plain[key] = {"__tuple__": list(value)}
            else:
                plain[key] = value
        groups.append(plain)
    try:
        metadata = {"format": FORMAT, "version": VERSION,
                    "state": json.dumps(per_param), "param_groups": json.dumps(groups)}
    except TypeError as exc:
        raise ConfigError(f"optimizer state holds a value JSON cannot store: {exc}") from None
    return save(tensors, metadata=metadata)


def load_optimizer_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a file written from :func:`optimizer_state_to_bytes`, ready for
    ``optimizer.load_state_dict``."""
    tensors, metadata = read_safetensors_document(path, "optimizer state", FORMAT, VERSION)
    state: dict[int, dict[str, Any]] = {}
    for index, items in json.loads(metadata["state"]).items():
        state[int(index)] = {key: tensors[v["__tensor__"]] if isinstance(v, dict) else v
                             for key, v in items.items()}
    groups = []
    for group in json.loads(metadata["param_groups"]):
        restored: dict[str, Any] = {}
        for key, value in group.items():
            if isinstance(value, dict) and "__scalar_tensor__" in value:
                restored[key] = torch.tensor(value["__scalar_tensor__"])
            elif isinstance(value, dict) and "__tuple__" in value:
                restored[key] = tuple(value["__tuple__"])
            else:
                restored[key] = value
        groups.append(restored)
    return {"state": state, "param_groups": groups}
