"""Load weights into a built model without unpickling arbitrary objects, and say exactly
why they do not fit when they do not.

A file that does not fit raises :class:`WeightsMisfitError`, whose :class:`Misfit` lists the
tensors whose shapes differ, the model's tensors the file lacks and the file's tensors the
model lacks (a few of each, then "and N more"), and notices when only a classification head
differs in its class count (:meth:`Misfit.head_classes`).
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from ..errors import ConfigError, ModelLoadError, WeightsMisfitError
from .pickled import refusal

__all__ = ["Misfit", "WeightsMisfitError", "head_only", "head_width", "load_state", "load_weights",
           "misfit_error", "read_state_dict"]

#: names shown per kind of difference before "and N more"
SHOWN = 3
Shape = tuple[int, ...]


def _shape(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


def _few(names: Sequence[str]) -> str:
    shown = ", ".join(names[:SHOWN])
    return shown + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


@dataclass(frozen=True)
class Misfit:
    """How a file's tensors differ from a model's: ``mismatched`` as ``(name, shape in the
    file, shape in the model)``, ``missing`` (in the model, not in the file) and
    ``unexpected`` (in the file, not in the model), each in the model's / file's order."""

    mismatched: tuple[tuple[str, Shape, Shape], ...] = ()
    missing: tuple[str, ...] = ()
    unexpected: tuple[str, ...] = ()

    @classmethod
    def between(cls, model: Mapping[str, Sequence[int]], found: Mapping[str, Sequence[int]],
                *, optional: frozenset[str] = frozenset()) -> Misfit:
        """Compare the model's tensor shapes with a file's; names in ``optional`` (tied
        copies of a tensor the file holds) may be missing."""
        mismatched = tuple((k, tuple(found[k]), tuple(v)) for k, v in model.items()
                           if k in found and tuple(found[k]) != tuple(v))
        missing = tuple(k for k in model if k not in found and k not in optional)
        unexpected = tuple(k for k in found if k not in model)
        return cls(mismatched, missing, unexpected)

    def __bool__(self) -> bool:
        return bool(self.mismatched or self.missing or self.unexpected)

    def head_classes(self, classes: int) -> int | None:
        """The file's class count when only the model's classification head (``classes``
        outputs) differs: every tensor that differs has ``classes`` rows in the model, one
        same other number of rows in the file, and the rest of its shape equal (a head's
        weight and bias, and any auxiliary head); else ``None``."""
        if not self.mismatched or self.missing or self.unexpected:
            return None
        sizes = set()
        for _, found, model in self.mismatched:
            if not (len(found) == len(model) >= 1 and found[1:] == model[1:]
                    and model[0] == classes):
                return None
            sizes.add(found[0])
        return sizes.pop() if len(sizes) == 1 else None

    def prefix_hint(self) -> str | None:
        """A note when the file's keys are the model's with one prefix added (``module.``
        from DataParallel, ``model.`` from a training wrapper) or removed."""
        if self.mismatched:
            return None
        extra = _extra_prefix(self.unexpected, self.missing)
        if extra is not None:
            return (f"every key of the file starts with {extra!r} (e.g. {self.unexpected[0]}): "
                    f"save the inner model's state_dict, or strip {extra!r} from the keys")
        lacking = _extra_prefix(self.missing, self.unexpected)
        if lacking is not None:
            return (f"the model's keys start with {lacking!r} (e.g. {self.missing[0]}) and "
                    f"the file's do not: add {lacking!r} to the keys, or load the file into "
                    "the inner model")
        return None

    def describe(self) -> str:
        """The differences in one line: a few names of each kind, then "and N more"."""
        parts = []
        if self.mismatched:
            shown = ", ".join(f"{name} {_shape(found)} vs {_shape(model)}"
                              for name, found, model in self.mismatched[:SHOWN])
            more = len(self.mismatched) - SHOWN
            parts.append(f"{len(self.mismatched)} tensor(s) differ in shape (file vs model): "
                         f"{shown}" + (f" and {more} more" if more > 0 else ""))
        if self.missing:
            parts.append(f"{len(self.missing)} tensor(s) of the model are missing from the "
                         f"file: {_few(self.missing)}")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} tensor(s) of the file are not in the model: "
                         f"{_few(self.unexpected)}")
        hint = self.prefix_hint()
        if hint is not None:
            parts.append(hint)
        return "; ".join(parts)


def _extra_prefix(longer: Sequence[str], shorter: Sequence[str]) -> str | None:
    """The prefix (ending in a dot) that every name of ``longer`` has and that, removed,
    gives a name of ``shorter``."""
    if not longer or not shorter:
        return None
    known = set(shorter)
    first = longer[0]
    for cut in range(1, len(first)):
        if first[cut - 1] == "." and first[cut:] in known:
            prefix = first[:cut]
            if all(k.startswith(prefix) and k[cut:] in known for k in longer):
                return prefix
            return None
    return None




def head_only(file_classes: int, model_classes: int) -> str:
    """The words for a misfit of the classification head alone."""
    return (f"only the classification head differs ({file_classes} classes in the file, "
            f"{model_classes} in the model)")


def misfit_error(source: str, target: str, misfit: Misfit, *, classes: int | None = None,
                 advice: str | None = None) -> WeightsMisfitError:
    """The error for weights from ``source`` that do not fit ``target`` (the model's name);
    ``classes``: the model's class count, when known; ``advice``: what to do."""
    message = f"the weights in {source} do not fit {target}: {misfit.describe()}"
    found = None if classes is None else misfit.head_classes(classes)
    if advice is None and found is not None and classes is not None:
        advice = f"{head_only(found, classes)}: build the model with {found} outputs"
    return WeightsMisfitError(message + (f"; {advice}" if advice else ""), misfit, source,
                              classes)


def head_width(model: nn.Module) -> int | None:
    """The outputs of the model's last ``nn.Linear`` (its classification head, usually)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1].out_features if linears else None


def read_state_dict(path: str | os.PathLike[str], *,
                    trust_pickle: bool = False) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file, or of a ``.pt``/``.pth``/``.bin`` state dict
    read with ``torch.load(weights_only=True)``.

    A ``.pt`` file that holds more than tensors is refused (nothing of it is unpickled)
    unless ``trust_pickle`` is set; then it is read with ``weights_only=False``.
    """
    source = Path(path)
    if not source.is_file():
        raise ConfigError(f"weights file {str(source)!r} does not exist")
    if source.suffix == ".safetensors":
        try:
            return load_file(str(source))
        except (SafetensorError, OSError) as exc:
            raise ModelLoadError(f"{str(source)!r} is not a valid safetensors file: {exc}") \
                from None
    if source.suffix not in (".pt", ".pth", ".bin"):
        raise ConfigError(f"weights file {str(source)!r}: use .safetensors, or a .pt/.pth "
                          "state dict")
    try:
        try:
            state = torch.load(source, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            if not trust_pickle:
                raise refusal(source, "holds pickled objects other than tensors") from None
            state = torch.load(source, map_location="cpu", weights_only=False)
            if isinstance(state, nn.Module):
                state = state.state_dict()
    except ModelLoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - torch.load raises many kinds of errors
        raise ModelLoadError(f"{str(source)!r} could not be read as a plain state dict "
                             f"({type(exc).__name__}); save a state_dict or use safetensors") \
            from None
    if not isinstance(state, dict):
        raise ConfigError(f"{str(source)!r} holds a {type(state).__name__}, not a state dict")
    others = [str(k) for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if others:
        nested = [str(k) for k, v in state.items() if isinstance(v, dict)]
        hint = (f": save the entry that holds the weights alone, e.g. "
                f"torch.save(checkpoint[{nested[0]!r}], ...)" if nested else "")
        raise ConfigError(f"{str(source)!r} holds a checkpoint, not a state dict of tensors "
                          f"(entries that are no tensors: {_few(others)}){hint}")
    return state


def _tied(model: nn.Module, state: Mapping[str, torch.Tensor]) -> frozenset[str]:
    """Names of the model's tensors that share storage with a tensor the file holds
    (tied weights: safetensors stores one copy)."""
    own = model.state_dict(keep_vars=True)
    present = {own[k].data_ptr() for k in state if k in own} - {0}
    return frozenset(k for k, v in own.items() if k not in state and v.data_ptr() in present)


def load_state(model: nn.Module, state: Mapping[str, torch.Tensor], *, source: str,
               target: str = "the model") -> nn.Module:
    """Load ``state`` into ``model`` strictly (tied copies may be absent); raise
    :class:`WeightsMisfitError` naming ``source`` and ``target`` when it does not fit."""
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    misfit = Misfit.between(shapes, {k: tuple(v.shape) for k, v in state.items()},
                            optional=_tied(model, state))
    if misfit:
        raise misfit_error(source, target, misfit, classes=head_width(model))
    model.load_state_dict(state, strict=False)
    return model


def load_weights(model: nn.Module, path: str | os.PathLike[str], *,
                 trust_pickle: bool = False) -> nn.Module:
    """Load a ``.safetensors`` file, or a ``.pt``/``.pth`` state dict read with
    ``torch.load(weights_only=True)``, into ``model`` strictly (see :func:`read_state_dict`);
    raise :class:`WeightsMisfitError` saying which tensors differ when it does not fit."""
    state = read_state_dict(path, trust_pickle=trust_pickle)
    return load_state(model, state, source=repr(str(path)))
