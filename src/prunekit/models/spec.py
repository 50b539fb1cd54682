"""Build a model from a spec string: ``torchvision:NAME``, ``timm:NAME``,
``prunekit:digits_cnn``, a local Hugging Face folder (``config.json`` inside),
``path/to/file.py:factory``, an ONNX file ``path/to/model.onnx`` (converted by
:func:`prunekit.onnx.load` and checked against onnxruntime), or a whole pickled model
``path/to/model.pt`` (refused unless trusted, see :mod:`.pickled`).

torchvision models are built with ``weights=None`` and timm models with
``pretrained=False`` (architecture only; nothing is downloaded). A Hugging Face folder is
read with ``local_files_only=True`` (see :mod:`.hf_local`). A Python file is executed as a module and its ``factory`` is called with no
arguments: only pass files you trust, as with any Python code you run.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from torch import nn

from ..errors import ConfigError, PrunekitError
from .pickled import PICKLE_SUFFIXES, load_pickled_model

__all__ = ["ModelSpec", "load_file_function", "load_model_spec", "parse_model_spec"]

_BUILTIN = {"digits_cnn": (1, 1, 8, 8)}


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec: its ``kind`` (torchvision, timm, hf, prunekit, file, onnx,
    pickle), target and name."""

    kind: str
    target: str
    name: str

    @property
    def default_input_shape(self) -> tuple[int, ...] | None:
        """A sensible example-input shape, when the spec implies one."""
        if self.kind == "torchvision":
            return (1, 3, 299, 299) if self.name == "inception_v3" else (1, 3, 224, 224)
        if self.kind == "timm":
            return (1, 3, 224, 224)
        if self.kind == "prunekit":
            return _BUILTIN[self.name]
        if self.kind == "hf":
            return (1, 16)  # one sequence of 16 token ids
        if self.kind == "onnx":
            return self._onnx_input_shape()
        return None

    def _onnx_input_shape(self) -> tuple[int, ...] | None:
        """The first input's recorded shape with batch 1 (None when it has other dynamic
        axes or the file has several inputs)."""
        from ..onnx.graph import read_signature

        inputs = read_signature(self.target).inputs
        if len(inputs) != 1 or inputs[0].dims is None:
            return None
        dims = inputs[0].dims
        if any(not isinstance(d, int) for d in dims[1:]):
            return None
        return (1, *(int(d) for d in dims[1:])) if dims else None

    @property
    def integer_inputs(self) -> bool:
        """Whether the model reads integer inputs (token ids) rather than floats."""
        if self.kind == "onnx":
            from ..onnx.graph import read_signature

            inputs = read_signature(self.target).inputs
            return bool(inputs) and inputs[0].dtype.startswith(("int", "uint"))
        return self.kind == "hf"


def parse_model_spec(spec: str) -> ModelSpec:
    """Split ``spec`` into kind, target and name; raise :class:`ConfigError` if malformed."""
    text = spec.strip()
    prefix, sep, rest = text.partition(":")
    if sep and prefix in ("torchvision", "timm", "prunekit"):
        if not rest:
            raise ConfigError(f"model spec {spec!r} names no model; e.g. torchvision:resnet18")
        if prefix == "prunekit" and rest not in _BUILTIN:
            raise ConfigError(f"unknown built-in model {rest!r}; choose one of {sorted(_BUILTIN)}")
        return ModelSpec(prefix, rest, rest)
    path, sep, factory = text.rpartition(":")
    if sep and path.endswith(".py") and factory.isidentifier():
        return ModelSpec("file", path, factory)
    if Path(text).suffix in PICKLE_SUFFIXES:
        return ModelSpec("pickle", text, Path(text).stem)
    if Path(text).suffix.lower() == ".onnx":
        if not Path(text).is_file():
            raise ConfigError(f"ONNX file {text!r} does not exist")
        return ModelSpec("onnx", text, Path(text).stem)
    if text and (Path(text) / "config.json").is_file():
        return ModelSpec("hf", text, Path(text).resolve().name)
    raise ConfigError(f"unknown model spec {spec!r}: use torchvision:NAME, timm:NAME, "
                      "prunekit:digits_cnn, a Hugging Face folder (with config.json), "
                      "path/to/file.py:factory, a model.onnx file or a pickled model.pt (with "
                      "--trust-pickle)")


def _torchvision_model(name: str) -> nn.Module:
    try:
        import torchvision
    except ImportError:
        raise ConfigError("torchvision is not installed: pip install 'prunekit[vision]'") from None
    available = torchvision.models.list_models()
    if name not in available:
        close = [m for m in available if name.lower() in m][:5]
        hint = (f"; did you mean one of {close}?" if close
                else "; see torchvision.models.list_models()")
        raise ConfigError(f"torchvision has no model {name!r}{hint}")
    return torchvision.models.get_model(name, weights=None)


def _timm_model(name: str) -> nn.Module:
    try:
        import timm
    except ImportError:
        raise ConfigError("timm is not installed: pip install timm") from None
    if not timm.is_model(name):
        close = timm.list_models(f"*{name}*")[:5]
        hint = f"; did you mean one of {close}?" if close else "; see timm.list_models()"
        raise ConfigError(f"timm has no model {name!r}{hint}")
    return timm.create_model(name, pretrained=False)


@contextmanager
def _imported(path_text: str, what: str) -> Iterator[ModuleType]:
    """Import the Python file ``path_text`` as a module (its code runs) for the duration."""
    path = Path(path_text)
    if not path.is_file():
        raise ConfigError(f"{what} file {path_text!r} does not exist")
    module_name = f"prunekit_user_{what.replace(' ', '_')}_{abs(hash(path.resolve()))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot import {path_text!r} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look the module up here
    try:
        try:
            spec.loader.exec_module(module)
        except Exception as exc:  # noqa: BLE001 - user code may raise anything
            raise PrunekitError(f"importing {path_text!r} failed: {type(exc).__name__}: "
                                f"{exc}") from None
        yield module
    finally:
        sys.modules.pop(module_name, None)


def load_file_function(path_text: str, name: str, *, what: str = "Python") -> Callable[..., Any]:
    """The callable ``name`` defined in the Python file ``path_text`` (imported: its code
    runs; only pass files you trust). ``what`` names the file in errors (e.g. ``metric``)."""
    with _imported(path_text, what) as module:
        fn = getattr(module, name, None)
    if not callable(fn):
        raise ConfigError(f"{path_text!r} defines no callable {name!r}")
    return fn


def _file_model(path_text: str, factory: str) -> nn.Module:
    with _imported(path_text, "model") as module:
        fn = getattr(module, factory, None)
        if not callable(fn):
            raise ConfigError(f"{path_text!r} defines no callable {factory!r}")
        try:
            model = fn()
        except Exception as exc:  # noqa: BLE001 - user code may raise anything
            raise PrunekitError(f"{path_text}:{factory}() failed: {type(exc).__name__}: "
                                f"{exc}") from None
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{path_text}:{factory}() returned {type(model).__name__}, "
                          "not a torch.nn.Module")
    return model


def load_model_spec(spec: str | ModelSpec, *, trust_pickle: bool = False) -> nn.Module:
    """Build the model a spec names (random or factory-defined weights), in eval mode.

    A pickled model file is unpickled only with ``trust_pickle=True``.
    """
    parsed = parse_model_spec(spec) if isinstance(spec, str) else spec
    if parsed.kind == "pickle":
        model = load_pickled_model(parsed.target, trust_pickle=trust_pickle)
    elif parsed.kind == "torchvision":
        model = _torchvision_model(parsed.name)
    elif parsed.kind == "timm":
        model = _timm_model(parsed.name)
    elif parsed.kind == "hf":
        from .hf_local import load_hf_folder
        model = load_hf_folder(parsed.target)
    elif parsed.kind == "onnx":
        from ..onnx import load as load_onnx
        model = load_onnx(parsed.target)
    elif parsed.kind == "prunekit":
        from .digits_cnn import DigitsCNN
        model = DigitsCNN()
    else:
        model = _file_model(parsed.target, parsed.name)
    return model.eval()
