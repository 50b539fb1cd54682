"""The sizes of a Hugging Face model that its config records, read back from its modules.

One reader per family layout (the ``sizes`` of a row in :mod:`.families`). Each returns the
config attributes whose value is the same in every layer (``None`` where layers differ);
keys starting with ``_`` are not config attributes but help decide what may be written
(``_head_size``, ``_scaling``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch.nn as nn

__all__ = ["Reader", "bert", "gpt2", "llama", "opt", "vit"]

Reader = Callable[[nn.Module], dict[str, Any]]


def _uniform(values: list[Any]) -> Any:
    return values[0] if values and all(v == values[0] for v in values) else None


def _layers(model: nn.Module, *paths: str) -> list[Any]:
    for path in paths:
        try:
            layers = model.get_submodule(path)
        except AttributeError:
            continue
        if isinstance(layers, nn.ModuleList) and len(layers):
            return list(layers)
    return []


def _base(model: nn.Module) -> Any:  # Hugging Face modules: attributes by family layout
    prefix = getattr(model, "base_model_prefix", "")
    return getattr(model, prefix, model) if prefix else model


def llama(model: nn.Module) -> dict[str, Any]:
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


def bert(model: nn.Module) -> dict[str, Any]:
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


def gpt2(model: nn.Module) -> dict[str, Any]:
    base = _base(model)
    layers = _layers(base, "h")
    if not layers:
        return {}
    return {"n_embd": base.wte.embedding_dim,
            "n_inner": _uniform([layer.mlp.c_fc.nf for layer in layers]),
            "n_head": _uniform([layer.attn.num_heads for layer in layers]),
            "_head_size": _uniform([layer.attn.head_dim for layer in layers]),
            "_scaling": _uniform([getattr(layer.attn, "scaling", None) for layer in layers])}


def opt(model: nn.Module) -> dict[str, Any]:
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


def vit(model: nn.Module) -> dict[str, Any]:
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
