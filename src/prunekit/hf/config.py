"""Keep a pruned Hugging Face model's config true to its modules.

After surgery the modules hold the new widths, but ``model.config`` still describes the
original architecture. For the families prunekit knows, every size that is the same in all
layers is written back into the config (hidden size, FFN width, head counts, head size), and
the original values are kept under ``config.prunekit_original``, which is what
:func:`prunekit.hf.load_pruned_transformers` builds from before replaying the plan. When every
pruned size can be expressed this way, the saved folder also loads with plain
``transformers`` ``from_pretrained``. Sizes that differ between layers stay as they were.

The update runs as the ``after_apply`` step of the handler of ``PreTrainedModel`` (the root
of every Hugging Face model), so it follows pruning and plan replay alike. Which sizes a
family has is its row's ``sizes`` reader in :mod:`.families`.
"""

from __future__ import annotations

from typing import Any

import torch.nn as nn

from ..graph.handlers import Handler, register_handler_by_name
from .families import family_of_config

__all__ = ["ORIGINAL", "sync_config"]

ORIGINAL = "prunekit_original"


def sync_config(model: nn.Module) -> dict[str, Any]:
    """Write the uniform pruned sizes of ``model`` into its config; return what changed."""
    config = getattr(model, "config", None)
    family = family_of_config(config, required=False)
    reader = None if family is None else family.sizes
    if reader is None:
        return {}
    try:
        sizes = reader(model)
    except (AttributeError, TypeError, ZeroDivisionError):  # not the layout this reader knows
        return {}
    head_size = sizes.pop("_head_size", None) or sizes.get("head_dim")
    scaling = sizes.pop("_scaling", None)
    if head_size and isinstance(scaling, float) and abs(scaling - head_size ** -0.5) > 1e-9:
        # the head size shrank but the attention keeps its old scale, which a config cannot
        # say: leave the head and width sizes, so a plain load fails loudly, not silently
        for key in ("hidden_size", "n_embd", "num_attention_heads", "n_head",
                    "num_key_value_heads", "head_dim"):
            sizes.pop(key, None)
    hidden = sizes.get("hidden_size", sizes.get("n_embd"))
    heads = sizes.get("num_attention_heads", sizes.get("n_head"))
    if head_size is not None and heads and hidden is not None and hidden != heads * head_size \
            and "head_dim" not in sizes:
        sizes.pop("num_attention_heads", None)  # the config derives head size from these two
        sizes.pop("n_head", None)
    if sizes.get("head_dim") is not None and getattr(config, "head_dim", None) is None \
            and sizes["head_dim"] == (hidden or 0) // max(heads or 1, 1):
        sizes.pop("head_dim")  # derivable: leave the config as it was written
    original = dict(getattr(config, ORIGINAL, None) or {})
    changed = {}
    for key, value in sizes.items():
        if value is None or (not hasattr(config, key) and key != "head_dim"):
            continue
        old = getattr(config, key, None)
        if old != value:
            original.setdefault(key, old)
            setattr(config, key, value)
            changed[key] = value
    if original:
        setattr(config, ORIGINAL, original)
    return changed


class _ConfigSync(Handler):
    """Root handler of Hugging Face models: refresh the config after surgery."""

    def after_apply(self, module: nn.Module) -> None:
        first = next(module.parameters(), None)
        if first is not None and not first.is_meta:  # a shape-only copy shares the config
            sync_config(module)


register_handler_by_name("transformers.modeling_utils.PreTrainedModel", handler=_ConfigSync())
