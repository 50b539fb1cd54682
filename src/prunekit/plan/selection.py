"""Plan: decide which units go, from scores, a target and constraints.

Scopes: *local* removes the same fraction from every group; *global* ranks normalised
scores of all groups together (capped per group by ``max_ratio``). A FLOPs or parameter
target is met by searching the ratio, with costs predicted from the trace (no surgery).
"""

from __future__ import annotations

import bisect
import fnmatch
import math
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from .config import PruneConfig
from ..errors import ConfigError
from ..graph.dependency import DependencyGraph, Group
from ..graph.handlers import ModuleShapes, handler_for
from .document import GroupDecision, Plan, architecture_fingerprint
from ..importance.scoring import Scores

Selection = dict[str, np.ndarray]
"""Group name -> indices of the units removed (sorted)."""


def kept_count(n: int, ratio: float, config: PruneConfig) -> int:
    """Units a group of ``n`` keeps at ``ratio``, rounded up to ``config.round_to``."""
    keep = n - int(math.floor(ratio * n + 1e-9))
    if config.round_to > 1 and n >= config.round_to:
        keep = min(n, int(math.ceil(keep / config.round_to) * config.round_to))
    return max(keep, min(config.min_units, n), 1)


def group_ratio(group: Group, config: PruneConfig, ratio: float) -> float:
    """The ratio for a group: a matching override, else the global one."""
    base = group.name.split("#", 1)[0]
    for pattern, value in config.overrides.items():
        if fnmatch.fnmatchcase(base, pattern):
            return value
    return ratio


def select_local(groups: list[Group], scores: Scores, config: PruneConfig,
                 ratio: float) -> Selection:
    """The lowest-scored units of every group, ``ratio`` of each (or its override)."""
    chosen: Selection = {}
    for g in groups:
        keep = kept_count(g.n_units, group_ratio(g, config, ratio), config)
        order = torch.argsort(scores[g.name].float(), stable=True).numpy()
        chosen[g.name] = np.sort(order[: g.n_units - keep])
    return chosen


def select_global(groups: list[Group], scores: Scores, config: PruneConfig,
                  ratio: float) -> Selection:
    """The lowest-scored ``ratio`` of all units together, at most ``max_ratio`` of a group."""
    overridden = [g for g in groups if group_ratio(g, config, -1.0) >= 0]
    chosen = select_local(overridden, scores, config, ratio)
    pool = [g for g in groups if g.name not in chosen]
    if not pool:
        return chosen
    values = np.concatenate([scores[g.name].float().numpy() for g in pool])
    owner = np.concatenate([np.full(g.n_units, i) for i, g in enumerate(pool)])
    unit = np.concatenate([np.arange(g.n_units) for g in pool])
    budget = int(math.floor(ratio * values.size + 1e-9))
    limit = [g.n_units - kept_count(g.n_units, config.max_ratio, config) for g in pool]
    taken = [0] * len(pool)
    picked: list[list[int]] = [[] for _ in pool]
    for k in np.argsort(values, kind="stable"):
        if budget <= 0:
            break
        i = int(owner[k])
        if taken[i] < limit[i]:
            picked[i].append(int(unit[k]))
            taken[i] += 1
            budget -= 1
    for i, g in enumerate(pool):  # honour round_to on what remains
        keep = g.n_units - len(picked[i])
        rounded = kept_count(g.n_units, 1 - keep / g.n_units if g.n_units else 0.0, config)
        drop = g.n_units - rounded
        order = sorted(picked[i], key=scores[g.name].tolist().__getitem__)
        chosen[g.name] = np.sort(np.asarray(order[:drop], dtype=np.int64))
    return chosen


def select_units(model: nn.Module, graph: DependencyGraph, scores: Scores,
                 config: PruneConfig, groups: list[Group] | None = None) -> Selection:
    """Choose the units to remove from ``scores``, as ``config`` says (stage "select").

    ``groups`` are the candidates (default: every group of ``graph`` that has scores). A
    ratio is applied per group (``scope="local"``) or over all units (``"global"``); a
    ``flops_reduction`` or ``params_reduction`` target is met by searching the ratio with
    costs predicted from the trace (no surgery), with a warning when it is out of reach.
    """
    if groups is None:
        groups = [g for g in graph.groups if g.name in scores]
    select = select_global if config.scope == "global" else select_local
    target = config.flops_reduction or config.params_reduction
    if target is None:
        return select(groups, scores, config, config.ratio)
    unpruned = [v.shape for v in graph.trace.values]
    if config.flops_reduction is not None:
        def cost(sizes: list[tuple[int, ...]]) -> float:
            return float(predicted_macs(graph, sizes))
    else:
        def cost(sizes: list[tuple[int, ...]]) -> float:
            return float(predicted_params(model, graph, sizes))
    base = cost(unpruned)

    def reduction(ratio: float) -> float:
        sizes = graph.predicted_sizes(removed_flags(graph, select(groups, scores, config, ratio)))
        return base / max(cost(sizes), 1.0)

    ratio = search_ratio(reduction, float(target))
    reached = reduction(ratio)
    if reached < float(target) * 0.999:
        what = "flops_reduction" if config.flops_reduction is not None else "params_reduction"
        warnings.warn(
            f"{what}={target} is out of reach: the most prunekit can remove here gives "
            f"{reached:.2f}x (ratio {ratio:.2f}; inputs, outputs, ignored modules and ops "
            "without rules keep their size). The model was pruned that far.",
            UserWarning, stacklevel=2)
    return select(groups, scores, config, ratio)


def selection_from_units(graph: DependencyGraph,
                         units: Mapping[str, Iterable[int]]) -> Selection:
    """A :data:`Selection` from units a caller chose: ``{group name: unit indices}``.

    Raises :class:`ConfigError` for an unknown group, an index out of range, or a group
    that would lose every unit.
    """
    selection: Selection = {}
    for name, chosen in units.items():
        group = graph.group_named(name)
        try:
            index = np.unique(np.asarray(list(chosen), dtype=np.int64))
        except (TypeError, ValueError):
            raise ConfigError(f"units of group {name!r} must be integer indices, got "
                              f"{chosen!r}") from None
        if index.size and (index[0] < 0 or index[-1] >= group.n_units):
            raise ConfigError(f"group {name!r} has {group.n_units} units (0..{group.n_units - 1});"
                              f" cannot remove unit {int(index[0] if index[0] < 0 else index[-1])}")
        if index.size == group.n_units:
            raise ConfigError(f"removing all {group.n_units} units of group {name!r} would "
                              "leave nothing to compute with; keep at least one")
        selection[name] = index
    return selection


def removed_flags(graph: DependencyGraph, selection: Selection) -> np.ndarray:
    """One flag per component of ``graph``: does ``selection`` remove it?"""
    flags = np.zeros(graph.components.blocked.shape[0], dtype=bool)
    for name, units in selection.items():
        flags[graph.group_named(name).components[units]] = True
    return flags


def predicted_macs(graph: DependencyGraph, sizes: list[tuple[int, ...]]) -> int:
    """Multiply-accumulates of the contractions in the trace, with predicted shapes."""
    total = 0
    for node in graph.trace.nodes:
        packet = node.packet
        refs = node.input_refs()
        out = node.outputs[0] if node.outputs else None
        if packet in ("aten.convolution", "aten._convolution") and out is not None:
            w = sizes[node.args[1].index]
            x = sizes[node.args[0].index]
            transposed = bool(node.args[6]) if len(node.args) > 6 else False
            total += math.prod(x if transposed else sizes[out.index]) * math.prod(w[1:])
        elif packet in ("aten.mm", "aten.bmm", "aten.addmm", "aten.baddbmm"):
            a, b = (refs[-2], refs[-1])
            total += math.prod(sizes[a.index]) * sizes[b.index][-1]
        elif "scaled_dot_product" in packet:
            q, k, v = (sizes[r.index] for r in refs[:3])
            total += math.prod(q[:-1]) * k[-2] * (q[-1] + v[-1])
        elif node.target.startswith("module:") and refs:
            tokens = math.prod(sizes[refs[0].index][:-1])
            total += tokens * sum(math.prod(sizes[r.index]) for r in node.params.values()
                                  if len(sizes[r.index]) >= 2)
    return total


def predicted_params(model: nn.Module, graph: DependencyGraph, sizes: list[tuple[int, ...]]) -> int:
    total = 0
    for name, p in model.named_parameters():
        index = graph.trace.params.get(name)
        total += math.prod(sizes[index]) if index is not None else p.numel()
    return total


def build_plan(model: nn.Module, graph: DependencyGraph, selection: Selection,
               settings: Mapping[str, Any] | None = None) -> Plan:
    """Turn a selection of units into tensor slices and attribute updates (stage "plan").

    ``settings`` (plain data, e.g. :meth:`PruneConfig.settings`) are recorded in the plan.
    """
    tensors: dict[str, dict[int, set[int]]] = {}
    decisions, inputs = [], {}
    for name, units in selection.items():
        g = graph.group_named(name)
        decisions.append(GroupDecision(g.name, g.n_units, [int(u) for u in units], g.exact, g.modules))
        for m in g.members:
            if m.kind == "input":
                size = graph.trace.values[_input_value(graph, m.tensor)].shape[m.dim]
                kept = np.setdiff1d(np.arange(size), m.index[units].ravel())
                inputs[m.tensor] = {"dim": m.dim, "kept": kept.tolist()}
                continue
            if len(units):
                tensors.setdefault(m.tensor, {}).setdefault(m.dim, set()).update(
                    m.index[units].ravel().tolist())
    sizes = graph.predicted_sizes(removed_flags(graph, selection))
    shapes = {name: list(graph.trace.values[i].shape) for name, i in graph.trace.params.items()}
    plan = Plan(
        architecture=architecture_fingerprint(model),
        tensors={n: {d: sorted(ix) for d, ix in dims.items()} for n, dims in tensors.items()},
        original_shapes={n: shapes[n] for n in tensors},
        groups=decisions, input_features=inputs, settings=dict(settings or {}))
    plan.attributes = module_attributes(model, graph, sizes)
    return plan


def _input_value(graph: DependencyGraph, name: str) -> int:
    for v in graph.trace.values:
        if v.kind == "input" and v.name == name:
            return v.index
    raise KeyError(name)


def module_attributes(model: nn.Module, graph: DependencyGraph,
                      sizes: list[tuple[int, ...]]) -> dict[str, dict[str, object]]:
    """Ask each handler for the attributes of modules whose tensors or calls change shape."""
    result: dict[str, dict[str, object]] = {}
    values = graph.trace.values
    first_name: dict[int, str] = {}  # tied tensors are known to the trace by their first name only
    tensors = list(model.named_parameters(remove_duplicate=False)) + list(
        model.named_buffers(remove_duplicate=False))
    for full, tensor in tensors:
        first_name.setdefault(id(tensor), full)
    index_of = {full: graph.trace.params.get(first_name[id(t)]) for full, t in tensors}
    names = sorted(index_of)  # a module's tensors (its own and its children's) are one range
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        lo = bisect.bisect_left(names, prefix)
        hi = bisect.bisect_left(names, f"{name}/") if name else len(names)  # '/' follows '.'
        own = {full[len(prefix):]: index_of[full] for full in names[lo:hi]}
        params = {local: tuple(sizes[i]) for local, i in own.items() if i is not None}
        calls = [([tuple(sizes[i]) for i in ins], [tuple(sizes[o]) for o in outs])
                 for ins, outs in graph.trace.module_calls.get(name, [])]
        changed = any(values[i].shape != sizes[i] for i in own.values() if i is not None) or any(
            values[i].shape != sizes[i] for ins, outs in graph.trace.module_calls.get(name, [])
            for i in ins + outs)
        if not changed:
            continue
        attrs = handler_for(module).attributes(module, ModuleShapes(params, calls, graph.split_units))
        attrs = {k: v for k, v in attrs.items()
                 if _plain(getattr(module, k, None)) != _plain(v)}
        if attrs:
            result[name] = attrs
    return result


def _plain(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


def search_ratio(evaluate: Callable[[float], float], target: float, hi: float = 0.95) -> float:
    """Smallest ratio whose reduction factor reaches ``target`` (bisection; monotone)."""
    lo_r, hi_r = 0.0, hi
    if evaluate(hi_r) < target:
        return hi_r
    for _ in range(14):
        mid = (lo_r + hi_r) / 2
        if evaluate(mid) >= target:
            hi_r = mid
        else:
            lo_r = mid
    return hi_r
