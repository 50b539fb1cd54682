"""Whole-model pickle files (``torch.save(model)``): refused unless the user trusts them.

Unpickling runs code stored in the file. prunekit never does it by default: a pickled model
or a weights file that holds more than tensors is loaded only with ``trust_pickle=True``
(``--trust-pickle`` on the command line).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ..errors import ConfigError, ModelLoadError, UntrustedPickleError

__all__ = ["PICKLE_SUFFIXES", "UntrustedPickleError", "load_pickled_model", "refusal"]

PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".bin")


def refusal(path: str | os.PathLike[str], what: str) -> UntrustedPickleError:
    """The error for a refused pickle, saying why and what to do."""
    return UntrustedPickleError(
        f"{str(path)!r} {what}: refused, because unpickling can run code hidden in the "
        "file. Save a state_dict as .safetensors (or a plain tensor dict) and pass it "
        "with --weights, or pass --trust-pickle only if you trust where the file came from")


def load_pickled_model(path: str | os.PathLike[str], *, trust_pickle: bool = False) -> nn.Module:
    """Load a whole pickled ``nn.Module``; without ``trust_pickle`` nothing is unpickled."""
    source = Path(path)
    if not source.is_file():
        raise ConfigError(f"model file {str(source)!r} does not exist")
    if not trust_pickle:
        raise refusal(source, "is a pickled model")
    try:
        model = torch.load(source, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - a trusted pickle may still be broken
        raise ModelLoadError(f"{str(source)!r} could not be unpickled: {type(exc).__name__}: "
                             f"{exc}") from None
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{str(source)!r} holds a {type(model).__name__}, not a "
                          "torch.nn.Module")
    return model
