"""The dependency graph: coupled groups of removable units, discovered from a trace.

``DependencyGraph.build`` records the model (:mod:`.trace`), runs every op through its
rule (:mod:`.rules`) or its module's opaque handler (:mod:`.handlers`), solves the coupling
(:mod:`.labels`) and collects, for every component that touches a parameter and is not
blocked, the slices that must go together. Components with the same set of member slices
form one :class:`Group` (e.g. the 64 output channels of a conv, with the matching
BatchNorm entries and the input channels of the next conv).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Iterable, Sequence

import numpy as np
import torch.nn as nn

from ..errors import ConfigError, TraceError, UnsupportedOpError
from ..plan.document import architecture_fingerprint
from .handlers import OpaqueContext, handler_for, is_opaque
from .labels import BlockReason, Components, Dim, LabelSpace
from .rules import RuleContext, unknown_op
from .rules.base import lookup_rule
from .trace import Trace, meta_copy, record_trace, to_meta


@dataclass(frozen=True)
class Member:
    """One tensor slice of a group: ``index[u]`` are unit ``u``'s positions along ``dim``."""

    tensor: str  # qualified name, or "input<k>" for a model input
    dim: int
    index: np.ndarray  # [n_units, k]
    kind: str  # "param", "buffer" or "input"

    @property
    def module(self) -> str:
        return self.tensor.rsplit(".", 1)[0] if "." in self.tensor else ""


@dataclass
class Group:
    """Units that are removed together, and every slice each unit owns.

    ``name`` is the group's one name everywhere (scores, selections, plans, overrides): the
    module that produces its units, with ``#k`` for the k-th group of the same module.
    """

    name: str
    members: list[Member]
    components: np.ndarray  # component id of each unit
    exact: bool

    @property
    def n_units(self) -> int:
        return int(self.components.shape[0])

    @property
    def modules(self) -> list[str]:
        return sorted({m.module for m in self.members if m.kind != "input"})

    def describe(self) -> str:
        parts = ", ".join(f"{m.tensor}[dim {m.dim}]" for m in self.members[:6])
        more = f" and {len(self.members) - 6} more" if len(self.members) > 6 else ""
        return f"group {self.name!r} ({self.n_units} units): {parts}{more}"


@dataclass
class DependencyGraph:
    """Coupled groups of a model, plus what is needed to predict pruned shapes."""

    trace: Trace
    dims: list[list[Dim] | None]
    components: Components
    groups: list[Group]
    unsupported: list[BlockReason] = field(default_factory=list)
    tags: dict[str, set[str]] = field(default_factory=dict)
    on_meta: bool = False  # traced on a shape-only copy (no compute, no activation memory)
    split_units: str = "inner"  # unit of head splits: head-size positions or whole heads
    architecture: str = ""  # fingerprint of the model's tensor names and shapes when built
    _dim_layout: tuple[np.ndarray, np.ndarray] | None = field(default=None, init=False, repr=False)
    _by_name: dict[str, Group] | None = field(default=None, init=False, repr=False)

    # -- construction -----------------------------------------------------------
    @classmethod
    def build(cls, model: nn.Module, example_inputs: Any, *, ignore: Sequence[str] = (),
              input_features: Iterable[tuple[int, int]] = (),
              on_meta: bool = True, split_units: str = "inner") -> DependencyGraph:
        """Trace ``model`` on ``example_inputs`` and discover its groups.

        ``ignore`` lists module names (glob patterns allowed) whose tensors must keep
        their shape; ``input_features`` lists ``(input position, dim)`` pairs whose
        features may be removed (feature selection); ``split_units`` picks the unit of a
        reshape that splits features into ``(heads, head size)``: ``"inner"`` (head-size
        positions, the same in every head) or ``"outer"`` (whole heads).
        """
        module_names = [n for n, _ in model.named_modules()]
        for pattern in ignore:
            if not any(fnmatch.fnmatchcase(n, pattern) for n in module_names):
                raise ConfigError(
                    f"ignore entry {pattern!r} matches no module of the model; module names "
                    f"look like {module_names[1:4]!r} (see model.named_modules())")
        trace = None
        if on_meta:  # shapes are all we need; fall back to real tensors if the model refuses
            try:
                trace = record_trace(meta_copy(model), to_meta(example_inputs), is_opaque)
            except (TraceError, NotImplementedError, RuntimeError):
                on_meta = False
        if trace is None:
            trace = record_trace(model, example_inputs, is_opaque)
        space = LabelSpace()
        dims: list[list[Dim] | None] = [None] * len(trace.values)
        unsupported: list[BlockReason] = []
        tags: dict[str, set[str]] = {}
        prunable_inputs = dict(input_features)

        def init(index: int) -> None:
            if dims[index] is not None:
                return
            v = trace.values[index]
            if v.kind in ("param", "buffer") and v.floating:
                dims[index] = [space.fresh_dim(n, channel=True, blocked=False) for n in v.shape]
                return
            reason = BlockReason(f"model {v.kind} {v.name}".strip(), "")
            value_dims = [space.fresh_dim(n, reason=reason) for n in v.shape]
            dims[index] = value_dims
            if v.kind == "input":
                position = int(v.name[len("input"):])
                if position in prunable_inputs and v.shape:
                    d = prunable_inputs[position] % len(v.shape)
                    value_dims[d] = space.fresh_dim(v.shape[d], channel=True, blocked=False)

        for v in trace.values:
            if v.kind != "op":
                init(v.index)
        for node in trace.nodes:
            for ref in node.input_refs() + list(node.params.values()):
                init(ref.index)
            if node.target.startswith("module:"):
                try:
                    outs = handler_for(node.op).couple(
                        OpaqueContext(trace, space, dims, node, split_units))
                    _check_outputs(trace, node.outputs, outs)
                except (ValueError, IndexError, TypeError, KeyError,
                        NotImplementedError) as exc:  # a handler that cannot read this call
                    ctx = RuleContext(trace, space, dims, node, tags, split_units)
                    ctx.reason = BlockReason(
                        f"module {type(node.op).__name__} (its handler failed: {exc})",
                        node.target[len("module:"):])
                    unsupported.append(ctx.reason)
                    for ref in node.params.values():
                        ctx.block_value(ref)
                    outs = unknown_op(ctx)
            else:
                ctx = RuleContext(trace, space, dims, node, tags, split_units)
                rule = lookup_rule(node)
                if rule is None:
                    unsupported.append(ctx.reason)
                    rule = unknown_op
                try:
                    outs = rule(ctx)
                    _check_outputs(trace, node.outputs, outs)
                except (ValueError, IndexError, TypeError):  # incl. UnreadableOpError
                    unsupported.append(BlockReason(f"op {node.target} (unexpected arguments)",
                                                   node.module))
                    outs = unknown_op(ctx)
            for ref, out in zip(node.outputs, outs):
                if ref is not None:
                    dims[ref.index] = out
        for ref in trace.output_refs():
            init(ref.index)
            for d in dims[ref.index] or []:
                space.block(d.ids, BlockReason("model output", ""))
        components = space.solve()
        ignored = [name for name in trace.params
                   if any(fnmatch.fnmatchcase(name.rsplit(".", 1)[0], p) for p in ignore)]
        for name in ignored:
            for d in dims[trace.params[name]] or []:
                components.blocked[components.of[d.ids]] = True
        groups = _collect_groups(trace, dims, components)
        return cls(trace, dims, components, groups, unsupported, tags, on_meta, split_units,
                   architecture_fingerprint(model))

    # -- queries ----------------------------------------------------------------
    def fits(self, model: nn.Module) -> bool:
        """Whether ``model`` still has the tensor names and shapes this graph was built on
        (weights may have changed; a graph of a pruned or other model does not fit)."""
        return self.architecture == architecture_fingerprint(model)

    def group_named(self, name: str) -> Group:
        """The group called ``name`` (the module that produces it, ``#k`` for the k-th)."""
        if self._by_name is None:
            self._by_name = {g.name: g for g in self.groups}
        try:
            return self._by_name[name]
        except KeyError:
            raise ConfigError(
                f"the dependency graph has no group {name!r}; group names look like "
                f"{[g.name for g in self.groups[:4]]!r} (see DependencyGraph.groups)") from None

    def matching_groups(self, pattern: str) -> list[Group]:
        """Groups whose name (the module that produces them) matches a glob pattern."""
        found = [g for g in self.groups if fnmatch.fnmatchcase(g.name, pattern)]
        if not found:
            self.explain_missing(pattern)
        return found

    def explain_missing(self, pattern: str) -> None:
        """Raise a clear error for a module the user asked to prune but which has no group."""
        tensors = [n for n in self.trace.params if fnmatch.fnmatchcase(n.rsplit(".", 1)[0], pattern)]
        if not tensors:
            raise ConfigError(f"{pattern!r} matches no module with parameters in the model")
        reasons = []
        for name in tensors:
            for d in self.dims[self.trace.params[name]] or []:
                for comp in np.unique(self.components.of[d.ids])[:50].tolist():
                    reason = self.components.reasons.get(comp)
                    if reason is not None and reason.what.startswith(("op ", "module ")):
                        reasons.append(reason)
        if reasons:
            r = reasons[0]
            what = r.what[3:] if r.what.startswith("op ") else r.what
            raise UnsupportedOpError(
                f"cannot prune {pattern!r}: its channels flow through {what} in module "
                f"{r.module or '<top level>'!r}, which prunekit has no rule for. Leave it out "
                f"(ignore=[{pattern!r}]) or register a handler for that module.")
        raise ConfigError(
            f"{pattern!r} has nothing that can be removed: its channels reach the model's "
            "inputs or outputs, a hard-coded slice or index, or an ignored module")

    def predicted_sizes(self, removed: np.ndarray) -> list[tuple[int, ...]]:
        """Shape of every recorded value once the components flagged in ``removed`` go."""
        if self._dim_layout is None:
            ids = [d.ids for vdims in self.dims if vdims is not None for d in vdims]
            ends = np.cumsum([i.size for i in ids], dtype=np.int64)
            all_ids = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)
            self._dim_layout = (self.components.of[all_ids], ends)
        comp_of_label, ends = self._dim_layout
        kept = np.r_[0, np.cumsum(~removed[comp_of_label])]
        counts = (kept[ends] - kept[np.r_[0, ends[:-1]]]).tolist() if ends.size else []
        sizes: list[tuple[int, ...]] = []
        at = 0
        for value, vdims in zip(self.trace.values, self.dims):
            if vdims is None:
                sizes.append(value.shape)
                continue
            sizes.append(tuple(counts[at:at + len(vdims)]))
            at += len(vdims)
        return sizes


def _check_outputs(trace: Trace, refs: Sequence[Any], outs: Sequence[Any]) -> None:
    if len(outs) != len(refs):
        raise ValueError("rule returned the wrong number of outputs")
    for ref, out in zip(refs, outs):
        if ref is None:
            continue
        shape = trace.values[ref.index].shape
        if out is None or [d.size for d in out] != list(shape):
            raise ValueError(f"rule labels {None if out is None else [d.size for d in out]} "
                             f"do not fit output shape {shape}")


def _collect_groups(trace: Trace, dims: list[list[Dim] | None], comps: Components) -> list[Group]:
    # every channel dim of a parameter, buffer or input, with the labels in it
    candidates: list[tuple[str, int, str]] = []
    label_rows: list[np.ndarray] = []
    for value in trace.values:
        vdims = dims[value.index]
        if vdims is None or value.kind not in ("param", "buffer", "input"):
            continue
        for d, dim in enumerate(vdims):
            if dim.channel:
                candidates.append((value.name, d, value.kind))
                label_rows.append(dim.ids)
    if not candidates:
        return []
    # the positions whose component is not blocked; a member is a candidate that keeps any
    sizes = np.array([ids.size for ids in label_rows], dtype=np.int64)
    c = comps.of[np.concatenate(label_rows)]
    kept = ~comps.blocked[c]
    cand_of = np.repeat(np.arange(sizes.size), sizes)
    p = np.arange(c.size, dtype=np.int64) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    has = np.bincount(cand_of[kept], minlength=sizes.size) > 0
    if not has.any():
        return []
    keys = [candidates[i] for i in np.flatnonzero(has).tolist()]
    c, m, p = c[kept], (np.cumsum(has) - 1)[cand_of[kept]], p[kept]
    # order by (component, member, position): the elements are in (member, position) order
    # already, so one sort by component with the element's rank as the tie-break does it
    rank = np.arange(c.size, dtype=np.int64)
    if int(c.max()) < (1 << 62) // max(c.size, 1):
        order = np.argsort(c.astype(np.int64) * c.size + rank)
    else:  # too many components for one 64-bit key
        order = np.lexsort((p, m, c))
    c, m, p = c[order], m[order], p[order]
    first_of_comp = np.r_[True, c[1:] != c[:-1]]
    starts = np.flatnonzero(first_of_comp)
    uniq = c[starts]
    # signature of a component: its (member, positions per member) pairs, as a padded row
    pair_start = np.flatnonzero(first_of_comp | np.r_[True, m[1:] != m[:-1]])
    pair_len = np.diff(np.r_[pair_start, c.size])
    pair_comp = (np.cumsum(first_of_comp) - 1)[pair_start]
    pair_key = m[pair_start] * (1 << 31) + pair_len
    pair_count = np.bincount(pair_comp, minlength=uniq.size)
    first_pair = np.r_[0, np.cumsum(pair_count)[:-1]]
    slot = np.arange(pair_start.size) - first_pair[pair_comp]
    sig_of, representative = _same_signatures(pair_key, pair_comp, slot, pair_count, first_pair)
    is_input = np.array([k[2] == "input" for k in keys])
    by_sig = np.argsort(sig_of, kind="stable")
    bounds = np.flatnonzero(np.r_[True, sig_of[by_sig][1:] != sig_of[by_sig][:-1], True])
    groups: list[Group] = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        ks_arr = by_sig[lo:hi]
        rep = representative[ks_arr[0]]
        row = pair_key[first_pair[rep]:first_pair[rep] + pair_count[rep]]
        sig = [(int(key >> 31), int(key & ((1 << 31) - 1))) for key in row]
        if all(is_input[mm] for mm, _ in sig) or ks_arr.size < 2:
            continue  # nothing to prune: no tensor, or a single unit that must stay
        width = sum(n for _, n in sig)
        rows = starts[ks_arr][:, None] + np.arange(width)[None, :]
        positions = p[rows]
        unit_order = np.argsort(positions[:, 0], kind="stable")
        positions = positions[unit_order]
        comp_ids = uniq[ks_arr][unit_order]
        members, col = [], 0
        for mm, n in sig:
            name, d, kind = keys[mm]
            members.append(Member(name, d, positions[:, col:col + n].copy(), kind))
            col += n
        name = _group_name(members)
        exact = not bool(comps.inexact[comp_ids].any())
        groups.append(Group(name, members, comp_ids, exact))
    groups.sort(key=lambda g: min(trace.params.get(m.tensor, 0) for m in g.members))
    seen: dict[str, int] = {}
    for g in groups:
        seen[g.name] = seen.get(g.name, 0) + 1
        if seen[g.name] > 1:
            g.name = f"{g.name}#{seen[g.name]}"
    return groups


def _same_signatures(pair_key: np.ndarray, pair_comp: np.ndarray, slot: np.ndarray,
                     pair_count: np.ndarray, first_pair: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Classes of components with equal signatures (sequences of pair keys).

    Component ``c`` owns pairs ``first_pair[c] .. first_pair[c] + pair_count[c] - 1`` (sorted
    by component). Sequences are hashed with random 64-bit weights per slot, then every
    component is checked against its class's representative, so the result is exact.
    Returns each component's class id and each component's representative component.
    """
    weights = np.random.default_rng(0).integers(1, 2**62, size=int(slot.max()) + 2, dtype=np.int64)
    with np.errstate(over="ignore"):
        hashes = np.add.reduceat(pair_key * weights[slot], first_pair) + pair_count * weights[-1]
    sig_of, first = _classes(hashes)
    representative = first[sig_of]
    same = bool(np.array_equal(pair_count[representative], pair_count))
    if same:
        rep_pair = first_pair[representative[pair_comp]] + slot
        same = bool(np.array_equal(pair_key[rep_pair], pair_key))
    if not same:  # a hash collision: compare whole rows instead
        table = np.full((pair_count.size, int(slot.max()) + 1), -1, dtype=np.int64)
        table[pair_comp, slot] = pair_key
        _, first, sig_of = np.unique(table, axis=0, return_index=True, return_inverse=True)
        sig_of = sig_of.reshape(-1)
        representative = first[sig_of]
    return sig_of, representative


def _classes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_index=True, return_inverse=True)`` without the unique
    values, from one unstable sort: each element's class (classes numbered in ascending
    order of value) and each class's first element."""
    order = np.argsort(values)
    ordered = values[order]
    new = np.r_[True, ordered[1:] != ordered[:-1]]
    starts = np.flatnonzero(new)
    first = np.minimum.reduceat(order, starts)
    sig_of = np.empty(values.size, dtype=np.int64)
    sig_of[order] = np.cumsum(new) - 1
    return sig_of, first


def _group_name(members: list[Member]) -> str:
    """Name a group after the module that produces it (a weight's output dim), if any."""
    for m in members:
        if m.kind == "param" and m.dim == 0 and m.tensor.endswith("weight"):
            return m.module
    for m in members:
        if m.kind == "param":
            return m.module or m.tensor
    return members[0].tensor
