"""Ops that read, move, cut, join or make tensors: Shape, Reshape, Flatten, Transpose,
Concat, Split, Slice, (Un)Squeeze, Gather (``nn.Embedding`` for a constant table), Expand,
Tile, Pad, Resize, ConstantOfShape, Range, ScatterND, Constant.

Sizes a converted node computes follow its input at run time wherever the ONNX graph
fixed them for one input size: a reshape keeps the grouping of dimensions it had on the
example (a merged group takes the product of its inputs, a split group's innermost factor
takes what is left, unless the file put its ``-1`` in that group), an expand keeps every
non-broadcast dimension, a squeeze without axes removes the dimensions that were 1 on the
example. So a pruned copy still runs.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...graph.rules.shape import reshape_chunks
from .base import Function, Ints, NodeContext, OnnxOp, converter
from .ints import as_ints

__all__: list[str] = []


def _values(value: Any) -> list[Any]:
    """A shape-like input (Ints, tensor, list) as a list of Python ints."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [int(v) if isinstance(v, (bool, float)) else v for v in value]
    return list(as_ints(value).values)


class DeviceOp(OnnxOp):
    """A node that creates tensors: they go where the model's buffers are."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("anchor", torch.empty(0), persistent=False)

    @property
    def device(self) -> torch.device:
        """Where the created tensors go (the device the module was moved to)."""
        return self.get_buffer("anchor").device


@converter("Shape")
def _shape(ctx: NodeContext) -> nn.Module:
    start, end = ctx.attr("start", 0), ctx.attr("end")
    return ctx.bind(Function("Shape", _shape_of, start=int(start),
                             end=None if end is None else int(end)))


def _shape_of(x: torch.Tensor, start: int = 0, end: int | None = None) -> Ints:
    return Ints(tuple(x.shape)[start:end])


def _size_of(x: torch.Tensor) -> Ints:
    return Ints((x.numel(),), True)


@converter("Size")
def _size(ctx: NodeContext) -> nn.Module:
    return ctx.bind(Function("Size", _size_of))


class Reshape(OnnxOp):
    """ONNX Reshape whose target follows the input (see the module docstring)."""

    op_type = "Reshape"
    accepts_ints = True

    def __init__(self, chunks: list[tuple[list[int], list[int]]], allowzero: bool) -> None:
        super().__init__()
        self.chunks = chunks
        self.allowzero = allowzero

    def compute(self, x: torch.Tensor, target: Any) -> torch.Tensor:
        sizes = list(x.shape)
        out = _values(target)
        if not self.allowzero:
            out = [sizes[i] if isinstance(v, int) and v == 0 else v for i, v in enumerate(out)]
        for ins, outs in self.chunks:
            if not outs:
                continue
            if not ins:
                out[outs[0]] = 1
            elif len(outs) == 1:
                out[outs[0]] = math.prod(sizes[i] for i in ins)
            elif len(ins) == 1:
                if any(isinstance(out[o], int) and out[o] == -1 for o in outs):
                    continue  # the file's own -1 absorbs the change (a dynamic axis)
                outer_sizes = [out[o] for o in outs[:-1]]
                out[outs[-1]] = sizes[ins[0]] // math.prod(outer_sizes)
        return x.reshape(out)


@converter("Reshape")
def _reshape(ctx: NodeContext) -> nn.Module:
    in_shape = list(ctx.example_shape(0))
    target = _values(ctx.example(1))
    allowzero = bool(ctx.attr("allowzero", 0))
    resolved = [in_shape[i] if v == 0 and not allowzero else v for i, v in enumerate(target)]
    if -1 in resolved:
        known = math.prod(v for v in resolved if v != -1)
        resolved[resolved.index(-1)] = math.prod(in_shape) // known if known else 0
    try:
        chunks = reshape_chunks(in_shape, resolved) if math.prod(in_shape) else []
    except (ValueError, IndexError):
        raise ctx.fail(f"cannot reshape {in_shape} to {target}") from None
    return ctx.bind(Reshape(chunks, allowzero), as_value=(1,))


def _flatten(x: torch.Tensor, axis: int) -> torch.Tensor:
    axis = axis % x.ndim if x.ndim else 0
    return x.reshape(math.prod(x.shape[:axis]) if axis else 1, -1)


@converter("Flatten")
def _flatten_op(ctx: NodeContext) -> nn.Module:
    return ctx.bind(Function("Flatten", _flatten, axis=int(ctx.attr("axis", 1))))


def _transpose(x: torch.Tensor, perm: list[int] | None) -> torch.Tensor:
    return x.permute(perm if perm is not None else list(range(x.ndim))[::-1])


@converter("Transpose")
def _transpose_op(ctx: NodeContext) -> nn.Module:
    perm = ctx.attr("perm")
    return ctx.bind(Function("Transpose", _transpose, perm=None if perm is None else list(perm)))


def _concat(*xs: torch.Tensor, axis: int) -> torch.Tensor:
    parts = [x for x in xs if x is not None]
    return torch.cat(parts, dim=axis)


@converter("Concat")
def _concat_op(ctx: NodeContext) -> nn.Module:
    return ctx.bind(Function("Concat", _concat, axis=int(ctx.attr("axis"))))


class Split(OnnxOp):
    """ONNX Split: equal pieces stay equal as the input shrinks (``torch.split`` by size)."""

    op_type = "Split"

    def __init__(self, axis: int, sizes: list[int], equal: bool) -> None:
        super().__init__()
        self.axis, self.sizes, self.equal = axis, sizes, equal

    def compute(self, x: torch.Tensor, *_rest: Any) -> tuple[torch.Tensor, ...]:
        if self.equal:
            return tuple(torch.split(x, x.shape[self.axis] // len(self.sizes), dim=self.axis))
        return tuple(torch.split(x, self.sizes, dim=self.axis))


@converter("Split")
def _split(ctx: NodeContext) -> nn.Module:
    shape = ctx.example_shape(0)
    axis = int(ctx.attr("axis", 0)) % len(shape)
    outputs = len(ctx.node.output)
    if ctx.opset < 13 and ctx.attr("split") is not None:
        sizes = [int(s) for s in ctx.attr("split")]
    elif ctx.has(1):
        sizes = [int(s) for s in _values(ctx.example(1))]
    else:
        pieces = int(ctx.attr("num_outputs", outputs))
        step = -(-shape[axis] // pieces)
        sizes = [min(step, shape[axis] - k * step) for k in range(pieces)]
    equal = len(set(sizes)) == 1 and sizes[0] * len(sizes) == shape[axis]
    return ctx.bind(Split(axis, sizes, equal), as_value=(1,))


class Slice(OnnxOp):
    """ONNX Slice (inputs from opset 10, attributes before): full-range axes are left alone."""

    op_type = "Slice"
    accepts_ints = True

    def __init__(self, attrs: tuple[list[int], list[int], list[int] | None] | None) -> None:
        super().__init__()
        self.attrs = attrs

    def compute(self, x: torch.Tensor, starts: Any = None, ends: Any = None, axes: Any = None,
                steps: Any = None) -> torch.Tensor:
        if isinstance(x, Ints):
            x = x.tensor()
        if self.attrs is not None:
            starts, ends, axes = self.attrs
        begin, end = _values(starts), _values(ends)
        axis_list = _values(axes) or list(range(len(begin)))
        step_list = _values(steps) or [1] * len(begin)
        for b, e, a, s in zip(begin, end, axis_list, step_list):
            a = a % x.ndim
            if s > 0:
                if isinstance(b, int) and b == 0 and isinstance(e, int) and \
                        e >= (1 << 31) - 1 and s == 1:
                    continue
                x = x[(slice(None),) * a + (slice(b, e, s),)]
            else:
                size = int(x.shape[a])
                lo = max(min(b + size if b < 0 else b, size - 1), -1)
                hi = max(min(e + size if e < 0 else e, size - 1), -1)
                index = torch.arange(lo, hi, s, device=x.device)
                x = x.index_select(a, index)
        return x


@converter("Slice")
def _slice(ctx: NodeContext) -> nn.Module:
    if ctx.opset < 10:
        attrs = ([int(v) for v in ctx.attr("starts")], [int(v) for v in ctx.attr("ends")],
                 None if ctx.attr("axes") is None else [int(v) for v in ctx.attr("axes")])
        return ctx.bind(Slice(attrs))
    return ctx.bind(Slice(None), as_value=(1, 2, 3, 4))


def _squeeze(x: torch.Tensor, axes: Any = None, *, fixed: list[int]) -> torch.Tensor:
    dims = [int(a) % x.ndim for a in (_values(axes) or fixed)]
    for d in sorted(dims, reverse=True):
        x = x.squeeze(d)
    return x


def _unsqueeze(x: torch.Tensor, axes: Any = None, *, fixed: list[int]) -> torch.Tensor:
    dims = _values(axes) or fixed
    rank = x.ndim + len(dims)
    for d in sorted(int(a) % rank for a in dims):
        x = x.unsqueeze(d)
    return x


@converter("Squeeze")
def _squeeze_op(ctx: NodeContext) -> nn.Module:
    shape = ctx.example_shape(0)
    axes = ctx.attr("axes") if ctx.opset < 13 else None
    if axes is None and not ctx.has(1):
        axes = [i for i, s in enumerate(shape) if s == 1]
    return ctx.bind(Function("Squeeze", _squeeze, fixed=list(axes or [])), as_value=(1,))


@converter("Unsqueeze")
def _unsqueeze_op(ctx: NodeContext) -> nn.Module:
    axes = list(ctx.attr("axes") or []) if ctx.opset < 13 else []
    return ctx.bind(Function("Unsqueeze", _unsqueeze, fixed=axes), as_value=(1,))


class Embedding(nn.Embedding):
    """``Gather(table, ids)`` with a constant table: an ``nn.Embedding`` (negative ids wrap)."""

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        ids = ids.long()
        return super().forward(torch.where(ids < 0, ids + self.num_embeddings, ids))


def _gather(data: torch.Tensor, indices: Any, axis: int = 0) -> torch.Tensor:
    axis = axis % data.ndim
    if isinstance(indices, int):
        return data.select(axis, indices)
    index = indices.long()
    index = torch.where(index < 0, index + data.shape[axis], index)
    if index.ndim == 0:
        return data.index_select(axis, index.reshape(1)).squeeze(axis)
    picked = data.index_select(axis, index.reshape(-1))
    return picked.reshape(*data.shape[:axis], *index.shape, *data.shape[axis + 1:])


@converter("Gather")
def _gather_op(ctx: NodeContext) -> nn.Module:
    axis = int(ctx.attr("axis", 0))
    if ctx.is_static(0) and not ctx.is_static(1) and axis == 0 and ctx.static(0).ndim == 2 \
            and ctx.static(0).is_floating_point() and isinstance(ctx.example(1), torch.Tensor):
        table = ctx.static(0)
        layer = Embedding(table.shape[0], table.shape[1])
        layer.weight = ctx.parameter(0)
        return layer
    if ctx.is_static(1) and ctx.static(1).ndim == 0:
        index = int(ctx.static(1))
        size = ctx.example_shape(0)[axis]
        module = Function("Gather", _gather, axis=axis)
        ctx.bind(module, as_value=(1,))
        module.slots[1] = ("value", index + size if index < 0 else index)
        return module
    return ctx.bind(Function("Gather", _gather, axis=axis))


def _gather_elements(data: torch.Tensor, indices: torch.Tensor, axis: int) -> torch.Tensor:
    index = indices.long()
    index = torch.where(index < 0, index + data.shape[axis], index)
    return torch.gather(data, axis, index)


@converter("GatherElements")
def _gather_elements_op(ctx: NodeContext) -> nn.Module:
    return ctx.bind(Function("GatherElements", _gather_elements, axis=int(ctx.attr("axis", 0))))


def _gather_nd(data: torch.Tensor, indices: torch.Tensor, batch_dims: int = 0) -> torch.Tensor:
    index = indices.long()
    depth = index.shape[-1]
    sizes = torch.tensor(data.shape[batch_dims:batch_dims + depth], device=index.device)
    index = torch.where(index < 0, index + sizes, index)
    batch = math.prod(data.shape[:batch_dims])
    flat_data = data.reshape(batch, *data.shape[batch_dims:])
    flat_index = index.reshape(batch, -1, depth)
    rows = torch.arange(batch, device=index.device)[:, None].expand(batch, flat_index.shape[1])
    where = (rows, *[flat_index[..., i] for i in range(depth)])
    picked = flat_data[where]
    return picked.reshape(*index.shape[:-1], *data.shape[batch_dims + depth:])


@converter("GatherND")
def _gather_nd_op(ctx: NodeContext) -> nn.Module:
    return ctx.bind(Function("GatherND", _gather_nd, batch_dims=int(ctx.attr("batch_dims", 0))),
                    trainable=lambda i, t: i == 0 and t.is_floating_point() and t.numel() > 1)


def _scatter_nd(data: torch.Tensor, indices: torch.Tensor, updates: torch.Tensor
                ) -> torch.Tensor:
    index = indices.long()
    depth = index.shape[-1]
    flat = index.reshape(-1, depth)
    values = updates.reshape(flat.shape[0], *data.shape[depth:])
    return data.index_put(tuple(flat[:, i] for i in range(depth)), values)


@converter("ScatterND")
def _scatter_nd_op(ctx: NodeContext) -> nn.Module:
    if str(ctx.attr("reduction", "none")) != "none":
        raise ctx.fail("reduction other than 'none'")
    return ctx.bind(Function("ScatterND", _scatter_nd), trainable=lambda _i, _t: False)


class Expand(OnnxOp):
    """ONNX Expand (two-way broadcast); dimensions that were not 1 follow the input."""

    op_type = "Expand"
    accepts_ints = True

    def __init__(self, was_one: list[bool]) -> None:
        super().__init__()
        self.was_one = was_one

    def compute(self, x: torch.Tensor, shape: Any) -> torch.Tensor:
        if isinstance(x, Ints):
            x = x.tensor()
        target = _values(shape)
        rank = max(len(target), x.ndim)
        target = [1] * (rank - len(target)) + target
        lead = rank - x.ndim
        if lead:
            x = x.reshape([1] * lead + list(x.shape))
        sizes = [-1 if (i >= lead and not self.was_one[i - lead]) or
                 (isinstance(t, int) and t == 1) else t for i, t in enumerate(target)]
        return x.expand(sizes)


@converter("Expand")
def _expand(ctx: NodeContext) -> nn.Module:
    shape = ctx.example_shape(0)
    return ctx.bind(Expand([s == 1 for s in shape]), as_value=(1,))


def _tile(x: torch.Tensor, repeats: Any) -> torch.Tensor:
    return x.repeat(_values(repeats))


@converter("Tile")
def _tile_op(ctx: NodeContext) -> nn.Module:
    module = ctx.bind(Function("Tile", _tile), as_value=(1,))
    module.accepts_ints = True
    return module


class Pad(OnnxOp):
    """ONNX Pad: constant, reflect, edge and wrap modes."""

    op_type = "Pad"
    accepts_ints = True

    def __init__(self, mode: str, attrs: tuple[list[int], float] | None) -> None:
        super().__init__()
        self.mode = {"constant": "constant", "reflect": "reflect", "edge": "replicate",
                     "wrap": "circular"}[mode]
        self.attrs = attrs

    def compute(self, x: torch.Tensor, pads: Any = None, value: Any = None,
                axes: Any = None) -> torch.Tensor:
        if self.attrs is not None:
            pads, value = self.attrs
        amounts = _values(pads)
        axis_list = [int(a) % x.ndim for a in _values(axes)] or list(range(x.ndim))
        n = len(axis_list)
        per_axis = {a: (amounts[k], amounts[k + n]) for k, a in enumerate(axis_list)}
        active = [a for a, p in per_axis.items() if p != (0, 0)]
        if not active:
            return x
        torch_pads: list[Any] = []
        for a in range(x.ndim - 1, min(active) - 1, -1):
            torch_pads += list(per_axis.get(a, (0, 0)))
        fill = 0.0 if value is None else (value.item() if isinstance(value, torch.Tensor)
                                          else float(value))
        if self.mode == "constant":
            return F.pad(x, torch_pads, mode="constant", value=fill)
        return F.pad(x, torch_pads, mode=self.mode)


@converter("Pad")
def _pad(ctx: NodeContext) -> nn.Module:
    mode = str(ctx.attr("mode", "constant"))
    if mode not in ("constant", "reflect", "edge", "wrap"):
        raise ctx.fail(f"mode {mode!r}")
    if ctx.opset < 11:
        return ctx.bind(Pad(mode, ([int(p) for p in ctx.attr("pads")],
                                   float(ctx.attr("value", 0.0)))))
    return ctx.bind(Pad(mode, None), as_value=(1, 3), trainable=lambda _i, _t: False)


class Resize(OnnxOp):
    """ONNX Resize / Upsample over the spatial dims with ``F.interpolate``."""

    op_type = "Resize"
    accepts_ints = True

    def __init__(self, mode: str, align_corners: bool | None, scales: list[float] | None,
                 sizes_index: int | None) -> None:
        super().__init__()
        self.mode, self.align_corners = mode, align_corners
        self.scales, self.sizes_index = scales, sizes_index

    def compute(self, x: torch.Tensor, *args: Any) -> torch.Tensor:
        if self.scales is not None:
            return F.interpolate(x, scale_factor=self.scales[2:], mode=self.mode,
                                 align_corners=self.align_corners)
        if self.sizes_index is None:
            raise ValueError("Resize without scales needs its sizes input")
        sizes = _values(args[self.sizes_index - 1])
        return F.interpolate(x, size=sizes[2:], mode=self.mode, align_corners=self.align_corners)


@converter("Resize", "Upsample")
def _resize(ctx: NodeContext) -> nn.Module:
    shape = ctx.example_shape(0)
    rank = len(shape)
    mode = str(ctx.attr("mode", "nearest"))
    transform = str(ctx.attr("coordinate_transformation_mode",
                             "asymmetric" if ctx.op_type == "Upsample" or ctx.opset < 11
                             else "half_pixel"))
    nearest = str(ctx.attr("nearest_mode", "round_prefer_floor"))
    if int(ctx.attr("antialias", 0)) or int(ctx.attr("exclude_outside", 0)) or \
            ctx.attr("axes") is not None:
        raise ctx.fail("antialias / exclude_outside / axes are not supported")
    spatial = {3: "linear", 4: "bilinear", 5: "trilinear"}.get(rank)
    if mode in ("linear", "bilinear") and spatial and transform in ("half_pixel",
                                                                     "pytorch_half_pixel"):
        torch_mode, align = spatial, False
    elif mode in ("linear", "bilinear") and spatial and transform == "align_corners":
        torch_mode, align = spatial, True
    elif mode == "cubic" and rank == 4 and transform in ("half_pixel", "align_corners") \
            and float(ctx.attr("cubic_coeff_a", -0.75)) == -0.75:
        torch_mode, align = "bicubic", transform == "align_corners"
    elif mode == "nearest" and transform == "asymmetric" and nearest == "floor":
        torch_mode, align = "nearest", None
    elif mode == "nearest" and transform == "half_pixel" and nearest == "round_prefer_ceil":
        torch_mode, align = "nearest-exact", None
    else:
        raise ctx.fail(f"mode {mode!r} with coordinate_transformation_mode {transform!r} "
                       f"and nearest_mode {nearest!r} has no F.interpolate equivalent")
    if ctx.op_type == "Upsample" and ctx.opset < 9:
        return ctx.bind(Resize(torch_mode, align, [float(s) for s in ctx.attr("scales")], None))
    scales_index = 1 if (ctx.op_type == "Upsample" or ctx.opset < 11) else 2
    sizes_index = None if (ctx.op_type == "Upsample" or ctx.opset < 11) else 3
    scales: list[float] | None = None
    if ctx.has(scales_index) and ctx.example_shape(scales_index) != (0,):
        raw = ctx.static(scales_index, "scales").reshape(-1).tolist()
        scales = [float(s) for s in raw]
        if scales[:2] != [1.0, 1.0]:
            raise ctx.fail("scaling the batch or channel dimension")
    elif sizes_index is None or not ctx.has(sizes_index):
        raise ctx.fail("neither scales nor sizes are given")
    elif _values(ctx.example(sizes_index))[:2] != list(shape[:2]):
        raise ctx.fail("resizing the batch or channel dimension")
    return ctx.bind(Resize(torch_mode, align, scales, sizes_index), as_value=(1, 2, 3),
                    trainable=lambda _i, _t: False)


class ConstantOfShape(DeviceOp):
    op_type = "ConstantOfShape"
    accepts_ints = True

    def __init__(self, value: torch.Tensor) -> None:
        super().__init__()
        self.value = value.reshape(-1)[0].item() if value.numel() else 0.0
        self.dtype = value.dtype

    def compute(self, shape: Any) -> torch.Tensor:
        return torch.full(_values(shape), self.value, dtype=self.dtype,
                          device=self.device)


@converter("ConstantOfShape")
def _constant_of_shape(ctx: NodeContext) -> nn.Module:
    from onnx import numpy_helper

    raw = ctx.attr("value")
    value = torch.from_numpy(numpy_helper.to_array(raw).copy()) if raw is not None \
        else torch.zeros(1)
    return ctx.bind(ConstantOfShape(value), as_value=(0,))


class Range(DeviceOp):
    op_type = "Range"
    accepts_ints = True

    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__()
        self.dtype = dtype

    def compute(self, start: Any, limit: Any, delta: Any) -> torch.Tensor:
        def scalar(v: Any) -> Any:
            if isinstance(v, Ints):
                return v.values[0]
            if isinstance(v, torch.Tensor):
                return v.item()
            return v[0] if isinstance(v, list) else v

        return torch.arange(scalar(start), scalar(limit), scalar(delta), dtype=self.dtype,
                            device=self.device)


@converter("Range")
def _range(ctx: NodeContext) -> nn.Module:
    example = ctx.example(0)
    dtype = example.dtype if isinstance(example, torch.Tensor) else torch.int64
    for i in range(3):
        if isinstance(ctx.example(i), torch.Tensor) and not ctx.is_static(i):
            raise ctx.fail("a start/limit/delta computed from tensor values (data-dependent "
                           "size)")
    return ctx.bind(Range(dtype), as_value=(0, 1, 2))


def _constant(value: torch.Tensor) -> torch.Tensor:
    return value


@converter("Constant")
def _constant_op(ctx: NodeContext) -> nn.Module:
    from onnx import numpy_helper

    for key in ("value", "sparse_value"):
        if ctx.attr(key) is not None:
            if key == "sparse_value":
                raise ctx.fail("sparse constants")
            return Function("Constant", _constant,
                            value=torch.from_numpy(numpy_helper.to_array(ctx.attr(key)).copy()))
    for key, dtype in (("value_float", torch.float32), ("value_floats", torch.float32),
                       ("value_int", torch.int64), ("value_ints", torch.int64)):
        if ctx.attr(key) is not None:
            return Function("Constant", _constant,
                            value=torch.tensor(ctx.attr(key), dtype=dtype))
    raise ctx.fail("string constants")


def _trilu(x: torch.Tensor, k: Any = None, *, upper: int) -> torch.Tensor:
    offset = 0 if k is None else int(_values(k)[0])
    return torch.triu(x, offset) if upper else torch.tril(x, offset)


@converter("Trilu")
def _trilu_op(ctx: NodeContext) -> nn.Module:
    return ctx.bind(Function("Trilu", _trilu, upper=int(ctx.attr("upper", 1))), as_value=(1,))


def _cumsum(x: torch.Tensor, axis: Any, *, exclusive: int, reverse: int) -> torch.Tensor:
    dim = int(_values(axis)[0])
    if reverse:
        x = x.flip(dim)
    out = torch.cumsum(x, dim)
    if exclusive:
        out = out - x
    return out.flip(dim) if reverse else out


@converter("CumSum")
def _cumsum_op(ctx: NodeContext) -> nn.Module:
    return ctx.bind(Function("CumSum", _cumsum, exclusive=int(ctx.attr("exclusive", 0)),
                             reverse=int(ctx.attr("reverse", 0))), as_value=(1,))

