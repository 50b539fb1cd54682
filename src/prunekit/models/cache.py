"""A cache of trained weights as safetensors files, keyed by what produced them.

Files are written atomically (temporary file in the same folder, then rename), and loaded
strictly into a fresh model; a file that does not load is reported, never unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open
from safetensors.torch import load_model, save_model
from torch import nn

from ..files import atomic_path

__all__ = ["cache_key", "default_cache_dir", "load_cached", "save_cached"]


def default_cache_dir() -> Path:
    """``$PRUNEKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/prunekit``, else ``~/.cache/prunekit``."""
    explicit = os.environ.get("PRUNEKIT_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "prunekit"


def cache_key(settings: Mapping[str, Any]) -> str:
    """A short stable hash of JSON-serializable ``settings``."""
    text = json.dumps(dict(settings), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def save_cached(model: nn.Module, path: Path, metadata: Mapping[str, str]) -> Path:
    """Write ``model``'s weights with string ``metadata`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        save_model(model, str(tmp), metadata=dict(metadata))
    return path


def load_cached(model: nn.Module, path: Path) -> tuple[dict[str, str] | None, str | None]:
    """Load ``path`` into ``model`` strictly.

    Returns ``(metadata, None)`` on success, or ``(None, reason)`` when the file is missing,
    corrupt, or does not fit the model (the model's weights are then left unspecified).
    """
    if not path.is_file():
        return None, "not cached yet"
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
        load_model(model, str(path), strict=True)
    except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
        return None, f"cached file {str(path)!r} is unusable ({type(exc).__name__}: {exc})"
    return metadata, None
