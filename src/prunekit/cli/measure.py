"""``prunekit measure SPEC``: parameters, MACs, size and latency of any model, and with
``--data`` its metric on the validation split."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import click

from .common import (
    Printer,
    check_model_spec,
    emit_json,
    format_table,
    json_option,
    make_data_options,
    model_arg_option,
    out_option,
    parse_shape,
    quiet_option,
)
from .deploy_options import deploy_options, deployment_lines, quantize_config

__all__ = ["measure"]

SCHEMA = "prunekit.measure"
VERSION = 1


@click.command("measure")
@click.argument("spec")
@click.option("--input-shape", default=None,
              help="Example input shape, e.g. 1,3,224,224 [default: from the spec, or one "
                   "sample of --data].")
@model_arg_option
@click.option("--weights", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Weights to load (.safetensors, or a .pt state dict read weights-only); a "
                   "head for another class count sets num_classes (num_labels) unless given, "
                   "and says so.")
@click.option("--pruned", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder written by save_pruned (plan.json + model.safetensors): apply the "
                   "plan to SPEC's architecture and load the pruned weights.")
@click.option("--trust-pickle", is_flag=True,
              help="Allow unpickling a model or weights file (runs code stored in it: only "
                   "for files you trust).")
@make_data_options(None)
@click.option("--device", default="cpu", show_default=True,
              help="Where to measure latency and memory: cpu, cuda or cuda:N.")
@click.option("--cuda-graph", is_flag=True,
              help="Time CUDA-graph replays of one captured forward pass, so kernel-launch "
                   "overhead does not hide the model's cost (needs --device cuda).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads for latency [default: torch's setting].")
@click.option("--warmup", type=click.IntRange(min=0), default=5, show_default=True)
@click.option("--repeats", type=click.IntRange(min=1), default=20, show_default=True)
@deploy_options(None)
@out_option(None, "Also write measure.json into this folder (and, with --runtimes or "
                  "--int8, the ONNX files).")
@json_option
@quiet_option
def measure(spec: str, input_shape: str | None, model_args: dict[str, Any],
            weights: Path | None, pruned: Path | None,
            trust_pickle: bool, data_spec: str | None, label_column: str, image_size: int,
            split: str | None, feature_column: str | None, metric: str | None, device: str,
            cuda_graph: bool, threads: int | None, warmup: int, repeats: int,
            int8: str | None, formats: str | None, runtimes: str | None, batch_sizes: str,
            calibration_samples: int, per_tensor: bool, op_types: str | None,
            exclude_modules: str | None, budget: float, min_speedup: float, qat_epochs: int,
            out: Path | None, as_json: bool, quiet: bool) -> None:
    """Measure SPEC: torchvision:NAME (weights=None), timm:NAME (pretrained=False),
    prunekit:digits_cnn, a local Hugging Face folder (config.json; token-id inputs), or
    path/to/file.py:factory (constructor arguments as --model-arg num_classes=10 or
    'SPEC?num_classes=10'): parameters, MACs, FLOPs, size, latency and peak memory; with
    --data also the metric on its validation split. With --runtimes (eager, compile,
    onnxruntime) and/or --int8, the same model is also timed in each runtime and format at
    every --batch-sizes (with --pruned, next to the dense architecture), side by side with
    size on disk and metric, and the fastest acceptable format is chosen by measurement."""

    from ..errors import ConfigError, ModelInputError, PrunekitError
    from ..files import atomic_write_text
    from ..measure.latency import resolve_device
    from ..metrics import format_metric, parse_metric
    from ..models.build import build_with_weights
    from ..report.stats import collect_stats

    if weights is not None and pruned is not None:
        raise click.UsageError("give --weights or --pruned, not both")
    if data_spec is None:
        given = [name for name, value in (("--metric", metric), ("--split", split),
                                          ("--feature-column", feature_column))
                 if value is not None]
        if given:
            verb = "needs" if len(given) == 1 else "need"
            raise click.UsageError(f"{' and '.join(given)} {verb} --data (the metric is "
                                   "measured on a data set's validation split)")
    deploying = runtimes is not None or int8 is not None or formats is not None
    qconfig = quantize_config(
        int8=int8, formats=formats if formats is not None or int8 is not None else "fp32",
        runtimes=runtimes or "eager,compile,onnxruntime", batch_sizes=batch_sizes,
        calibration_samples=calibration_samples, per_tensor=per_tensor, op_types=op_types,
        exclude_modules=exclude_modules, budget=budget, min_speedup=min_speedup,
        qat_epochs=qat_epochs, threads=threads, warmup=warmup,
        repeats=repeats) if deploying else None
    if qconfig is not None and device.strip() != "cpu":
        raise click.UsageError("--runtimes / --int8 time on the CPU (ONNX Runtime's CPU "
                               "execution provider): drop --device")
    if cuda_graph and not device.strip().startswith("cuda"):
        raise click.UsageError("--cuda-graph needs a CUDA device: pass --device cuda (graph "
                               "capture times GPU kernels; on cpu there is nothing to capture)")
    parsed = check_model_spec(spec, model_args, hint="SPEC")
    shape = parse_shape(input_shape) if input_shape else parsed.default_input_shape
    target = resolve_device(device)
    printer = Printer(quiet=quiet or as_json)
    printer.info(f"building {parsed.text}")
    built = build_with_weights(parsed, weights=weights, trust_pickle=trust_pickle)
    if shape is None and data_spec is None:
        raise ConfigError(f"{spec!r} implies no input shape: pass --input-shape, e.g. 1,3,224,224")
    for line in built.inferred:
        printer.info(line)
    model = built.model
    if pruned is not None:
        from ..surgery.serialization import load_pruned
        model = load_pruned(model, pruned).eval()
        built = dataclasses.replace(built, model=model)
    task: dict[str, Any] | None = None
    value: float | None = None
    if data_spec is not None:
        value, task, example = _evaluate(built, input_shape, trust_pickle, data_spec,
                                         label_column, image_size, split, feature_column,
                                         metric or "accuracy", printer)
        shape = tuple(example.shape)
    else:
        assert shape is not None
        example = parsed.random_example(shape)
    printer.info(f"measuring on input {tuple(shape)}, {target}")
    try:
        stats = collect_stats(model.to(target), example.to(target), threads=threads,
                              warmup=warmup, repeats=repeats, cuda_graph=cuda_graph)
    except PrunekitError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of user code becomes one line
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise ModelInputError(f"{parsed.text} does not run on an input of shape {tuple(shape)} "
                              f"({type(exc).__name__}: {first}); pass --input-shape") from None
    result: dict[str, Any] = {"schema": SCHEMA, "version": VERSION, "model": built.spec.text,
                              "input_shape": list(shape), **stats.to_dict()}
    del result["file_bytes"]
    if task is None:
        del result["metric"]
    else:
        result["metric"], result["task"] = value, task
    deployment = None
    if qconfig is not None:
        deployment = _deploy(qconfig, built, parsed, pruned is not None, example,
                             input_shape, trust_pickle, data_spec, label_column, image_size,
                             split, feature_column, metric, out, printer)
        result["deployment"] = deployment.to_dict()
    if out is not None:
        atomic_write_text(out / "measure.json", json.dumps(result, indent=1) + "\n")
    if as_json:
        emit_json(result)
        return
    lat = result["latency_ms"]
    rows = [["parameters", f"{stats.params:,}"], ["MACs", f"{stats.macs:,}"],
            ["FLOPs", f"{stats.flops:,}"], ["size (bytes)", f"{stats.size_bytes:,}"],
            ["latency median (ms)", f"{lat['median']:.3f}"],
            ["latency p10-p90 (ms)", f"{lat['p10']:.3f}-{lat['p90']:.3f}"]]
    if stats.peak_memory is not None:
        rows.append(["peak memory growth (bytes)", f"{stats.peak_memory.rss_growth_bytes:,}"])
    if task is not None:
        fraction = parse_metric(task["metric_spec"]).fraction
        rows.append([f"{task['metric']} (validation)", format_metric(value, fraction)])
    printer.result(format_table([built.spec.text, ""], rows))
    graph = ", CUDA-graph replay" if lat["cuda_graph"] else ""
    printer.result(f"latency: {lat['device']}, batch {lat['batch_size']}, {lat['dtype']}, "
                   f"{lat['threads']} thread(s), median of {lat['repeats']} runs after "
                   f"{lat['warmup']} warm-up{graph}")
    if deployment is not None:
        for line in deployment_lines(deployment):
            printer.result(line)


def _deploy(config: Any, built: Any, parsed: Any, is_pruned: bool, example: Any,
            input_shape: str | None, trust_pickle: bool, data_spec: str | None,
            label_column: str, image_size: int, split: str | None,
            feature_column: str | None, metric: str | None, out: Path | None,
            printer: Printer) -> Any:
    """The model (with ``--pruned``: next to its dense architecture, timed only) in every
    runtime and format; files in ``out`` or a temporary folder."""
    import tempfile

    from ..models.build import build_with_weights
    from ..workflow.config import DataSource, ModelSource
    from ..workflow.deploy import deploy_data, run_deployment

    data = None
    if data_spec is not None:
        source = ModelSource(built.spec.text, None,
                             parse_shape(input_shape) if input_shape else None, trust_pickle)
        data, _ = deploy_data(built, source, DataSource(
            data_spec, label_column, image_size=image_size, split=split,
            feature_column=feature_column, metric=metric or "accuracy"))
    dense = build_with_weights(parsed, trust_pickle=trust_pickle).model.eval() \
        if is_pruned else None
    with tempfile.TemporaryDirectory(prefix="prunekit-measure-") as scratch:
        folder = out if out is not None else Path(scratch)
        return run_deployment(config, folder, dense=dense, pruned=built.model,
                              dense_example=example, pruned_example=example,
                              data=data, score_dense=False,
                              name="pruned" if is_pruned else "model", log=printer.info)


def _evaluate(built: Any, input_shape: str | None, trust_pickle: bool,
              data_spec: str, label_column: str, image_size: int, split: str | None,
              feature_column: str | None, metric: str, printer: Printer
              ) -> tuple[float, dict[str, Any], Any]:
    """The metric of the built model on the validation split of ``data_spec``, the report's
    ``task`` object and a one-sample example input from the data."""
    from ..metrics import load_metric
    from ..train.finetune import evaluate
    from ..workflow.config import DataSource, ModelSource
    from ..workflow.inputs import fit_data, task_info, val_loader

    source = DataSource(data_spec, label_column, image_size=image_size, split=split,
                        feature_column=feature_column, metric=metric)
    shape = parse_shape(input_shape) if input_shape else None
    inputs = fit_data(built, ModelSource(built.spec.text, None, shape, trust_pickle), source)
    printer.info(f"data: {inputs.data.name}, {len(inputs.data.y_val)} validation samples")
    value = evaluate(inputs.model, val_loader(inputs.data), load_metric(metric))
    return value, task_info(inputs.data, source), inputs.example
