"""Rules for ops that move, merge, split, slice or join dimensions."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..labels import Dim
from ..trace import ValueRef
from .base import RuleContext, normalize_dim, op_rule


def reshape_chunks(src: Sequence[int], dst: Sequence[int]) -> list[tuple[list[int], list[int]]]:
    """Pair runs of source and target dims whose sizes multiply to the same number."""
    out: list[tuple[list[int], list[int]]] = []
    i = j = 0
    while i < len(src) or j < len(dst):
        if i < len(src) and src[i] == 1 and (j >= len(dst) or dst[j] != 1):
            out.append(([i], []))
            i += 1
            continue
        if j < len(dst) and dst[j] == 1 and (i >= len(src) or src[i] != 1):
            out.append(([], [j]))
            j += 1
            continue
        if i >= len(src) or j >= len(dst):
            raise ValueError("reshape sizes do not match")
        ins, outs = [i], [j]
        pi, pj = src[i], dst[j]
        i += 1
        j += 1
        while pi != pj:
            if pi < pj:
                pi *= src[i]
                ins.append(i)
                i += 1
            else:
                pj *= dst[j]
                outs.append(j)
                j += 1
        out.append((ins, outs))
    return out


def reshape_labels(ctx: RuleContext, dims: list[Dim], out_shape: Sequence[int]) -> list[Dim]:
    """Map labels through a reshape.

    A merge of one channel dim with structural dims (flatten) repeats each channel label
    over its block; a split of a channel dim keeps the innermost factor as the unit and
    couples it across the outer factors (whose sizes stay fixed), or, with
    ``ctx.split_units == "outer"``, keeps the second-innermost factor (heads) as the unit,
    each owning all its positions. Anything else is blocked.
    """
    in_shape = [d.size for d in dims]
    result: list[Dim] = []
    for ins, outs in reshape_chunks(in_shape, list(out_shape)):
        src = [dims[i] for i in ins]
        if not outs:  # a size-1 dim disappears
            for d in src:
                ctx.block(d)
            continue
        if not ins:
            result.append(ctx.fresh(1))
            continue
        if len(ins) == 1 and len(outs) == 1:
            result.append(src[0])
            continue
        channels = [k for k, d in enumerate(src) if d.channel]
        if len(outs) == 1:  # merge
            if len(channels) == 1:
                k = channels[0]
                grid = np.broadcast_to(
                    src[k].ids.reshape([-1 if m == k else 1 for m in range(len(src))]),
                    [d.size for d in src])
                result.append(Dim(np.ascontiguousarray(grid).reshape(-1), True))
            else:
                for d in src:
                    ctx.block(d)
                result.append(ctx.fresh(out_shape[outs[0]]))
            continue
        if len(ins) == 1:  # split
            sizes = [out_shape[o] for o in outs]
            if not src[0].channel:
                result.extend(ctx.fresh(s) for s in sizes)
                continue
            if ctx.split_units == "outer":  # whole heads: head h owns all its positions
                cube = src[0].ids.reshape(-1, sizes[-2], sizes[-1])
                ctx.space.union_rows(cube.transpose(1, 0, 2).reshape(sizes[-2], -1).T)
                result.extend(ctx.fresh(s) for s in sizes[:-2])
                result.append(Dim(cube[0, :, 0].copy(), True))
                result.append(ctx.fresh(sizes[-1]))
                continue
            table = src[0].ids.reshape(-1, sizes[-1])
            ctx.space.union_rows(table)
            result.extend(ctx.fresh(s) for s in sizes[:-1])
            result.append(Dim(table[0].copy(), True))
            continue
        for d in src:  # many-to-many
            ctx.block(d)
        result.extend(ctx.fresh(out_shape[o]) for o in outs)
    return result


@op_rule("view", "_unsafe_view", "reshape", "_reshape_alias", "view_copy", "_unsafe_view_copy")
def _view(ctx: RuleContext) -> list[list[Dim] | None]:
    dims = ctx.dims(ctx.node.args[0])
    return [reshape_labels(ctx, dims, ctx.out_shape())]


@op_rule("flatten", "unflatten")
def _flatten(ctx: RuleContext) -> list[list[Dim] | None]:
    return _view(ctx)


@op_rule("permute", "permute_copy")
def _permute(ctx: RuleContext) -> list[list[Dim] | None]:
    dims = ctx.dims(ctx.node.args[0])
    order = [normalize_dim(p, len(dims)) for p in ctx.arg(1, "dims")]
    return [[dims[p] for p in order]]


@op_rule("t", "numpy_T", "transpose", "swapaxes", "swapdims", "transpose_copy", "t_copy")
def _transpose(ctx: RuleContext) -> list[list[Dim] | None]:
    dims = list(ctx.dims(ctx.node.args[0]))
    if len(dims) < 2:
        return [dims]
    a = normalize_dim(ctx.arg(1, "dim0", 0), len(dims))
    b = normalize_dim(ctx.arg(2, "dim1", 1), len(dims))
    dims[a], dims[b] = dims[b], dims[a]
    return [dims]


@op_rule("unsqueeze", "unsqueeze_copy")
def _unsqueeze(ctx: RuleContext) -> list[list[Dim] | None]:
    dims = list(ctx.dims(ctx.node.args[0]))
    at = normalize_dim(ctx.arg(1, "dim"), len(dims) + 1)
    dims.insert(at, ctx.fresh(1))
    return [dims]


@op_rule("squeeze", "squeeze_copy")
def _squeeze(ctx: RuleContext) -> list[list[Dim] | None]:
    dims = ctx.dims(ctx.node.args[0])
    out_shape = ctx.out_shape()
    return [reshape_labels(ctx, dims, out_shape)]


@op_rule("expand", "expand_copy", "broadcast_to")
def _expand(ctx: RuleContext) -> list[list[Dim] | None]:
    dims = ctx.dims(ctx.node.args[0])
    out_shape = ctx.out_shape()
    lead = len(out_shape) - len(dims)
    result = [ctx.fresh(s) for s in out_shape[:lead]]
    for d, s in zip(dims, out_shape[lead:]):
        result.append(d if d.size == s else ctx.fresh(s))
    return [result]


@op_rule("repeat")
def _repeat(ctx: RuleContext) -> list[list[Dim] | None]:
    dims = ctx.dims(ctx.node.args[0])
    reps = list(ctx.arg(1, "repeats"))
    lead = len(reps) - len(dims)
    result = [ctx.fresh(r) for r in reps[:lead]]
    for d, r in zip(dims, reps[lead:]):
        result.append(d if r == 1 else Dim(np.tile(d.ids, r), d.channel))
    return [result]


@op_rule("select", "select_copy")
def _select(ctx: RuleContext) -> list[list[Dim] | None]:
    dims = list(ctx.dims(ctx.node.args[0]))
    at = normalize_dim(ctx.arg(1, "dim"), len(dims))
    ctx.block(dims[at]) if dims[at].channel else None
    del dims[at]
    return [dims]


@op_rule("slice", "slice_copy", "narrow", "narrow_copy")
def _slice(ctx: RuleContext) -> list[list[Dim] | None]:
    dims = list(ctx.dims(ctx.node.args[0]))
    at = normalize_dim(ctx.arg(1, "dim", 0), len(dims))
    out_shape = ctx.out_shape()
    src = dims[at]
    if out_shape[at] == src.size:
        return [dims]
    if ctx.node.packet.startswith("aten.narrow"):
        start, step = ctx.arg(2, "start", 0), 1
    else:
        start, step = ctx.arg(2, "start", 0) or 0, ctx.arg(4, "step", 1) or 1
    start = max(0, normalize_dim(start, src.size)) if start is not None else 0
    picked = src.ids[start:start + out_shape[at] * step:step]
    if src.channel:  # a hard-coded slice of channels would pick different channels later
        ctx.block(src)
    dims[at] = Dim(picked.copy(), src.channel)
    return [dims]


@op_rule("cat", "concat", "concatenate")
def _cat(ctx: RuleContext) -> list[list[Dim] | None]:
    refs = [r for r in ctx.arg(0, "tensors") if isinstance(r, ValueRef)]
    out_shape = ctx.out_shape()
    refs = [r for r in refs if len(ctx.shape(r)) == len(out_shape)]  # legacy empty tensors
    at = normalize_dim(ctx.arg(1, "dim", 0), len(out_shape))
    first = ctx.dims(refs[0])
    result: list[Dim] = []
    for k in range(len(out_shape)):
        if k == at:
            parts = [ctx.dims(r)[k] for r in refs]
            result.append(Dim(np.concatenate([p.ids for p in parts]), any(p.channel for p in parts)))
        else:
            for r in refs[1:]:
                ctx.union(first[k], ctx.dims(r)[k])
            result.append(Dim(first[k].ids, any(ctx.dims(r)[k].channel for r in refs)))
    return [result]


@op_rule("stack")
def _stack(ctx: RuleContext) -> list[list[Dim] | None]:
    refs = [r for r in ctx.arg(0, "tensors") if isinstance(r, ValueRef)]
    out_shape = ctx.out_shape()
    at = normalize_dim(ctx.arg(1, "dim", 0), len(out_shape))
    first = ctx.dims(refs[0])
    for r in refs[1:]:
        for a, b in zip(first, ctx.dims(r)):
            ctx.union(a, b)
    dims = list(first)
    dims.insert(at, ctx.fresh(len(refs)))
    return [dims]


@op_rule("split", "split_with_sizes", "unsafe_split", "unsafe_split_with_sizes", "chunk",
         "tensor_split", "split_copy", "split_with_sizes_copy")
def _split(ctx: RuleContext) -> list[list[Dim] | None]:
    """Each piece takes its slice of labels. A split into pieces of one size given as an
    integer (``split(x, n)``, ``chunk``) must keep the pieces equal, so position ``p`` of
    every piece goes together; explicit sizes let pieces shrink independently (the
    verifier checks that the sizes still line up)."""
    dims = ctx.dims(ctx.node.args[0])
    at = normalize_dim(ctx.arg(2, "dim", 0), len(dims))
    outs: list[list[Dim] | None] = []
    pieces: list[np.ndarray] = []
    offset = 0
    for ref in ctx.node.outputs:
        if ref is None:
            outs.append(None)
            continue
        n = ctx.trace.values[ref.index].shape[at]
        piece = list(dims)
        piece[at] = Dim(dims[at].ids[offset:offset + n].copy(), dims[at].channel)
        pieces.append(piece[at].ids)
        offset += n
        outs.append(piece)
    equal_by_int = isinstance(ctx.arg(1, "split_size"), int) or ctx.node.packet.endswith("chunk")
    if equal_by_int and len(pieces) > 1 and len({p.size for p in pieces}) == 1:
        ctx.space.union_rows(np.stack(pieces))
    return outs


@op_rule("unbind", "unbind_copy")
def _unbind(ctx: RuleContext) -> list[list[Dim] | None]:
    dims = list(ctx.dims(ctx.node.args[0]))
    at = normalize_dim(ctx.arg(1, "dim", 0), len(dims))
    ctx.block(dims[at])
    del dims[at]
    return [list(dims) if r is not None else None for r in ctx.node.outputs]


@op_rule("roll", "flip")
def _roll(ctx: RuleContext) -> list[list[Dim] | None]:
    dims = ctx.dims(ctx.node.args[0])
    moved = ctx.arg(2, "dims") if ctx.node.packet == "aten.roll" else ctx.arg(1, "dims")
    moved = [moved] if isinstance(moved, int) else list(moved or range(len(dims)))
    for m in moved:
        ctx.block(dims[normalize_dim(m, len(dims))]) if dims[normalize_dim(m, len(dims))].channel else None
    return [dims]


@op_rule("constant_pad_nd")
def _pad(ctx: RuleContext) -> list[list[Dim] | None]:
    dims = list(ctx.dims(ctx.node.args[0]))
    pad = list(ctx.arg(1, "pad"))
    out_shape = ctx.out_shape()
    for k in range(len(pad) // 2):
        at = len(dims) - 1 - k
        if pad[2 * k] or pad[2 * k + 1]:
            ctx.block(dims[at])
            dims[at] = ctx.fresh(out_shape[at])
    return [dims]


@op_rule("index.Tensor", "_unsafe_index.Tensor")
def _index(ctx: RuleContext) -> list[list[Dim] | None]:
    dims = ctx.dims(ctx.node.args[0])
    indices = list(ctx.arg(1, "indices"))
    used = [k for k, ix in enumerate(indices) if ix is not None]
    if len(used) != 1 or not isinstance(indices[used[0]], ValueRef):
        for d in dims:
            ctx.block(d)
        for ix in indices:
            if isinstance(ix, ValueRef):
                ctx.block_value(ix)
        return ctx.fresh_outputs()
    k = used[0]
    ctx.block(dims[k])
    idx_dims = ctx.dims(indices[k])
    return [list(dims[:k]) + list(idx_dims) + list(dims[k + 1:])]


@op_rule("index_select")
def _index_select(ctx: RuleContext) -> list[list[Dim] | None]:
    dims = list(ctx.dims(ctx.node.args[0]))
    at = normalize_dim(ctx.arg(1, "dim"), len(dims))
    ctx.block(dims[at])
    dims[at] = ctx.fresh(ctx.out_shape()[at])
    return [dims]


@op_rule("as_strided", "as_strided_", "as_strided_copy")
def _as_strided(ctx: RuleContext) -> list[list[Dim] | None]:
    """A re-layout that keeps every element in place: pass the labels through.

    ``adaptive_avg_pool2d(x, 1)`` on a channels-last tensor (ConvNeXt, Swin) ends with
    ``out.as_strided_(size, stride)``, changing only the strides of its size-1 dims. That is
    recognised as same size, no storage offset, and contiguous strides on every dim longer
    than 1; any other ``as_strided`` reinterprets memory: it is reported and treated as an
    op without a rule.
    """
    x = ctx.node.args[0]
    dims = ctx.dims(x)
    size = [int(s) for s in ctx.arg(1, "size")]
    stride = [int(s) for s in ctx.arg(2, "stride")]
    offset = ctx.arg(3, "storage_offset")
    contiguous, step = [0] * len(size), 1
    for i in range(len(size) - 1, -1, -1):
        contiguous[i] = step
        step *= max(size[i], 1)
    if (size == [d.size for d in dims] and not offset
            and all(s == c for n, s, c in zip(size, stride, contiguous) if n > 1)):
        return [list(dims)]
    raise ValueError("as_strided that moves elements")  # reported, then treated as unknown


@op_rule("im2col")
def _im2col(ctx: RuleContext) -> list[list[Dim] | None]:
    """``nn.Unfold``: ``(N, C, H, W) -> (N, C*kh*kw, L)``; channel c owns features
    ``c*kh*kw ... (c+1)*kh*kw - 1`` (a flatten of ``(C, kh*kw)``), positions are structural."""
    dims = list(ctx.dims(ctx.node.args[0]))
    out_shape = ctx.out_shape()
    for d in dims[-2:]:
        ctx.block(d)
    block = out_shape[-2] // dims[-3].size
    merged = reshape_labels(ctx, [dims[-3], ctx.fresh(block)], [out_shape[-2]])
    return [dims[:-3] + merged + [ctx.fresh(out_shape[-1])]]
