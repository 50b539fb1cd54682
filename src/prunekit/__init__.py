"""prunekit: make trained PyTorch models smaller and faster by pruning, and prove it."""

from .api import PruneResult, prune
from .config import PruneConfig
from .decompose import DecomposeConfig, DecomposeResult, decompose
from .depth import DepthResult, prune_depth
from .errors import (ConfigError, PlanError, PrunekitError, TraceError, UnsupportedOpError,
                     VerificationError)
from .graph import DependencyGraph, register_handler
from . import hf_config  # noqa: F401  (registers the Hugging Face config refresh)
from .importance import register_importance
from .plan import Plan
from .serialization import load_pruned, save_pruned
from .surgery import apply_plan

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """``prunekit.onnx`` is imported on first use (it needs the onnx extra)."""
    if name == "onnx":
        import importlib

        return importlib.import_module(".onnx", __name__)
    raise AttributeError(f"module 'prunekit' has no attribute {name!r}")

__all__ = ["prune", "PruneResult", "PruneConfig", "Plan", "apply_plan", "save_pruned",
           "load_pruned", "DependencyGraph", "register_handler", "register_importance",
           "PrunekitError", "ConfigError", "PlanError", "TraceError", "UnsupportedOpError",
           "VerificationError", "prune_depth", "DepthResult", "decompose", "DecomposeConfig",
           "DecomposeResult", "__version__"]
