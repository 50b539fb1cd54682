"""prunekit: make trained PyTorch models smaller and faster by pruning, and prove it."""

from .api import prune
from .plan.config import PruneConfig
from .decompose import DecomposeConfig, DecomposeResult, decompose
from .depth import DepthResult, prune_depth
from .engine import PruneResult, VerifiedPlan, plan_verified, remove_units
from .errors import (ConfigError, PlanError, PrunekitError, TraceError, UnsupportedOpError,
                     VerificationError)
from .graph import DependencyGraph, register_handler
from . import hf  # noqa: F401  (registers the Hugging Face handlers and config refresh)
from .importance import register_importance
from .plan.document import Plan
from .plan.selection import Selection, build_plan, select_units, selection_from_units
from .importance.scoring import Scores, score_groups
from .surgery.serialization import load_pruned, save_pruned
from .surgery.apply import apply_plan
from .plan.verify import Mismatch, verify_plan

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """``prunekit.onnx`` is imported on first use (it needs the onnx extra)."""
    if name == "onnx":
        import importlib

        return importlib.import_module(".onnx", __name__)
    raise AttributeError(f"module 'prunekit' has no attribute {name!r}")

__all__ = ["prune", "PruneResult", "PruneConfig", "Plan", "apply_plan", "save_pruned",
           "load_pruned", "DependencyGraph", "register_handler", "register_importance",
           "score_groups", "Scores", "select_units", "selection_from_units", "Selection",
           "build_plan", "verify_plan", "Mismatch", "plan_verified", "VerifiedPlan",
           "remove_units",
           "PrunekitError", "ConfigError", "PlanError", "TraceError", "UnsupportedOpError",
           "VerificationError", "prune_depth", "DepthResult", "decompose", "DecomposeConfig",
           "DecomposeResult", "__version__"]
