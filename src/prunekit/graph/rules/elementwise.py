"""Rules for pointwise ops, reductions, factories and softmax."""

from __future__ import annotations

from collections.abc import Sequence

from ..labels import Dim
from .base import RuleContext, normalize_dim, op_rule

POINTWISE = [
    "add", "sub", "rsub", "mul", "div", "true_divide", "floor_divide", "remainder", "fmod",
    "maximum", "minimum", "pow", "atan2", "hypot", "lerp", "addcmul", "addcdiv",
    "eq", "ne", "lt", "gt", "le", "ge", "logical_and", "logical_or", "logical_xor",
    "logical_not", "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not",
    "where", "masked_fill", "clamp", "clamp_min", "clamp_max", "clip",
    "relu", "relu6", "gelu", "silu", "mish", "sigmoid", "tanh", "hardtanh", "hardswish",
    "hardsigmoid", "leaky_relu", "elu", "celu", "selu", "softplus", "softshrink",
    "hardshrink", "threshold", "log_sigmoid_forward", "_prelu_kernel", "glu_jvp",
    "abs", "neg", "exp", "exp2", "expm1", "log", "log1p", "log2", "log10", "sqrt", "rsqrt",
    "reciprocal", "sign", "sgn", "erf", "erfc", "erfinv", "sin", "cos", "tan", "asin",
    "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh", "floor", "ceil", "round",
    "trunc", "frac", "square", "nan_to_num", "isnan", "isinf", "isfinite", "signbit",
    "_to_copy", "clone", "alias", "detach", "lift_fresh", "copy", "copy_", "fill_", "zero_",
    "native_dropout", "dropout", "feature_dropout", "alpha_dropout", "_conj", "positive",
]


def broadcast_union(ctx: RuleContext, inputs: Sequence[Sequence[Dim]],
                    out_shape: Sequence[int]) -> list[Dim]:
    """Couple inputs dimension by dimension under broadcasting; return the output dims."""
    ndim = len(out_shape)
    result: list[Dim | None] = [None] * ndim
    for dims in inputs:
        offset = ndim - len(dims)
        for i, d in enumerate(dims):
            j = i + offset
            if d.size != out_shape[j] or (d.size == 1 and out_shape[j] == 1 and result[j] is not None):
                continue  # broadcast: no coupling along this dim
            if result[j] is None:
                result[j] = d
            else:
                ctx.union(result[j], d)  # type: ignore[arg-type]
                if d.channel and not result[j].channel:  # type: ignore[union-attr]
                    result[j] = Dim(result[j].ids, True)  # type: ignore[union-attr]
    return [d if d is not None else ctx.fresh(out_shape[j]) for j, d in enumerate(result)]


def _pointwise(ctx: RuleContext) -> list[list[Dim] | None]:
    inputs = ctx.tensor_inputs()
    outs: list[list[Dim] | None] = []
    primary: list[Dim] | None = None
    for k, ref in enumerate(ctx.node.outputs):
        if ref is None:
            outs.append(None)
            continue
        shape = ctx.trace.values[ref.index].shape
        if primary is not None and len(shape) == len(primary) and all(
                d.size == s for d, s in zip(primary, shape)):
            outs.append(primary)  # e.g. the dropout mask
            continue
        if k > 0:
            outs.append(ctx.fresh_like(shape))
            continue
        primary = broadcast_union(ctx, [ctx.dims(r) for r in inputs], shape)
        outs.append(primary)
    return outs


op_rule(*POINTWISE, *[n + "_" for n in POINTWISE if not n.endswith("_")])(_pointwise)


@op_rule("empty", "zeros", "ones", "full", "arange", "linspace", "logspace", "rand", "randn",
         "randint", "randperm", "scalar_tensor", "eye", "empty_strided", "new_zeros",
         "new_ones", "new_empty", "new_full", "new_empty_strided", "zeros_like", "ones_like",
         "empty_like", "full_like", "rand_like", "randn_like", "randint_like", "lift_fresh_copy",
         "bernoulli", "bernoulli_", "uniform_", "normal_", "random_", "exponential_",
         "tril_indices", "triu_indices", "_local_scalar_dense_placeholder")
def _factory(ctx: RuleContext) -> list[list[Dim] | None]:
    """Fresh values: not coupled to anything, never removable."""
    return ctx.fresh_outputs()


def _reduced_dims(ctx: RuleContext, ndim: int, dim_arg: int = 1) -> list[int]:
    dims = ctx.arg(dim_arg, "dim")
    if dims is None or isinstance(dims, (bool,)) or (isinstance(dims, (list, tuple)) and not dims):
        return list(range(ndim))
    if isinstance(dims, int):
        dims = [dims]
    return sorted(normalize_dim(d, ndim) for d in dims)


def _reduction(exact: bool, indices: bool = False, dim_arg: int = 1):
    """``dim_arg``: position of the ``dim`` argument (2 for norms, after the order ``p``)."""

    def rule(ctx: RuleContext) -> list[list[Dim] | None]:
        x = ctx.node.args[0]
        dims = ctx.dims(x)
        reduced = _reduced_dims(ctx, len(dims), dim_arg) \
            if not ctx.node.target.endswith(".default") or len(ctx.node.args) > 1 \
            else list(range(len(dims)))
        for r in reduced:
            if indices:
                ctx.block(dims[r])
            elif not exact:
                ctx.inexact(dims[r])
        outs: list[list[Dim] | None] = []
        for ref in ctx.node.outputs:
            if ref is None:
                outs.append(None)
                continue
            shape = ctx.trace.values[ref.index].shape
            kept = [d for i, d in enumerate(dims) if i not in reduced]
            if len(shape) == len(dims):  # keepdim
                kept = [ctx.fresh(1) if i in reduced else d for i, d in enumerate(dims)]
            if [d.size for d in kept] != list(shape):
                kept = ctx.fresh_like(shape)
            outs.append(kept)
        return outs

    return rule


op_rule("sum", "nansum")(_reduction(exact=True))
op_rule("mean", "nanmean", "amax", "amin", "var", "std", "var_mean", "std_mean", "logsumexp",
        "prod", "all", "any")(_reduction(exact=False))
op_rule("norm", "linalg_vector_norm")(_reduction(exact=False, dim_arg=2))  # (x, p, dim, keepdim)
op_rule("max.dim", "min.dim", "argmax", "argmin", "max.default", "min.default",
        "aten.max.dim", "aten.min.dim", "cumsum", "cumprod", "median", "mode", "kthvalue")(
    _reduction(exact=False, indices=True))


@op_rule("_softmax", "_log_softmax", "softmax", "log_softmax", "_safe_softmax")
def _softmax(ctx: RuleContext) -> list[list[Dim] | None]:
    x = ctx.node.args[0]
    dims = ctx.dims(x)
    ctx.inexact(dims[normalize_dim(ctx.arg(1, "dim"), len(dims))])
    return [dims]


@op_rule("tril", "triu")
def _positional(ctx: RuleContext) -> list[list[Dim] | None]:
    """Masks that depend on positions: the last two dims may not lose positions."""
    dims = ctx.dims(ctx.node.args[0])
    for d in dims[-2:]:
        ctx.block(d)
    return [dims]
