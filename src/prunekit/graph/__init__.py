"""Discover what can be pruned: trace, op rules, handlers and coupled groups."""

from .dependency import DependencyGraph, Group, Member
from .handlers import Handler, ModuleShapes, handler_for, register_handler
from .rules import OP_RULES, RuleContext, op_rule

__all__ = ["DependencyGraph", "Group", "Member", "Handler", "ModuleShapes", "handler_for",
           "register_handler", "OP_RULES", "RuleContext", "op_rule"]
