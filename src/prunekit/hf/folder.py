"""Pruned Hugging Face models on disk: one folder, no pickle, one call to reload.

The folder holds the pruned weights (``model.safetensors``), the plan (``plan.json``: every
tensor's kept indices, so per-layer shapes may differ), ``config.json`` (with the pruned sizes
that are uniform across layers and the original ones under ``prunekit_original``, see
:mod:`.config`) and a small manifest naming the model class. Loading builds the original
architecture, replays the plan and loads the weights; ``transformers`` is imported only then.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch.nn as nn

from ..errors import PlanError
from ..plan.document import Plan
from ..surgery.serialization import load_pruned, save_pruned
from .config import ORIGINAL

CONFIG = "config.json"
MANIFEST = "prunekit.json"
FORMAT = "prunekit.transformers"


def save_pruned_transformers(model: nn.Module, plan: Plan,
                             directory: str | os.PathLike[str]) -> Path:
    """Save a pruned ``transformers`` model (pruned from ``model.config``) with its plan."""
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "to_json_string"):
        raise PlanError(f"{type(model).__name__} has no Hugging Face config; use "
                        "prunekit.save_pruned for other models")
    manifest = {"format": FORMAT, "version": 1, "class": type(model).__name__,
                "module": type(model).__module__}
    return save_pruned(model, plan, directory, extra_files={
        CONFIG: config.to_json_string(use_diff=False),
        MANIFEST: json.dumps(manifest, indent=1) + "\n"})


def load_pruned_transformers(directory: str | os.PathLike[str]) -> nn.Module:
    """Rebuild a model saved by :func:`save_pruned_transformers` (eval mode)."""
    import transformers

    folder = Path(directory)
    manifest = _read_json(folder / MANIFEST, "the manifest")
    if manifest.get("format") != FORMAT:
        raise PlanError(f"{str(folder)!r} was not written by save_pruned_transformers "
                        f"(format {manifest.get('format')!r})")
    cls = getattr(transformers, str(manifest.get("class")), None)
    if not isinstance(cls, type) or not issubclass(cls, nn.Module):
        raise PlanError(f"transformers {transformers.__version__} has no model class "
                        f"{manifest.get('class')!r}; install the version that saved it")
    settings = _read_json(folder / CONFIG, "the config")
    for key, value in (settings.pop(ORIGINAL, None) or {}).items():
        if value is None:
            settings.pop(key, None)  # the size was derived, not stored, before pruning
        else:
            settings[key] = value
    model_class: Any = cls
    model = model_class(model_class.config_class.from_dict(settings))
    return load_pruned(model, folder).eval()


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise PlanError(f"{what} {str(path)!r} is missing: save with "
                        "prunekit.hf.save_pruned_transformers") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PlanError(f"{what} {str(path)!r} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PlanError(f"{what} {str(path)!r} is not a JSON object")
    return data
