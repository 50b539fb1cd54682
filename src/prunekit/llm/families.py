"""Where the repeated blocks of each supported Hugging Face family live.

One table, one row per family; adding a family means adding a row.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..errors import ConfigError


@dataclass(frozen=True)
class Family:
    """A model family: its ``config.model_type`` values and candidate block-list paths."""

    name: str
    model_types: tuple[str, ...]
    block_paths: tuple[str, ...]
    decoder: bool
    position_offset: int = 0  # positions reserved by the family (RoBERTa: padding_idx + 1)


FAMILIES: tuple[Family, ...] = (
    Family("llama", ("llama", "mistral", "qwen2"), ("model.layers", "layers"), decoder=True),
    Family("opt", ("opt",), ("model.decoder.layers", "decoder.layers"), decoder=True),
    Family("gpt2", ("gpt2",), ("transformer.h", "h"), decoder=True),
    Family("bert", ("bert",), ("bert.encoder.layer", "encoder.layer"), decoder=False),
    Family("roberta", ("roberta",), ("roberta.encoder.layer", "encoder.layer"),
           decoder=False, position_offset=2),
)


def supported_model_types() -> list[str]:
    """Every ``config.model_type`` the table knows."""
    return [t for fam in FAMILIES for t in fam.model_types]


def family_of(model: nn.Module) -> Family:
    """The table row for ``model``, or :class:`ConfigError` naming the supported types."""
    return family_of_config(getattr(model, "config", None), type(model).__name__)


def family_of_config(config: object, what: str = "this model") -> Family:
    """The table row for a Hugging Face ``config`` (by its ``model_type``)."""
    model_type = getattr(config, "model_type", None)
    for fam in FAMILIES:
        if model_type in fam.model_types:
            return fam
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


def find_blocks(model: nn.Module) -> nn.ModuleList:
    """The ``ModuleList`` of repeated blocks of ``model`` (decoder layers, encoder layers)."""
    fam = family_of(model)
    for path in fam.block_paths:
        found = _lookup(model, path)
        if isinstance(found, nn.ModuleList) and len(found) > 0:
            return found
    raise ConfigError(
        f"{type(model).__name__} is a {fam.name!r} model but none of {list(fam.block_paths)} "
        "is a non-empty ModuleList of blocks; pass the Hugging Face model itself"
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
