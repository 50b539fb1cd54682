"""Check a plan before it touches the model: prune a shape-only copy and re-trace it.

The plan predicts the shape of every recorded tensor. A copy of the model on the
``meta`` device (no memory for weights) is pruned by the plan and traced again; every op
must see exactly the predicted shapes. Python code that computes sizes the tracer cannot
see (``x.chunk(2)``, ``C // num_heads``, a hard-coded ``view``) shows up as the first op
whose shapes differ, and the groups whose units reach that op are left unpruned.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch.utils._pytree import tree_map

from ..errors import TraceError
from ..graph.dependency import DependencyGraph
from ..graph.handlers import is_opaque
from ..graph.trace import meta_copy, record_trace, to_meta
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
    """Prune a copy by ``plan``, re-trace it, and return the first op that disagrees
    (stage "verify"; ``None``: every op sees the predicted shapes).

    ``plan`` must have been built from ``selection`` on ``graph``. The copy is shape-only
    (``meta``, no weight memory) unless ``on_meta=False`` or the graph was traced on real
    tensors; ``model`` itself is not changed.
    """
    on_meta = graph.on_meta if on_meta is None else on_meta
    removed = removed_flags(graph, selection)
    pruned = meta_copy(model) if on_meta else copy.deepcopy(model)
    apply_plan(pruned, plan, check=False)  # the plan was just built from this model
    inputs = slice_inputs(example_inputs, plan)
    inputs = to_meta(inputs) if on_meta else inputs
    sizes = graph.predicted_sizes(removed)
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
