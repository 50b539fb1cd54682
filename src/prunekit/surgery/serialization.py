"""Save and load pruned models without pickle: safetensors weights next to the plan JSON."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

import torch.nn as nn
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model

from ..errors import PlanError
from ..plan.document import Plan
from .apply import apply_plan

WEIGHTS = "model.safetensors"
PLAN = "plan.json"


def save_pruned(model: nn.Module, plan: Plan, directory: str | os.PathLike[str],
                extra_files: Mapping[str, str] | None = None) -> Path:
    """Write ``model.safetensors`` and ``plan.json`` (and ``extra_files``: name -> text)
    into ``directory`` atomically.

    All files are written into a temporary folder beside ``directory`` and moved into
    place only when complete, so a crash never leaves a half-written set.
    """
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    extra = dict(extra_files or {})
    try:
        save_model(model, str(staging / WEIGHTS))
        plan.save(staging / PLAN)
        for name, text in extra.items():
            (staging / name).write_text(text)
        target.mkdir(exist_ok=True)
        for name in (WEIGHTS, PLAN, *extra):
            os.replace(staging / name, target / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def load_pruned(model: nn.Module, directory: str | os.PathLike[str]) -> nn.Module:
    """Prune a fresh instance of the original architecture by the saved plan (and rebuild
    the layers it factorized), then load the saved weights into it (strictly: every tensor
    must match)."""
    source = Path(directory)
    plan = Plan.load(source / PLAN)
    weights = source / WEIGHTS
    if not weights.is_file():
        raise PlanError(f"{str(weights)!r} does not exist: save with prunekit.save_pruned")
    apply_plan(model, plan, factor_weights="empty")
    try:
        missing, unexpected = load_model(model, str(weights), strict=True)
    except SafetensorError as exc:
        raise PlanError(f"{str(weights)!r} is not a valid safetensors file: {exc}") from None
    except RuntimeError as exc:
        raise PlanError(f"the weights in {str(weights)!r} do not fit the pruned model: {exc}") from None
    return model
