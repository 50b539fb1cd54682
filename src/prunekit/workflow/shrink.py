"""A run that prunes while training (the recipe's ``shrink`` section).

The model trains for ``shrink.epochs`` with the ``finetune`` section's optimizer, learning
rate, weight decay, schedule and gradient clipping; a :class:`~prunekit.schedule.ShrinkingPruner`
removes the ``prune`` section's units for real at each pruning step, so later epochs cost
what the smaller model costs. With ``shrink.dense_baseline`` the dense model is trained the
same way first. The report gains a ``training`` section (docs/report.md): wall time per
epoch and cumulative, the model's MACs after every pruning step, the metric after every
epoch, for the shrinking run and the dense one. The pruned model is saved with the plans
composed into one (:func:`prunekit.plan.compose_plans`), so ``load_pruned`` reloads it.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader

from ..errors import ConfigError
from ..measure.counts import count_macs
from ..metrics import format_metric, load_metric, parse_metric
from ..plan.compose import compose_plans
from ..plan.document import Plan
from ..report.build import build_report, point
from ..report.io import write_report
from ..schedule.base import Schedule
from ..schedule.discrete import OneShotSchedule
from ..schedule.gradual import CubicSchedule, LinearSchedule
from ..schedule.shrink import ShrinkConfig, ShrinkingPruner
from ..surgery.serialization import WEIGHTS, save_pruned
from ..train.finetune import FinetuneConfig, evaluate
from .config import RunConfig, ShrinkRun
from .inputs import (load_inputs, measure_model, serving_speed, task_info, train_loader,
                     val_loader)
from .pipeline import RunResult

__all__ = ["run_shrinking", "shrink_schedule", "train_epochs"]

Log = Callable[[str], None]


def shrink_schedule(run: ShrinkRun, sparsity: float, steps_per_epoch: int) -> Schedule:
    """The schedule of ``run`` in optimizer steps."""
    start = max(0, round(run.start * steps_per_epoch))
    if run.schedule == "one_shot":
        return OneShotSchedule(sparsity=sparsity, step=start)
    end = max(start + 1, round(run.end * steps_per_epoch))
    every = max(1, round(run.every * steps_per_epoch))
    cls = CubicSchedule if run.schedule == "cubic" else LinearSchedule
    return cls(final_sparsity=sparsity, start=start, end=end, frequency=every)


def _optimizer(model: nn.Module, config: FinetuneConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay, nesterov=config.momentum > 0)
    return torch.optim.AdamW(model.parameters(), lr=config.lr,
                             weight_decay=config.weight_decay)


def train_epochs(model: nn.Module, train: DataLoader, val: Iterable[Any], epochs: int,
                 config: FinetuneConfig, metric_fn: Callable[..., float], example: Any, *,
                 make_pruner: Callable[[torch.optim.Optimizer], ShrinkingPruner] | None = None,
                 log: Log | None = None) -> dict[str, Any]:
    """Train ``epochs`` (cross-entropy), optionally with a shrinking pruner; return the
    training-cost record: per epoch seconds, cumulative seconds, metric and MACs, and the
    MACs at the start, after every pruning step and at the end. Evaluation time is not
    counted."""
    optimizer = _optimizer(model, config)
    total = epochs * len(train)
    schedule = None
    if config.schedule == "cosine":
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / total)))
    pruner = make_pruner(optimizer) if make_pruner is not None else None
    record: dict[str, Any] = {"epochs": [], "macs_steps": [[0, count_macs(model, example)]]}
    elapsed, step = 0.0, 0
    for epoch in range(epochs):
        model.train()
        t0 = time.perf_counter()
        for x, y in train:
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            if config.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            if schedule is not None:
                schedule.step()
            step += 1
            if pruner is not None and pruner.step() is not None:
                t1 = time.perf_counter()  # measuring is not training
                record["macs_steps"].append([step, count_macs(model, example)])
                t0 += time.perf_counter() - t1
        seconds = time.perf_counter() - t0
        elapsed += seconds
        metric = evaluate(model, val, metric_fn)
        record["epochs"].append({"epoch": epoch + 1, "seconds": seconds, "cumulative": elapsed,
                                 "metric": metric, "macs": count_macs(model, example)})
        if log is not None:
            log(f"epoch {epoch + 1}/{epochs}: {seconds:.2f} s, metric {metric:.4g}, "
                f"{record['epochs'][-1]['macs']:,} MACs")
    record["macs_steps"].append([step, count_macs(model, example)])  # to the last step
    record["seconds"] = elapsed
    if pruner is not None:
        record["pruner"] = pruner
    return record


def run_shrinking(config: RunConfig, *, log: Log | None = None) -> RunResult:
    """Run a ``shrink`` recipe end to end and write its files (see the module docs)."""
    run = config.shrink
    if run is None:
        raise ConfigError("run_shrinking needs a shrink section")
    say: Log = log if log is not None else (lambda _msg: None)
    start = time.perf_counter()
    inputs = load_inputs(config.model, config.data, log=say)
    model, data, example = inputs.model, inputs.data, inputs.example
    spec = parse_metric(config.data.metric)
    metric_fn = load_metric(spec)
    train, val = train_loader(data, config.data), val_loader(data)
    initial = copy.deepcopy(model) if run.dense_baseline else None
    dense_timed = copy.deepcopy(model) if config.out.serving_batch is not None else None
    before = measure_model(model, example, config.out, evaluate(model, val, metric_fn))
    say(f"dense: {before.params:,} parameters, {before.macs:,} MACs")
    timings: dict[str, float] = {}
    dense_record = None
    if initial is not None:
        say("training the dense baseline")
        dense_record = train_epochs(initial, train, val, run.epochs, config.finetune,
                                    metric_fn, example, log=say)
        timings["dense_training"] = dense_record["seconds"]
    prune = config.prune
    schedule = shrink_schedule(run, prune.ratio, len(train))
    shrink_config = ShrinkConfig(importance=prune.importance, scope=prune.scope,
                                 ignore=prune.ignore, min_units=prune.min_units,
                                 round_to=prune.round_to, max_ratio=prune.max_ratio,
                                 stable_after=run.stable_after, target_macs=run.target_macs,
                                 target_params=run.target_params, max_drop=run.max_drop)
    calibration = None
    criterion = shrink_config.prune_config(0.0).criterion()
    if criterion.needs_gradients or criterion.needs_activations:
        calibration = [b for _, b in zip(range(4), train)]

    def make_pruner(optimizer: torch.optim.Optimizer) -> ShrinkingPruner:
        return ShrinkingPruner(model, example, schedule, shrink_config, optimizers=[optimizer],
                               calibration=calibration,
                               evaluate=(lambda m: evaluate(m, val, metric_fn))
                               if run.max_drop is not None else None)

    say(f"training {run.epochs} epoch(s) while shrinking to ratio {prune.ratio}")
    record = train_epochs(model, train, val, run.epochs, config.finetune, metric_fn, example,
                          make_pruner=make_pruner, log=say)
    pruner: ShrinkingPruner = record.pop("pruner")
    timings["shrink_training"] = record["seconds"]
    final_metric = record["epochs"][-1]["metric"]
    after = measure_model(model, example, config.out, final_metric)
    say(f"shrunk: {after.params:,} parameters, {after.macs:,} MACs, {spec.name} "
        f"{format_metric(final_metric, spec.fraction)}"
        + (f"; stopped early: {pruner.stop_reason}" if pruner.stop_reason else ""))
    plan = compose_plans(*pruner.plans) if pruner.plans else Plan(
        architecture=pruner.architecture, settings={"note": "nothing was removed"})
    training: dict[str, Any] = {
        "shrink": record, "dense": dense_record,
        "events": [e.to_dict() for e in pruner.history],
        "stop_reason": pruner.stop_reason,
        "threads": torch.get_num_threads(),
    }
    points = [point("dense", "dense", before),
              point("trained while shrinking", "fine-tuned", after)]
    timings["total"] = time.perf_counter() - start
    report = build_report(
        model={"name": inputs.spec.name, "spec": inputs.spec.text,
               "input_shape": list(example.shape), "pruned_input_shape": list(example.shape)},
        task=task_info(data, config.data), before=before, after=after, plan=plan,
        points=points, settings={"run": config.settings(), "prune": plan.settings,
                                 "skipped_groups": []},
        timings_s=timings, files={"model": f"pruned/{WEIGHTS}", "plan": "pruned/plan.json"})
    report["training"] = training
    if dense_timed is not None:
        assert config.out.serving_batch is not None
        report["speed"] = serving_speed(dense_timed, model, example, data.x_val,
                                        config.out.serving_batch,
                                        before.macs / max(1, after.macs), config.out, say)
    from ..report.schema import validate_report

    validate_report(report)
    folder = config.out.dir
    model_dir = save_pruned(model, plan, f"{folder}/pruned")
    report["after"]["file_bytes"] = (model_dir / WEIGHTS).stat().st_size
    files = write_report(report, folder, html=config.out.html)
    say(f"report written to {files.json}" + (f" and {files.html}" if files.html else ""))
    return RunResult(report, files, model_dir, None)
