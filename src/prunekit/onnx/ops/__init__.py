"""Converters from ONNX nodes to PyTorch modules, one registry keyed by op type."""

from . import elementwise, layers, recurrent, reduce, shape  # noqa: F401  (register)
from .base import (Converter, Function, Ints, IntsFunction, NodeContext, OnnxOp, Static,
                   converter, get_converter, module_name, supported_ops)
from .ints import INT_OPS, is_int_like

__all__ = ["Converter", "Function", "INT_OPS", "Ints", "IntsFunction", "NodeContext", "OnnxOp",
           "Static", "converter", "get_converter", "is_int_like", "module_name",
           "supported_ops"]
