"""Apply: slice a model's tensors in place by a plan (:mod:`.apply`), and save or load the
pruned model without pickle — safetensors weights next to the plan JSON (:mod:`.serialization`)."""

from .apply import apply_plan, check_plan_fits
from .serialization import load_pruned, save_pruned

__all__ = ["apply_plan", "check_plan_fits", "load_pruned", "save_pruned"]
