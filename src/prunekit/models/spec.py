"""Build a model from a spec string: ``torchvision:NAME``, ``timm:NAME``,
``prunekit:digits_cnn``, a local Hugging Face folder (``config.json`` inside),
``path/to/file.py:factory``, an ONNX file ``path/to/model.onnx`` (converted by
:func:`prunekit.onnx.load` and checked against onnxruntime), or a whole pickled model
``path/to/model.pt`` (refused unless trusted, see :mod:`.pickled`).

Constructor arguments follow a ``?``, comma-separated (``torchvision:resnet18?num_classes=10``,
``timm:resnet18?num_classes=10,drop_rate=0.1``, ``my_folder?num_labels=5``,
``net.py:make?width=3``; see :mod:`.args`); each is checked against the constructor's
parameters before the model is built. A pickled model takes none.

torchvision models are built with ``weights=None`` and timm models with
``pretrained=False`` (architecture only; nothing is downloaded). A Hugging Face folder is
read with ``local_files_only=True`` (see :mod:`.hf_local`); its arguments override its
config. A Python file is executed as a module and its ``factory`` is called with the
arguments: only pass files you trust, as with any Python code you run.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, ModelLoadError, PrunekitError
from .args import Args, Parameters, Scalar, format_args, merge_args, parse_query
from .pickled import PICKLE_SUFFIXES, load_pickled_model

__all__ = ["ModelSpec", "build_model_spec", "load_file_function", "load_model_spec",
           "parse_model_spec"]

_BUILTIN = {"digits_cnn": (1, 1, 8, 8)}
_PREFIXES = ("torchvision", "timm", "prunekit")
#: arguments prunekit sets itself, with what to do instead
_RESERVED = {
    "torchvision": {"weights": "prunekit builds the architecture only (weights=None)"},
    "timm": {name: "prunekit builds the architecture only (pretrained=False)"
             for name in ("pretrained", "pretrained_cfg", "pretrained_cfg_overlay",
                          "checkpoint_path", "cache_dir")},
}


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec: its ``kind`` (torchvision, timm, hf, prunekit, file, onnx,
    pickle), target, name and constructor ``args`` (``((key, value), ...)``)."""

    kind: str
    target: str
    name: str
    args: Args = ()

    @property
    def kwargs(self) -> dict[str, Scalar]:
        """The constructor arguments as keywords."""
        return dict(self.args)

    @property
    def text(self) -> str:
        """The spec as a string that parses back to this spec, arguments included."""
        if self.kind in _PREFIXES:
            base = f"{self.kind}:{self.name}"
        elif self.kind == "file":
            base = f"{self.target}:{self.name}"
        else:
            base = self.target
        return f"{base}?{format_args(self.args)}" if self.args else base

    def with_args(self, extra: Mapping[str, Scalar] | Iterable[tuple[str, Scalar]]
                  ) -> ModelSpec:
        """This spec with more arguments (a key already given differently is an error)."""
        return ModelSpec(self.kind, self.target, self.name,
                         merge_args(self.args, extra, where=f"model spec {self.text!r}"))

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
        rest = [d for d in dims[1:] if isinstance(d, int)]
        if len(rest) != len(dims[1:]):
            return None
        return (1, *rest) if dims else None

    @property
    def integer_inputs(self) -> bool:
        """Whether the model reads integer inputs (token ids) rather than floats."""
        if self.kind == "onnx":
            from ..onnx.graph import read_signature

            inputs = read_signature(self.target).inputs
            return bool(inputs) and inputs[0].dtype.startswith(("int", "uint"))
        return self.kind == "hf"

    def random_example(self, shape: tuple[int, ...]) -> torch.Tensor:
        """A random input of ``shape`` for this model: token ids in [0, 100) when it reads
        integers, standard-normal floats otherwise."""
        if self.integer_inputs:
            return torch.randint(0, 100, shape)
        return torch.randn(*shape)


def _split_query(text: str) -> tuple[str, Args]:
    """The spec without its ``?a=1,b=2`` part, and those arguments."""
    if "?" not in text or Path(text).exists():
        return text, ()
    base, _, query = text.partition("?")
    return base, parse_query(query, spec=text)


def parse_model_spec(spec: str, args: Mapping[str, Scalar] | Iterable[tuple[str, Scalar]] = ()
                     ) -> ModelSpec:
    """Split ``spec`` into kind, target, name and constructor arguments (those after ``?``
    plus ``args``); raise :class:`ConfigError` if malformed."""
    text, query = _split_query(spec.strip())
    parsed = _parse_base(spec, text)
    if parsed.kind in ("pickle", "onnx") and (query or args):
        what = "a pickled model" if parsed.kind == "pickle" else "an ONNX file"
        raise ConfigError(f"{spec!r} is {what}, which takes no constructor arguments")
    return parsed.with_args(query).with_args(args)


def _parse_base(spec: str, text: str) -> ModelSpec:
    prefix, sep, rest = text.partition(":")
    if sep and prefix in _PREFIXES:
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
                      "--trust-pickle); constructor arguments after '?', e.g. "
                      "torchvision:resnet18?num_classes=10")


def _check_reserved(spec: ModelSpec) -> None:
    for key in spec.kwargs:
        reason = _RESERVED.get(spec.kind, {}).get(key)
        if reason is not None:
            raise ConfigError(f"{spec.text}: argument {key!r} is set by prunekit: {reason}; "
                              "load trained weights with --weights FILE (a recipe's "
                              "model.weights)")


def _returned_class(fn: Callable[..., Any]) -> Any:
    """The class a builder function is annotated to return, if it says."""
    try:
        returned = inspect.signature(fn, eval_str=True).return_annotation
    except Exception:  # noqa: BLE001 - unresolvable annotations: the class stays unknown
        return None
    return returned if isinstance(returned, type) and issubclass(returned, nn.Module) else None


def _builder_parameters(owner: str, builder: Callable[..., Any],
                        *functions: Callable[..., Any], skip: tuple[str, ...]) -> Parameters:
    """The parameters of ``functions``, of ``builder`` and of the class ``builder`` says it
    returns (its ``**kwargs`` reach that class); any name when the class is unknown."""
    cls = _returned_class(builder)
    if cls is None:
        return replace(Parameters.of(owner, *functions, builder, skip=skip), open=True)
    return Parameters.of(f"{owner} ({cls.__name__})", *functions, builder, cls.__init__,
                         skip=skip)


def _construct(spec: ModelSpec, fn: Callable[..., Any]) -> Any:
    """``fn(**spec.kwargs)``, its failure one line naming the spec."""
    try:
        return fn(**spec.kwargs)
    except PrunekitError:
        raise
    except Exception as exc:  # noqa: BLE001 - constructors may raise anything
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise ModelLoadError(f"building {spec.text} failed: {type(exc).__name__}: {first}") \
            from None


def _torchvision_model(spec: ModelSpec) -> tuple[nn.Module, Parameters]:
    try:
        import torchvision
    except ImportError:
        raise ConfigError("torchvision is not installed: pip install 'prunekit[vision]'") from None
    available = torchvision.models.list_models()
    if spec.name not in available:
        close = [m for m in available if spec.name.lower() in m][:5]
        hint = (f"; did you mean one of {close}?" if close
                else "; see torchvision.models.list_models()")
        raise ConfigError(f"torchvision has no model {spec.name!r}{hint}")
    builder = torchvision.models.get_model_builder(spec.name)
    params = _builder_parameters(f"torchvision's {spec.name}", builder,
                                 skip=("weights", "progress"))
    params.check(spec.args, spec.text)
    return _construct(spec, lambda **kw: builder(weights=None, **kw)), params


def _timm_model(spec: ModelSpec) -> tuple[nn.Module, Parameters]:
    try:
        import timm
    except ImportError:
        raise ConfigError("timm is not installed: pip install timm") from None
    if not timm.is_model(spec.name):
        close = timm.list_models(f"*{spec.name}*")[:5]
        hint = f"; did you mean one of {close}?" if close else "; see timm.list_models()"
        raise ConfigError(f"timm has no model {spec.name!r}{hint}")
    params = _builder_parameters(f"timm's {spec.name}", timm.models.model_entrypoint(spec.name),
                                 timm.create_model, skip=("model_name", *_RESERVED["timm"]))
    params.check(spec.args, spec.text)
    return _construct(spec, lambda **kw: timm.create_model(spec.name, pretrained=False,
                                                           **kw)), params


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
            raise ModelLoadError(f"importing {path_text!r} failed: {type(exc).__name__}: "
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


def _file_model(spec: ModelSpec) -> tuple[nn.Module, Parameters]:
    where = f"{spec.target}:{spec.name}"
    with _imported(spec.target, "model") as module:
        fn = getattr(module, spec.name, None)
        if not callable(fn):
            raise ConfigError(f"{spec.target!r} defines no callable {spec.name!r}")
        params = Parameters.of(f"{where}()", fn)
        params.check(spec.args, spec.text)
        try:
            model = fn(**spec.kwargs)
        except Exception as exc:  # noqa: BLE001 - user code may raise anything
            raise ModelLoadError(f"{where}() failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{where}() returned {type(model).__name__}, not a torch.nn.Module")
    return model, params


def _builtin_model(spec: ModelSpec) -> tuple[nn.Module, Parameters]:
    from .digits_cnn import DigitsCNN

    params = Parameters.of("prunekit's DigitsCNN", DigitsCNN.__init__)
    params.check(spec.args, spec.text)
    return _construct(spec, DigitsCNN), params


def build_model_spec(spec: str | ModelSpec, *, trust_pickle: bool = False
                     ) -> tuple[nn.Module, Parameters | None]:
    """The model a spec names (random or factory-defined weights, in eval mode) and the
    parameters its constructor accepts (``None`` for a pickled model or an ONNX file).

    Arguments the constructor does not accept are refused before anything is built; a
    pickled model file is unpickled only with ``trust_pickle=True``.
    """
    parsed = parse_model_spec(spec) if isinstance(spec, str) else spec
    _check_reserved(parsed)
    params: Parameters | None
    if parsed.kind == "pickle":
        model, params = load_pickled_model(parsed.target, trust_pickle=trust_pickle), None
    elif parsed.kind == "torchvision":
        model, params = _torchvision_model(parsed)
    elif parsed.kind == "timm":
        model, params = _timm_model(parsed)
    elif parsed.kind == "hf":
        from .hf_local import load_hf_folder
        model, params = load_hf_folder(parsed.target, parsed.args)
    elif parsed.kind == "onnx":
        from ..onnx import load as load_onnx
        model, params = load_onnx(parsed.target), None
    elif parsed.kind == "prunekit":
        model, params = _builtin_model(parsed)
    else:
        model, params = _file_model(parsed)
    return model.eval(), params


def load_model_spec(spec: str | ModelSpec, *, trust_pickle: bool = False) -> nn.Module:
    """Build the model a spec names (random or factory-defined weights), in eval mode.

    A pickled model file is unpickled only with ``trust_pickle=True``.
    """
    return build_model_spec(spec, trust_pickle=trust_pickle)[0]
