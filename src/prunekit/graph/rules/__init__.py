"""Op rules: how each ATen op moves, couples or stops channel labels.

A rule is a function ``rule(ctx) -> list[list[Dim] | None]`` returning the labels of each
output of the op ``ctx.node``. It may ``ctx.union`` labels of inputs (the units must go
together), ``ctx.block`` them (they may never go) and ``ctx.inexact`` them (removing them
changes the output slightly). An op with no rule is never guessed: all its inputs are
blocked and the op is reported by name and module.
"""

from __future__ import annotations

from .base import OP_RULES, RuleContext, op_rule, unknown_op
from . import elementwise, shape, linalg, nn_ops  # noqa: F401  (registration)

__all__ = ["OP_RULES", "RuleContext", "op_rule", "unknown_op"]
