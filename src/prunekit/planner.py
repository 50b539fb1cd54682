"""Plan: decide which units go, from scores, a target and constraints.

Scopes: *local* removes the same fraction from every group; *global* ranks normalised
scores of all groups together (capped per group by ``max_ratio``). A FLOPs or parameter
target is met by searching the ratio, with costs predicted from the trace (no surgery).
"""

from __future__ import annotations

import bisect
import fnmatch
import math
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from .config import PruneConfig
from .graph.dependency import DependencyGraph, Group
from .graph.handlers import ModuleShapes, handler_for
from .plan import GroupDecision, Plan, architecture_fingerprint

Selection = dict[int, np.ndarray]  # group id -> removed unit indices


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


def select_local(groups: list[Group], scores: dict[int, torch.Tensor], config: PruneConfig,
                 ratio: float) -> Selection:
    chosen: Selection = {}
    for g in groups:
        keep = kept_count(g.n_units, group_ratio(g, config, ratio), config)
        order = torch.argsort(scores[g.id].float(), stable=True).numpy()
        chosen[g.id] = np.sort(order[: g.n_units - keep])
    return chosen


def select_global(groups: list[Group], scores: dict[int, torch.Tensor], config: PruneConfig,
                  ratio: float) -> Selection:
    overridden = [g for g in groups if group_ratio(g, config, -1.0) >= 0]
    chosen = select_local(overridden, scores, config, ratio)
    pool = [g for g in groups if g.id not in chosen]
    if not pool:
        return chosen
    values = np.concatenate([scores[g.id].float().numpy() for g in pool])
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
        order = sorted(picked[i], key=lambda u: float(scores[g.id][u]))
        chosen[g.id] = np.sort(np.asarray(order[:drop], dtype=np.int64))
    return chosen


def removed_flags(graph: DependencyGraph, selection: Selection) -> np.ndarray:
    flags = np.zeros(graph.components.blocked.shape[0], dtype=bool)
    by_id = {g.id: g for g in graph.groups}
    for gid, units in selection.items():
        flags[by_id[gid].components[units]] = True
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


def build_plan(model: nn.Module, graph: DependencyGraph, groups: list[Group],
               selection: Selection, config: PruneConfig) -> Plan:
    """Turn a selection of units into tensor slices and attribute updates."""
    tensors: dict[str, dict[int, set[int]]] = {}
    decisions, inputs = [], {}
    by_id = {g.id: g for g in groups}
    for gid, units in selection.items():
        g = by_id[gid]
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
        groups=decisions, input_features=inputs, settings=config.settings())
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
