"""Reductions, Softmax / LogSoftmax / Hardmax, ArgMax / ArgMin and TopK."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .base import NodeContext, OnnxOp, converter
from .ints import as_ints

__all__: list[str] = []

AXES_AS_INPUT = {"ReduceSum": 13}  # the others take axes as an input from opset 18


def _reduce_sum_square(x: torch.Tensor, dims: Any, keep: bool) -> torch.Tensor:
    return (x * x).sum(dim=dims, keepdim=keep)


def _reduce_l1(x: torch.Tensor, dims: Any, keep: bool) -> torch.Tensor:
    return x.abs().sum(dim=dims, keepdim=keep)


def _reduce_l2(x: torch.Tensor, dims: Any, keep: bool) -> torch.Tensor:
    return (x * x).sum(dim=dims, keepdim=keep).sqrt()


def _reduce_log_sum(x: torch.Tensor, dims: Any, keep: bool) -> torch.Tensor:
    return x.sum(dim=dims, keepdim=keep).log()


def _reduce_log_sum_exp(x: torch.Tensor, dims: Any, keep: bool) -> torch.Tensor:
    return torch.logsumexp(x, dim=dims, keepdim=keep)


def _reduce_prod(x: torch.Tensor, dims: Any, keep: bool) -> torch.Tensor:
    for d in sorted(dims, reverse=True):
        x = x.prod(dim=d, keepdim=keep)
    return x


def _reduce_mean(x: torch.Tensor, dims: Any, keep: bool) -> torch.Tensor:
    return x.mean(dim=dims, keepdim=keep)


def _reduce_sum(x: torch.Tensor, dims: Any, keep: bool) -> torch.Tensor:
    return x.sum(dim=dims, keepdim=keep)


def _reduce_max(x: torch.Tensor, dims: Any, keep: bool) -> torch.Tensor:
    return x.amax(dim=dims, keepdim=keep)


def _reduce_min(x: torch.Tensor, dims: Any, keep: bool) -> torch.Tensor:
    return x.amin(dim=dims, keepdim=keep)


REDUCE = {"ReduceMean": _reduce_mean, "ReduceSum": _reduce_sum, "ReduceMax": _reduce_max,
          "ReduceMin": _reduce_min, "ReduceProd": _reduce_prod, "ReduceL1": _reduce_l1,
          "ReduceL2": _reduce_l2, "ReduceSumSquare": _reduce_sum_square,
          "ReduceLogSum": _reduce_log_sum, "ReduceLogSumExp": _reduce_log_sum_exp}


class Reduce(OnnxOp):
    op_type = "Reduce"
    accepts_ints = True

    def __init__(self, op_type: str, axes: list[int] | None, keepdims: bool,
                 noop_with_empty_axes: bool) -> None:
        super().__init__()
        self.op_type = op_type
        self.axes, self.keepdims, self.noop = axes, keepdims, noop_with_empty_axes

    def compute(self, x: torch.Tensor, axes: Any = None) -> torch.Tensor:
        chosen = self.axes if self.axes is not None else (
            None if axes is None else list(as_ints(axes).values) if not isinstance(axes, list)
            else axes)
        if not chosen:
            if self.noop:
                return x
            chosen = list(range(x.ndim))
        dims = [int(a) % x.ndim for a in chosen]
        return REDUCE[self.op_type](x, dims, self.keepdims)


@converter(*REDUCE)
def _reduce(ctx: NodeContext) -> nn.Module:
    keep = bool(ctx.attr("keepdims", 1))
    noop = bool(ctx.attr("noop_with_empty_axes", 0))
    if ctx.opset < AXES_AS_INPUT.get(ctx.op_type, 18):
        axes = ctx.attr("axes")
        return ctx.bind(Reduce(ctx.op_type, None if axes is None else list(axes), keep, noop))
    return ctx.bind(Reduce(ctx.op_type, None, keep, noop), as_value=(1,))


class Softmax(OnnxOp):
    """Softmax / LogSoftmax / Hardmax along ``axis``; before opset 13 over the input
    flattened to 2-d at ``axis``."""

    def __init__(self, op_type: str, axis: int, coerce_2d: bool) -> None:
        super().__init__()
        self.op_type, self.axis, self.coerce_2d = op_type, axis, coerce_2d

    def _along(self, x: torch.Tensor, dim: int) -> torch.Tensor:
        if self.op_type == "Softmax":
            return torch.softmax(x, dim)
        if self.op_type == "LogSoftmax":
            return torch.log_softmax(x, dim)
        return F.one_hot(x.argmax(dim), x.shape[dim]).movedim(-1, dim).to(x.dtype)

    def compute(self, x: torch.Tensor) -> torch.Tensor:
        axis = self.axis % x.ndim
        if self.coerce_2d and axis != x.ndim - 1:
            flat = x.reshape(*x.shape[:axis], -1) if axis else x.reshape(1, -1)
            return self._along(flat, -1).reshape(x.shape)
        return self._along(x, axis)


@converter("Softmax", "LogSoftmax", "Hardmax")
def _softmax(ctx: NodeContext) -> nn.Module:
    legacy = ctx.opset < 13
    return ctx.bind(Softmax(ctx.op_type, int(ctx.attr("axis", 1 if legacy else -1)), legacy))


class ArgExtreme(OnnxOp):
    def __init__(self, op_type: str, axis: int, keepdims: bool, last: bool) -> None:
        super().__init__()
        self.op_type, self.axis, self.keepdims, self.last = op_type, axis, keepdims, last

    def compute(self, x: torch.Tensor) -> torch.Tensor:
        axis = self.axis % x.ndim
        if self.last:
            flipped = x.flip(axis)
            found = flipped.argmax(axis, keepdim=self.keepdims) if self.op_type == "ArgMax" \
                else flipped.argmin(axis, keepdim=self.keepdims)
            return x.shape[axis] - 1 - found
        if self.op_type == "ArgMax":
            return x.argmax(axis, keepdim=self.keepdims)
        return x.argmin(axis, keepdim=self.keepdims)


@converter("ArgMax", "ArgMin")
def _arg(ctx: NodeContext) -> nn.Module:
    return ctx.bind(ArgExtreme(ctx.op_type, int(ctx.attr("axis", 0)),
                               bool(ctx.attr("keepdims", 1)),
                               bool(ctx.attr("select_last_index", 0))))


class TopK(OnnxOp):
    op_type = "TopK"
    accepts_ints = True

    def __init__(self, axis: int, largest: bool, ordered: bool, k: int | None) -> None:
        super().__init__()
        self.axis, self.largest, self.ordered, self.k = axis, largest, ordered, k

    def compute(self, x: torch.Tensor, k: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
        count = self.k if self.k is not None else as_ints(k).values[0]
        values, indices = torch.topk(x, int(count), dim=self.axis, largest=self.largest,
                                     sorted=self.ordered)
        return values, indices


@converter("TopK")
def _topk(ctx: NodeContext) -> nn.Module:
    k = int(ctx.attr("k")) if ctx.opset < 10 else None
    return ctx.bind(TopK(int(ctx.attr("axis", -1)), bool(ctx.attr("largest", 1)),
                         bool(ctx.attr("sorted", 1)), k), as_value=(1,))
