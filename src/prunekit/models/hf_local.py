"""A model from a local Hugging Face folder (``config.json``, optional weights), read with
``local_files_only=True``: nothing is downloaded.

The class follows the config: ``AutoModelForSequenceClassification`` when its
``architectures`` name a ``...ForSequenceClassification`` head, else ``AutoModel``.
Constructor arguments override config attributes (``num_labels=5``; a name the config does
not have is an error listing those it has). With safetensors weights in the folder they are
loaded, after their shapes are compared with the model the config describes (a
:class:`~prunekit.models.weights.WeightsMisfitError` names the tensors that differ); without
weights the architecture is built from the config with random weights. Pickled
``pytorch_model.bin`` weights are never read.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, ModelLoadError, PrunekitError
from .args import Args, Parameters, format_args
from .weights import Misfit, misfit_error

__all__ = ["load_hf_folder"]

#: config entries that describe the checkpoint rather than the architecture
_NOT_ARGUMENTS = frozenset({"architectures", "transformers_version", "_name_or_path",
                            "model_type", "id2label", "label2id"})


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _parameters(config: Any, folder: Path) -> Parameters:
    """The config attributes an argument may set (and ``num_labels``)."""
    names = sorted({*config.to_dict(), "num_labels"} - _NOT_ARGUMENTS)
    return Parameters(f"the config in {str(folder)!r} ({type(config).__name__})", tuple(names),
                      {name: getattr(config, name, None) for name in names})


def _check_weight_shapes(folder: Path, auto: Any, config: Any, spec: str,
                         head: bool) -> None:
    """Compare the shapes of the folder's safetensors tensors with those of the model the
    config describes (built on ``meta``: no memory); raise when any differ."""
    from safetensors import safe_open

    with torch.device("meta"):
        skeleton = auto.from_config(config)
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    found: dict[str, tuple[int, ...]] = {}
    files = sorted(folder.glob("*.safetensors"))
    for file in files:
        with safe_open(str(file), framework="pt") as handle:
            for key in handle.keys():
                if key in expected:  # renamed or extra keys are from_pretrained's business
                    found[key] = tuple(handle.get_slice(key).get_shape())
    misfit = Misfit.between(expected, found, optional=frozenset(expected))
    if misfit:
        names = ", ".join(f.name for f in files)
        raise misfit_error(f"{str(folder)!r} ({names})", spec, misfit,
                           classes=config.num_labels if head else None)


def load_hf_folder(path: str | os.PathLike[str], args: Args = ()) -> tuple[nn.Module, Parameters]:
    """Build (and, with ``*.safetensors`` present, load) the model in ``path`` with its config
    overridden by ``args``; return it and the config attributes arguments may set."""
    folder = Path(path)
    spec = str(folder) + (f"?{format_args(args)}" if args else "")
    try:
        import transformers
    except ImportError:
        raise ConfigError("a Hugging Face folder needs transformers: pip install "
                          "transformers") from None
    try:
        config = transformers.AutoConfig.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{str(folder)!r} holds no usable Hugging Face config: "
                          f"{_first_line(exc)}") from None
    params = _parameters(config, folder)
    params.check(args, spec)
    heads = [a for a in (config.architectures or []) if a.endswith("ForSequenceClassification")]
    if "num_labels" in dict(args) and not heads:
        raise ConfigError(f"{spec}: num_labels sets the classes of a classification head, and "
                          f"the config in {str(folder)!r} names none (architectures: "
                          f"{config.architectures}); point at a folder saved from a "
                          "...ForSequenceClassification model")
    for key, value in args:
        setattr(config, key, value)
    auto = (transformers.AutoModelForSequenceClassification if heads
            else transformers.AutoModel)
    has_weights = any(folder.glob("*.safetensors"))
    if not has_weights and any(folder.glob("*.bin")):
        raise ConfigError(f"{str(folder)!r} has only pickled *.bin weights, which prunekit does "
                          "not unpickle: save them as safetensors "
                          "(model.save_pretrained(..., safe_serialization=True))")
    try:
        if has_weights:
            _check_weight_shapes(folder, auto, config, spec, bool(heads))
            model = auto.from_pretrained(folder, config=config, local_files_only=True,
                                         use_safetensors=True)
        else:
            model = auto.from_config(config)
    except PrunekitError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelLoadError(f"building the Hugging Face model in {str(folder)!r} failed: "
                             f"{_first_line(exc)}") from None
    return model.eval(), params
