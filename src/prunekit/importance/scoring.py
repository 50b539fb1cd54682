"""Score every group: build the slices criteria read, gather gradients and activations.

Gradients come from ``loss_fn(model, batch)`` on calibration batches. Activation
statistics are gathered on the recorded value that carries each group's units last
before they are consumed (typically the post-activation tensor), found from the trace,
so criteria never need to know layer types.
"""

from __future__ import annotations

import inspect
from typing import Any
from collections.abc import Callable, Iterable

import numpy as np
import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from ..errors import ConfigError
from ..graph.dependency import DependencyGraph, Group
from ..graph.trace import as_args
from .._internal.runtime import eval_mode
from . import get_importance
from .base import ActivationStats, GroupSlices, Importance, MemberSlice, PositionNorms

Scores = dict[str, torch.Tensor]
"""Group name -> one score per unit (higher = more important)."""

LossFn = Callable[[nn.Module, Any], torch.Tensor]


def default_loss(model: nn.Module, batch: Any) -> torch.Tensor:
    """Cross-entropy for ``(inputs, targets)`` batches of a classifier."""
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise ConfigError("gradient-based criteria need a loss: batches are not (inputs, "
                          "targets) pairs, so pass loss_fn=lambda model, batch: ...")
    inputs, targets = batch
    return nn.functional.cross_entropy(model(inputs), targets)


def make_importance(spec: str | Importance, **options: Any) -> Importance:
    """Build a criterion, passing only the options its constructor accepts."""
    if isinstance(spec, Importance):
        return spec
    probe = get_importance(spec)
    accepted = inspect.signature(type(probe).__init__).parameters
    return get_importance(spec, **{k: v for k, v in options.items()
                                   if k in accepted and v is not None})


def accumulate_gradients(model: nn.Module, batches: Iterable[Any], loss_fn: LossFn) -> None:
    model.zero_grad(set_to_none=True)
    seen = 0
    for batch in batches:
        loss_fn(model, batch).backward()
        seen += 1
    if not seen:
        raise ConfigError("calibration data is empty: gradient-based criteria need batches")


def _activation_sites(graph: DependencyGraph, group: Group) -> tuple[int, int, np.ndarray] | None:
    """(value index, dim, unit of each position) of the last op value carrying the group."""
    comps = set(group.components.tolist())
    unit_of = {c: u for u, c in enumerate(group.components.tolist())}
    for value in reversed(graph.trace.values):
        if value.kind != "op":
            continue
        for d, dim in enumerate(graph.dims[value.index] or []):
            if not dim.channel:
                continue
            c = graph.components.of[dim.ids]
            if c.size and set(np.unique(c).tolist()) == comps:
                return value.index, d, np.array([unit_of[x] for x in c.tolist()])
    return None


class _ValueTap(TorchDispatchMode):
    """Replays the op order of the trace and hands chosen outputs to a callback."""

    def __init__(self, graph: DependencyGraph, wanted: dict[int, list[int]],
                 sink: Callable[[int, torch.Tensor], None]) -> None:
        super().__init__()
        self.wanted = wanted  # node index -> output value indices
        self.sink = sink
        self.node = 0
        self.graph = graph

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        idx = self.node
        self.node += 1
        if idx in self.wanted:
            flat, _ = tree_flatten(out)
            refs = self.graph.trace.nodes[idx].outputs
            for ref, tensor in zip(refs, flat):
                if ref is not None and ref.index in self.wanted[idx]:
                    self.sink(ref.index, tensor)
        return out


def activation_stats(model: nn.Module, graph: DependencyGraph, batches: Iterable[Any],
                     groups: list[Group]) -> dict[str, ActivationStats]:
    """Mean |a| and fraction of zeros per unit, by group name, on calibration batches."""
    sites = {g.name: _activation_sites(graph, g) for g in groups}
    producer = {}
    for node in graph.trace.nodes:
        for ref in node.outputs:
            if ref is not None:
                producer[ref.index] = node.index
    if any(n.target.startswith("module:") for n in graph.trace.nodes):
        raise ConfigError("activation criteria do not yet support models with opaque modules "
                          "(attention, recurrent layers); use 'l2' or 'taylor'")
    wanted: dict[int, list[int]] = {}
    for site in sites.values():
        if site is not None:
            wanted.setdefault(producer[site[0]], []).append(site[0])
    sums: dict[str, torch.Tensor] = {}
    zeros: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}

    def sink(value_index: int, tensor: torch.Tensor) -> None:
        for gid, site in sites.items():
            if site is None or site[0] != value_index:
                continue
            moved = tensor.detach().float().movedim(site[1], 0).reshape(tensor.shape[site[1]], -1)
            sums[gid] = sums.get(gid, 0) + moved.abs().sum(1)
            zeros[gid] = zeros.get(gid, 0) + (moved == 0).sum(1).float()
            counts[gid] = counts.get(gid, 0) + moved.shape[1]

    with eval_mode(model), torch.no_grad():
        for batch in batches:
            inputs = batch[0] if isinstance(batch, (tuple, list)) and len(batch) == 2 else batch
            args, kwargs = as_args(inputs)
            with _ValueTap(graph, wanted, sink):
                model(*args, **kwargs)
    stats: dict[str, ActivationStats] = {}
    for g in groups:
        site = sites[g.name]
        if site is None or g.name not in counts:
            continue
        unit = torch.from_numpy(site[2])
        per_pos_abs = sums[g.name] / counts[g.name]
        per_pos_zero = zeros[g.name] / counts[g.name]
        n = g.n_units
        mean_abs = torch.zeros(n).index_add_(0, unit, per_pos_abs) / torch.bincount(unit, minlength=n)
        zero_frac = torch.zeros(n).index_add_(0, unit, per_pos_zero) / torch.bincount(unit, minlength=n)
        stats[g.name] = ActivationStats(mean_abs, zero_frac)
    return stats


def named_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    tensors: dict[str, torch.Tensor] = dict(model.named_parameters())
    tensors.update(dict(model.named_buffers()))
    return tensors


def group_slices(graph: DependencyGraph, group: Group, tensors: dict[str, torch.Tensor],
                 activations: ActivationStats | None = None,
                 norms: PositionNorms | None = None) -> GroupSlices:
    """What a criterion reads of ``group``; ``norms`` shares per-position norms of whole
    tensors between the groups of one scoring pass."""
    members = []
    scales = []
    for m in group.members:
        if m.kind == "input":
            continue
        tensor = tensors[m.tensor]
        index = torch.from_numpy(m.index)
        members.append(MemberSlice(m.tensor, tensor.detach(), m.dim, index,
                                   is_buffer=m.kind == "buffer", grad=tensor.grad,
                                   norms=norms))
        if "scale" in graph.tags.get(m.tensor, ()) and tensor.dim() == 1:
            scales.append(tensor.detach().abs()[index].mean(1))
    extras = {"scale": torch.stack(scales)} if scales else {}
    return GroupSlices(group.name, group.n_units, tuple(members), activations, extras)


def score_groups(model: nn.Module, graph: DependencyGraph, criterion: str | Importance = "l2",
                 groups: Iterable[Group] | None = None, calibration: Iterable[Any] | None = None,
                 loss_fn: LossFn | None = None) -> Scores:
    """One score per unit for each group, by group name (stage "score"; higher = more
    important).

    ``criterion`` is a registered name or an :class:`~prunekit.importance.Importance`;
    ``groups`` default to every group of ``graph``. Gradient criteria run ``loss_fn(model,
    batch)`` (default: cross-entropy of ``(inputs, targets)``) on ``calibration`` batches,
    activation criteria run the model on them; the model's gradients are cleared after.
    """
    criterion = make_importance(criterion)
    groups = list(graph.groups if groups is None else groups)
    acts: dict[str, ActivationStats] = {}
    if criterion.needs_gradients or criterion.needs_activations:
        if calibration is None:
            raise ConfigError(f"criterion {criterion.name!r} needs calibration data: pass "
                              "calibration=[batch, ...] (and loss_fn for gradients)")
        batches = list(calibration)
        if criterion.needs_gradients:
            accumulate_gradients(model, batches, loss_fn or default_loss)
        if criterion.needs_activations:
            acts = activation_stats(model, graph, batches, groups)
    try:
        tensors = named_tensors(model)
        norms = PositionNorms()
        return {g.name: criterion(group_slices(graph, g, tensors, acts.get(g.name), norms))
                for g in groups}
    finally:
        if criterion.needs_gradients:
            model.zero_grad(set_to_none=True)
