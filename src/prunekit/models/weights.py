"""Load weights into a built model without unpickling arbitrary objects."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_model
from torch import nn

from ..errors import ConfigError, PrunekitError
from .pickled import refusal

__all__ = ["load_weights"]


def load_weights(model: nn.Module, path: str | os.PathLike[str], *,
                 trust_pickle: bool = False) -> nn.Module:
    """Load a ``.safetensors`` file, or a ``.pt``/``.pth`` state dict read with
    ``torch.load(weights_only=True)``, into ``model`` strictly.

    A ``.pt`` file that holds more than tensors is refused (nothing of it is unpickled)
    unless ``trust_pickle`` is set; then it is read with ``weights_only=False``.
    """
    source = Path(path)
    if not source.is_file():
        raise ConfigError(f"weights file {str(source)!r} does not exist")
    try:
        if source.suffix == ".safetensors":
            load_model(model, str(source), strict=True)
            return model
        if source.suffix not in (".pt", ".pth", ".bin"):
            raise ConfigError(f"weights file {str(source)!r}: use .safetensors, or a .pt/.pth "
                              "state dict")
        try:
            state = torch.load(source, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            if not trust_pickle:
                raise refusal(source, "holds pickled objects other than tensors") from None
            state = torch.load(source, map_location="cpu", weights_only=False)
            if isinstance(state, nn.Module):
                state = state.state_dict()
    except SafetensorError as exc:
        raise PrunekitError(f"{str(source)!r} is not a valid safetensors file: {exc}") from None
    except RuntimeError as exc:
        raise PrunekitError(f"the weights in {str(source)!r} do not fit the model: "
                            f"{str(exc).splitlines()[0]}") from None
    except Exception as exc:  # torch.load raises UnpicklingError and others
        if isinstance(exc, PrunekitError):
            raise
        raise PrunekitError(f"{str(source)!r} could not be read as a plain state dict "
                            f"({type(exc).__name__}); save a state_dict or use safetensors") \
            from None
    if not isinstance(state, dict):
        raise ConfigError(f"{str(source)!r} holds a {type(state).__name__}, not a state dict")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise PrunekitError(f"the weights in {str(source)!r} do not fit the model: "
                            f"{str(exc).splitlines()[0]}") from None
    return model
