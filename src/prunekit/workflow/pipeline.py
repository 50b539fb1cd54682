"""One pruning run: build the model, load the data, prune, re-fit, decompose, fine-tune,
measure, write files.

Nothing is written until every step has succeeded; then the pruned model (``pruned/``,
via :func:`~prunekit.save_pruned`) and the report (``report.json`` / ``report.html``) are
written atomically into ``config.out.dir``.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from ..api import prune
from ..decompose.api import decompose
from ..errors import ConfigError
from ..metrics import format_metric, load_metric, parse_metric
from ..recover.reconstruct import reconstruct
from ..report.build import build_report, point
from ..report.io import ReportFiles, write_report
from ..report.sensitivity import attach_sensitivity
from ..report.stats import ModelStats
from ..surgery.serialization import WEIGHTS, save_pruned
from ..train.features import check_modules
from ..train.finetune import EpochRecord, evaluate, finetune
from .config import RunConfig
from .depth_width import choose_depth_and_width
from .inputs import (load_inputs, measure_model, serving_speed, task_info, train_loader,
                     val_loader)

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


class _SelectFeatures(nn.Module):
    """Feeds the pruned model only the kept input features (dim 1) of full-width data."""

    def __init__(self, model: nn.Module, kept: list[int]) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("kept", torch.as_tensor(kept, dtype=torch.long), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.index_select(1, cast(torch.Tensor, self.kept)))


def run_pruning(config: RunConfig, *, log: Log | None = None,
                on_epoch: Callable[[EpochRecord], None] | None = None) -> RunResult:
    """Run ``config`` end to end and write its files; ``on_epoch`` follows fine-tuning."""
    say: Log = log if log is not None else (lambda _msg: None)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    say(f"model: {config.model.model_spec().text}")
    inputs = load_inputs(config.model, config.data, log=say)
    model, data, example = inputs.model, inputs.data, inputs.example
    if config.finetune.epochs and config.distill is not None:
        check_modules(model, config.distill.features)
    say(f"data: {data.name}, {len(data.y_train)} train / {len(data.y_val)} validation samples")
    if config.prune.input_features and data.x_val.ndim < 2:
        raise ConfigError("input-feature pruning needs inputs with a feature dimension 1")
    out = config.out

    def stats(m: nn.Module, x: torch.Tensor, metric: float) -> ModelStats:
        return measure_model(m, x, out, metric)

    spec = parse_metric(config.data.metric)
    metric_fn = load_metric(spec)

    def shown(value: float) -> str:
        return f"{spec.name} {format_metric(value, spec.fraction)}"

    train, val = train_loader(data, config.data), val_loader(data)
    dense_metric = evaluate(model, val, metric_fn)
    before = stats(model, example, dense_metric)
    say(f"dense: {before.params:,} parameters, {before.macs:,} MACs, {shown(dense_metric)}")
    teacher = copy.deepcopy(model) if config.finetune.epochs and config.distill else None
    dense_timed = copy.deepcopy(model) if out.serving_batch is not None else None
    reference = teacher if teacher is not None or config.reconstruct is None \
        else copy.deepcopy(model)  # the unpruned outputs that reconstruction fits
    dense_copy = None
    if config.quantize is not None:  # timed next to the pruned model at the end
        dense_copy = reference if reference is not None else copy.deepcopy(model)

    t0 = time.perf_counter()
    calibration = [batch for _, batch in zip(range(CALIBRATION_BATCHES), train)]
    depth_width = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        if config.depth_width is None:
            result = prune(model, example, config=config.prune, calibration=calibration)
            plan, skipped = result.plan, list(result.skipped)
        else:
            model, plan, depth_width = choose_depth_and_width(
                model, example, data.x_val, config,
                lambda m: evaluate(m, val, metric_fn), dense_metric, say)
            skipped = list(plan.settings.get("skipped_groups", []))
    for w in caught:
        if issubclass(w.category, UserWarning):
            say(f"warning: {w.message}")
    timings["prune"] = time.perf_counter() - t0
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
    pruned_metric = evaluate(student, val, metric_fn)
    say(f"pruned: {shown(pruned_metric)} before fine-tuning")
    reconstructed_metric = None
    if config.reconstruct is not None:
        assert reference is not None
        t0 = time.perf_counter()
        batches = [batch for _, batch in zip(range(config.reconstruct.batches), train)]
        fitted = reconstruct(model, reference, plan, batches, damp=config.reconstruct.damp)
        timings["reconstruct"] = time.perf_counter() - t0
        reconstructed_metric = evaluate(student, val, metric_fn)
        say(f"reconstructed {len(fitted.layers)} layer(s) on {len(batches)} batch(es): "
            f"{shown(reconstructed_metric)}")

    final_metric = pruned_metric if reconstructed_metric is None else reconstructed_metric
    decomposition = None
    if config.decompose is not None:
        t0 = time.perf_counter()
        factored = decompose(model, example, config=config.decompose, calibration=calibration,
                             plan=plan)
        timings["decompose"] = time.perf_counter() - t0
        plan, decomposition = factored.plan, factored.to_dict()
        final_metric = evaluate(student, val, metric_fn)
        say(f"decomposed {len(factored.factorized)} of {len(factored.layers)} layer(s) "
            f"({len(factored.skipped)} left alone): {shown(final_metric)}")
    decomposed_metric = final_metric if decomposition is not None else None

    t0 = time.perf_counter()
    if config.finetune.epochs:
        distill = config.distill if teacher is not None else None
        if teacher is not None and distill is not None and distill.features \
                and student is not model:
            # matched names now live under the wrapper, in the teacher's copy too
            teacher = _SelectFeatures(teacher, list(range(data.x_val.shape[1])))
            distill = dataclasses.replace(distill, features=tuple(
                f"model.{name}" for name in distill.features))
        tuned = finetune(student, train, val, config.finetune, teacher=teacher, distill=distill,
                         metric_fn=metric_fn, on_epoch=on_epoch)
        final_metric = evaluate(student, val, metric_fn)
        say(f"fine-tuned {len(tuned.history)} epoch(s): {shown(final_metric)}")
    timings["finetune"] = time.perf_counter() - t0
    after = stats(model, example_after, final_metric)

    points = [point("dense", "dense", before),
              point("pruned", "pruned", after, metric=pruned_metric)]
    if reconstructed_metric is not None:
        points.append(point("pruned", "reconstructed", after, metric=reconstructed_metric))
    if decomposed_metric is not None:
        points.append(point("pruned", "decomposed", after, metric=decomposed_metric))
    if config.finetune.epochs:
        points.append(point("pruned", "fine-tuned", after))
    settings: dict[str, Any] = {"run": config.settings(), "prune": plan.settings,
                                "skipped_groups": skipped}
    if features is not None:
        settings["input_features"] = features
    timings["total"] = time.perf_counter() - start
    model_info: dict[str, Any] = {
        "name": inputs.spec.name, "spec": inputs.spec.text,
        "input_shape": list(example.shape), "pruned_input_shape": list(example_after.shape)}
    conversion = getattr(model, "conversion", None)  # a model converted from ONNX
    if isinstance(conversion, dict):
        model_info["onnx_conversion"] = conversion
    report = build_report(
        model=model_info,
        task=task_info(data, config.data),
        before=before, after=after, plan=plan, points=points, settings=settings,
        timings_s=timings, files={"model": f"pruned/{WEIGHTS}", "plan": "pruned/plan.json"},
        decomposition=decomposition)
    if depth_width is not None:
        report["depth_width"] = depth_width
    if dense_timed is not None:
        assert out.serving_batch is not None
        report["speed"] = serving_speed(dense_timed, student, example, data.x_val,
                                        out.serving_batch, before.macs / max(1, after.macs),
                                        out, say)
    folder = Path(out.dir)
    staging = None
    if config.quantize is not None:
        from .deploy import DeployData, run_deployment

        assert dense_copy is not None
        folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".deploy.", dir=folder))
        t0 = time.perf_counter()
        try:
            deployment = run_deployment(
                config.quantize, staging, dense=dense_copy, pruned=student,
                dense_example=example, pruned_example=example,
                data=DeployData(train, val, data.x_val, metric_fn, data.name),
                finetune=config.finetune, teacher=teacher, distill=config.distill, log=say)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        report["timings_s"]["quantize"] = time.perf_counter() - t0
        report["deployment"] = deployment.to_dict()
        report["files"].update({f"onnx:{name.split(':', 1)[1]}": f"pruned/{f.path.name}"
                                for name, f in deployment.files.items()})
        for line in deployment.summary():
            say(f"deployment, {line}")
    try:
        model_dir = save_pruned(model, plan, folder / "pruned")
        if staging is not None:
            for produced in sorted(staging.iterdir()):
                os.replace(produced, model_dir / produced.name)
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    report["after"]["file_bytes"] = (model_dir / WEIGHTS).stat().st_size
    attach_sensitivity(report, folder)
    files = write_report(report, folder, html=out.html)
    say(f"report written to {files.json}" + (f" and {files.html}" if files.html else ""))
    return RunResult(report, files, model_dir, features)
