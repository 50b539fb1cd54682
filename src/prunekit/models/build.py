"""A model built from its spec with its weights, and its class count made to fit.

:func:`build_with_weights` builds the spec and loads ``--weights``. When they do not fit only
because the classification head was built for another class count, and the spec leaves the
count open (``num_classes``, or ``num_labels`` for a Hugging Face folder, is a parameter the
constructor accepts and was not given), the model is built again with the file's count; the
result says what was inferred and carries the spec with it, so reports and exports rebuild
the same model. Otherwise the error names the tensors that differ and how to fix the spec.

:func:`classes_mismatch` is the message for data whose class count the model's output does
not match, with the spec that would fit.
"""

from __future__ import annotations

import os
from pathlib import Path
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import PrunekitError
from .args import Parameters, Scalar
from .spec import ModelSpec, build_model_spec, parse_model_spec
from .weights import (WeightsMisfitError, head_only, load_state, misfit_error,
                      read_state_dict)

__all__ = ["CLASS_ARGUMENTS", "BuiltModel", "build_with_weights", "class_argument",
           "classes_mismatch", "respecified"]

#: constructor parameters that set the number of classes, in order of preference
CLASS_ARGUMENTS = ("num_classes", "num_labels")


@dataclass(frozen=True)
class BuiltModel:
    """A built model (eval mode), the spec it was built from (arguments inferred from the
    weights included), its constructor's parameters (``None``: a pickled model or an ONNX
    file) and what was inferred, one line each."""

    model: nn.Module
    spec: ModelSpec
    parameters: Parameters | None = None
    inferred: tuple[str, ...] = ()
    #: trained weights were loaded (a weights file, or a Hugging Face folder's own), so the
    #: head's class count is theirs
    weighted: bool = False

    @property
    def class_argument(self) -> str | None:
        """The constructor argument that sets the class count, when there is one."""
        return class_argument(self.spec, self.parameters, self.model)


def class_argument(spec: ModelSpec, parameters: Parameters | None,
                   model: nn.Module | None = None) -> str | None:
    """``num_labels`` for a Hugging Face folder (with a classification head, when ``model``
    is given), else ``num_classes`` when the constructor accepts it; ``None`` when no
    argument sets the class count."""
    if spec.kind == "hf":
        classifier = model is None or type(model).__name__.endswith("ForSequenceClassification")
        return "num_labels" if classifier else None
    if parameters is None:
        return None
    return next((name for name in CLASS_ARGUMENTS if name in parameters.names), None)


def respecified(spec: ModelSpec, key: str, value: Scalar) -> ModelSpec:
    """``spec`` with argument ``key`` set to ``value`` (in place of a given one)."""
    if key not in spec.kwargs:
        return spec.with_args({key: value})
    args = tuple((k, value if k == key else v) for k, v in spec.args)
    return ModelSpec(spec.kind, spec.target, spec.name, args)


def _fix(spec: ModelSpec, key: str, value: Scalar) -> str:
    return f"{respecified(spec, key, value).text}, or --model-arg {key}={value}"


def _attempt(spec: ModelSpec, state: dict[str, torch.Tensor] | None, source: str,
             trust_pickle: bool) -> tuple[BuiltModel | None, WeightsMisfitError | None]:
    try:
        model, params = build_model_spec(spec, trust_pickle=trust_pickle)
    except WeightsMisfitError as err:  # a Hugging Face folder's own weights
        return None, err
    own = spec.kind == "hf" and any(Path(spec.target).glob("*.safetensors"))
    built = BuiltModel(model, spec, params, weighted=state is not None or own)
    if state is not None:
        try:
            load_state(model, state, source=source, target=spec.text)
        except WeightsMisfitError as err:
            return built, err
    return built, None


def _current_classes(spec: ModelSpec, built: BuiltModel | None, argument: str | None,
                     error: WeightsMisfitError) -> int | None:
    """The model's class count: the spec's argument, else the constructor's default, else
    what the loader saw (a Hugging Face config, a last linear layer)."""
    if argument is not None:
        value = spec.kwargs.get(argument)
        if value is None and built is not None and built.parameters is not None:
            value = built.parameters.defaults.get(argument)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return error.classes


def build_with_weights(spec: str | ModelSpec, *, weights: str | os.PathLike[str] | None = None,
                       trust_pickle: bool = False) -> BuiltModel:
    """Build ``spec`` and load ``weights`` into it (see the module notes)."""
    parsed = parse_model_spec(spec) if isinstance(spec, str) else spec
    state = None if weights is None else read_state_dict(weights, trust_pickle=trust_pickle)
    source = "" if weights is None else repr(str(weights))
    built, error = _attempt(parsed, state, source, trust_pickle)
    if error is None:
        assert built is not None
        return built
    argument = (class_argument(parsed, None) if built is None
                else built.class_argument)
    has = _current_classes(parsed, built, argument, error)
    wanted = None if has is None else error.misfit.head_classes(has)
    if wanted is None or has is None:
        raise error
    if argument is not None and argument not in parsed.kwargs:
        retry = parsed.with_args({argument: wanted})
        try:
            rebuilt, again = _attempt(retry, state, source, trust_pickle)
        except PrunekitError:  # the constructor refuses that count: report the misfit
            rebuilt = None
        if rebuilt is not None and again is None:
            name, found, _ = error.misfit.mismatched[0]
            note = (f"{argument}={wanted} inferred from the weights in {error.source} "
                    f"({name} {list(found)}): the model is {retry.text}")
            return BuiltModel(rebuilt.model, retry, rebuilt.parameters, (note,),
                              weighted=rebuilt.weighted)
    differs = head_only(wanted, has)
    if argument is None:
        advice = f"{differs}: build the model with {wanted} outputs"
        if parsed.kind == "file":
            advice += (f" (give {parsed.name}() a num_classes parameter, then pass "
                       f"{respecified(parsed, 'num_classes', wanted).text})")
    elif argument in parsed.kwargs:
        advice = (f"{differs}: set {argument}={wanted} instead of {parsed.kwargs[argument]}: "
                  f"{_fix(parsed, argument, wanted)}")
    else:
        advice = f"{differs}, and building it with {argument}={wanted} did not work either"
    raise misfit_error(error.source, parsed.text, error.misfit, classes=has,
                       advice=advice) from None


def classes_mismatch(built: BuiltModel, outputs: int, classes: int, data: str) -> str:
    """The message for a model with ``outputs`` logits on ``data`` with ``classes`` classes."""
    message = f"{data} has {classes} classes but {built.spec.text} outputs {outputs} logits"
    argument = built.class_argument
    if argument is not None and built.weighted:
        return (f"{message}, and its trained weights fix the head at {outputs} classes: use "
                f"data with {outputs} classes, or weights trained for {classes} "
                f"({argument}={classes} would leave the weights' head unloadable)")
    if argument is not None:
        return f"{message}: build it with {argument}={classes}: " \
               f"{_fix(built.spec, argument, classes)}"
    return f"{message}: make the model output {classes} logits (one per class)"
