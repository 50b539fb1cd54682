"""An iterative run (``prunekit prune --iterative``, a recipe's ``iterative`` section):
:func:`prunekit.recover.iterative_prune` on the run's model and data, every kept step
checkpointed atomically in ``OUT/checkpoints`` (resumable with ``resume=True``), then the
final model (``pruned/``) and the report written as by a one-shot run.

The dense model is built with ``torch.manual_seed(data.seed)`` first, so a resumed run
starts from the same model as the interrupted one even when its weights are random.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import BudgetError, ConfigError
from ..metrics import MetricSpec, format_metric, load_metric, parse_metric
from ..recover.iterate import STATE, IterativeConfig, StepRecord, iterative_prune
from ..report.build import build_report, point
from ..report.io import write_report
from ..report.sensitivity import attach_sensitivity
from ..surgery.serialization import WEIGHTS, save_pruned
from ..train.features import check_modules
from ..train.finetune import evaluate
from .config import RunConfig
from .inputs import (load_inputs, measure_model, serving_speed, task_info, train_loader,
                     val_loader)
from .pipeline import RunResult

__all__ = ["CHECKPOINTS", "run_iterative"]

CHECKPOINTS = "checkpoints"
Log = Callable[[str], None]


def _step_line(record: StepRecord, metric: MetricSpec) -> str:
    verdict = "kept" if record.accepted else "rolled back"
    drop = (f"{100 * record.drop:+.2f} points" if metric.fraction
            else f"{record.drop:+.4g}")
    return (f"step {record.step}: asked {record.factor:.2f}x, reached {record.reduction:.2f}x, "
            f"{metric.name} {format_metric(record.metric, metric.fraction)} (drop {drop}): "
            f"{verdict}")


def _reconstruct_options(config: RunConfig) -> dict[str, Any]:
    """The ``reconstruct`` section as :class:`IterativeConfig` keywords (none: off)."""
    if config.reconstruct is None:
        return {}
    return {"reconstruct_batches": config.reconstruct.batches,
            "reconstruct_damp": config.reconstruct.damp}


def run_iterative(config: RunConfig, *, resume: bool = False, log: Log | None = None,
                  on_step: Callable[[StepRecord], None] | None = None) -> RunResult:
    """Run ``config`` (whose ``iterative`` section is set) and write its files.

    Without ``resume`` a folder that already holds checkpoints is refused.
    """
    settings = config.iterative
    if settings is None:
        raise ConfigError("run_iterative needs a RunConfig with an iterative section")
    if config.prune.input_features:
        raise ConfigError("input-feature pruning is not available in iterative runs")
    say: Log = log if log is not None else (lambda _msg: None)
    start = time.perf_counter()
    folder = Path(config.out.dir)
    checkpoints = folder / CHECKPOINTS
    if (checkpoints / STATE).is_file() and not resume:
        raise ConfigError(f"{str(checkpoints)!r} holds checkpoints of an earlier iterative run: "
                          "pass --resume to continue it, or choose another --out")
    if resume and not (checkpoints / STATE).is_file():
        say(f"nothing to resume in {checkpoints}: starting from the dense model")
    say(f"model: {config.model.model_spec().text}")
    inputs = load_inputs(config.model, config.data, seed=config.data.seed, log=say)
    model, data, example = inputs.model, inputs.data, inputs.example
    if config.distill is not None:
        check_modules(model, config.distill.features)
    say(f"data: {data.name}, {len(data.y_train)} train / {len(data.y_val)} validation samples")
    val = val_loader(data)
    metric = parse_metric(config.data.metric)
    metric_fn = load_metric(metric)
    before = measure_model(model, example, config.out, evaluate(model, val, metric_fn))
    iterative = IterativeConfig(target=float(settings.target), budget=float(settings.budget),
                                metric=settings.metric, step_factor=float(settings.step_factor),
                                max_steps=settings.max_steps, finetune=config.finetune,
                                distill=config.distill, seed=config.data.seed,
                                **_reconstruct_options(config))
    key = "flops_reduction" if settings.metric == "macs" else "params_reduction"

    def step_config(_model: Any, factor: float) -> Any:
        targets: dict[str, Any] = {"flops_reduction": None, "params_reduction": None}
        targets[key] = factor
        return dataclasses.replace(config.prune, **targets)

    def report_step(record: StepRecord) -> None:
        say(_step_line(record, metric))
        if on_step is not None:
            on_step(record)

    t0 = time.perf_counter()
    result = iterative_prune(model, example, lambda seed: train_loader(data, config.data, seed),
                             val, iterative, checkpoints, step_config=step_config,
                             metric_fn=metric_fn, on_step=report_step)
    if result.resumed_from:
        say(f"resumed after step {result.resumed_from - 1}")
    if result.plan is None:
        raise BudgetError(f"no step of the iterative run stayed within the accuracy budget "
                          f"{settings.budget:g}: raise --budget or lower --step-factor "
                          f"(checkpoints in {checkpoints})")
    timings = {"iterate": time.perf_counter() - t0}
    final = result.model.eval()
    after = measure_model(final, example, config.out, result.metric)
    points = [point("dense", "dense", before)]
    for record in result.history:
        if record.accepted:
            cost: dict[str, int | None] = {"macs": None, "params": None}
            base = before.macs if settings.metric == "macs" else before.params
            cost[settings.metric] = round(base / record.reduction)
            points.append(point(f"step {record.step}", "fine-tuned", macs=cost["macs"],
                                params=cost["params"], metric=record.metric))
    timings["total"] = time.perf_counter() - start
    plan = result.plan
    report = build_report(
        model={"name": inputs.spec.name, "spec": inputs.spec.text,
               "input_shape": list(example.shape), "pruned_input_shape": list(example.shape)},
        task=task_info(data, config.data),
        before=before, after=after, plan=plan, points=points,
        settings={"run": config.settings(), "prune": plan.settings,
                  "skipped_groups": list(plan.settings.get("skipped_groups", [])),
                  "iterative": {"baseline": result.baseline, "reduction": result.reduction,
                                "resumed_from": result.resumed_from,
                                "history": [dataclasses.asdict(r) for r in result.history],
                                "checkpoints": CHECKPOINTS}},
        timings_s=timings, files={"model": f"pruned/{WEIGHTS}", "plan": "pruned/plan.json"})
    if config.out.serving_batch is not None:  # the model itself is still the dense one
        report["speed"] = serving_speed(model, final, example, data.x_val,
                                        config.out.serving_batch,
                                        before.macs / max(1, after.macs), config.out, say)
    model_dir = save_pruned(copy.deepcopy(final), plan, folder / "pruned")
    report["after"]["file_bytes"] = (model_dir / WEIGHTS).stat().st_size
    attach_sensitivity(report, folder)
    files = write_report(report, folder, html=config.out.html)
    say(f"report written to {files.json}" + (f" and {files.html}" if files.html else ""))
    return RunResult(report, files, model_dir)
