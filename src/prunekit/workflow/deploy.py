"""The ``quantize:`` step of a run: dense, pruned and pruned+int8 measured where users run
them, calibrated on the run's training data and scored on its validation data, with
quantization-aware recovery when post-training int8 loses more than the budget."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..export.calibration import calibration_from_batches
from ..export.config import QuantizeConfig
from ..export.deploy import Deployment, Variant, measure_deployment
from ..recover.qat import quantization_aware_finetune
from ..train.distill import DistillConfig
from ..train.finetune import FinetuneConfig, MetricFn, evaluate

__all__ = ["run_deployment"]

Log = Callable[[str], None]


def run_deployment(config: QuantizeConfig, folder: Path, *, dense: nn.Module,
                   pruned: nn.Module, dense_example: torch.Tensor,
                   pruned_example: torch.Tensor, train: Iterable[Any], val: Iterable[Any],
                   samples: torch.Tensor | None, metric_fn: MetricFn, data_name: str,
                   finetune: FinetuneConfig, teacher: nn.Module | None = None,
                   distill: DistillConfig | None = None, log: Log | None = None
                   ) -> Deployment:
    """Measure ``dense`` (files in a temporary folder) and ``pruned`` (files ``model*.onnx``
    in ``folder``); ``finetune`` gives the QAT settings other than epochs and rate."""
    say: Log = log if log is not None else (lambda _msg: None)
    calibration = None
    if config.needs_calibration:
        calibration = calibration_from_batches(train, samples=config.calibration_samples,
                                               source=f"{data_name} training split")
        say(f"calibration: {calibration.samples} samples of the {data_name} training split")

    def recover(model: nn.Module) -> nn.Module:
        tuned = copy.deepcopy(model)
        settings = dataclasses.replace(finetune, epochs=config.qat_epochs, lr=config.qat_lr)
        result = quantization_aware_finetune(
            tuned, train, val, settings, metric_fn=metric_fn, teacher=teacher,
            distill=distill if teacher is not None else None,
            reduce_range=config.options().resolved_reduce_range(),
            exclude=config.exclude)
        say(f"quantization-aware fine-tuning: {len(result.history)} epoch(s), fake-quantized "
            f"metric {result.best_metric:.4g}")
        return tuned

    variants = [Variant("dense", dense, dense_example, keep=False),
                Variant("pruned", pruned, pruned_example, config.candidate_formats())]
    return measure_deployment(
        variants, folder, config, calibration=calibration,
        evaluate=lambda m: evaluate(m, val, metric_fn), samples=samples,
        higher_is_better=finetune.mode == "max",
        recover=recover if config.qat_epochs else None, log=say)
