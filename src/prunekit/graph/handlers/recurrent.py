"""LSTM, GRU and RNN: prune hidden units (the same units in every layer and direction)
and the input features of the first layer.

Hidden unit ``j`` owns row ``g*hidden_size + j`` of every gate ``g`` in every input and
hidden weight and bias, column ``j`` of every hidden weight, the matching columns of the
next layer's input weights, and feature ``j`` (and ``hidden_size + j`` for the reverse
direction) of the output. ``hidden_size`` is one attribute, so a unit goes from every
layer and direction at once. A zeroed unit stays zero through the gates (its cell and
hidden state start at zero), so removal is exact. Projections (``proj_size``) are not
supported and keep everything.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import torch.nn as nn

from ..labels import Dim
from .base import Handler, ModuleShapes, OpaqueContext, register_handler


@register_handler(nn.RNNBase)
class RecurrentHandler(Handler):
    opaque = True

    def couple(self, ctx: OpaqueContext) -> list[list[Dim] | None]:
        module = cast(nn.RNNBase, ctx.module)  # the handler is registered for RNNBase
        hidden = module.hidden_size
        gates = {"LSTM": 4, "GRU": 3}.get(module.mode, 1)
        directions = 2 if module.bidirectional else 1
        x = ctx.need_input(0, "input")
        if module.proj_size:  # projections are not supported: keep everything
            for ref in list(ctx.node.params.values()) + ctx.node.input_refs():
                for d in ctx._dims[ref.index] or []:
                    ctx.block(d)
            return [None if r is None else [ctx.fresh(n) for n in ctx.trace.values[r.index].shape]
                    for r in ctx.node.outputs]
        units = Dim(ctx.space.fresh(hidden), True)
        suffixes = ["", "_reverse"][:directions]
        for layer in range(module.num_layers):
            for suffix in suffixes:
                w_ih = ctx.need_param(f"weight_ih_l{layer}{suffix}")
                w_hh = ctx.need_param(f"weight_hh_l{layer}{suffix}")
                for rows in (w_ih[0], w_hh[0]):
                    for g in range(gates):
                        ctx.space.union(units.ids, rows.ids[g * hidden:(g + 1) * hidden])
                ctx.union(units, w_hh[1])
                for local in (f"bias_ih_l{layer}{suffix}", f"bias_hh_l{layer}{suffix}"):
                    bias = ctx.param(local)
                    if bias is not None:
                        for g in range(gates):
                            ctx.space.union(units.ids, bias[0].ids[g * hidden:(g + 1) * hidden])
                if layer == 0:
                    ctx.union(x[-1], w_ih[1])
                else:
                    for direction in range(directions):
                        ids = w_ih[1].ids[direction * hidden:(direction + 1) * hidden]
                        ctx.space.union(units.ids, ids)
        if module.proj_size:
            ctx.space.block(units.ids)
        # a given initial state fixes the hidden size from outside
        hx_ref = ctx.node.args[1] if len(ctx.node.args) > 1 else ctx.node.kwargs.get("hx")
        for state in ([hx_ref] if hasattr(hx_ref, "index") else list(hx_ref or [])):
            index = getattr(state, "index", None)
            if index is not None:
                for state_dim in ctx._dims[index] or []:
                    ctx.block(state_dim)
        outs: list[list[Dim] | None] = []
        for k, ref in enumerate(ctx.node.outputs):
            if ref is None:
                outs.append(None)
                continue
            shape = ctx.trace.values[ref.index].shape
            if k == 0:
                last = Dim(np.tile(units.ids, directions), True)
                outs.append(list(x[:-1]) + [last])
            else:
                outs.append([ctx.fresh(s) for s in shape[:-1]] + [units])
        return outs

    def attributes(self, module: nn.Module, shapes: ModuleShapes) -> dict[str, Any]:
        return {"hidden_size": shapes.params["weight_hh_l0"][1],
                "input_size": shapes.params["weight_ih_l0"][1]}

    def after_apply(self, module: nn.Module) -> None:
        cast(nn.RNNBase, module)._init_flat_weights()
