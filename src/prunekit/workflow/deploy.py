"""The ``quantize:`` step of a run: dense, pruned and pruned+int8 measured where users run
them, calibrated on the run's training data and scored on its validation data, with
quantization-aware recovery when post-training int8 loses more than the budget."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..export.calibration import calibration_from_batches
from ..export.config import QuantizeConfig
from ..export.deploy import Deployment, Variant, measure_deployment
from ..metrics import load_metric
from ..models.build import BuiltModel
from ..recover.qat import quantization_aware_finetune
from ..train.distill import DistillConfig
from ..train.finetune import FinetuneConfig, MetricFn, evaluate
from .config import DataSource, ModelSource
from .inputs import fit_data, train_loader, val_loader

__all__ = ["DeployData", "deploy_data", "run_deployment"]

Log = Callable[[str], None]


@dataclass(frozen=True)
class DeployData:
    """The data of a deployment measurement: training batches (calibration, QAT),
    validation batches and metric (scores), validation inputs (timing, probe), its name."""

    train: Iterable[Any]
    val: Iterable[Any]
    samples: torch.Tensor
    metric_fn: MetricFn
    name: str


def deploy_data(built: BuiltModel, model_source: ModelSource,
                data_source: DataSource) -> tuple[DeployData, torch.Tensor]:
    """Load ``data_source`` for the built (unpruned) model, checked to fit it; also a
    one-sample example input from it."""
    inputs = fit_data(built, model_source, data_source)
    data = DeployData(train_loader(inputs.data, data_source), val_loader(inputs.data),
                      inputs.data.x_val, load_metric(data_source.metric), inputs.data.name)
    return data, inputs.example


def run_deployment(config: QuantizeConfig, folder: Path, *, dense: nn.Module | None,
                   pruned: nn.Module, dense_example: torch.Tensor,
                   pruned_example: torch.Tensor, data: DeployData | None,
                   finetune: FinetuneConfig | None = None, teacher: nn.Module | None = None,
                   distill: DistillConfig | None = None, score_dense: bool = True,
                   stem: str = "model", name: str = "pruned", log: Log | None = None
                   ) -> Deployment:
    """Measure ``dense`` (files in a temporary folder; ``None``: no dense rows;
    ``score_dense=False``: time it only, e.g. a freshly built architecture) and ``pruned``
    (as ``name``, files ``STEM*.onnx`` in ``folder``). Without ``data`` nothing is scored and static
    formats cannot be calibrated; ``finetune`` gives the QAT settings other than epochs
    and rate."""
    say: Log = log if log is not None else (lambda _msg: None)
    finetune = finetune or FinetuneConfig()
    calibration = None
    if config.needs_calibration and data is not None:
        calibration = calibration_from_batches(data.train, samples=config.calibration_samples,
                                               source=f"{data.name} training split")
        say(f"calibration: {calibration.samples} samples of the {data.name} training split")
    if config.qat_epochs and data is None:
        raise ConfigError("quantization-aware fine-tuning needs training data: pass "
                          "--calibration DATA (or --data)")

    def recover(model: nn.Module) -> nn.Module:
        assert data is not None
        tuned = copy.deepcopy(model)
        settings = dataclasses.replace(finetune, epochs=config.qat_epochs, lr=config.qat_lr)
        result = quantization_aware_finetune(
            tuned, data.train, data.val, settings, metric_fn=data.metric_fn, teacher=teacher,
            distill=distill if teacher is not None else None,
            reduce_range=config.options().resolved_reduce_range(),
            exclude=config.exclude)
        say(f"quantization-aware fine-tuning: {len(result.history)} epoch(s), fake-quantized "
            f"metric {result.best_metric:.4g}")
        return tuned

    variants = [Variant(name, pruned, pruned_example, config.candidate_formats(), stem)]
    if dense is not None:
        variants.insert(0, Variant("dense", dense, dense_example, keep=False,
                                   score=score_dense))
    evaluate_fn = None
    if data is not None:
        def evaluate_fn(m: nn.Module) -> float:
            return evaluate(m, data.val, data.metric_fn)
    return measure_deployment(
        variants, folder, config, calibration=calibration, evaluate=evaluate_fn,
        samples=None if data is None else data.samples,
        higher_is_better=finetune.mode == "max",
        recover=recover if config.qat_epochs else None, log=say)
