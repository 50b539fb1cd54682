"""torchvision's Swin attention (``ShiftedWindowAttention`` and its V2): heads and stage width.

Its forward calls a function that splits the q/k/v projection with ``C // num_heads``, ``C``
being the width of the *input*. So the attention's inner width is tied to the stage width it
reads, exactly as in ``nn.MultiheadAttention``: pruning whole heads (``split_units="outer"``)
removes each head's slice of the stage's residual features with it (exact); pruning head-size
positions (``"inner"``) removes position ``d`` of every head (inexact: the softmax scale
depends on the head size). Per-head parameters (relative position bias table, V2's logit
scale and bias MLP output) follow the heads; the module's ``num_heads`` is updated.
"""

from __future__ import annotations

from typing import Any


from ..labels import Dim
from .attention import _unit_reps
from .base import Handler, ModuleShapes, OpaqueContext, register_handler_by_name

#: parameters with one entry per head: (local name, dim holding the heads)
_PER_HEAD = (("relative_position_bias_table", 1), ("logit_scale", 0), ("cpb_mlp.2.weight", 0))


class WindowAttentionHandler(Handler):
    opaque = True

    def couple(self, ctx: OpaqueContext) -> list[list[Dim] | None]:
        module: Any = ctx.module
        heads = int(module.num_heads)
        x, qkv = ctx.need_input(0, "x"), ctx.need_param("qkv.weight")
        proj = ctx.need_param("proj.weight")
        width = x[-1].size
        mode = "heads" if ctx.split_units == "outer" else "head_dim"
        units = _unit_reps(ctx, x[-1].ids, heads, mode)
        ctx.union(x[-1], qkv[1])
        runs = [qkv[0].ids[s * width:(s + 1) * width] for s in range(3)]
        runs += [proj[1].ids, proj[0].ids]
        handled = {"qkv.weight", "proj.weight"}
        for local, parts in (("qkv.bias", 3), ("proj.bias", 1)):
            bias = ctx.param(local)
            if bias is not None:
                runs += [bias[0].ids[s * width:(s + 1) * width] for s in range(parts)]
                handled.add(local)
        for run in runs:
            ctx.space.union(units, _unit_reps(ctx, run, heads, mode))
        if mode == "heads":
            for local, dim in _PER_HEAD:
                dims = ctx.param(local)
                if dims is not None:
                    ctx.space.union(units, dims[dim].ids)
                    for d, other in enumerate(dims):
                        if d != dim:
                            ctx.block(other)
                    handled.add(local)
        else:
            ctx.space.mark_inexact(units)
        for local in ctx.node.params:
            if local not in handled:  # position tables and the bias MLP's hidden layer stay
                for kept in ctx.param(local) or []:
                    ctx.block(kept)
        return [list(x[:-1]) + [proj[0]]]

    def attributes(self, module: Any, shapes: ModuleShapes) -> dict[str, Any]:
        width = shapes.params.get("proj.weight", (module.proj.out_features,))[0]
        head_size = module.qkv.in_features // module.num_heads
        if shapes.split_units == "outer" and width % head_size == 0:
            return {"num_heads": width // head_size}
        return {}


for _name in ("ShiftedWindowAttention", "ShiftedWindowAttentionV2"):
    register_handler_by_name(f"torchvision.models.swin_transformer.{_name}",
                             handler=WindowAttentionHandler())
