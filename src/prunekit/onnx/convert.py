"""Turn a parsed ONNX graph into an :class:`OnnxModel` by running it once on example inputs.

Nodes are converted in the file's order. Each converted node runs at once on the example
values, so every converter sees real input shapes; a node whose inputs are all constants is
computed here and becomes a constant (folding), and shape arithmetic stays in Python ints
(:class:`~prunekit.onnx.ops.Ints`). ``MatMul`` with a constant weight followed by an ``Add``
of a constant bias becomes one ``nn.Linear``.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch
from torch import nn

from ..errors import PrunekitError
from .graph import OnnxGraph
from .module import OnnxModel, Step
from .ops import (INT_OPS, Ints, IntsFunction, NodeContext, Static, get_converter,
                  is_int_like, module_name, supported_ops)
from .ops.layers import linear_from_matmul

__all__ = ["convert_graph"]

INTEGER_TYPES = {2, 3, 4, 5, 6, 7, 9, 12, 13}  # uint8 int8 uint16 int16 int32 int64 bool ...


def _ints_kwargs(ctx: NodeContext) -> dict[str, Any] | None:
    """Keyword arguments of the Python shape op for this node, or None when the node must
    run as a tensor op (its result would not be a 0-d or 1-d integer value)."""
    op, values = ctx.op_type, ctx.values
    present = [v for v in values if v is not None]
    if not any(isinstance(v, Ints) for v in present):
        return None
    if not all(is_int_like(v.tensor if isinstance(v, Static) else v) for v in present):
        return None
    if op == "Gather":
        data = values[0]
        return {"axis": 0} if isinstance(data, Ints) and not data.scalar and \
            int(ctx.attr("axis", 0)) == 0 else None
    if op == "Concat":
        return {"axis": 0}
    if op == "Unsqueeze":
        return {} if isinstance(values[0], Ints) and values[0].scalar else None
    if op == "Squeeze":
        return {} if isinstance(values[0], Ints) and len(values[0].values) == 1 else None
    if op == "Slice":
        axes = ctx.static_ints(3) if ctx.is_static(3) else [0]
        ok = ctx.opset >= 10 and axes in ([0], [-1]) and isinstance(values[0], Ints)
        return {} if ok and all(not ctx.has(i) or ctx.is_static(i) or
                                isinstance(values[i], Ints) for i in (1, 2, 4)) else None
    if op == "Cast":
        return {"to": int(ctx.attr("to"))} if int(ctx.attr("to")) in INTEGER_TYPES else None
    if op == "Reshape":
        target = ctx.example(1)
        size = len(target.values) if isinstance(target, Ints) else int(target.numel())
        return {} if size <= 1 and isinstance(values[0], Ints) else None
    if op == "ReduceProd":
        return {"keepdims": int(ctx.attr("keepdims", 1))} if ctx.opset >= 18 or \
            ctx.attr("axes") in (None, [0]) else None
    return {}


def _fused_bias(graph_nodes: tuple[Any, ...], index: int, ctx: NodeContext,
                values: dict[str, Any], consumers: dict[str, list[int]],
                outputs: set[str]) -> tuple[int, torch.Tensor] | None:
    """The Add node right after a MatMul with a constant 2-d weight, and its bias."""
    node = graph_nodes[index]
    if node.op_type != "MatMul" or not ctx.is_static(1) or ctx.is_static(0):
        return None
    weight = ctx.static(1)
    if weight.ndim != 2 or not weight.is_floating_point():
        return None
    out = node.output[0]
    users = consumers.get(out, [])
    if out in outputs or len(users) != 1 or graph_nodes[users[0]].op_type != "Add":
        return None
    add = graph_nodes[users[0]]
    other = add.input[1] if add.input[0] == out else add.input[0]
    bias = values.get(other)
    if not isinstance(bias, Static) or add.input[0] == add.input[1]:
        return None
    b = bias.tensor
    if b.numel() != weight.shape[1] or b.shape[-1:] != (weight.shape[1],) or \
            not b.is_floating_point():
        return None
    return users[0], b


def _build(ctx: NodeContext) -> nn.Module:
    kwargs = _ints_kwargs(ctx) if ctx.op_type in INT_OPS else None
    if kwargs is not None:
        static = tuple(i for i in range(len(ctx.values)) if ctx.is_static(i))
        return ctx.bind(IntsFunction(ctx.op_type, INT_OPS[ctx.op_type], **kwargs),
                        as_value=static)
    make = get_converter(ctx.op_type)
    if make is None:
        raise ctx.fail(f"prunekit has no converter for it ({len(supported_ops())} ops are "
                       "supported: prunekit.onnx.supported_ops()); convert the model without "
                       "it, or keep only outputs that do not need it (outputs=...)")
    return make(ctx)


def _as_static(value: Any) -> Static:
    if isinstance(value, Ints):
        return Static(value.tensor())
    if isinstance(value, torch.Tensor):
        return Static(value.detach())
    raise TypeError(type(value).__name__)


def convert_graph(graph: OnnxGraph, example: tuple[torch.Tensor, ...]) -> OnnxModel:
    """Convert ``graph``, running it on ``example`` (one tensor per graph input)."""
    signature = graph.signature
    values: dict[str, Any] = {name: Static(torch.from_numpy(array.copy()))
                              for name, array in graph.constants.items()}
    for spec, tensor in zip(signature.inputs, example):
        values[spec.name] = tensor
    outputs = set(signature.output_names)
    consumers: dict[str, list[int]] = defaultdict(list)
    for i, node in enumerate(graph.nodes):
        for name in node.input:
            if name:
                consumers[name].append(i)
    parameters: dict[str, nn.Parameter] = {}
    modules: dict[str, nn.Module] = {}
    steps: list[Step] = []
    taken: set[str] = set()
    skipped: dict[int, str] = {}  # fused Add node -> the name the Linear writes
    with torch.no_grad():
        for index, node in enumerate(graph.nodes):
            if index in skipped:
                continue
            unknown = [n for n in node.input if n and n not in values]
            if unknown:
                raise PrunekitError(f"{graph.path}: node {node.name!r} ({node.op_type}) reads "
                                    f"{unknown[0]!r}, which no earlier node computes (the "
                                    "graph is not topologically sorted or is malformed)")
            ctx = NodeContext(node, signature.opset,
                              [values[n] if n else None for n in node.input], parameters)
            names = list(node.output)
            fused = _fused_bias(graph.nodes, index, ctx, values, consumers, outputs)
            if fused is not None:
                skipped[fused[0]] = graph.nodes[fused[0]].output[0]
                names = [skipped[fused[0]]]
                module = linear_from_matmul(ctx, fused[1])
            else:
                module = _build(ctx)
            runtime = [n for n, v in zip(node.input, ctx.values)
                       if v is not None and not isinstance(v, Static)]
            try:
                result = module(*[values[n] for n in runtime])
            except PrunekitError:
                raise
            except Exception as exc:  # noqa: BLE001 - torch raises many kinds
                first = str(exc).splitlines()[0] if str(exc) else ""
                raise ctx.fail(f"running the converted node on the example failed "
                               f"({type(exc).__name__}: {first})") from None
            results = result if isinstance(result, tuple) else (result,)
            if not runtime:  # every input constant: fold
                for name, value in zip(names, results):
                    if name:
                        values[name] = _as_static(value)
                continue
            name = module_name(node.name or f"{node.op_type}_{index}", taken)
            modules[name] = module
            steps.append(Step(name, tuple(runtime), tuple(names)))
            for out_name, value in zip(names, results):
                if out_name:
                    values[out_name] = value
    constant_outputs = {n: values[n].tensor for n in signature.output_names
                        if isinstance(values.get(n), Static)}
    return OnnxModel(signature, _with_release(steps, outputs), modules, constant_outputs)


def _with_release(steps: list[Step], outputs: set[str]) -> list[Step]:
    """Each step with the values read for the last time there."""
    last: dict[str, int] = {}
    for k, step in enumerate(steps):
        for name in step.inputs:
            last[name] = k
    released: dict[int, list[str]] = defaultdict(list)
    for name, k in last.items():
        if name not in outputs:
            released[k].append(name)
    return [Step(s.module, s.inputs, s.outputs, tuple(released.get(k, ())))
            for k, s in enumerate(steps)]
