"""A model from a local Hugging Face folder (``config.json``, optional weights), read with
``local_files_only=True``: nothing is downloaded.

The class follows the config: ``AutoModelForSequenceClassification`` when its
``architectures`` name a ``...ForSequenceClassification`` head, else ``AutoModel``. With
safetensors weights in the folder they are loaded; without weights the architecture is
built from the config with random weights. Pickled ``pytorch_model.bin`` weights are
never read.
"""

from __future__ import annotations

import os
from pathlib import Path

from torch import nn

from ..errors import ConfigError, PrunekitError

__all__ = ["load_hf_folder"]


def load_hf_folder(path: str | os.PathLike[str]) -> nn.Module:
    """Build (and, with ``*.safetensors`` present, load) the model in ``path``."""
    folder = Path(path)
    try:
        import transformers
    except ImportError:
        raise ConfigError("a Hugging Face folder needs transformers: pip install "
                          "transformers") from None
    try:
        config = transformers.AutoConfig.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{str(folder)!r} holds no usable Hugging Face config: {first}") \
            from None
    heads = [a for a in (config.architectures or []) if a.endswith("ForSequenceClassification")]
    auto = (transformers.AutoModelForSequenceClassification if heads
            else transformers.AutoModel)
    has_weights = any(folder.glob("*.safetensors"))
    if not has_weights and any(folder.glob("*.bin")):
        raise ConfigError(f"{str(folder)!r} has only pickled *.bin weights, which prunekit does "
                          "not unpickle: save them as safetensors "
                          "(model.save_pretrained(..., safe_serialization=True))")
    try:
        if has_weights:
            model = auto.from_pretrained(folder, local_files_only=True, use_safetensors=True)
        else:
            model = auto.from_config(config)
    except (OSError, ValueError, KeyError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PrunekitError(f"building the Hugging Face model in {str(folder)!r} failed: "
                            f"{first}") from None
    return model.eval()
