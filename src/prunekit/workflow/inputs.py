"""The inputs of a run: the model a :class:`ModelSource` names and the data a
:class:`DataSource` names, checked to fit each other, plus the loaders and measurements that
``prune``, ``run`` (one shot or iterative) and ``analyze`` share."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch
from safetensors.torch import save as safetensors_bytes
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ..data.arrays import ArrayData
from ..data.spec import load_data_spec
from ..errors import ConfigError, ModelInputError
from ..measure.latency import resolve_device
from ..metrics import parse_metric
from ..models.build import BuiltModel, build_with_weights, classes_mismatch
from ..models.spec import ModelSpec
from ..report.stats import ModelStats, collect_stats
from ..train.outputs import logits_of
from .config import DataSource, ModelSource, OutputConfig

__all__ = ["RunInputs", "build_model", "file_bytes", "fit_data", "load_inputs",
           "measure_model", "task_info", "train_loader", "val_loader"]


@dataclass(frozen=True)
class RunInputs:
    """A built model (eval mode), its data, a one-sample example input and the spec the
    model was built from (arguments inferred from its weights included)."""

    model: nn.Module
    data: ArrayData
    example: torch.Tensor
    spec: ModelSpec


def build_model(source: ModelSource, *, seed: int | None = None,
                log: Callable[[str], None] | None = None) -> BuiltModel:
    """Build the model ``source`` names and load its weights (a class count that only the
    weights know is inferred, and said through ``log``); ``seed`` fixes a random init."""
    if seed is not None:
        torch.manual_seed(seed)
    built = build_with_weights(source.model_spec(), weights=source.weights,
                               trust_pickle=source.trust_pickle)
    for line in built.inferred:
        if log is not None:
            log(line)
    return built


def _shaped(data: ArrayData, shape: tuple[int, ...] | None) -> ArrayData:
    """Reshape every sample to ``shape[1:]`` (the example-input shape without the batch)."""
    if shape is None:
        return data
    sample = data.x_val.shape[1:]
    if data.x_val[0].numel() != torch.Size(shape[1:]).numel():
        raise ConfigError(f"data samples of shape {tuple(sample)} cannot be reshaped to the "
                          f"input shape {shape} (per sample {shape[1:]})")
    return replace(data, x_train=data.x_train.reshape(-1, *shape[1:]),
                   x_val=data.x_val.reshape(-1, *shape[1:]), feature_names=None)


def _check_fit(built: BuiltModel, example: torch.Tensor, data: ArrayData) -> None:
    """Fail with one clear line when the data does not fit the model: it does not run on a
    sample, returns no logits, or has another number of them than the data has classes
    (fewer, when the data's labels only bound the class count)."""
    spec = built.spec.text
    try:
        with torch.no_grad():
            out = logits_of(built.model(example))
    except Exception as exc:  # noqa: BLE001 - user models may raise anything
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise ModelInputError(f"{spec} does not run on data samples of shape "
                              f"{tuple(example.shape)} from {data.name} ({type(exc).__name__}: "
                              f"{first}); pass --input-shape or other data") from None
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        raise ModelInputError(f"{spec} must return class logits (batch, classes) for "
                              f"classification data; it returned "
                              f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out)}")
    outputs = out.shape[1]
    exact = data.class_names is not None
    if outputs < data.num_classes or (exact and outputs != data.num_classes):
        raise ModelInputError(classes_mismatch(built, outputs, data.num_classes, data.name))


def _token_ids(data: ArrayData) -> ArrayData:
    """The data's features as integer token ids, for a model that reads ids (a Hugging Face
    text model, an ONNX file with integer inputs); features that are not whole numbers
    >= 0 are an error."""
    if not data.x_val.is_floating_point():
        return data
    for x in (data.x_train, data.x_val):
        if bool((x != x.round()).any()) or bool((x < 0).any()):
            raise ModelInputError(f"the model reads token ids, but {data.name} holds features "
                                  "that are not whole numbers >= 0; give token ids "
                                  "(x as integers, one row per sequence)")
    return replace(data, x_train=data.x_train.long(), x_val=data.x_val.long())


def _onnx_shape(spec: ModelSpec, shape: tuple[int, ...] | None,
                data: ArrayData) -> tuple[int, ...] | None:
    """An ONNX file's recorded input shape, when data samples have its size but not its
    layout (digits as 64 features for an ``N x 8 x 8 x 1`` Keras input)."""
    if shape is None or spec.kind != "onnx":
        return None
    if tuple(data.x_val.shape[1:]) == tuple(shape[1:]):
        return None
    return shape if data.x_val[0].numel() == torch.Size(shape[1:]).numel() else None


def fit_data(built: BuiltModel, model_source: ModelSource,
             data_source: DataSource) -> RunInputs:
    """Load the data for the built model, shape it to the model's input and check that one
    sample runs and gives one logit per class.

    Images of a Hugging Face dataset are converted to the model's input per sample (from
    ``model_source.input_shape`` or the spec's default shape), when known.
    """
    shape = model_source.input_shape or built.spec.default_input_shape
    data = load_data_spec(data_source.spec, label_column=data_source.label_column,
                          val_fraction=data_source.val_fraction, seed=data_source.seed,
                          image_size=data_source.image_size, split=data_source.split,
                          feature_column=data_source.feature_column,
                          sample_shape=None if shape is None else tuple(shape[1:]))
    data = _shaped(data, model_source.input_shape or _onnx_shape(built.spec, shape, data))
    if built.spec.integer_inputs:
        data = _token_ids(data)
    example = data.x_val[:1].clone()
    _check_fit(built, example, data)
    return RunInputs(built.model, data, example, built.spec)


def load_inputs(model_source: ModelSource, data_source: DataSource, *,
                seed: int | None = None, log: Callable[[str], None] | None = None
                ) -> RunInputs:
    """Build the model, load and shape the data, and check that one sample runs."""
    return fit_data(build_model(model_source, seed=seed, log=log), model_source, data_source)


def train_loader(data: ArrayData, source: DataSource, seed: int | None = None) -> DataLoader:
    """The training split, shuffled in an order fixed by ``seed`` (default: the data seed)."""
    gen = torch.Generator().manual_seed(source.seed if seed is None else seed)
    return DataLoader(TensorDataset(data.x_train, data.y_train), batch_size=source.batch_size,
                      shuffle=True, generator=gen)


def val_loader(data: ArrayData) -> DataLoader:
    """The validation split, in a fixed order."""
    return DataLoader(TensorDataset(data.x_val, data.y_val), batch_size=256)


def file_bytes(model: nn.Module) -> int:
    """Size of the model's weights as a safetensors file."""
    return len(safetensors_bytes({k: v.contiguous() for k, v in model.state_dict().items()}))


def measure_model(model: nn.Module, example: torch.Tensor, out: OutputConfig,
                  metric: float | None) -> ModelStats:
    """The report's figures of ``model`` under the latency settings of ``out`` (on
    ``out.device``: a copy of the model moves there, the model itself stays)."""
    device = resolve_device(out.device)
    timed, inputs = model, example
    if device.type != "cpu":
        timed, inputs = copy.deepcopy(model).to(device), example.to(device)
    stats = collect_stats(timed, inputs, threads=out.threads, warmup=out.warmup,
                          repeats=out.repeats, metric=metric, cuda_graph=out.cuda_graph)
    return stats.with_file_bytes(file_bytes(model))


def serving_speed(dense: nn.Module, pruned: nn.Module, example: torch.Tensor,
                  samples: torch.Tensor, serving_batch: int, macs_ratio: float,
                  out: OutputConfig, log: Callable[[str], None]) -> dict[str, Any]:
    """The report's speed section: ``dense`` and ``pruned`` timed interleaved at batch 1
    and at ``serving_batch`` (validation samples, repeated when there are fewer), on CPU;
    its headline lines go to ``log``."""
    from ..report.speed import speed_lines, speed_section

    log(f"timing dense and pruned interleaved at batch 1 and {serving_batch}")
    index = torch.arange(serving_batch) % max(1, samples.shape[0])
    batches = {1: example[:1], serving_batch: samples[index].to(example.dtype)}
    section, _ = speed_section(dense.eval(), pruned.eval(), batches,
                               serving_batch=serving_batch, macs_ratio=macs_ratio,
                               warmup=out.warmup, rounds=max(out.repeats, 5),
                               threads=out.threads)
    for line in speed_lines(section):
        log(line)
    return section


def task_info(data: ArrayData, source: DataSource) -> dict[str, Any]:
    """The report's ``task`` object: the data, the metric (name, spec, whether a fraction)
    and the sample counts."""
    metric = parse_metric(source.metric)
    return {"dataset": data.name, "metric": metric.name, "metric_spec": metric.text,
            "metric_fraction": metric.fraction, "split": "validation",
            "train_samples": len(data.y_train), "val_samples": len(data.y_val)}
