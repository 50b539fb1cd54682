"""Output shapes of common ops on the ``meta`` device, without PyTorch's Python meta kernels.

Tracing and verifying run the model on shape-only ``meta`` tensors. For many ops PyTorch
computes those shapes in Python (reference decompositions with symbolic-shape checks):
a layer norm costs about 1 ms, a linear layer 0.5 ms, a convolution 70 µs, against a few
microseconds for the arithmetic itself. The functions here produce the same outputs (shape,
dtype, strides) for the plain cases: every tensor argument on ``meta``, contiguous, of one
floating dtype, with sizes that fit. Anything else (or sizes that do not fit, so that the
error is PyTorch's own) returns ``None`` and the op runs its real meta kernel.

:func:`meta_outputs` is the one entry point; ``tests/graph/test_meta_shapes.py`` checks every
function against the real kernel on the ops of several models.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

aten = torch.ops.aten

_FLOATING = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def _plain(*tensors: Any) -> bool:
    """All meta tensors, contiguous, of one floating dtype."""
    first = tensors[0]
    if not isinstance(first, torch.Tensor) or first.dtype not in _FLOATING:
        return False
    for t in tensors:
        if (not isinstance(t, torch.Tensor) or not t.is_meta or t.dtype != first.dtype
                or not t.is_contiguous()):
            return False
    return True


def _broadcast(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...] | None:
    n = max(len(a), len(b))
    a = (1,) * (n - len(a)) + tuple(a)
    b = (1,) * (n - len(b)) + tuple(b)
    out = []
    for x, y in zip(a, b):
        if x != y and x != 1 and y != 1:
            return None
        out.append(y if x == 1 else x)
    return tuple(out)


def _unary(x: Any, *_: Any, **__: Any) -> Any:
    return torch.empty_like(x) if _plain(x) else None


def _unary_inplace(x: Any, *_: Any, **__: Any) -> Any:
    return x if _plain(x) else None


def _softmax(x: Any, dim: int, third: Any = None, **kwargs: Any) -> Any:
    # _softmax(x, dim, half_to_float) and _safe_softmax(x, dim, dtype=None)
    if third or kwargs.get("dtype") is not None:
        return None
    return _unary(x)


def _binary(a: Any, b: Any, **kwargs: Any) -> Any:
    if not (isinstance(b, torch.Tensor) and a.dim() and b.dim() and _plain(a, b)):
        return None
    shape = _broadcast(a.shape, b.shape)
    return None if shape is None else a.new_empty(shape)


def _binary_inplace(a: Any, b: Any, **kwargs: Any) -> Any:
    if not (isinstance(b, torch.Tensor) and a.dim() and b.dim() and _plain(a, b)):
        return None
    return a if _broadcast(a.shape, b.shape) == tuple(a.shape) else None


def _with_scalar(a: Any, b: Any, **kwargs: Any) -> Any:
    if type(b) not in (int, float) or type(kwargs.get("alpha", 1)) not in (int, float):
        return None
    return _unary(a)


def _addmm(bias: Any, m1: Any, m2: Any, **kwargs: Any) -> Any:
    if not (isinstance(m1, torch.Tensor) and isinstance(m2, torch.Tensor)) \
            or m1.dim() != 2 or m2.dim() != 2 or m1.shape[1] != m2.shape[0]:
        return None
    # mat2 is usually a transposed weight: only its dtype and device matter
    if not (_plain(bias, m1) and m2.is_meta and m2.dtype == m1.dtype):
        return None
    out = (m1.shape[0], m2.shape[1])
    if _broadcast(bias.shape, out) != out or bias.dim() > 2:
        return None
    return m1.new_empty(out)


def _convolution(x: Any, weight: Any, bias: Any, stride: Sequence[int],
                 padding: Sequence[int], dilation: Sequence[int], transposed: bool,
                 output_padding: Sequence[int], groups: int) -> Any:
    if transposed or not _plain(x, weight) or x.dim() not in (3, 4, 5) \
            or weight.dim() != x.dim() or bias is not None and not _plain(bias, x):
        return None
    n = x.dim() - 2
    if not (len(stride) == len(padding) == len(dilation) == n) or groups < 1:
        return None
    if weight.shape[1] * groups != x.shape[1] or weight.shape[0] % groups:
        return None
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        return None
    spatial = []
    for size, k, s, p, d in zip(x.shape[2:], weight.shape[2:], stride, padding, dilation):
        out = (size + 2 * p - d * (k - 1) - 1) // s + 1
        if out <= 0 or s <= 0 or d <= 0 or p < 0:
            return None
        spatial.append(out)
    if not x.shape[1]:
        return None
    return x.new_empty((x.shape[0], weight.shape[0], *spatial))


def _layer_norm(x: Any, normalized_shape: Sequence[int], weight: Any, bias: Any,
                eps: float) -> Any:
    k = len(normalized_shape)
    if not _plain(x) or k == 0 or k > x.dim() or tuple(x.shape[-k:]) != tuple(normalized_shape):
        return None
    for t in (weight, bias):
        if t is not None and (not _plain(t, x) or tuple(t.shape) != tuple(normalized_shape)):
            return None
    if x.dtype not in (torch.float32, torch.float64):
        return None  # statistics of half inputs are float32
    stats = (*x.shape[:x.dim() - k], *([1] * k))
    return torch.empty_like(x), x.new_empty(stats), x.new_empty(stats)


def _mean_dim(x: Any, dim: Any, keepdim: bool = False, **kwargs: Any) -> Any:
    if not _plain(x) or kwargs.get("dtype") is not None or not dim or not x.dim():
        return None
    if x.dtype not in (torch.float32, torch.float64):
        return None
    rank = x.dim()
    try:
        reduced = {d % rank for d in dim if -rank <= d < rank}
    except TypeError:
        return None
    if len(reduced) != len(dim):
        return None
    shape = [1 if d in reduced else s for d, s in enumerate(x.shape)] if keepdim else \
        [s for d, s in enumerate(x.shape) if d not in reduced]
    return x.new_empty(shape)


def _batch_norm(x: torch.Tensor, weight: Any, bias: Any, mean: Any, var: Any, *rest: Any,
                **kwargs: Any) -> Any:
    """Batch norm: its output is shaped like its input; the saved statistics (unused in eval
    mode) come back empty. Parameters that do not fit raise here (a verification compares
    op outputs, and this output never changes shape when they do not fit)."""
    channels = x.shape[1] if x.dim() > 1 else x.shape[0]
    for t in (weight, bias, mean, var):
        if isinstance(t, torch.Tensor) and t.shape != (channels,):
            raise RuntimeError(f"batch norm over {channels} channels got a tensor of shape "
                               f"{tuple(t.shape)}")
    return torch.empty_like(x), x.new_empty(0), x.new_empty(0)


_SHORTCUTS: dict[Any, Callable[..., Any]] = {
    aten.native_batch_norm.default: _batch_norm,
    aten._native_batch_norm_legit_no_training.default: _batch_norm,
    aten.convolution.default: _convolution,
    aten.native_layer_norm.default: _layer_norm,
    aten.addmm.default: _addmm,
    aten.mean.dim: _mean_dim,
    aten._softmax.default: _softmax,
    aten._safe_softmax.default: _softmax,
    aten.add.Tensor: _binary,
    aten.sub.Tensor: _binary,
    aten.mul.Tensor: _binary,
    aten.add_.Tensor: _binary_inplace,
    aten.mul_.Tensor: _binary_inplace,
    aten.mul.Scalar: _with_scalar,
    aten.add.Scalar: _with_scalar,
    **{getattr(aten, name).default: _unary for name in (
        "gelu", "silu", "sigmoid", "relu", "tanh", "hardswish", "hardsigmoid")},
    **{getattr(aten, name).default: _unary_inplace for name in (
        "silu_", "relu_", "hardswish_", "hardsigmoid_", "sigmoid_", "gelu_")},
}


def meta_outputs(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The outputs of ``func(*args, **kwargs)`` on meta tensors, or ``None`` when the op
    must run its own meta kernel. Call it with no dispatch mode active."""
    shortcut = _SHORTCUTS.get(func)
    if shortcut is None or not args or not getattr(args[0], "is_meta", False):
        return None
    try:
        return shortcut(*args, **kwargs)
    except (TypeError, ValueError, IndexError, AttributeError):  # unexpected arguments
        return None
