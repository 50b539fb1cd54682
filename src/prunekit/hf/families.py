"""The Hugging Face families prunekit knows: one table, one row per family.

A row says everything prunekit needs about a family: its ``config.model_type`` values, where
its repeated layers live (layer-by-layer one-shot pruning), how to read its sizes back into
the config after surgery (:mod:`.sizes`), the handlers of its modules whose forward
reshapes by size attributes, and a small example config per model type (random weights,
for tests and examples). Adding a family means adding a row; nothing imports
``transformers`` here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from torch import nn

from ..errors import ConfigError
from ..graph.handlers import Handler, register_handler_by_name
from ..graph.handlers.zoo import Conv1DAttributes, HeadAttributes
from . import sizes
from .sizes import Reader

__all__ = ["FAMILIES", "Example", "Family", "check_sequence_length", "family_of",
           "family_of_config", "find_layers", "max_sequence_length", "supported_model_types"]

#: the model heads an :class:`Example` can be built with, as ``transformers`` Auto classes
HEADS = {"base": "AutoModel", "causal": "AutoModelForCausalLM",
         "classifier": "AutoModelForSequenceClassification",
         "image-classifier": "AutoModelForImageClassification"}


@dataclass(frozen=True)
class Example:
    """A small config of one model type: ``transformers.<config_class>(**settings)``."""

    config_class: str
    settings: Mapping[str, Any]
    inputs: str = "input_ids"  # or "pixel_values"


@dataclass(frozen=True)
class Family:
    """A Hugging Face model family (see the module doc).

    - ``layers``: candidate paths of the ``ModuleList`` of repeated layers; empty when
      layer-by-layer one-shot pruning does not apply (no token inputs);
    - ``decoder``: a causal language model (calibration windows of a text, a KV cache);
    - ``sizes``: reads the uniform sizes of a pruned model back into its config;
    - ``handlers``: qualified class name -> handler, registered on import;
    - ``position_offset``: positions the family reserves (RoBERTa: ``padding_idx + 1``);
    - ``split_units``: the unit that prunes its attention (:class:`prunekit.PruneConfig`):
      ``"outer"`` (whole heads) where rotary position embeddings pin the head size.
    """

    name: str
    model_types: tuple[str, ...]
    layers: tuple[str, ...]
    decoder: bool
    sizes: Reader | None = None
    handlers: Mapping[str, Handler] = field(default_factory=dict)
    examples: Mapping[str, Example] = field(default_factory=dict)
    position_offset: int = 0
    split_units: str = "inner"

    @property
    def oneshot(self) -> bool:
        """Whether layer-by-layer one-shot pruning (:mod:`prunekit.llm`) supports it."""
        return bool(self.layers)


_TEXT = {"num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 100,
         "max_position_embeddings": 64}
_GQA = {"hidden_size": 64, "intermediate_size": 96, "num_key_value_heads": 2, **_TEXT}
_GPT2 = {"n_embd": 64, "n_layer": 2, "n_head": 4, "vocab_size": 100, "n_positions": 64,
         "bos_token_id": 0, "eos_token_id": 0}

FAMILIES: tuple[Family, ...] = (
    Family("llama", ("llama", "mistral", "qwen2"), ("model.layers", "layers"), decoder=True,
           sizes=sizes.llama, split_units="outer",
           examples={"llama": Example("LlamaConfig", _GQA),
                     "mistral": Example("MistralConfig", _GQA),
                     "qwen2": Example("Qwen2Config", _GQA)}),
    Family("opt", ("opt",), ("model.decoder.layers", "decoder.layers"), decoder=True,
           sizes=sizes.opt,
           handlers={"transformers.models.opt.modeling_opt.OPTAttention":
                     HeadAttributes("q_proj", "num_heads", "head_dim")},
           examples={"opt": Example("OPTConfig", {"hidden_size": 64, "ffn_dim": 96,
                                                  "word_embed_proj_dim": 64, **_TEXT})}),
    Family("gpt2", ("gpt2",), ("transformer.h", "h"), decoder=True, sizes=sizes.gpt2,
           handlers={"transformers.pytorch_utils.Conv1D": Conv1DAttributes(),
                     "transformers.models.gpt2.modeling_gpt2.GPT2Attention":
                     HeadAttributes("c_attn", "num_heads", "head_dim", fused=3,
                                    total="split_size", conv1d=True)},
           examples={"gpt2": Example("GPT2Config", _GPT2)}),
    Family("bert", ("bert",), ("bert.encoder.layer", "encoder.layer"), decoder=False,
           sizes=sizes.bert,
           handlers={"transformers.models.bert.modeling_bert.BertSelfAttention":
                     HeadAttributes("query", "num_attention_heads", "attention_head_size",
                                    total="all_head_size")},
           examples={"bert": Example("BertConfig", {"hidden_size": 64,
                                                    "intermediate_size": 96, **_TEXT})}),
    Family("roberta", ("roberta",), ("roberta.encoder.layer", "encoder.layer"),
           decoder=False, position_offset=2),
    # ViT: attention with q/k/v projections and ``head_dim`` (recent transformers) or
    # BERT-style ``attention_head_size`` / ``all_head_size`` (older versions)
    Family("vit", ("vit",), (), decoder=False, sizes=sizes.vit,
           handlers={"transformers.models.vit.modeling_vit.ViTAttention":
                     HeadAttributes("q_proj", "num_attention_heads", "head_dim"),
                     "transformers.models.vit.modeling_vit.ViTSelfAttention":
                     HeadAttributes("query", "num_attention_heads", "attention_head_size",
                                    total="all_head_size")},
           examples={"vit": Example("ViTConfig", {
               "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
               "intermediate_size": 96, "image_size": 32, "patch_size": 8, "num_labels": 10},
               inputs="pixel_values")}),
)

for _family in FAMILIES:
    for _name, _handler in _family.handlers.items():
        register_handler_by_name(_name, handler=_handler)
    object.__setattr__(_family, "handlers", MappingProxyType(dict(_family.handlers)))
    object.__setattr__(_family, "examples", MappingProxyType(dict(_family.examples)))


def supported_model_types() -> list[str]:
    """Every ``config.model_type`` layer-by-layer one-shot pruning supports."""
    return [t for fam in FAMILIES if fam.oneshot for t in fam.model_types]


def family_of(model: nn.Module) -> Family:
    """The row of a model layer-by-layer pruning supports, or :class:`ConfigError` naming
    the supported types."""
    return family_of_config(getattr(model, "config", None), type(model).__name__)


def family_of_config(config: object, what: str = "this model", *,
                     required: bool = True) -> Any:
    """The row for a Hugging Face ``config`` (by its ``model_type``).

    With ``required`` (the default) only families that layer-by-layer pruning supports
    count and anything else is a :class:`ConfigError`; otherwise any row, or ``None``.
    """
    model_type = getattr(config, "model_type", None)
    for fam in FAMILIES:
        if model_type in fam.model_types and (fam.oneshot or not required):
            return fam
    if not required:
        return None
    raise ConfigError(
        f"layer-by-layer pruning does not support {what} "
        f"(config.model_type={model_type!r}); supported Hugging Face model types: "
        f"{supported_model_types()}"
    )


def _lookup(model: nn.Module, path: str) -> nn.Module | None:
    obj: object = model
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj if isinstance(obj, nn.Module) else None


def find_layers(model: nn.Module) -> nn.ModuleList:
    """The ``ModuleList`` of repeated layers of ``model`` (decoder layers, encoder layers)."""
    fam = family_of(model)
    for path in fam.layers:
        found = _lookup(model, path)
        if isinstance(found, nn.ModuleList) and len(found) > 0:
            return found
    raise ConfigError(
        f"{type(model).__name__} is a {fam.name!r} model but none of {list(fam.layers)} "
        "is a non-empty ModuleList of layers; pass the Hugging Face model itself"
    )


def max_sequence_length(model: nn.Module) -> int | None:
    """The longest sequence the model's positions allow, or ``None`` when it has no limit."""
    fam = family_of(model)
    cfg = model.config
    for attr in ("max_position_embeddings", "n_positions"):
        value = getattr(cfg, attr, None)
        if isinstance(value, int) and value > 0:
            return value - fam.position_offset
    return None


def check_sequence_length(model: nn.Module, seq_len: int) -> None:
    """Raise :class:`ConfigError` if ``seq_len`` exceeds the model's position limit."""
    limit = max_sequence_length(model)
    if limit is not None and seq_len > limit:
        raise ConfigError(
            f"calibration sequences have {seq_len} tokens but {type(model).__name__} accepts "
            f"at most {limit} positions; lower seq_len / max_length to {limit} or less"
        )


def example_of(model_type: str) -> Example:
    """The example config of ``model_type`` (a row's ``examples``)."""
    for fam in FAMILIES:
        if model_type in fam.examples:
            return fam.examples[model_type]
    known = sorted(t for fam in FAMILIES for t in fam.examples)
    raise ConfigError(f"no example config for model type {model_type!r}; known: {known}")
