"""Layers with weights: Conv, ConvTranspose, Gemm and MatMul (as ``nn.Linear`` when the
weight is a constant), the norms, pooling and Einsum.

Constant weights become parameters of the standard ``torch.nn`` layers, so that the
pruning engine slices them like those of any PyTorch model.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import Function, NodeContext, OnnxOp, converter

__all__ = ["Padded", "TransposedInput", "linear_from_matmul"]

#: layer classes by spatial rank (called with ONNX's list-valued kernel attributes)
CONV: dict[int, Callable[..., nn.Module]] = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
CONV_T: dict[int, Callable[..., nn.Module]] = {
    1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
BATCH_NORM = {0: nn.BatchNorm1d, 1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}


def _same_pads(size: int, kernel: int, stride: int, dilation: int, upper: bool) -> tuple[int, int]:
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    small = total // 2
    return (small, total - small) if upper else (total - small, small)


class Padded(nn.Module):
    """A layer behind explicit padding: ONNX pads that differ at the two ends of an axis,
    or ``auto_pad`` SAME_UPPER / SAME_LOWER (computed from the input size)."""

    def __init__(self, layer: nn.Module, pads: list[int] | None, auto_pad: str,
                 kernel: list[int], strides: list[int], dilations: list[int],
                 value: float = 0.0) -> None:
        super().__init__()
        self.layer = layer
        self.pads = pads
        self.auto_pad = auto_pad
        self.kernel, self.strides, self.dilations = kernel, strides, dilations
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial = len(self.kernel)
        if self.pads is not None:
            begins, ends = self.pads[:spatial], self.pads[spatial:]
        else:
            pairs = [_same_pads(int(x.shape[2 + i]), self.kernel[i], self.strides[i],
                                self.dilations[i], self.auto_pad == "SAME_UPPER")
                     for i in range(spatial)]
            begins, ends = [p[0] for p in pairs], [p[1] for p in pairs]
        torch_pads: list[int] = []
        for b, e in zip(reversed(begins), reversed(ends)):
            torch_pads += [b, e]
        return self.layer(F.pad(x, torch_pads, value=self.value))


def _window(ctx: NodeContext, spatial: int) -> tuple[list[int], list[int], list[int], Any]:
    """strides, dilations, symmetric padding (or None) and the padding wrapper arguments."""
    strides = list(ctx.attr("strides", [1] * spatial))
    dilations = list(ctx.attr("dilations", [1] * spatial))
    auto_pad = str(ctx.attr("auto_pad", "NOTSET"))
    pads = list(ctx.attr("pads", [0] * (2 * spatial)))
    if auto_pad == "VALID":
        return strides, dilations, [0] * spatial, None
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        return strides, dilations, [0] * spatial, (None, auto_pad)
    if pads[:spatial] == pads[spatial:]:
        return strides, dilations, pads[:spatial], None
    return strides, dilations, [0] * spatial, (pads, auto_pad)


def _conv_weight(ctx: NodeContext, table: dict[int, Any], what: str) -> tuple[torch.Tensor, int]:
    """The constant weight of a (transposed) convolution and its number of spatial dims."""
    weight = ctx.static(1, "weight")
    spatial = weight.ndim - 2
    if spatial not in table:
        raise ctx.fail(f"{spatial}-d {what}")
    return weight, spatial


@converter("Conv")
def _conv(ctx: NodeContext) -> nn.Module:
    weight, spatial = _conv_weight(ctx, CONV, "convolution")
    kernel = list(weight.shape[2:])
    groups = int(ctx.attr("group", 1))
    strides, dilations, padding, wrap = _window(ctx, spatial)
    bias = ctx.static(2, "bias") if ctx.has(2) else None
    layer = CONV[spatial](weight.shape[1] * groups, weight.shape[0], kernel, stride=strides,
                          padding=padding, dilation=dilations, groups=groups,
                          bias=bias is not None)
    layer.weight = ctx.parameter(1)
    if bias is not None:
        layer.bias = ctx.parameter(2)
    if wrap is None:
        return layer
    return Padded(layer, wrap[0], wrap[1], kernel, strides, dilations)


@converter("ConvTranspose")
def _conv_transpose(ctx: NodeContext) -> nn.Module:
    weight, spatial = _conv_weight(ctx, CONV_T, "transposed convolution")
    if ctx.attr("output_shape") is not None or str(ctx.attr("auto_pad", "NOTSET")) != "NOTSET":
        raise ctx.fail("output_shape / auto_pad are not supported; give explicit pads")
    pads = list(ctx.attr("pads", [0] * (2 * spatial)))
    if pads[:spatial] != pads[spatial:]:
        raise ctx.fail("asymmetric pads are not supported for ConvTranspose")
    groups = int(ctx.attr("group", 1))
    layer = CONV_T[spatial](weight.shape[0], weight.shape[1] * groups, list(weight.shape[2:]),
                            stride=list(ctx.attr("strides", [1] * spatial)),
                            padding=pads[:spatial],
                            output_padding=list(ctx.attr("output_padding", [0] * spatial)),
                            dilation=list(ctx.attr("dilations", [1] * spatial)),
                            groups=groups, bias=ctx.has(2))
    layer.weight = ctx.parameter(1)
    if ctx.has(2):
        layer.bias = ctx.parameter(2)
    return layer


class TransposedInput(nn.Module):
    """A Gemm with ``transA=1``: the input is transposed before its ``nn.Linear``."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.linear = linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.transpose(0, 1))


def _gemm(a: torch.Tensor, b: torch.Tensor, c: Any = None, *, alpha: float, beta: float,
          trans_a: int, trans_b: int) -> torch.Tensor:
    out = alpha * torch.matmul(a.t() if trans_a else a, b.t() if trans_b else b)
    return out if c is None else out + beta * c


@converter("Gemm")
def _gemm_op(ctx: NodeContext) -> nn.Module:
    alpha, beta = float(ctx.attr("alpha", 1.0)), float(ctx.attr("beta", 1.0))
    trans_a, trans_b = int(ctx.attr("transA", 0)), int(ctx.attr("transB", 0))
    bias = ctx.static(2) if ctx.is_static(2) else None
    vector_bias = bias is not None and (bias.ndim == 1 or (bias.ndim == 2 and bias.shape[0] == 1))
    if ctx.is_static(1) and (not ctx.has(2) or vector_bias) and not ctx.is_static(0):
        b = ctx.static(1)
        weight = (b if trans_b else b.t()) * alpha
        layer = nn.Linear(weight.shape[1], weight.shape[0], bias=ctx.has(2))
        layer.weight = ctx.parameter(1, weight) if (alpha != 1.0 or not trans_b) \
            else ctx.parameter(1)
        if bias is not None:
            scaled = (bias.reshape(-1) * beta).expand(weight.shape[0])
            layer.bias = ctx.parameter(2, scaled) if (beta != 1.0 or bias.ndim != 1 or
                                                      bias.numel() != weight.shape[0]) \
                else ctx.parameter(2)
        return TransposedInput(layer) if trans_a else layer
    return ctx.bind(Function("Gemm", _gemm, alpha=alpha, beta=beta, trans_a=trans_a,
                             trans_b=trans_b))


def linear_from_matmul(ctx: NodeContext, bias: torch.Tensor | None) -> nn.Module:
    """``MatMul(x, W)`` (+ ``Add(., b)`` fused by the caller) as ``nn.Linear``."""
    weight = ctx.static(1)
    layer = nn.Linear(weight.shape[0], weight.shape[1], bias=bias is not None)
    layer.weight = ctx.parameter(1, weight.t())
    if bias is not None:
        layer.bias = nn.Parameter(bias.detach().clone().reshape(-1).expand(weight.shape[1])
                                  .contiguous())
    return layer


def _matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.matmul(a, b)


@converter("MatMul")
def _matmul_op(ctx: NodeContext) -> nn.Module:
    if ctx.is_static(1) and ctx.static(1).ndim == 2 and not ctx.is_static(0) \
            and ctx.static(1).is_floating_point():
        return linear_from_matmul(ctx, None)
    return ctx.bind(Function("MatMul", _matmul))


@converter("BatchNormalization")
def _batch_norm(ctx: NodeContext) -> nn.Module:
    if int(ctx.attr("training_mode", 0)):
        raise ctx.fail("training_mode=1 (export the model in inference mode)")
    rank = len(ctx.example_shape(0))
    scale = ctx.static(1, "scale")
    layer = BATCH_NORM[max(rank - 2, 0) if rank >= 2 else 0](
        scale.shape[0], eps=float(ctx.attr("epsilon", 1e-5)))
    if rank > 5:
        raise ctx.fail(f"rank-{rank} input")
    layer.weight = ctx.parameter(1)
    layer.bias = ctx.parameter(2)
    layer.get_buffer("running_mean").copy_(ctx.static(3, "mean"))
    layer.get_buffer("running_var").copy_(ctx.static(4, "var"))
    return layer.eval()


@converter("LayerNormalization")
def _layer_norm(ctx: NodeContext) -> nn.Module:
    if len(ctx.node.output) > 1 and any(ctx.node.output[1:]):
        raise ctx.fail("the mean / inverse-std outputs are read by the graph")
    shape = ctx.example_shape(0)
    axis = int(ctx.attr("axis", -1)) % len(shape)
    normalized = list(shape[axis:])
    scale = ctx.static(1, "scale")
    layer = nn.LayerNorm(normalized, eps=float(ctx.attr("epsilon", 1e-5)), bias=ctx.has(2))
    layer.weight = ctx.parameter(1) if list(scale.shape) == normalized \
        else ctx.parameter(1, scale.expand(normalized).contiguous())
    if ctx.has(2):
        b = ctx.static(2, "bias")
        layer.bias = ctx.parameter(2) if list(b.shape) == normalized \
            else ctx.parameter(2, b.expand(normalized).contiguous())
    return layer


@converter("InstanceNormalization")
def _instance_norm(ctx: NodeContext) -> nn.Module:
    rank = len(ctx.example_shape(0))
    kind = {3: nn.InstanceNorm1d, 4: nn.InstanceNorm2d, 5: nn.InstanceNorm3d}.get(rank)
    if kind is None:
        raise ctx.fail(f"rank-{rank} input")
    scale = ctx.static(1, "scale")
    layer = kind(scale.shape[0], eps=float(ctx.attr("epsilon", 1e-5)), affine=True)
    layer.weight = ctx.parameter(1)
    layer.bias = ctx.parameter(2)
    return layer


@converter("GroupNormalization")
def _group_norm(ctx: NodeContext) -> nn.Module:
    groups = int(ctx.attr("num_groups"))
    channels = ctx.example_shape(0)[1]
    scale = ctx.static(1, "scale")
    if scale.numel() != channels:
        raise ctx.fail("scale per group (opset 18-20 form); re-export at opset 21")
    layer = nn.GroupNorm(groups, channels, eps=float(ctx.attr("epsilon", 1e-5)))
    layer.weight = ctx.parameter(1)
    layer.bias = ctx.parameter(2)
    return layer


class Pool(OnnxOp):
    """MaxPool / AveragePool / LpPool over 1-3 spatial dims."""

    def __init__(self, op_type: str, kernel: list[int], strides: list[int], padding: list[int],
                 dilations: list[int], ceil_mode: bool, count_include_pad: bool,
                 pads: list[int] | None, auto_pad: str) -> None:
        super().__init__()
        self.op_type = op_type
        self.kernel, self.strides, self.padding = kernel, strides, padding
        self.dilations, self.ceil_mode = dilations, ceil_mode
        self.count_include_pad = count_include_pad
        self.pads, self.auto_pad = pads, auto_pad

    def compute(self, x: torch.Tensor) -> torch.Tensor:
        spatial = len(self.kernel)
        if self.pads is not None or self.auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            pad_value = -math.inf if self.op_type == "MaxPool" else 0.0
            x = Padded(nn.Identity(), self.pads, self.auto_pad, self.kernel, self.strides,
                       self.dilations, pad_value)(x)
        if self.op_type == "MaxPool":
            max_pool: Callable[..., Tensor] = {1: F.max_pool1d, 2: F.max_pool2d,
                                               3: F.max_pool3d}[spatial]
            return max_pool(x, self.kernel, self.strides, self.padding, self.dilations,
                      ceil_mode=self.ceil_mode)
        avg_pool: Callable[..., Tensor] = {1: F.avg_pool1d, 2: F.avg_pool2d,
                                           3: F.avg_pool3d}[spatial]
        return avg_pool(x, self.kernel, self.strides, self.padding, ceil_mode=self.ceil_mode,
                  count_include_pad=self.count_include_pad)


@converter("MaxPool", "AveragePool")
def _pool(ctx: NodeContext) -> nn.Module:
    if len(ctx.node.output) > 1 and ctx.node.output[1]:
        raise ctx.fail("the Indices output is read by the graph")
    if int(ctx.attr("storage_order", 0)):
        raise ctx.fail("storage_order=1")
    kernel = list(ctx.attr("kernel_shape"))
    spatial = len(kernel)
    strides, dilations, padding, wrap = _window(ctx, spatial)
    if ctx.op_type == "AveragePool" and dilations != [1] * spatial:
        raise ctx.fail("dilated average pooling")
    count_pad = bool(ctx.attr("count_include_pad", 0))
    if wrap is not None and ctx.op_type == "AveragePool" and not count_pad:
        raise ctx.fail("asymmetric / SAME padding with count_include_pad=0")
    pool = Pool(ctx.op_type, kernel, strides, padding, dilations,
                bool(ctx.attr("ceil_mode", 0)), count_pad,
                None if wrap is None else wrap[0], "NOTSET" if wrap is None else wrap[1])
    return ctx.bind(pool)


def _global_avg(x: torch.Tensor) -> torch.Tensor:
    return x.mean(dim=tuple(range(2, x.ndim)), keepdim=True)


def _global_max(x: torch.Tensor) -> torch.Tensor:
    return x.amax(dim=tuple(range(2, x.ndim)), keepdim=True)


@converter("GlobalAveragePool", "GlobalMaxPool")
def _global_pool(ctx: NodeContext) -> nn.Module:
    fn = _global_avg if ctx.op_type == "GlobalAveragePool" else _global_max
    return ctx.bind(Function(ctx.op_type, fn))


def _einsum(*xs: torch.Tensor, equation: str) -> torch.Tensor:
    return torch.einsum(equation, *xs)


@converter("Einsum")
def _einsum_op(ctx: NodeContext) -> nn.Module:
    return ctx.bind(Function("Einsum", _einsum, equation=str(ctx.attr("equation"))))
