"""Check a plan before it touches the model: prune a shape-only copy and run it.

The plan predicts the shape of every recorded tensor. A copy of the model on the
``meta`` device (no memory for weights) is pruned by the plan and run once; it must run the
recorded ops, each with exactly the predicted output shapes. That run records nothing and
stops at the first difference; only then is the copy traced in full, to locate the op.
Python code that computes sizes the tracer cannot see (``x.chunk(2)``, ``C // num_heads``,
a hard-coded ``view``) shows up as the first op whose shapes differ, and the groups whose
units reach that op are left unpruned.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map

from ..errors import TraceError
from ..graph.dependency import DependencyGraph
from ..graph.handlers import is_opaque
from ..graph.meta_shapes import meta_outputs
from ..graph.trace import (as_args, attention_output, check_attention_implementation, leaves,
                           meta_copy, record_trace, to_meta)
from .._internal.runtime import eval_mode
from .document import Plan
from .selection import Selection, removed_flags
from ..surgery.apply import apply_plan


@dataclass(frozen=True)
class Mismatch:
    """The first op whose pruned shapes differ from the prediction."""

    node_index: int
    op: str
    module: str
    culprits: np.ndarray  # removed component ids that reach that op


def slice_inputs(inputs: Any, plan: Plan) -> Any:
    """Drop removed input features from example inputs (feature selection)."""
    if not plan.input_features:
        return inputs
    counter = iter(range(1_000_000))

    def cut(t: Any) -> Any:
        if not isinstance(t, torch.Tensor):
            return t
        spec = plan.input_features.get(f"input{next(counter)}")
        if spec is None:
            return t
        return t.index_select(spec["dim"], torch.as_tensor(spec["kept"], device=t.device))

    if isinstance(inputs, dict):
        return tree_map(cut, ((), inputs))[1]
    return tree_map(cut, inputs)


def verify_plan(model: nn.Module, example_inputs: Any, graph: DependencyGraph, plan: Plan,
                selection: Selection, *, on_meta: bool | None = None) -> Mismatch | None:
    """Prune a copy by ``plan``, run it, and return the first op that disagrees with the
    prediction (stage "verify"; ``None``: every op sees the predicted shapes).

    ``plan`` must have been built from ``selection`` on ``graph``. The copy is shape-only
    (``meta``, no weight memory) unless ``on_meta=False`` or the graph was traced on real
    tensors; ``model`` itself is not changed. One plain forward of the copy
    (:func:`runs_as_predicted`) settles a plan that verifies; only a plan that does not is
    traced in full (:func:`compare_traces`) to locate the op.
    """
    on_meta = graph.on_meta if on_meta is None else on_meta
    removed = removed_flags(graph, selection)
    sizes = graph.predicted_sizes(removed)
    quick = _pruned_copy(model, plan, on_meta)
    if runs_as_predicted(quick, _pruned_inputs(example_inputs, plan, on_meta), graph, sizes):
        return None
    # something differs: a full trace of a fresh copy finds the first op that disagrees
    return compare_traces(model, example_inputs, graph, plan, removed, sizes, on_meta)


def compare_traces(model: nn.Module, example_inputs: Any, graph: DependencyGraph, plan: Plan,
                   removed: np.ndarray, sizes: list[tuple[int, ...]],
                   on_meta: bool) -> Mismatch | None:
    """Trace a copy pruned by ``plan`` and return the first op whose shapes differ from
    ``sizes`` (the prediction for the components flagged in ``removed``), or ``None``."""
    pruned = _pruned_copy(model, plan, on_meta)
    inputs = _pruned_inputs(example_inputs, plan, on_meta)
    nodes = graph.trace.nodes
    failed_at: int | None = None
    try:
        new = record_trace(pruned, inputs, is_opaque)
    except TraceError as exc:
        failed_at = min(exc.node_index if exc.node_index is not None else len(nodes), len(nodes) - 1)
        new = exc.partial  # type: ignore[assignment]
    used = {r.index for n in nodes for r in n.input_refs()}
    used.update(r.index for r in graph.trace.output_refs())
    i = j = 0
    while i < len(nodes) and j < len(new.nodes):
        node, other = nodes[i], new.nodes[j]
        if node.target != other.target:
            if not node.module or node.module != other.module:
                return _mismatch(graph, max(i - 1, 0), removed)
            # The same module call decomposes into other ops at the new sizes (e.g. a
            # linear layer whose input became contiguous): skip its ops in both traces
            # and compare what the call produced.
            i, j = _run_end(nodes, i), _run_end(new.nodes, j)
            node, other = nodes[i - 1], new.nodes[j - 1]
        else:
            i, j = i + 1, j + 1
        for ref, new_ref in zip(node.outputs, other.outputs):
            if ref is None or new_ref is None or ref.index not in used:
                continue
            if tuple(new.values[new_ref.index].shape) != tuple(sizes[ref.index]):
                return _mismatch(graph, node.index, removed)
    if failed_at is not None:
        return _mismatch(graph, failed_at, removed)
    if i != len(nodes) or j != len(new.nodes):
        return _mismatch(graph, min(i, len(nodes) - 1), removed)
    return None


def _pruned_copy(model: nn.Module, plan: Plan, on_meta: bool) -> nn.Module:
    pruned = meta_copy(model) if on_meta else copy.deepcopy(model)
    apply_plan(pruned, plan, check=False)  # the plan was just built from this model
    return pruned


def _pruned_inputs(example_inputs: Any, plan: Plan, on_meta: bool) -> Any:
    inputs = slice_inputs(example_inputs, plan)
    return to_meta(inputs) if on_meta else inputs


def runs_as_predicted(pruned: nn.Module, inputs: Any, graph: DependencyGraph,
                      sizes: list[tuple[int, ...]]) -> bool:
    """Whether one forward of ``pruned`` runs exactly the recorded ops, every one with the
    predicted output shapes (``sizes``, one per recorded value).

    The quick form of the full comparison in :func:`verify_plan`: the same ops are seen (one
    node per opaque module call and per meta attention, as the tracer records them), but
    nothing is recorded, and the first op that differs ends the run. ``True`` only where the
    full comparison finds no mismatch; ``False`` leaves locating the mismatch to it.
    """
    nodes = graph.trace.nodes
    used = {r.index for n in nodes for r in n.input_refs()}
    used.update(r.index for r in graph.trace.output_refs())
    expected = [(node.target if node.target.startswith("module:") else node.op,
                 [(p, r.index) for p, r in enumerate(node.outputs)
                  if r is not None and r.index in used]) for node in nodes]
    opaque = [n.target[len("module:"):] for n in nodes if n.target.startswith("module:")]
    check = _ShapeCheck(expected, sizes)
    handles = []
    try:
        check_attention_implementation(pruned)
        if opaque:
            names: dict[int, list[str]] = {}
            for name, module in pruned.named_modules(remove_duplicate=False):
                names.setdefault(id(module), []).append(name)
            for name in set(opaque):
                module = pruned.get_submodule(name)
                if len(names.get(id(module), [])) != 1:
                    return False  # a shared module: only the full trace nests its hooks alike
                handles.append(module.register_forward_pre_hook(check.enter))
                handles.append(module.register_forward_hook(
                    lambda m, a, out, _n=f"module:{name}": check.leave(_n, out)))
        attention = any(n.op is F.scaled_dot_product_attention for n in nodes)
        args, kwargs = as_args(inputs)
        with eval_mode(pruned), torch.no_grad(), check, \
                (_CheckedAttention(check) if attention else contextlib.nullcontext()):
            pruned(*args, **kwargs)
    except Exception:  # noqa: BLE001 - the full trace says what failed, and where
        return False
    finally:
        for h in handles:
            h.remove()
    return not check.failed and check.at == len(expected)


class _Mismatched(Exception):
    """Raised inside the forward to stop it at the first op that differs."""


class _ShapeCheck(TorchDispatchMode):
    """Compares each op, as it runs, with the next recorded one."""

    def __init__(self, expected: list[tuple[Any, list[tuple[int, int]]]],
                 sizes: list[tuple[int, ...]]) -> None:
        super().__init__()
        self.expected = expected
        self.sizes = sizes
        self.at = 0
        self.opaque_depth = 0
        self.failed = False

    def check(self, key: Any, out: Any) -> None:
        if self.at < len(self.expected):
            want, outputs = self.expected[self.at]
            self.at += 1
            if key is want or (isinstance(key, str) and key == want):
                flat = leaves(out) if outputs else []
                if all(p >= len(flat) or not isinstance(flat[p], torch.Tensor)
                       or flat[p].shape == self.sizes[i] for p, i in outputs):
                    return
        self.failed = True
        raise _Mismatched

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = meta_outputs(func, args, kwargs)
        if out is None:
            out = func(*args, **kwargs)
        if not self.opaque_depth:
            self.check(func, out)
        return out

    def enter(self, module: nn.Module, args: Any) -> None:
        self.opaque_depth += 1

    def leave(self, key: str, out: Any) -> None:
        self.opaque_depth -= 1
        if not self.opaque_depth:
            self.check(key, out)


class _CheckedAttention(TorchFunctionMode):
    """``scaled_dot_product_attention`` on meta tensors as one op, as the tracer records it."""

    def __init__(self, check: _ShapeCheck) -> None:
        super().__init__()
        self.shape_check = check

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if (func is F.scaled_dot_product_attention and not self.shape_check.opaque_depth
                and args and getattr(args[0], "is_meta", False)):
            out = attention_output(tuple(args), kwargs)[0]
            self.shape_check.check(func, out)
            return out
        return func(*args, **kwargs)


def _run_end(nodes: list[Any], start: int) -> int:
    """Index after the run of consecutive nodes recorded in the same module as ``start``."""
    module = nodes[start].module
    end = start
    while end < len(nodes) and nodes[end].module == module:
        end += 1
    return end


def _mismatch(graph: DependencyGraph, index: int, removed: np.ndarray) -> Mismatch:
    node = graph.trace.nodes[index]
    refs = node.input_refs() + [r for r in node.outputs if r is not None] + list(node.params.values())
    culprits = _removed_in(graph, [r.index for r in refs], removed)
    module = node.module
    while not culprits.size and module:  # sizes computed from a module's inputs in Python
        for ins, outs in graph.trace.module_calls.get(module, []):
            culprits = np.union1d(culprits, _removed_in(graph, ins + outs, removed))
        module = module.rpartition(".")[0]
    return Mismatch(index, node.target, node.module, culprits)


def _removed_in(graph: DependencyGraph, value_indices: list[int], removed: np.ndarray) -> np.ndarray:
    comps: list[np.ndarray] = [np.zeros(0, dtype=np.int64)]
    for i in value_indices:
        for d in graph.dims[i] or []:
            c = graph.components.of[d.ids]
            comps.append(c[removed[c]])
    return np.unique(np.concatenate(comps))
