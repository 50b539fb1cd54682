"""One pruning run: build the model, load the data, prune, fine-tune, measure, write files.

Nothing is written until every step has succeeded; then the pruned model (``pruned/``,
via :func:`~prunekit.save_pruned`) and the report (``report.json`` / ``report.html``) are
written atomically into ``config.out.dir``.
"""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save as safetensors_bytes
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ..api import prune
from ..data.arrays import ArrayData
from ..data.spec import load_data_spec
from ..errors import ConfigError, PrunekitError
from ..models.spec import load_model_spec, parse_model_spec
from ..models.weights import load_weights
from ..report.build import build_report, point
from ..report.io import ReportFiles, write_report
from ..report.stats import ModelStats, collect_stats
from ..serialization import WEIGHTS, save_pruned
from ..train.finetune import EpochRecord, evaluate, finetune
from .config import RunConfig

__all__ = ["RunResult", "run_pruning"]

Log = Callable[[str], None]
CALIBRATION_BATCHES = 4


@dataclass
class RunResult:
    """The report, its files, the pruned model's folder and, with input-feature pruning,
    the kept and dropped feature names."""

    report: dict[str, Any]
    files: ReportFiles
    model_dir: Path
    features: dict[str, list[str]] | None = None


def _build_model(config: RunConfig) -> nn.Module:
    source = config.model
    model = load_model_spec(parse_model_spec(source.spec), trust_pickle=source.trust_pickle)
    if source.weights is not None:
        load_weights(model, source.weights, trust_pickle=source.trust_pickle)
    return model.eval()


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


def _check_fit(model: nn.Module, example: torch.Tensor, data: ArrayData, spec: str) -> None:
    """Fail with one clear line when the data does not fit the model."""
    try:
        with torch.no_grad():
            out = model(example)
    except Exception as exc:  # noqa: BLE001 - user models may raise anything
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise PrunekitError(f"{spec} does not run on data samples of shape "
                            f"{tuple(example.shape)} from {data.name} ({type(exc).__name__}: "
                            f"{first}); pass --input-shape or other data") from None
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        raise PrunekitError(f"{spec} must return class logits (batch, classes) for "
                            f"classification data; it returned "
                            f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out)}")
    if out.shape[1] < data.num_classes:
        raise PrunekitError(f"{data.name} has {data.num_classes} classes but {spec} outputs "
                            f"{out.shape[1]} logits")


def _file_bytes(model: nn.Module) -> int:
    return len(safetensors_bytes({k: v.contiguous() for k, v in model.state_dict().items()}))


class _SelectFeatures(nn.Module):
    """Feeds the pruned model only the kept input features (dim 1) of full-width data."""

    def __init__(self, model: nn.Module, kept: list[int]) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("kept", torch.as_tensor(kept, dtype=torch.long), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.index_select(1, self.kept))


def run_pruning(config: RunConfig, *, log: Log | None = None,
                on_epoch: Callable[[EpochRecord], None] | None = None) -> RunResult:
    """Run ``config`` end to end and write its files; ``on_epoch`` follows fine-tuning."""
    say: Log = log if log is not None else (lambda _msg: None)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    say(f"model: {config.model.spec}")
    model = _build_model(config)
    data = load_data_spec(config.data.spec, label_column=config.data.label_column,
                          val_fraction=config.data.val_fraction, seed=config.data.seed)
    data = _shaped(data, config.model.input_shape)
    say(f"data: {data.name}, {len(data.y_train)} train / {len(data.y_val)} validation samples")
    example = data.x_val[:1].clone()
    _check_fit(model, example, data, config.model.spec)
    if config.prune.input_features and data.x_val.ndim < 2:
        raise ConfigError("input-feature pruning needs inputs with a feature dimension 1")
    out = config.out

    def loaders(d: ArrayData) -> tuple[DataLoader, DataLoader]:
        gen = torch.Generator().manual_seed(config.data.seed)
        return (DataLoader(TensorDataset(d.x_train, d.y_train), batch_size=config.data.batch_size,
                           shuffle=True, generator=gen),
                DataLoader(TensorDataset(d.x_val, d.y_val), batch_size=256))

    def stats(m: nn.Module, x: torch.Tensor, metric: float) -> ModelStats:
        s = collect_stats(m, x, threads=out.threads, warmup=out.warmup, repeats=out.repeats,
                          metric=metric)
        return s.with_file_bytes(_file_bytes(m))

    train, val = loaders(data)
    dense_metric = evaluate(model, val)
    before = stats(model, example, dense_metric)
    say(f"dense: {before.params:,} parameters, {before.macs:,} MACs, "
        f"accuracy {100 * dense_metric:.2f}%")
    teacher = copy.deepcopy(model) if config.finetune.epochs and config.distill else None

    t0 = time.perf_counter()
    calibration = [batch for _, batch in zip(range(CALIBRATION_BATCHES), train)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        result = prune(model, example, config=config.prune, calibration=calibration)
    for w in caught:
        if issubclass(w.category, UserWarning):
            say(f"warning: {w.message}")
    timings["prune"] = time.perf_counter() - t0
    plan = result.plan
    features = None
    student: nn.Module = model
    example_after = example
    kept_spec = plan.input_features.get("input0")
    if kept_spec is not None:
        kept = [int(i) for i in kept_spec["kept"]]
        names = list(data.feature_names or [f"feature {i}" for i in range(data.x_val.shape[1])])
        features = {"kept": [names[i] for i in kept],
                    "dropped": [n for i, n in enumerate(names) if i not in set(kept)]}
        student = _SelectFeatures(model, kept)  # the teacher keeps reading every feature
        example_after = example.index_select(1, torch.as_tensor(kept))
        say(f"input features: kept {len(kept)} of {len(names)}")
    pruned_metric = evaluate(student, val)
    say(f"pruned: accuracy {100 * pruned_metric:.2f}% before fine-tuning")

    t0 = time.perf_counter()
    final_metric = pruned_metric
    if config.finetune.epochs:
        tuned = finetune(student, train, val, config.finetune, teacher=teacher,
                         distill=config.distill if teacher is not None else None,
                         on_epoch=on_epoch)
        final_metric = evaluate(student, val)
        say(f"fine-tuned {len(tuned.history)} epoch(s): accuracy {100 * final_metric:.2f}%")
    timings["finetune"] = time.perf_counter() - t0
    after = stats(model, example_after, final_metric)

    points = [point("dense", "dense", before),
              point("pruned", "pruned", after, metric=pruned_metric)]
    if config.finetune.epochs:
        points.append(point("pruned", "fine-tuned", after))
    settings: dict[str, Any] = {"run": config.settings(), "prune": plan.settings,
                                "skipped_groups": list(result.skipped)}
    if features is not None:
        settings["input_features"] = features
    timings["total"] = time.perf_counter() - start
    report = build_report(
        model={"name": parse_model_spec(config.model.spec).name, "spec": config.model.spec,
               "input_shape": list(example.shape), "pruned_input_shape": list(example_after.shape)},
        task={"dataset": data.name, "metric": "accuracy", "split": "validation",
              "train_samples": len(data.y_train), "val_samples": len(data.y_val)},
        before=before, after=after, plan=plan, points=points, settings=settings,
        timings_s=timings, files={"model": f"pruned/{WEIGHTS}", "plan": "pruned/plan.json"})
    folder = Path(out.dir)
    model_dir = save_pruned(model, plan, folder / "pruned")
    report["after"]["file_bytes"] = (model_dir / WEIGHTS).stat().st_size
    files = write_report(report, folder, html=out.html)
    say(f"report written to {files.json}" + (f" and {files.html}" if files.html else ""))
    return RunResult(report, files, model_dir, features)
