"""Rules for normalisation, pooling and resampling ops."""

from __future__ import annotations

from ..labels import Dim
from ..trace import ValueRef
from .base import RuleContext, op_rule


def _with_extras(ctx: RuleContext, first: list[Dim]) -> list[list[Dim] | None]:
    outs = ctx.fresh_outputs()
    outs[0] = first
    return outs


@op_rule("native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_no_training",
         "_native_batch_norm_legit_functional", "batch_norm", "cudnn_batch_norm",
         "miopen_batch_norm", "_batch_norm_impl_index", "_batch_norm_with_update",
         "_batch_norm_no_update")
def _batch_norm(ctx: RuleContext) -> list[list[Dim] | None]:
    """Per-channel affine map: weight, bias and running statistics follow the channel."""
    x = ctx.node.args[0]
    dims = ctx.dims(x)
    channel = dims[1] if len(dims) > 1 else dims[0]
    for ref in ctx.node.args[1:5]:
        if isinstance(ref, ValueRef):
            ctx.union(ctx.dims(ref)[0], channel)
    if isinstance(ctx.node.args[1], ValueRef):
        ctx.tag(ctx.node.args[1], "scale")
    return _with_extras(ctx, list(dims))


@op_rule("native_layer_norm", "layer_norm", "_fused_rms_norm", "rms_norm")
def _layer_norm(ctx: RuleContext) -> list[list[Dim] | None]:
    """Normalises over the trailing dims: removing a feature changes the statistics of the
    rest (inexact), and the affine parameters follow the features."""
    x = ctx.node.args[0]
    dims = ctx.dims(x)
    n_norm = len(ctx.node.args[1])
    norm_dims = dims[len(dims) - n_norm:]
    for d in norm_dims:
        ctx.inexact(d)
    for ref in ctx.node.args[2:4]:
        if isinstance(ref, ValueRef):
            for wd, d in zip(ctx.dims(ref), norm_dims):
                ctx.union(wd, d)
    if len(ctx.node.args) > 2 and isinstance(ctx.node.args[2], ValueRef):
        ctx.tag(ctx.node.args[2], "scale")
    return _with_extras(ctx, list(dims))


@op_rule("native_group_norm", "group_norm")
def _group_norm(ctx: RuleContext) -> list[list[Dim] | None]:
    """Groups keep their count: the same in-group index goes from every group. With one
    channel per group each channel is normalised alone: channels go freely (and exactly),
    and the group count follows."""
    x, w, b = ctx.node.args[:3]
    groups = int(ctx.arg(6, "group", 1)) if ctx.node.packet == "aten.native_group_norm" \
        else int(ctx.arg(1, "num_groups", 1))
    dims = ctx.dims(x)
    channel = dims[1]
    if groups != channel.size or groups == 1:
        ctx.inexact(channel)
        if groups > 1:
            ctx.space.union_rows(channel.ids.reshape(groups, -1))
    for ref in (w, b):
        if isinstance(ref, ValueRef):
            ctx.union(ctx.dims(ref)[0], channel)
    if isinstance(w, ValueRef):
        ctx.tag(w, "scale")
    return _with_extras(ctx, list(dims))


def _spatial(n_spatial: int):
    def rule(ctx: RuleContext) -> list[list[Dim] | None]:
        dims = ctx.dims(ctx.node.args[0])
        outs = ctx.fresh_outputs()
        lead = len(dims) - n_spatial
        for k, ref in enumerate(ctx.node.outputs):
            if ref is None:
                continue
            shape = ctx.trace.values[ref.index].shape
            outs[k] = list(dims[:lead]) + [ctx.fresh(s) for s in shape[lead:]]
        return outs

    return rule


for _n in (1, 2, 3):
    op_rule(*[name.format(n=_n) for name in (
        "avg_pool{n}d", "max_pool{n}d", "max_pool{n}d_with_indices", "adaptive_avg_pool{n}d",
        "_adaptive_avg_pool{n}d", "adaptive_max_pool{n}d", "upsample_nearest{n}d",
        "_upsample_nearest_exact{n}d", "lp_pool{n}d", "fractional_max_pool{n}d",
        "reflection_pad{n}d", "replication_pad{n}d", "mkldnn_max_pool{n}d")])(_spatial(_n))
op_rule("upsample_linear1d")(_spatial(1))
op_rule("upsample_bilinear2d", "_upsample_bilinear2d_aa", "upsample_bicubic2d",
        "_upsample_bicubic2d_aa")(_spatial(2))
op_rule("upsample_trilinear3d")(_spatial(3))


@op_rule("grid_sampler_2d", "grid_sampler_3d", "grid_sampler")
def _grid_sample(ctx: RuleContext) -> list[list[Dim] | None]:
    dims = ctx.dims(ctx.node.args[0])
    ctx.block_value(ctx.node.args[1])
    shape = ctx.out_shape()
    return [list(dims[:2]) + [ctx.fresh(s) for s in shape[2:]]]
