"""Adapters that run a prunekit pruner inside training frameworks (optional extras).

- :mod:`prunekit.integrations.lightning`: ``LightningPruningCallback`` for PyTorch
  Lightning (``pip install 'prunekit[lightning]'``);
- :mod:`prunekit.integrations.hf_trainer`: ``TrainerPruningCallback`` for the Hugging Face
  ``Trainer`` (``pip install 'prunekit[trainer]'``).

Each submodule imports its framework when it is imported itself; importing ``prunekit`` or
this package never does. :func:`save_pruner_state` / :func:`load_pruner_state` store a
pruner's state as one safetensors file (tensors plus JSON metadata).
"""

from __future__ import annotations

from ._state import STATE_FILE, SteppedPruner, load_pruner_state, save_pruner_state

__all__ = ["STATE_FILE", "SteppedPruner", "load_pruner_state", "save_pruner_state"]
