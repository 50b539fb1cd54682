"""The registry of one-shot methods; importing it registers the built-in ones.

Adding a method is one file here (a :class:`OneShotMethod` with its ``Options`` dataclass,
decorated with :func:`register_oneshot_method`) and one import line below.
"""

from .base import (
    MaskingMethod,
    MaskOptions,
    NoOptions,
    OneShotMethod,
    available_oneshot_methods,
    get_oneshot_method,
    method_options,
    register_oneshot_method,
)
from .magnitude import Magnitude
from .sparsegpt import SparseGPT, SparseGPTOptions
from .wanda import Wanda

__all__ = ["Magnitude", "MaskOptions", "MaskingMethod", "NoOptions", "OneShotMethod",
           "SparseGPT", "SparseGPTOptions", "Wanda", "available_oneshot_methods",
           "get_oneshot_method", "method_options", "register_oneshot_method"]
