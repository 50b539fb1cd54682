"""The rule table and the context a rule works in."""

from __future__ import annotations

from typing import Any
from collections.abc import Callable, Sequence


from ...errors import UnreadableOpError
from ..labels import BlockReason, Dim, LabelSpace
from ..trace import Node, Trace, ValueRef

Rule = Callable[["RuleContext"], "list[list[Dim] | None]"]

#: Op packet name (``aten.add``) or full overload name (``aten.add.Tensor``) -> rule.
OP_RULES: dict[str, Rule] = {}


def op_rule(*names: str) -> Callable[[Rule], Rule]:
    """Register ``rule`` for the given ATen op names (packets, or ``packet.overload``)."""

    def decorate(rule: Rule) -> Rule:
        for name in names:
            OP_RULES[name if name.startswith("aten.") or ":" in name else f"aten.{name}"] = rule
        return rule

    return decorate


def lookup_rule(node: Node) -> Rule | None:
    return OP_RULES.get(node.target) or OP_RULES.get(node.packet)


class RuleContext:
    """What a rule sees: the node, the labels of its inputs, and the label space."""

    def __init__(self, trace: Trace, space: LabelSpace, dims: list[list[Dim] | None],
                 node: Node, tags: dict[str, set[str]] | None = None,
                 split_units: str = "inner") -> None:
        self.trace = trace
        self.split_units = split_units  # "inner" (head size) or "outer" (whole heads)
        self.tags = tags if tags is not None else {}
        self.space = space
        self._dims = dims
        self.node = node
        self.reason = BlockReason(f"op {node.target}", node.module)

    # -- reading ----------------------------------------------------------------
    def arg(self, i: int, name: str | None = None, default: Any = None) -> Any:
        args = self.node.args
        if i < len(args):
            return args[i]
        if name is not None and name in self.node.kwargs:
            return self.node.kwargs[name]
        return default

    def dims(self, ref: Any) -> list[Dim]:
        found = self._dims[ref.index]
        if found is None:
            raise UnreadableOpError(f"value {ref.index} has no labels")
        return found

    def shape(self, ref: ValueRef) -> tuple[int, ...]:
        return self.trace.values[ref.index].shape

    def out_shape(self, i: int = 0) -> tuple[int, ...]:
        ref = self.node.outputs[i]
        if ref is None:
            raise UnreadableOpError(f"output {i} of op {self.node.target} is not a tensor")
        return self.trace.values[ref.index].shape

    def tensor_inputs(self) -> list[ValueRef]:
        return self.node.input_refs()

    # -- writing ----------------------------------------------------------------
    def union(self, a: Dim, b: Dim) -> None:
        self.space.union(a.ids, b.ids)

    def block(self, dim: Dim) -> None:
        self.space.block(dim.ids, self.reason)

    def block_value(self, ref: ValueRef) -> None:
        for d in self.dims(ref):
            self.block(d)

    def tag(self, ref: Any, tag: str) -> None:
        """Remember a role of a parameter (e.g. ``"scale"`` for normalisation weights)."""
        value = self.trace.values[ref.index]
        if value.kind in ("param", "buffer"):
            self.tags.setdefault(value.name, set()).add(tag)

    def inexact(self, dim: Dim) -> None:
        if dim.channel:
            self.space.mark_inexact(dim.ids)

    def fresh(self, n: int) -> Dim:
        """A new structural (non-channel) dimension whose positions can never be removed."""
        return self.space.fresh_dim(n, channel=False, blocked=True, reason=self.reason)

    def fresh_like(self, shape: Sequence[int]) -> list[Dim]:
        return [self.fresh(n) for n in shape]

    def fresh_outputs(self) -> list[list[Dim] | None]:
        return [None if r is None else self.fresh_like(self.trace.values[r.index].shape)
                for r in self.node.outputs]


def unknown_op(ctx: RuleContext) -> list[list[Dim] | None]:
    """No rule: block everything the op reads and give its outputs fresh blocked labels."""
    for ref in ctx.tensor_inputs():
        ctx.block_value(ref)
    return ctx.fresh_outputs()


def normalize_dim(dim: int, ndim: int) -> int:
    return dim + ndim if dim < 0 else dim
