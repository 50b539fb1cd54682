"""``prunekit export DIR --format onnx``: export a pruned model and check it in onnxruntime."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from .common import Printer, emit_json, json_option, parse_shape, quiet_option

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


def _record_int8(pruned: Path, int8: dict[str, Any]) -> Path | None:
    """Write the int8 figures into the folder's report.json (key ``int8``), if it has one,
    and render its report.html again (when there is one) so the page shows them."""
    from ..report.io import REPORT_HTML, load_report, write_report
    from ..report.sensitivity import attach_sensitivity

    candidate = _report_path(pruned)
    if candidate is None:
        return None
    report = load_report(candidate)
    report["int8"] = int8
    folder = candidate.parent
    attach_sensitivity(report, folder)
    write_report(report, folder, html=(folder / REPORT_HTML).is_file())
    return candidate


@click.command("export")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["onnx"]), default="onnx", show_default=True)
@click.option("--model", "model_spec", default=None,
              help="Architecture spec of the unpruned model [default: from report.json].")
@click.option("--input-shape", default=None,
              help="Unpruned example-input shape, e.g. 1,1,8,8 [default: from report.json].")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="ONNX file to write [default: DIR's pruned folder/model.onnx].")
@click.option("--tolerance", type=float, default=1e-3, show_default=True,
              help="Largest allowed |onnxruntime - PyTorch| output difference (for a model "
                   "converted from ONNX: relative to its largest output).")
@click.option("--int8", is_flag=True,
              help="Also quantize Linear layers to int8 (dynamic) and report size and latency.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads for the int8 latency comparison.")
@click.option("--trust-pickle", is_flag=True, help="Allow a pickled model.pt as --model.")
@json_option
@quiet_option
def export(directory: Path, fmt: str, model_spec: str | None, input_shape: str | None,
           output: Path | None, tolerance: float, int8: bool, threads: int | None,
           trust_pickle: bool, as_json: bool, quiet: bool) -> None:
    """Export the pruned model in DIR (save_pruned folder, or a prunekit prune --out folder)
    to ONNX, and check it in onnxruntime against PyTorch. A model pruned from an ONNX file
    keeps that file's input/output names, dynamic axes and opset."""
    import torch

    from ..errors import ConfigError, ExportError
    from ..export import check_onnx, export_onnx
    from ..files import atomic_write_text
    from ..models.spec import load_model_spec, parse_model_spec
    from ..plan import Plan
    from ..serialization import load_pruned
    from ..verify import slice_inputs

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
    target = output if output is not None else pruned / "model.onnx"
    printer.info(f"exporting {spec_text} (pruned) to {target}")
    result: dict[str, Any] = {"schema": "prunekit.export", "version": 1, "format": fmt,
                              "model": spec_text}
    if spec.kind == "onnx":  # back to ONNX with the original names, dynamic axes and opset
        from ..onnx import export as export_converted

        facts = export_converted(model, target, tolerance=tolerance)
        example = slice_inputs(torch.randn(*shape), plan)
        result.update({"input_shape": list(example.shape), "files": facts["files"],
                       "signature": {"opset": facts["opset"], "inputs": facts["inputs"],
                                     "outputs": facts["outputs"]},
                       "onnx_check": {"runtime": "onnxruntime",
                                      "provider": "CPUExecutionProvider",
                                      "max_abs_diff": max(facts["onnxruntime"]["max_abs_diff"]),
                                      "max_rel_diff": max(facts["onnxruntime"]["max_rel_diff"]),
                                      "tolerance": tolerance, "relative": True}})
        if int8:
            from ..export import quantize_onnx_dynamic

            printer.info("int8: onnxruntime dynamic quantization of the exported file")
            result["onnx_int8"] = quantize_onnx_dynamic(
                target, target.with_name(target.stem + ".int8.onnx"), model)
    else:
        example = slice_inputs(torch.randn(*shape), plan)
        files = export_onnx(model, example, target)
        check = check_onnx(target, model, example)
        if not check.ok(tolerance):
            raise ExportError(f"onnxruntime disagrees with PyTorch on {target}: max abs "
                              f"diff {check.max_abs_diff:.3g} > tolerance {tolerance:g}")
        result.update({"input_shape": list(example.shape), "files": [str(f) for f in files],
                       "onnx_check": {"runtime": "onnxruntime", "provider": check.provider,
                                      "max_abs_diff": check.max_abs_diff,
                                      "tolerance": tolerance,
                                      "output_shape": list(check.output_shape)}})
    if int8:
        from ..export import quantize_int8
        printer.info("int8: quantizing Linear layers (dynamic)")
        result["int8"] = quantize_int8(model, example, threads=threads).to_dict()
        recorded_in = _record_int8(pruned, result["int8"])
        if recorded_in is not None:
            result["report"] = str(recorded_in)
            printer.info(f"int8 figures added to {recorded_in} (and its report.html)")
    atomic_write_text(target.with_name("export.json"), json.dumps(result, indent=1) + "\n")
    if as_json:
        emit_json(result)
        return
    printer.result(f"ONNX: {target} (onnxruntime vs PyTorch: max abs diff "
                   f"{result['onnx_check']['max_abs_diff']:.3g}, input {tuple(example.shape)})")
    if "onnx_int8" in result:
        q8 = result["onnx_int8"]
        printer.result(f"ONNX int8: {q8['file']} ({q8['bytes_fp32']:,} -> {q8['bytes_int8']:,} "
                       f"bytes; max abs diff vs PyTorch fp32 {q8['max_abs_diff_vs_fp32']:.3g})")
    if int8:
        q = result["int8"]
        lat, size = q["latency_ms_median"], q["size_bytes"]
        printer.result(f"int8 ({q['quantized_linear_layers']} Linear layers): size "
                       f"{size['fp32']:,} -> {size['int8']:,} bytes; latency median "
                       f"{lat['fp32']:.3f} -> {lat['int8']:.3f} ms (cpu, "
                       f"{q['latency_conditions']['threads']} thread(s), batch "
                       f"{example.shape[0]}); max abs diff {q['max_abs_diff_vs_fp32']:.3g}")
        if q["note"]:
            printer.result(f"note: {q['note']}")
