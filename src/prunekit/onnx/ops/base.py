"""What every op converter shares: the values flowing through a conversion, the context a
converter reads (attributes, constant inputs, example values), the node module base class
and the registry keyed by op type."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ...errors import UnsupportedOpError

__all__ = ["Converter", "Function", "Ints", "IntsFunction", "NodeContext", "OnnxOp", "Static",
           "converter", "get_converter", "supported_ops", "torch_dtype"]


@dataclass(frozen=True)
class Ints:
    """A shape value: integers computed from tensor shapes (``Shape`` and the arithmetic
    on its result), kept as Python ints so that exported copies keep their dynamic axes
    and meta-device copies of the model can still read them. ``scalar``: a 0-d value."""

    values: tuple[Any, ...]
    scalar: bool = False

    def tensor(self, device: torch.device | str | None = None) -> torch.Tensor:
        data = self.values[0] if self.scalar else list(self.values)
        return torch.tensor(data, dtype=torch.int64, device=device)


@dataclass(frozen=True)
class Static:
    """A value known at conversion time (an initializer, a ``Constant``, or folded)."""

    tensor: torch.Tensor


def torch_dtype(onnx_type: int) -> torch.dtype:
    """The torch dtype of an ONNX ``TensorProto`` element type."""
    import numpy as np
    from onnx import helper

    np_type = helper.tensor_dtype_to_np_dtype(onnx_type)
    if np_type == np.dtype(bool):
        return torch.bool
    return torch.from_numpy(np.zeros(1, dtype=np_type)).dtype


class OnnxOp(nn.Module):
    """One ONNX node. ``forward`` takes the node's runtime inputs; constant inputs are held
    as parameters, buffers or plain values and put back at their positions (``slots``)
    before :meth:`compute` sees the node's inputs in ONNX order."""

    op_type = "?"
    accepts_ints = False  # tensor ops see shape values (Ints) as int64 tensors

    def __init__(self) -> None:
        super().__init__()
        self.slots: list[tuple[str, Any]] = []  # ("input", k) | ("tensor", attr) | ("value", v)

    def forward(self, *inputs: Any) -> Any:
        args = []
        for kind, ref in self.slots:
            if kind == "input":
                args.append(inputs[ref])
            elif kind == "tensor":
                args.append(getattr(self, ref))
            else:
                args.append(ref)
        if not self.accepts_ints:
            args = [a.tensor() if isinstance(a, Ints) else a for a in args]
        result = self.compute(*args)
        if isinstance(result, torch.Tensor) and result.requires_grad and result.grad_fn is None:
            # a parameter (or a view of one made under no_grad) passed through: hand out a
            # copy, so hooks on node outputs see an ordinary tensor
            result = result.clone()
        return result

    def compute(self, *args: Any) -> Any:  # pragma: no cover - every op defines it
        raise NotImplementedError

    def extra_repr(self) -> str:
        return self.op_type


class Function(OnnxOp):
    """A node computed by ``fn(*inputs, **kwargs)`` (a module-level function)."""

    def __init__(self, op_type: str, fn: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__()
        self.op_type = op_type
        self.fn = fn
        self.kwargs = kwargs

    def compute(self, *args: Any) -> Any:
        return self.fn(*args, **self.kwargs)

    def extra_repr(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items() if not callable(v))
        return f"{self.op_type}({shown})" if shown else self.op_type


class IntsFunction(Function):
    """A node of shape arithmetic: ``fn`` works on :class:`Ints` (and plain lists)."""

    accepts_ints = True


class NodeContext:
    """What a converter knows about one node: attributes, opset, and for every input its
    example value during conversion (a tensor, :class:`Ints`, :class:`Static` or None)."""

    def __init__(self, node: Any, opset: int, values: Sequence[Any],
                 parameters: dict[str, nn.Parameter]) -> None:
        from onnx import helper

        self.node = node
        self.opset = opset
        self.values = list(values)
        self.attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        for key, value in list(self.attrs.items()):
            if isinstance(value, bytes):
                self.attrs[key] = value.decode()
        self._parameters = parameters

    @property
    def op_type(self) -> str:
        return str(self.node.op_type)

    @property
    def name(self) -> str:
        return str(self.node.name or (self.node.output[0] if self.node.output else "?"))

    def fail(self, reason: str) -> UnsupportedOpError:
        """An error naming this node, its op and the opset (raise it)."""
        return UnsupportedOpError(
            f"ONNX op {self.op_type!r} (node {self.name!r}, opset {self.opset}) cannot be "
            f"converted: {reason}")

    def attr(self, name: str, default: Any = None) -> Any:
        return self.attrs.get(name, default)

    def has(self, index: int) -> bool:
        return index < len(self.values) and self.values[index] is not None

    def is_static(self, index: int) -> bool:
        return self.has(index) and isinstance(self.values[index], Static)

    def example(self, index: int) -> Any:
        """The input's value during conversion: a tensor, :class:`Ints` or None."""
        value = self.values[index] if index < len(self.values) else None
        return value.tensor if isinstance(value, Static) else value

    def static(self, index: int, what: str = "") -> torch.Tensor:
        """The constant value of input ``index``; an error if it is computed at run time."""
        if not self.is_static(index):
            raise self.fail(f"input {index}{' (' + what + ')' if what else ''} must be a "
                            "constant (an initializer or a value computed from constants)")
        return self.values[index].tensor

    def static_ints(self, index: int, what: str = "") -> list[int] | None:
        """A constant integer input as a list (None when absent)."""
        if not self.has(index):
            return None
        return [int(v) for v in self.static(index, what).reshape(-1).tolist()]

    def example_shape(self, index: int) -> tuple[int, ...]:
        value = self.example(index)
        if isinstance(value, torch.Tensor):
            return tuple(value.shape)
        if isinstance(value, Ints):
            return () if value.scalar else (len(value.values),)
        raise self.fail(f"input {index} is missing")

    def parameter(self, index: int, tensor: torch.Tensor | None = None) -> nn.Parameter:
        """A trainable parameter for constant input ``index`` (``tensor``: a transformed
        copy instead of the constant itself). The same initializer used by several nodes
        becomes one shared parameter."""
        key = self.node.input[index]
        if tensor is not None:
            return nn.Parameter(tensor.detach().clone(), requires_grad=tensor.is_floating_point())
        if key not in self._parameters:
            source = self.static(index)
            self._parameters[key] = nn.Parameter(source.detach().clone(),
                                                 requires_grad=source.is_floating_point())
        return self._parameters[key]

    def bind(self, module: OnnxOp, *, trainable: Callable[[int, torch.Tensor], bool] | None = None,
             as_value: Sequence[int] = ()) -> OnnxOp:
        """Fill ``module.slots`` from this node's inputs: runtime inputs in order; constant
        inputs become parameters (``trainable(index, tensor)``; default: floating tensors
        of more than one element), buffers, or, for indices in ``as_value``, plain lists."""
        rule = trainable or (lambda _i, t: t.is_floating_point() and t.numel() > 1)
        runtime = 0
        for index in range(len(self.node.input)):
            if not self.has(index):
                module.slots.append(("value", None))
            elif not self.is_static(index):
                module.slots.append(("input", runtime))
                runtime += 1
            elif index in as_value:
                module.slots.append(("value", self.static(index).tolist()))
            else:
                tensor = self.static(index)
                attr = f"const{index}"
                if rule(index, tensor):
                    module.register_parameter(attr, self.parameter(index))
                else:
                    module.register_buffer(attr, tensor.detach().clone())
                module.slots.append(("tensor", attr))
        return module


Converter = Callable[[NodeContext], nn.Module]
_REGISTRY: dict[str, Converter] = {}


def converter(*op_types: str) -> Callable[[Converter], Converter]:
    """Register ``fn`` as the converter of ``op_types`` (default ONNX domain)."""

    def register(fn: Converter) -> Converter:
        for op in op_types:
            _REGISTRY[op] = fn
        return fn

    return register


def get_converter(op_type: str) -> Converter | None:
    return _REGISTRY.get(op_type)


def supported_ops() -> list[str]:
    """Every ONNX op type a converter is registered for."""
    return sorted(_REGISTRY)


def module_name(text: str, taken: set[str]) -> str:
    """A valid, unique submodule name made from an ONNX node name."""
    name = re.sub(r"\W+", "_", text).strip("_") or "node"
    if name[0].isdigit():
        name = f"n{name}"
    base, k = name, 1
    while name in taken:
        k += 1
        name = f"{base}_{k}"
    taken.add(name)
    return name
