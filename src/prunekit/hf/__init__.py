"""Hugging Face models: the family table, pruned models on disk, configs kept true.

- :mod:`.families`: one row per family (model types, layer lists, size readers, module
  handlers, example configs);
- :mod:`.folder`: :func:`save_pruned_transformers` / :func:`load_pruned_transformers`;
- :mod:`.config`: after surgery the root model's config gets the pruned sizes.

Nothing here imports ``transformers`` until a model is loaded.
"""

from . import config as _config  # noqa: F401  (registers the config refresh after surgery)
from .families import (
    FAMILIES,
    Example,
    Family,
    check_sequence_length,
    family_of,
    family_of_config,
    find_layers,
    max_sequence_length,
    supported_model_types,
)
from .folder import load_pruned_transformers, save_pruned_transformers

__all__ = ["FAMILIES", "Example", "Family", "check_sequence_length", "family_of",
           "family_of_config", "find_layers", "load_pruned_transformers",
           "max_sequence_length", "save_pruned_transformers", "supported_model_types"]
