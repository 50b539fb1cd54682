"""One forward pass that records, for every submodule, whether it is a residual block.

A module call is *residual* when, inside it, its input tensor (or a reshaped view of it) is
added to a tensor computed from that input: ``x + f(x)``. The probe follows data flow with a
:class:`~torch.overrides.TorchFunctionMode`, so it needs no tracing and works on any model
that runs eagerly (Hugging Face layers, torchvision and timm blocks, your own modules).

It also records the *tail* of each call: the first op applied after the last residual add
(``"add"`` when the output is the sum itself, ``"relu"`` for a ResNet block,
``"layer_norm"`` for a post-norm transformer layer). Replacing a block by the identity is
exact, once its residual branches output zero, only when the tail is ``"add"`` (or
``"relu"`` on a non-negative input).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from ..errors import TraceError
from ..graph.trace import as_args

__all__ = ["CallRecord", "first_tensor", "input_tensor", "probe_modules"]

ADD_OPS = frozenset({"add", "add_", "__add__", "__radd__", "__iadd__"})
#: ops that keep values (reshape, copy, dropout in eval): a view of the input stays "the input"
TRANSPARENT_OPS = frozenset({
    "view", "reshape", "permute", "transpose", "flatten", "unflatten", "squeeze", "unsqueeze",
    "contiguous", "clone", "detach", "to", "float", "type_as", "__getitem__", "movedim",
    "view_as", "reshape_as", "dropout", "alpha_dropout", "feature_alpha_dropout"})


@dataclass
class CallRecord:
    """What one module did on the probe input (its first call)."""

    calls: int = 0
    in_shape: tuple[int, ...] | None = None
    out_shape: tuple[int, ...] | None = None
    residual: bool = False
    tail: str = "none"
    plain: bool = False  # input was the first positional argument and the output a tensor
    nonnegative_input: bool = False


def first_tensor(obj: Any) -> torch.Tensor | None:
    """The first tensor in a (nested) output: tuple, list, dict or ``ModelOutput``."""
    if isinstance(obj, torch.Tensor):
        return obj
    leaves, _ = tree_flatten(obj)
    return next((t for t in leaves if isinstance(t, torch.Tensor)), None)


def input_tensor(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor | None:
    """The tensor a block transforms: first positional tensor, else ``hidden_states``."""
    for arg in args:
        if isinstance(arg, torch.Tensor):
            return arg
    if isinstance(kwargs.get("hidden_states"), torch.Tensor):
        return kwargs["hidden_states"]
    return first_tensor(list(kwargs.values()))


class _Refs:
    """Tensors by identity, held weakly (an ``id`` reused after a free never matches)."""

    def __init__(self) -> None:
        self._refs: dict[int, tuple[weakref.ref[torch.Tensor], Any]] = {}

    def add(self, t: torch.Tensor, value: Any = True) -> None:
        self._refs[id(t)] = (weakref.ref(t), value)

    def get(self, t: torch.Tensor) -> Any:
        entry = self._refs.get(id(t))
        return entry[1] if entry is not None and entry[0]() is t else None

    def discard(self, t: torch.Tensor) -> None:
        if self.get(t) is not None:
            del self._refs[id(t)]


class _Frame:
    """Data flow from one module call's input: same values (S), derived (D), tails."""

    def __init__(self, name: str, x: torch.Tensor) -> None:
        self.name = name
        self.same, self.derived, self.tails = _Refs(), _Refs(), _Refs()
        self.same.add(x)
        self.derived.add(x)
        self.residual = False

    def step(self, name: str, inputs: list[torch.Tensor], outputs: list[torch.Tensor],
             operands: list[torch.Tensor]) -> None:
        if not any(self.derived.get(t) for t in inputs):
            return
        tails = [tail for tail in (self.tails.get(t) for t in inputs) if tail is not None]
        tail = tails[0] if tails else None
        if name in ADD_OPS and len(operands) == 2:
            a, b = operands
            same = [bool(self.same.get(a)), bool(self.same.get(b))]
            derived = [bool(self.derived.get(a)), bool(self.derived.get(b))]
            if same[0] != same[1] and derived[0] and derived[1]:
                self.residual = True
                tail = "add"
            elif "add" in tails:
                tail = "add"
        elif name in TRANSPARENT_OPS:
            if self.same.get(inputs[0]):
                for t in outputs:
                    self.same.add(t)
        elif tail == "add":
            tail = name
        for t in outputs:
            self.derived.add(t)
            if _in_place(name) and name not in TRANSPARENT_OPS:
                self.same.discard(t)  # changed in place: no longer the input
            if tail is not None:
                self.tails.add(t, tail)


def _in_place(name: str) -> bool:
    return name.startswith("__i") or (name.endswith("_") and not name.startswith("__"))


class _Mode(TorchFunctionMode):
    def __init__(self, frames: list[_Frame]) -> None:
        super().__init__()
        self.frames = frames

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self.frames:
            name = getattr(func, "__name__", "")
            inputs = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
            outputs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
            operands = [a for a in args[:2] if isinstance(a, torch.Tensor)]
            if inputs and outputs:
                for frame in self.frames:
                    frame.step(name, inputs, outputs, operands)
        return out


@torch.no_grad()
def probe_modules(model: nn.Module, example_inputs: Any) -> dict[str, CallRecord]:
    """Run ``model`` once on ``example_inputs`` and record every submodule's first call."""
    records: dict[str, CallRecord] = {}
    frames: list[_Frame] = []
    handles = []

    def pre(name: str) -> Any:
        def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            rec = records.setdefault(name, CallRecord())
            rec.calls += 1
            x = input_tensor(args, kwargs)
            if rec.calls == 1 and x is not None:
                rec.in_shape = tuple(x.shape)
                rec.plain = bool(args) and args[0] is x
                rec.nonnegative_input = bool(x.numel() == 0 or x.min() >= 0) \
                    if x.is_floating_point() else False
                frames.append(_Frame(name, x))
        return hook

    def post(name: str) -> Any:
        def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any],
                 output: Any) -> None:
            depth = next((i for i in range(len(frames) - 1, -1, -1)
                          if frames[i].name == name), None)
            if depth is None:
                return
            frame = frames[depth]
            del frames[depth:]  # and any frame left by a call that raised inside
            rec = records[name]
            y = first_tensor(output)
            rec.out_shape = tuple(y.shape) if y is not None else None
            rec.residual = frame.residual
            rec.tail = (frame.tails.get(y) if y is not None else None) or "none"
            rec.plain = rec.plain and isinstance(output, torch.Tensor)
        return hook

    for name, module in model.named_modules():
        if name:
            handles.append(module.register_forward_pre_hook(pre(name), with_kwargs=True))
            handles.append(module.register_forward_hook(post(name), with_kwargs=True))
    args, kwargs = as_args(example_inputs)
    was_training = model.training
    model.eval()
    try:
        with _Mode(frames):
            model(*args, **kwargs)
    except Exception as exc:  # the user's model failed: say so, keep the cause
        raise TraceError(f"{type(model).__name__} failed on the example inputs while looking "
                         f"for removable blocks: {type(exc).__name__}: {exc}") from exc
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return records
