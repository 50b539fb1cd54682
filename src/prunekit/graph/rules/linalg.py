"""Rules for contractions: matrix products, convolutions, embeddings and attention."""

from __future__ import annotations

import numpy as np

from ...errors import UnreadableOpError
from ..labels import Dim
from .base import RuleContext, op_rule
from .elementwise import broadcast_union


def _matmul(ctx: RuleContext, a, b) -> list[Dim]:
    """``a[..., M, K] @ b[..., K, N]``: K is contracted (coupled, exact); batch dims couple."""
    da, db = ctx.dims(a), ctx.dims(b)
    ctx.union(da[-1], db[-2])
    batch: list[Dim] = []
    for x, y in zip(da[:-2], db[:-2]):
        if x.size == y.size:
            ctx.union(x, y)
        batch.append(x if x.size >= y.size else y)
    return batch + [da[-2], db[-1]]


@op_rule("mm", "bmm")
def _mm(ctx: RuleContext) -> list[list[Dim] | None]:
    return [_matmul(ctx, ctx.node.args[0], ctx.node.args[1])]


@op_rule("addmm", "baddbmm")
def _addmm(ctx: RuleContext) -> list[list[Dim] | None]:
    bias, a, b = ctx.node.args[:3]
    out = _matmul(ctx, a, b)
    return [broadcast_union(ctx, [out, ctx.dims(bias)], ctx.out_shape())]


@op_rule("convolution", "_convolution", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
         "conv_transpose2d", "conv_transpose3d", "mkldnn_convolution", "cudnn_convolution")
def _convolution(ctx: RuleContext) -> list[list[Dim] | None]:
    """Channels of the input meet the weight's input dim; the weight's output dim (and
    bias) become the output channels. Grouped convolutions keep their group count: with one
    input channel per group (depthwise) whole groups go, otherwise the same in-group indices
    go from every group."""
    x, w = ctx.node.args[0], ctx.node.args[1]
    bias = ctx.arg(2, "bias")
    packet = ctx.node.packet
    if packet in ("aten.convolution", "aten._convolution"):
        transposed = bool(ctx.arg(6, "transposed", False))
        groups = int(ctx.arg(8, "groups", 1))
    else:
        transposed = "transpose" in packet
        groups = int(ctx.arg(6 if not transposed else 6, "groups", 1))
    dx, dw = ctx.dims(x), ctx.dims(w)
    for d in dw[2:]:
        ctx.block(d)
    out_shape = ctx.out_shape()
    batched = len(dx) == len(dw)
    c_axis = 1 if batched else 0
    cx = dx[c_axis]
    w_in, w_out = (dw[0], dw[1]) if transposed else (dw[1], dw[0])
    if groups == 1:
        ctx.union(cx, w_in)
        c_out = w_out
    else:
        cin_g = cx.size // groups
        cout_g = out_shape[c_axis] // groups
        if not transposed:
            if cin_g == 1:  # depthwise (multiplier cout_g): input channel i owns out block i
                table = w_out.ids.reshape(groups, cout_g)
                for j in range(cout_g):
                    ctx.space.union(cx.ids, table[:, j])
                ctx.block(w_in)
            else:
                ctx.space.union_rows(cx.ids.reshape(groups, cin_g))
                ctx.union(Dim(cx.ids[:cin_g], True), w_in)
                ctx.space.union_rows(w_out.ids.reshape(groups, cout_g))
            c_out = w_out
        else:
            if cout_g == 1 and cin_g == 1:
                ctx.union(cx, w_in)
                ctx.block(w_out)
                c_out = Dim(w_in.ids, True)
            else:
                ctx.space.union_rows(cx.ids.reshape(groups, cin_g))
                ctx.union(cx, w_in)
                c_out = Dim(np.tile(w_out.ids, groups), True)
    if bias is not None:
        ctx.union(ctx.dims(bias)[0], c_out)
    result = [dx[0]] if batched else []
    result.append(c_out)
    result.extend(ctx.fresh(s) for s in out_shape[len(result):])
    return [result]


@op_rule("embedding")
def _embedding(ctx: RuleContext) -> list[list[Dim] | None]:
    w, idx = ctx.node.args[0], ctx.node.args[1]
    dw = ctx.dims(w)
    ctx.block(dw[0])
    return [list(ctx.dims(idx)) + [dw[1]]]


@op_rule("_embedding_bag", "embedding_bag")
def _embedding_bag(ctx: RuleContext) -> list[list[Dim] | None]:
    dw = ctx.dims(ctx.node.args[0])
    ctx.block(dw[0])
    outs = ctx.fresh_outputs()
    first = outs[0]
    if first is None:
        raise UnreadableOpError(f"op {ctx.node.target} has no tensor output")
    first[-1] = dw[1]
    return outs


@op_rule("_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_flash_attention",
         "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention",
         "scaled_dot_product_attention", "_scaled_dot_product_attention_math",
         "_scaled_dot_product_fused_attention_overrideable")
def _sdpa(ctx: RuleContext) -> list[list[Dim] | None]:
    """softmax(q kᵀ · scale) v. Query/key features contract (inexact: the default scale
    depends on their count); key/value positions contract; batch and head dims couple
    (with grouped-query attention, each key/value head with its group of query heads)."""
    q, k, v = ctx.node.args[:3]
    dq, dk, dv = ctx.dims(q), ctx.dims(k), ctx.dims(v)
    ctx.union(dq[-1], dk[-1])
    ctx.inexact(dq[-1])
    ctx.union(dk[-2], dv[-2])
    lead = []
    for a, b, c in zip(dq[:-2], dk[:-2], dv[:-2]):
        if a.size == b.size == c.size:
            ctx.union(a, b)
            ctx.union(a, c)
        elif b.size == c.size and 1 < b.size < a.size and a.size % b.size == 0:
            # grouped-query attention: query head h reads key/value head h // (a / b)
            ctx.union(b, c)
            for column in a.ids.reshape(b.size, -1).T:
                ctx.space.union(column, b.ids)
        lead.append(a)
    for ref in ctx.node.input_refs()[3:]:  # attention masks
        ctx.block_value(ref)
    outs = ctx.fresh_outputs()
    outs[0] = lead + [dq[-2], dv[-1]]
    return outs
