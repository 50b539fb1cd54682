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


def _plain(*tensors: Any, contiguous: bool = True) -> bool:
    """All meta tensors of one floating dtype, and contiguous (unless ``contiguous=False``)."""
    first = tensors[0]
    if not isinstance(first, torch.Tensor) or first.dtype not in _FLOATING:
        return False
    for t in tensors:
        if (not isinstance(t, torch.Tensor) or not t.is_meta or t.dtype != first.dtype
                or contiguous and not t.is_contiguous()):
            return False
    return True


def _dense(t: torch.Tensor) -> bool:
    """A permutation of a contiguous layout (no gaps, no overlaps, no broadcast strides)."""
    expected = 1
    for stride, size in sorted(zip(t.stride(), t.shape)):
        if size != 1 and stride != expected:
            return False
        expected *= size
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


def _new_empty(x: Any, shape: Sequence[int]) -> Any:
    """``x.new_empty(shape)`` without the Python decomposition ``new_empty`` runs on meta."""
    return torch.empty(shape, dtype=x.dtype, device=x.device)


def _unary(x: Any, *_: Any, **__: Any) -> Any:
    # a dense input's layout is kept (as ``empty_like`` keeps it)
    if not (_plain(x, contiguous=False) and _dense(x)):
        return None
    return _new_empty(x, x.shape) if x.stride() == _contiguous_strides(x.shape) else \
        torch.empty_like(x)


def _contiguous_strides(shape: Sequence[int]) -> tuple[int, ...]:
    strides = [1] * len(shape)
    for i in range(len(shape) - 2, -1, -1):
        strides[i] = strides[i + 1] * max(shape[i + 1], 1)
    return tuple(strides)


def _unary_inplace(x: Any, *_: Any, **__: Any) -> Any:
    return x if _plain(x, contiguous=False) else None


def _softmax(x: Any, dim: int, third: Any = None, **kwargs: Any) -> Any:
    # _softmax(x, dim, half_to_float) and _safe_softmax(x, dim, dtype=None)
    if third or kwargs.get("dtype") is not None:
        return None
    return _unary(x)


def _binary(a: Any, b: Any, **kwargs: Any) -> Any:
    if not (isinstance(b, torch.Tensor) and a.dim() and b.dim()
            and _plain(a, b, contiguous=False)):
        return None
    shape = _broadcast(a.shape, b.shape)
    if shape is None:
        return None
    if a.is_contiguous() and b.is_contiguous():
        return _new_empty(a, shape)
    if not (_dense(a) and _dense(b)):
        return None
    return torch.empty_strided(shape, _elementwise_strides(shape, (a, b)), dtype=a.dtype,
                               device="meta")


def _elementwise_strides(shape: tuple[int, ...], operands: Sequence[torch.Tensor]) -> list[int]:
    """The output strides TensorIterator picks: the dims ordered by the operands' strides
    (the first operand that tells two dims apart decides; broadcast dims tell nothing), then
    laid out densely in that order."""
    n = len(shape)
    strides = []
    for t in operands:
        pad = n - t.dim()
        strides.append([0] * pad + [0 if size == 1 and shape[pad + i] != 1 else st
                                    for i, (size, st) in enumerate(zip(t.shape, t.stride()))])

    def should_swap(d0: int, d1: int) -> int:
        for st in strides:
            s0, s1 = st[d0], st[d1]
            if s0 == 0 or s1 == 0:
                continue
            if s0 != s1:
                return -1 if s0 < s1 else 1
            if shape[d0] > shape[d1]:
                return 1
        return 0

    perm = list(range(n - 1, -1, -1))  # position 0 is the fastest-moving dim
    for i in range(1, n):
        d1 = i
        for d0 in range(i - 1, -1, -1):
            comparison = should_swap(perm[d0], perm[d1])
            if comparison > 0:
                perm[d0], perm[d1] = perm[d1], perm[d0]
                d1 = d0
            elif comparison < 0:
                break
    out = [0] * n
    step = 1
    for dim in perm:
        out[dim] = step
        step *= shape[dim]
    return out


def _binary_inplace(a: Any, b: Any, **kwargs: Any) -> Any:
    if not (isinstance(b, torch.Tensor) and a.dim() and b.dim()
            and _plain(a, b, contiguous=False) and _dense(b)):
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
    return _new_empty(m1, out)


def _convolution(x: Any, weight: Any, bias: Any, stride: Sequence[int],
                 padding: Sequence[int], dilation: Sequence[int], transposed: bool,
                 output_padding: Sequence[int], groups: int) -> Any:
    # the meta kernel's output is contiguous whatever the layout of its inputs
    tensors = (x, weight) if bias is None else (x, weight, bias)
    if transposed or not _plain(*tensors, contiguous=False) \
            or x.dim() not in (3, 4, 5) or weight.dim() != x.dim():
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
    return _new_empty(x, (x.shape[0], weight.shape[0], *spatial))


def _layer_norm(x: Any, normalized_shape: Sequence[int], weight: Any, bias: Any,
                eps: float) -> Any:
    # the meta kernel's outputs are contiguous, whatever the input's (dense) layout
    k = len(normalized_shape)
    if not (_plain(x, contiguous=False) and _dense(x)) or k == 0 or k > x.dim() \
            or tuple(x.shape[-k:]) != tuple(normalized_shape):
        return None
    for t in (weight, bias):
        if t is not None and (not _plain(t) or t.dtype != x.dtype
                              or tuple(t.shape) != tuple(normalized_shape)):
            return None
    if x.dtype not in (torch.float32, torch.float64):
        return None  # statistics of half inputs are float32
    stats = (*x.shape[:x.dim() - k], *([1] * k))
    return _new_empty(x, x.shape), _new_empty(x, stats), _new_empty(x, stats)


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
    return _new_empty(x, shape)


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
    out = _new_empty(x, x.shape) if x.stride() == _contiguous_strides(x.shape) else \
        torch.empty_like(x)
    return out, _new_empty(x, (0,)), _new_empty(x, (0,))


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
