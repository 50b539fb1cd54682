"""Shape arithmetic on :class:`Ints`: the ops that compute a reshape target, a slice end or a
broadcast size from ``Shape``, evaluated on Python ints (symbolic ones when exported)."""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any

import torch

from .base import Ints

__all__ = ["INT_OPS", "as_ints", "is_int_like"]


def is_int_like(value: Any) -> bool:
    """A shape value, or a small integer constant that can join shape arithmetic."""
    if isinstance(value, Ints):
        return True
    return (isinstance(value, torch.Tensor) and value.ndim <= 1 and value.numel() <= 64
            and (not value.is_floating_point()) and not value.is_complex())


def as_ints(value: Any) -> Ints:
    """``value`` (Ints, an integer tensor, a list or an int) as :class:`Ints`."""
    if isinstance(value, Ints):
        return value
    if isinstance(value, torch.Tensor):
        data = value.tolist()
        return Ints((data,), True) if value.ndim == 0 else Ints(tuple(data))
    if isinstance(value, (list, tuple)):
        return Ints(tuple(value))
    return Ints((value,), True)


def _broadcast(op: Callable[[Any, Any], Any]) -> Callable[..., Ints]:
    def apply(a: Any, b: Any) -> Ints:
        x, y = as_ints(a), as_ints(b)
        if len(x.values) == 1 and len(y.values) != 1:
            xs, ys = x.values * len(y.values), y.values
        elif len(y.values) == 1 and len(x.values) != 1:
            xs, ys = x.values, y.values * len(x.values)
        else:
            xs, ys = x.values, y.values
        return Ints(tuple(op(p, q) for p, q in zip(xs, ys)), x.scalar and y.scalar)
    return apply


def _symbolic(*values: Any) -> bool:
    return any(isinstance(v, (torch.SymInt, torch.SymBool)) for v in values)


def _div(p: Any, q: Any) -> Any:
    """Integer division truncating toward zero, as ONNX does (sizes traced symbolically are
    never negative: floor division, without a guard)."""
    if _symbolic(p, q):
        return p // q
    if isinstance(p, bool) or isinstance(q, bool):
        return int(p) // int(q)
    quotient = p // q
    return quotient + 1 if (quotient < 0 and quotient * q != p) else quotient


def _mod(p: Any, q: Any) -> Any:
    return p % q


def _unsqueeze(x: Any, axes: Sequence[int] | None = None) -> Ints:
    return Ints(as_ints(x).values)  # 0-d -> [v] (only scalars are unsqueezed as Ints)


def _squeeze(x: Any, axes: Sequence[int] | None = None) -> Ints:
    value = as_ints(x)
    return Ints(value.values, len(value.values) == 1)


def _concat(*parts: Any, axis: int = 0) -> Ints:
    values: tuple[Any, ...] = ()
    for part in parts:
        values += as_ints(part).values
    return Ints(values)


def _gather(data: Any, indices: Any, axis: int = 0) -> Ints:
    values = as_ints(data).values
    index = as_ints(indices)
    picked = tuple(values[int(i)] for i in index.values)
    return Ints(picked, index.scalar)


def _slice(data: Any, starts: Any, ends: Any, axes: Any = None, steps: Any = None) -> Ints:
    values = as_ints(data).values
    start, end = int(as_ints(starts).values[0]), int(as_ints(ends).values[0])
    step = 1 if steps is None else int(as_ints(steps).values[0])
    return Ints(values[slice(start, end, step)])


def _identity(x: Any) -> Ints:
    return as_ints(x)


def _reshape(x: Any, shape: Any = None) -> Ints:
    value = as_ints(x)
    target = as_ints(shape).values if shape is not None else ()
    return Ints(value.values, len(target) == 0)


def _where(cond: Any, a: Any, b: Any) -> Ints:
    c, x, y = as_ints(cond), as_ints(a), as_ints(b)
    n = max(len(c.values), len(x.values), len(y.values))

    def wide(v: Ints) -> tuple[Any, ...]:
        return v.values * n if len(v.values) == 1 else v.values

    def pick(k: Any, p: Any, q: Any) -> Any:
        if isinstance(k, torch.SymBool):  # no guard on a traced size
            return torch.sym_ite(k, p, q)
        return p if k else q

    return Ints(tuple(pick(k, p, q) for k, p, q in zip(wide(c), wide(x), wide(y))),
                c.scalar and x.scalar and y.scalar)


def _reduce_prod(x: Any, axes: Any = None, keepdims: int = 1) -> Ints:
    total: Any = 1
    for v in as_ints(x).values:
        total = total * v
    return Ints((total,), not keepdims)


def _neg(x: Any) -> Ints:
    value = as_ints(x)
    return Ints(tuple(-v for v in value.values), value.scalar)


def _cast(x: Any, to: int = 7) -> Ints:
    return as_ints(x)


def _not(x: Any) -> Ints:
    value = as_ints(x)
    return Ints(tuple(torch.sym_not(v) if isinstance(v, torch.SymBool) else not v
                      for v in value.values), value.scalar)


INT_OPS: dict[str, Callable[..., Ints]] = {
    "Add": _broadcast(operator.add), "Sub": _broadcast(operator.sub),
    "Mul": _broadcast(operator.mul), "Div": _broadcast(_div), "Mod": _broadcast(_mod),
    "Max": _broadcast(max), "Min": _broadcast(min),
    "Equal": _broadcast(operator.eq), "Less": _broadcast(operator.lt),
    "Greater": _broadcast(operator.gt), "LessOrEqual": _broadcast(operator.le),
    "GreaterOrEqual": _broadcast(operator.ge),
    "Unsqueeze": _unsqueeze, "Squeeze": _squeeze, "Concat": _concat, "Gather": _gather,
    "Slice": _slice, "Identity": _identity, "Reshape": _reshape, "Where": _where,
    "ReduceProd": _reduce_prod, "Neg": _neg, "Cast": _cast, "Not": _not,
}
