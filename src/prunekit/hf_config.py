"""Keep a pruned Hugging Face model's config true to its modules.

After surgery the modules hold the new widths, but ``model.config`` still describes the
original architecture. For the families prunekit knows, every size that is the same in all
layers is written back into the config (hidden size, FFN width, head counts, head size), and
the original values are kept under ``config.prunekit_original``, which is what
:func:`prunekit.hf.load_pruned_transformers` builds from before replaying the plan. When every
pruned size can be expressed this way, the saved folder also loads with plain
``transformers`` ``from_pretrained``. Sizes that differ between layers stay as they were.

The update runs as the ``after_apply`` step of the handler of ``PreTrainedModel`` (the root
of every Hugging Face model), so it follows pruning and plan replay alike.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch.nn as nn

from .graph.handlers import Handler, register_handler_by_name

ORIGINAL = "prunekit_original"

Reader = Callable[[nn.Module], dict[str, Any]]


def _uniform(values: list[Any]) -> Any:
    return values[0] if values and all(v == values[0] for v in values) else None


def _layers(model: nn.Module, *paths: str) -> list[nn.Module]:
    for path in paths:
        try:
            layers = model.get_submodule(path)
        except AttributeError:
            continue
        if isinstance(layers, nn.ModuleList) and len(layers):
            return list(layers)
    return []


def _base(model: nn.Module) -> nn.Module:
    prefix = getattr(model, "base_model_prefix", "")
    return getattr(model, prefix, model) if prefix else model


def _llama_like(model: nn.Module) -> dict[str, Any]:
    base = _base(model)
    layers = _layers(base, "layers")
    if not layers:
        return {}
    attn = [layer.self_attn for layer in layers]
    head_dim = _uniform([a.head_dim for a in attn])
    sizes = {"hidden_size": base.embed_tokens.embedding_dim,
             "intermediate_size": _uniform([layer.mlp.gate_proj.out_features for layer in layers]),
             "head_dim": head_dim, "_scaling": _uniform([getattr(a, "scaling", None) for a in attn])}
    if head_dim:
        sizes["num_attention_heads"] = _uniform([a.q_proj.out_features // head_dim for a in attn])
        sizes["num_key_value_heads"] = _uniform([a.k_proj.out_features // head_dim for a in attn])
    return sizes


def _bert(model: nn.Module) -> dict[str, Any]:
    base = _base(model)
    layers = _layers(base, "encoder.layer")
    if not layers:
        return {}
    selfs = [layer.attention.self for layer in layers]
    return {"hidden_size": base.embeddings.word_embeddings.embedding_dim,
            "intermediate_size": _uniform([layer.intermediate.dense.out_features for layer in layers]),
            "num_attention_heads": _uniform([s.num_attention_heads for s in selfs]),
            "_head_size": _uniform([s.attention_head_size for s in selfs]),
            "_scaling": _uniform([getattr(s, "scaling", None) for s in selfs])}


def _gpt2(model: nn.Module) -> dict[str, Any]:
    base = _base(model)
    layers = _layers(base, "h")
    if not layers:
        return {}
    return {"n_embd": base.wte.embedding_dim,
            "n_inner": _uniform([layer.mlp.c_fc.nf for layer in layers]),
            "n_head": _uniform([layer.attn.num_heads for layer in layers]),
            "_head_size": _uniform([layer.attn.head_dim for layer in layers]),
            "_scaling": _uniform([getattr(layer.attn, "scaling", None) for layer in layers])}


def _opt(model: nn.Module) -> dict[str, Any]:
    base = _base(model)
    decoder = getattr(base, "decoder", base)
    layers = _layers(decoder, "layers")
    if not layers:
        return {}
    return {"word_embed_proj_dim": decoder.embed_tokens.embedding_dim,
            "hidden_size": _uniform([layer.fc1.in_features for layer in layers]),
            "ffn_dim": _uniform([layer.fc1.out_features for layer in layers]),
            "num_attention_heads": _uniform([layer.self_attn.num_heads for layer in layers]),
            "_head_size": _uniform([layer.self_attn.head_dim for layer in layers]),
            "_scaling": _uniform([getattr(layer.self_attn, "scaling", None) for layer in layers])}


def _vit(model: nn.Module) -> dict[str, Any]:
    base = _base(model)
    layers = _layers(base, "encoder.layer", "layers")
    if not layers:
        return {}
    attn = [getattr(layer.attention, "attention", layer.attention) for layer in layers]
    head_dim = _uniform([getattr(a, "head_dim", None) or a.attention_head_size for a in attn])
    ffn = [layer.intermediate.dense if hasattr(layer, "intermediate") else layer.mlp.fc1
           for layer in layers]
    return {"hidden_size": base.embeddings.patch_embeddings.projection.out_channels,
            "intermediate_size": _uniform([f.out_features for f in ffn]),
            "num_attention_heads": _uniform([a.num_attention_heads for a in attn]),
            "head_dim": head_dim, "_scaling": _uniform([getattr(a, "scaling", None) for a in attn])}


READERS: dict[str, Reader] = {"llama": _llama_like, "mistral": _llama_like,
                              "qwen2": _llama_like, "bert": _bert, "gpt2": _gpt2, "opt": _opt,
                              "vit": _vit}


def sync_config(model: nn.Module) -> dict[str, Any]:
    """Write the uniform pruned sizes of ``model`` into its config; return what changed."""
    config = getattr(model, "config", None)
    reader = READERS.get(getattr(config, "model_type", None))
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
