"""``nn.MultiheadAttention``: prune whole heads (default) or the same head dims in every head.

Stock ``nn.MultiheadAttention`` projects queries to ``embed_dim``, the same width as its
input, and splits that into ``num_heads`` heads. So pruning inside it also prunes the
residual stream it reads and writes: in *heads* mode removing head ``h`` removes input
features ``h*head_dim … (h+1)*head_dim-1`` with it (exact: a zeroed head contributes
nothing); in *head_dim* mode removing in-head index ``d`` removes feature ``d`` of every
head (inexact: the softmax scale depends on ``head_dim``).
"""

from __future__ import annotations

from typing import Any, Literal, cast

import numpy as np
import torch.nn as nn

from ...errors import UnreadableOpError
from ..labels import Dim
from .base import Handler, ModuleShapes, OpaqueContext, register_handler


def _unit_reps(ctx: OpaqueContext, ids: np.ndarray, heads: int, mode: str) -> np.ndarray:
    """Couple a length ``heads*head_dim`` label run into units; return one label per unit."""
    table = ids.reshape(heads, -1)
    if mode == "heads":
        for j in range(1, table.shape[1]):
            ctx.space.union(table[:, 0], table[:, j])
        return table[:, 0]
    ctx.space.union_rows(table)
    return table[0]


@register_handler(nn.MultiheadAttention)
class MultiheadAttentionHandler(Handler):
    opaque = True

    def __init__(self, mode: Literal["heads", "head_dim"] = "heads") -> None:
        self.mode = mode

    def couple(self, ctx: OpaqueContext) -> list[list[Dim] | None]:
        module = cast(nn.MultiheadAttention, ctx.module)  # registered for this class
        E, H = module.embed_dim, module.num_heads
        query = ctx.input(0, "query")
        key = ctx.input(1, "key")
        value = ctx.input(2, "value")
        out_w = ctx.need_param("out_proj.weight")
        if query is None:
            raise UnreadableOpError("the call has no tensor input 'query'")
        units = _unit_reps(ctx, query[-1].ids, H, self.mode)
        runs = [out_w[0].ids, out_w[1].ids]
        if module._qkv_same_embed_dim:
            w = ctx.need_param("in_proj_weight")
            for x in (query, key, value):
                if x is not None:
                    ctx.union(x[-1], w[1])
            runs += [w[0].ids[s * E:(s + 1) * E] for s in range(3)]
        else:
            for local, x in (("q_proj_weight", query), ("k_proj_weight", key), ("v_proj_weight", value)):
                w = ctx.need_param(local)
                if x is not None:
                    ctx.union(x[-1], w[1])
                runs.append(w[0].ids)
            wq = ctx.need_param("q_proj_weight")
            ctx.union(query[-1], wq[1])
        for local in ("in_proj_bias", "out_proj.bias"):
            bias = ctx.param(local)
            if bias is not None:
                runs += [bias[0].ids[s * E:(s + 1) * E] for s in range(bias[0].size // E)]
        for run in runs:
            ctx.space.union(units, _unit_reps(ctx, run, H, self.mode))
        for local in ("bias_k", "bias_v"):
            extra = ctx.param(local)
            if extra is not None:  # learned extra key/value rows: not supported, keep all
                ctx.space.block(units)
                for d in extra:
                    ctx.block(d)
        if self.mode == "head_dim":
            ctx.space.mark_inexact(units)
        out_dims = list(query[:-1]) + [out_w[0]]
        outs: list[list[Dim] | None] = [out_dims]
        for k in range(1, len(ctx.node.outputs)):
            shape = ctx.output_shape(k)
            outs.append(None if shape is None else [ctx.fresh(s) for s in shape])
        return outs

    def attributes(self, module: nn.Module, shapes: ModuleShapes) -> dict[str, Any]:
        module = cast(nn.MultiheadAttention, module)
        embed = shapes.params["out_proj.weight"][0] if "out_proj.weight" in shapes.params \
            else module.embed_dim
        if self.mode == "heads":
            heads, head_dim = embed // module.head_dim, module.head_dim
        else:
            heads, head_dim = module.num_heads, embed // module.num_heads
        attrs: dict[str, Any] = {"embed_dim": embed, "num_heads": heads, "head_dim": head_dim}
        if module._qkv_same_embed_dim:
            attrs.update(kdim=embed, vdim=embed)
        else:
            attrs.update(kdim=shapes.params["k_proj_weight"][1], vdim=shapes.params["v_proj_weight"][1])
        return attrs
