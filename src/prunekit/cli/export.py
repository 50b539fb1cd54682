"""``prunekit export DIR --format onnx``: export a pruned model and check it in onnxruntime;
``--int8``: make lower-precision files, time them where users run them, choose by
measurement."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from .common import (
    Printer,
    emit_json,
    json_option,
    make_data_options,
    parse_shape,
    quiet_option,
)
from .deploy_options import deploy_options, deployment_lines, quantize_config

__all__ = ["export"]


def _pruned_dir(directory: Path) -> Path:
    """``DIR`` itself when it holds plan.json, else ``DIR/pruned`` (a ``prune --out`` folder)."""
    for candidate in (directory, directory / "pruned"):
        if (candidate / "plan.json").is_file():
            return candidate
    raise click.BadParameter(f"{str(directory)!r} holds no plan.json (nor pruned/plan.json): "
                             "pass a folder written by save_pruned or prunekit prune --out",
                             param_hint="DIR")


def _report_path(pruned: Path) -> Path | None:
    """A report.json next to (or above) the pruned folder, if any."""
    for candidate in (pruned / "report.json", pruned.parent / "report.json"):
        if candidate.is_file():
            return candidate
    return None


def _report_model(pruned: Path) -> dict[str, Any]:
    """The ``model`` section of a report.json next to (or above) the pruned folder."""
    candidate = _report_path(pruned)
    if candidate is None:
        return {}
    try:
        data = json.loads(candidate.read_text())
    except (OSError, ValueError):
        return {}
    model = data.get("model") if isinstance(data, dict) else None
    return model if isinstance(model, dict) else {}


def _record_deployment(pruned: Path, deployment: dict[str, Any]) -> Path | None:
    """Write the deployment measurement into the folder's report.json (key ``deployment``),
    if it has one, and render its report.html again (when there is one)."""
    from ..report.io import REPORT_HTML, load_report, write_report
    from ..report.sensitivity import attach_sensitivity

    candidate = _report_path(pruned)
    if candidate is None:
        return None
    report = load_report(candidate)
    report["deployment"] = deployment
    folder = candidate.parent
    attach_sensitivity(report, folder)
    write_report(report, folder, html=(folder / REPORT_HTML).is_file())
    return candidate


def _run_settings(pruned: Path) -> dict[str, Any]:
    """``settings.run`` of the folder's report.json (the run's model and data), if any."""
    candidate = _report_path(pruned)
    if candidate is None:
        return {}
    try:
        data = json.loads(candidate.read_text())
        run = data["settings"]["run"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return run if isinstance(run, dict) else {}


@click.command("export")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["onnx"]), default="onnx", show_default=True)
@click.option("--model", "model_spec", default=None,
              help="Architecture spec of the unpruned model [default: from report.json].")
@click.option("--input-shape", default=None,
              help="Unpruned example-input shape, e.g. 1,1,8,8 [default: from report.json].")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="ONNX file to write [default: DIR's pruned folder/model.onnx]; other "
                   "formats go beside it (model.int8-qdq.onnx, ...).")
@click.option("--tolerance", type=float, default=1e-3, show_default=True,
              help="Largest allowed |onnxruntime - PyTorch| output difference (for a model "
                   "converted from ONNX: relative to its largest output).")
@deploy_options("eager,compile,onnxruntime")
@make_data_options(None, flag="--calibration",
                   none_note=" Default: the data of the run that wrote DIR (report.json), "
                             "if any. Its training split calibrates static int8, its "
                             "validation split gives every format's metric.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads for the timings [default: torch's setting].")
@click.option("--warmup", type=click.IntRange(min=0), default=3, show_default=True)
@click.option("--repeats", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--trust-pickle", is_flag=True, help="Allow a pickled model.pt as --model.")
@json_option
@quiet_option
def export(directory: Path, fmt: str, model_spec: str | None, input_shape: str | None,
           output: Path | None, tolerance: float, int8: str | None, formats: str | None,
           runtimes: str | None, batch_sizes: str, calibration_samples: int, per_tensor: bool,
           op_types: str | None, exclude_modules: str | None, budget: float,
           min_speedup: float, qat_epochs: int, data_spec: str | None, label_column: str,
           image_size: int, split: str | None, feature_column: str | None,
           metric: str | None, threads: int | None, warmup: int, repeats: int,
           trust_pickle: bool, as_json: bool, quiet: bool) -> None:
    """Export the pruned model in DIR (save_pruned folder, or a prunekit prune --out folder)
    to ONNX, and check it in onnxruntime against PyTorch; a model pruned from an ONNX file
    keeps that file's input/output names, dynamic axes and opset. With --int8 (or --formats), also
    make lower-precision files, time dense, pruned and every format in eager PyTorch,
    torch.compile and ONNX Runtime at each batch size, and choose the fastest acceptable
    format by measurement (a format that is not faster is never handed back as faster)."""

    from ..errors import ConfigError, ExportError
    from ..export import check_onnx, export_onnx
    from ..files import atomic_write_text
    from ..models.spec import load_model_spec, parse_model_spec
    from ..plan.document import Plan
    from ..surgery.serialization import load_pruned
    from ..plan.verify import slice_inputs

    deploying = int8 is not None or formats is not None
    qconfig = quantize_config(
        int8=int8, formats=formats, runtimes=runtimes, batch_sizes=batch_sizes,
        calibration_samples=calibration_samples, per_tensor=per_tensor, op_types=op_types,
        exclude_modules=exclude_modules, budget=budget, min_speedup=min_speedup,
        qat_epochs=qat_epochs, threads=threads, warmup=warmup,
        repeats=repeats) if deploying else None
    pruned = _pruned_dir(directory)
    recorded = _report_model(pruned)
    spec_text = model_spec or recorded.get("spec")
    if not spec_text:
        raise click.UsageError("no report.json names the model: pass --model SPEC")
    try:
        spec = parse_model_spec(spec_text)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--model") from None
    shape: tuple[int, ...] | None = (parse_shape(input_shape) if input_shape
                                     else tuple(recorded.get("input_shape") or ()) or
                                     spec.default_input_shape)
    if not shape:
        raise click.UsageError(f"{spec_text!r} implies no input shape: pass --input-shape")
    printer = Printer(quiet=quiet or as_json)
    model = load_pruned(load_model_spec(spec, trust_pickle=trust_pickle), pruned).eval()
    plan = Plan.load(pruned / "plan.json")
    example = slice_inputs(spec.random_example(shape), plan)
    target = output if output is not None else pruned / "model.onnx"
    printer.info(f"exporting {spec_text} (pruned) to {target}")
    result: dict[str, Any] = {"schema": "prunekit.export", "version": 1, "format": fmt,
                              "model": spec_text, "input_shape": list(example.shape)}
    if spec.kind == "onnx":  # back to ONNX with the original names, dynamic axes and opset
        from ..onnx import OnnxModel
        from ..onnx import export as export_converted

        if not isinstance(model, OnnxModel):
            raise click.UsageError(f"{spec_text} did not load as a converted ONNX model")
        facts = export_converted(model, target, tolerance=tolerance)
        max_abs_diff = max(facts["onnxruntime"]["max_abs_diff"])
        result.update({"files": facts["files"],
                       "signature": {"opset": facts["opset"], "inputs": facts["inputs"],
                                     "outputs": facts["outputs"]},
                       "onnx_check": {"runtime": "onnxruntime",
                                      "provider": "CPUExecutionProvider",
                                      "max_abs_diff": max_abs_diff,
                                      "max_rel_diff": max(facts["onnxruntime"]["max_rel_diff"]),
                                      "tolerance": tolerance, "relative": True}})
    else:
        files = export_onnx(model, example, target)
        check = check_onnx(target, model, example)
        if not check.ok(tolerance):
            raise ExportError(f"onnxruntime disagrees with PyTorch on {target}: max abs diff "
                              f"{check.max_abs_diff:.3g} > tolerance {tolerance:g}")
        max_abs_diff = check.max_abs_diff
        result.update({"files": [str(f) for f in files],
                       "onnx_check": {"runtime": "onnxruntime", "provider": check.provider,
                                      "max_abs_diff": max_abs_diff, "tolerance": tolerance,
                                      "output_shape": list(check.output_shape)}})
    deployment = None
    if qconfig is not None:
        if plan.input_features:
            raise click.UsageError("--int8 / --formats are not available for models whose "
                                   "input features were pruned yet")
        from .export_deploy import deploy_folder

        deployment = deploy_folder(
            qconfig, target, model, example, spec_text, shape, _run_settings(pruned),
            data_options=dict(spec=data_spec, label_column=label_column,
                              image_size=image_size, split=split,
                              feature_column=feature_column, metric=metric),
            trust_pickle=trust_pickle, log=printer.info)
        result["deployment"] = deployment.to_dict()
        result["files"] += [str(f.path) for f in deployment.files.values()
                            if str(f.path) not in result["files"]]
        recorded_in = _record_deployment(pruned, result["deployment"])
        if recorded_in is not None:
            result["report"] = str(recorded_in)
            printer.info(f"deployment figures added to {recorded_in} (and its report.html)")
    atomic_write_text(target.with_name("export.json"), json.dumps(result, indent=1) + "\n")
    if as_json:
        emit_json(result)
        return
    printer.result(f"ONNX: {target} (onnxruntime vs PyTorch: max abs diff "
                   f"{max_abs_diff:.3g}, input {tuple(example.shape)})")
    if deployment is not None:
        for line in deployment_lines(deployment):
            printer.result(line)
