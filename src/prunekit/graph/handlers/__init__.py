"""Module handlers (registry keyed by module type). See :mod:`.base`."""

from .base import (Handler, ModuleShapes, OpaqueContext, handler_for, is_opaque, register_handler,
                   register_handler_by_name, registered_handlers)
from . import attention, layers, recurrent, windowed, zoo  # noqa: F401  (registration)

__all__ = ["Handler", "ModuleShapes", "OpaqueContext", "handler_for", "is_opaque",
           "register_handler", "register_handler_by_name", "registered_handlers"]
