"""Module handlers: what surgery must update besides the tensors.

Slicing tensors is generic. Modules whose attributes encode shapes (``out_channels``,
``num_features``, ``num_heads`` …) need a small, stateless handler that computes the new
attribute values; modules that hide their ops (attention, recurrent layers) also say how
their inputs, outputs and parameters couple (*opaque* handlers). Handlers are found by
module type through the MRO, so a subclass of ``nn.Conv2d`` is handled like a Conv2d, and
users register their own with :func:`register_handler`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar
from collections.abc import Callable

import torch.nn as nn

from ...errors import ConfigError, UnreadableOpError
from ..labels import Dim, LabelSpace
from ..trace import Node, Trace

Shape = tuple[int, ...]


@dataclass(frozen=True)
class ModuleShapes:
    """Shapes a module will have after pruning (predicted from the plan).

    ``params`` maps the module's *own* tensor names (``weight``, ``bias``, ``running_mean``)
    to their new shapes; ``calls`` holds, for every recorded call, the new shapes of its
    tensor inputs and outputs. ``split_units`` is the graph's unit for head splits
    (``"inner"``: head size shrinks; ``"outer"``: whole heads go).
    """

    params: dict[str, Shape]
    calls: list[tuple[list[Shape], list[Shape]]]
    split_units: str = "inner"

    def input_shape(self) -> Shape | None:
        for ins, _ in self.calls:
            if ins:
                return ins[0]
        return None

    def output_shape(self) -> Shape | None:
        for _, outs in self.calls:
            if outs:
                return outs[0]
        return None


class OpaqueContext:
    """What an opaque handler sees while coupling labels for one call of its module."""

    def __init__(self, trace: Trace, space: LabelSpace, dims: list[list[Dim] | None],
                 node: Node, split_units: str = "inner") -> None:
        self.trace = trace
        self.space = space
        self._dims = dims
        self.node = node
        self.split_units = split_units  # "inner" (head-size positions) or "outer" (heads)
        self.module: nn.Module = node.op

    def input(self, position: int, name: str) -> list[Dim] | None:
        ref = self.node.args[position] if position < len(self.node.args) else self.node.kwargs.get(name)
        if ref is None or not hasattr(ref, "index"):
            return None
        return self._dims[ref.index]

    def param(self, local: str) -> list[Dim] | None:
        ref = self.node.params.get(local)
        return None if ref is None else self._dims[ref.index]

    def need_input(self, position: int, name: str) -> list[Dim]:
        """Like :meth:`input`, but a missing input is an :class:`UnreadableOpError`."""
        found = self.input(position, name)
        if found is None:
            raise UnreadableOpError(f"the call has no tensor input {name!r}")
        return found

    def need_param(self, local: str) -> list[Dim]:
        """Like :meth:`param`, but a missing tensor is an :class:`UnreadableOpError`."""
        found = self.param(local)
        if found is None:
            raise UnreadableOpError(f"the call did not use tensor {local!r}")
        return found

    def output_shape(self, k: int) -> Shape | None:
        ref = self.node.outputs[k] if k < len(self.node.outputs) else None
        return None if ref is None else self.trace.values[ref.index].shape

    def fresh(self, n: int) -> Dim:
        return self.space.fresh_dim(n)

    def union(self, a: Dim, b: Dim) -> None:
        self.space.union(a.ids, b.ids)

    def block(self, dim: Dim) -> None:
        self.space.block(dim.ids)

    def inexact(self, dim: Dim) -> None:
        self.space.mark_inexact(dim.ids)


class Handler:
    """Base handler: no attributes to update, not opaque."""

    #: Opaque modules are recorded as one node and coupled by :meth:`couple`.
    opaque: bool = False

    def attributes(self, module: nn.Module, shapes: ModuleShapes) -> dict[str, Any]:
        """New values of shape-encoding attributes (plain JSON-able data)."""
        return {}

    def set_attributes(self, module: nn.Module, attributes: dict[str, Any]) -> None:
        """Write attributes computed by :meth:`attributes` (tuples stay tuples)."""
        for key, value in attributes.items():
            if isinstance(getattr(module, key, None), tuple) and isinstance(value, list):
                value = tuple(value)
            setattr(module, key, value)

    def after_apply(self, module: nn.Module) -> None:
        """Refresh derived state once the tensors and attributes are updated."""

    def couple(self, ctx: OpaqueContext) -> list[list[Dim] | None]:
        """For opaque handlers: couple labels and return the labels of each output."""
        raise NotImplementedError


_HANDLERS: dict[type, Handler] = {}
H = TypeVar("H", bound=type)


def register_handler(*module_types: type, handler: Handler | None = None) -> Callable[[H], H]:
    """Register a handler class (decorator) or instance for ``module_types``.

    A later registration for the same type replaces the earlier one, so users can
    override a built-in handler.
    """

    def decorate(cls: H) -> H:
        instance = handler if handler is not None else cls()
        for t in module_types:
            if not isinstance(t, type) or not issubclass(t, nn.Module):
                raise ConfigError(f"handlers are registered for nn.Module types, got {t!r}")
            _HANDLERS[t] = instance
        return cls

    return decorate


_NAMED_HANDLERS: dict[str, Handler] = {}


def register_handler_by_name(*qualified_names: str, handler: Handler) -> None:
    """Register ``handler`` for classes named ``"package.module.ClassName"``: modules of
    model zoos get handlers without prunekit importing the zoo."""
    for name in qualified_names:
        if not isinstance(name, str) or "." not in name:
            raise ConfigError(f"expected a qualified class name like 'pkg.module.Class', got {name!r}")
        _NAMED_HANDLERS[name] = handler


def registered_handlers() -> dict[str, Handler]:
    """Every registered handler by the qualified name of its module class
    (``"torch.nn.modules.conv.Conv2d"``), those registered by type and by name."""
    found = {f"{t.__module__}.{t.__qualname__}": h for t, h in _HANDLERS.items()}
    found.update(_NAMED_HANDLERS)
    return found


_DEFAULT = Handler()


def handler_for(module: nn.Module) -> Handler:
    """The handler of the closest registered base class of ``module``'s type (registered
    by type, or by qualified name)."""
    for cls in type(module).__mro__:
        found = _HANDLERS.get(cls) or _NAMED_HANDLERS.get(f"{cls.__module__}.{cls.__qualname__}")
        if found is not None:
            return found
    return _DEFAULT


def is_opaque(module: nn.Module) -> bool:
    return handler_for(module).opaque
