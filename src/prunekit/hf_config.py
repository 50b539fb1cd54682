"""Former home of :mod:`prunekit.hf.config` (kept so that its import path keeps working)."""

from .hf.config import ORIGINAL, sync_config

__all__ = ["ORIGINAL", "sync_config"]
