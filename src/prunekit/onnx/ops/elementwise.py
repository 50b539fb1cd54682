"""Element-wise ops: arithmetic, comparisons, activations, casts, Where, Clip, Identity."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .base import Function, NodeContext, OnnxOp, converter, torch_dtype

__all__: list[str] = []


def _div(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if a.is_floating_point() or b.is_floating_point():
        return torch.div(a, b)
    return torch.div(a, b, rounding_mode="trunc")


def _pow(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    out = torch.pow(a, b)
    return out.to(a.dtype) if out.dtype != a.dtype else out


def _mod(a: torch.Tensor, b: torch.Tensor, fmod: int = 0) -> torch.Tensor:
    return torch.fmod(a, b) if fmod else torch.remainder(a, b)


def _fold(fn: Any) -> Any:
    def apply(*xs: torch.Tensor) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = fn(out, x)
        return out
    return apply


def _sum(*xs: torch.Tensor) -> torch.Tensor:
    out = xs[0]
    for x in xs[1:]:
        out = out + x
    return out


def _mean(*xs: torch.Tensor) -> torch.Tensor:
    return _sum(*xs) / len(xs)


def _maximum(*xs: torch.Tensor) -> torch.Tensor:
    out = xs[0]
    for x in xs[1:]:
        out = torch.maximum(out, x)
    return out


def _minimum(*xs: torch.Tensor) -> torch.Tensor:
    out = xs[0]
    for x in xs[1:]:
        out = torch.minimum(out, x)
    return out


def _xor(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.logical_xor(a, b)


Op = Callable[..., torch.Tensor]

BINARY: dict[str, Op] = {
    "Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Div": _div, "Pow": _pow,
    "Equal": torch.eq, "Less": torch.lt, "Greater": torch.gt, "LessOrEqual": torch.le,
    "GreaterOrEqual": torch.ge, "And": torch.logical_and, "Or": torch.logical_or, "Xor": _xor}
VARIADIC: dict[str, Op] = {"Max": _maximum, "Min": _minimum, "Sum": _sum, "Mean": _mean}
UNARY: dict[str, Op] = {
    "Neg": torch.neg, "Abs": torch.abs, "Exp": torch.exp, "Log": torch.log,
    "Sqrt": torch.sqrt, "Reciprocal": torch.reciprocal, "Floor": torch.floor,
    "Ceil": torch.ceil, "Round": torch.round, "Sign": torch.sign, "Sin": torch.sin,
    "Cos": torch.cos, "Tan": torch.tan, "Asin": torch.asin, "Acos": torch.acos,
    "Atan": torch.atan, "Sinh": torch.sinh, "Cosh": torch.cosh, "Tanh": torch.tanh,
    "Sigmoid": torch.sigmoid, "Relu": torch.relu, "Erf": torch.erf, "Not": torch.logical_not,
    "Softsign": F.softsign, "Mish": F.mish, "IsNaN": torch.isnan, "HardSwish": F.hardswish}


@converter(*BINARY)
def _binary(ctx: NodeContext) -> nn.Module:
    return ctx.bind(Function(ctx.op_type, BINARY[ctx.op_type]))


@converter("Mod")
def _modulo(ctx: NodeContext) -> nn.Module:
    return ctx.bind(Function("Mod", _mod, fmod=int(ctx.attr("fmod", 0))))


@converter(*VARIADIC)
def _variadic(ctx: NodeContext) -> nn.Module:
    return ctx.bind(Function(ctx.op_type, VARIADIC[ctx.op_type]))


@converter(*UNARY)
def _unary(ctx: NodeContext) -> nn.Module:
    return ctx.bind(Function(ctx.op_type, UNARY[ctx.op_type]))


def _leaky_relu(x: torch.Tensor, alpha: float) -> torch.Tensor:
    return F.leaky_relu(x, alpha)


def _elu(x: torch.Tensor, alpha: float) -> torch.Tensor:
    return F.elu(x, alpha)


def _celu(x: torch.Tensor, alpha: float) -> torch.Tensor:
    return F.celu(x, alpha)


def _selu(x: torch.Tensor, alpha: float, gamma: float) -> torch.Tensor:
    return gamma * torch.where(x > 0, x, alpha * (torch.exp(x) - 1))


def _hard_sigmoid(x: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    return torch.clamp(alpha * x + beta, 0.0, 1.0)


def _softplus(x: torch.Tensor) -> torch.Tensor:
    return F.softplus(x)


def _gelu(x: torch.Tensor, approximate: str) -> torch.Tensor:
    return F.gelu(x, approximate=approximate)


def _thresholded_relu(x: torch.Tensor, alpha: float) -> torch.Tensor:
    return torch.where(x > alpha, x, torch.zeros_like(x))


def _isinf(x: torch.Tensor, detect_positive: int, detect_negative: int) -> torch.Tensor:
    return (torch.isposinf(x) & bool(detect_positive)) | (torch.isneginf(x) & bool(detect_negative))


def _prelu(x: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:
    return torch.where(x >= 0, x, x * slope)


@converter("LeakyRelu", "Elu", "Celu", "Selu", "HardSigmoid", "Softplus", "Gelu",
           "ThresholdedRelu", "IsInf", "PRelu")
def _activation(ctx: NodeContext) -> nn.Module:
    op, a = ctx.op_type, ctx.attr
    table: dict[str, tuple[Any, dict[str, Any]]] = {
        "LeakyRelu": (_leaky_relu, {"alpha": float(a("alpha", 0.01))}),
        "Elu": (_elu, {"alpha": float(a("alpha", 1.0))}),
        "Celu": (_celu, {"alpha": float(a("alpha", 1.0))}),
        "Selu": (_selu, {"alpha": float(a("alpha", 1.67326319217681884765625)),
                         "gamma": float(a("gamma", 1.05070102214813232421875))}),
        "HardSigmoid": (_hard_sigmoid, {"alpha": float(a("alpha", 0.2)),
                                        "beta": float(a("beta", 0.5))}),
        "Softplus": (_softplus, {}),
        "Gelu": (_gelu, {"approximate": str(a("approximate", "none"))}),
        "ThresholdedRelu": (_thresholded_relu, {"alpha": float(a("alpha", 1.0))}),
        "IsInf": (_isinf, {"detect_positive": int(a("detect_positive", 1)),
                           "detect_negative": int(a("detect_negative", 1))}),
        "PRelu": (_prelu, {}),
    }
    fn, kwargs = table[op]
    return ctx.bind(Function(op, fn, **kwargs))


def _cast(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return x.to(dtype)


def _cast_like(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return x.to(like.dtype)


@converter("Cast")
def _cast_op(ctx: NodeContext) -> nn.Module:
    return ctx.bind(Function("Cast", _cast, dtype=torch_dtype(int(ctx.attr("to")))))


@converter("CastLike")
def _cast_like_op(ctx: NodeContext) -> nn.Module:
    return ctx.bind(Function("CastLike", _cast_like), trainable=lambda _i, _t: False)


def _where(cond: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where(cond, a, b)


@converter("Where")
def _where_op(ctx: NodeContext) -> nn.Module:
    return ctx.bind(Function("Where", _where))


def _clip(x: torch.Tensor, low: Any = None, high: Any = None) -> torch.Tensor:
    return torch.clamp(x, low, high)


@converter("Clip")
def _clip_op(ctx: NodeContext) -> nn.Module:
    if ctx.opset < 11:
        return ctx.bind(Function("Clip", _clip, low=ctx.attr("min"), high=ctx.attr("max")))
    return ctx.bind(Function("Clip", _clip), trainable=lambda _i, _t: False)


def _identity(x: Any, *_rest: Any) -> Any:
    return x


class Dropout(OnnxOp):
    """Inference: the input unchanged (and an all-true mask when the graph reads one)."""

    op_type = "Dropout"

    def __init__(self, with_mask: bool) -> None:
        super().__init__()
        self.with_mask = with_mask

    def compute(self, x: torch.Tensor, *_rest: Any) -> Any:
        if self.with_mask:
            return x, torch.ones_like(x, dtype=torch.bool)
        return x


@converter("Identity")
def _identity_op(ctx: NodeContext) -> nn.Module:
    module = Function("Identity", _identity)
    module.accepts_ints = True
    return ctx.bind(module, trainable=lambda _i, _t: False)


@converter("Dropout")
def _dropout(ctx: NodeContext) -> nn.Module:
    with_mask = len(ctx.node.output) > 1 and bool(ctx.node.output[1])
    return ctx.bind(Dropout(with_mask), trainable=lambda _i, _t: False)
