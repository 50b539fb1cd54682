"""Sensitivity analysis of a model on data (``prunekit analyze``): every group pruned alone
at several ratios (:func:`prunekit.recover.analyze_sensitivity`), written as
``sensitivity.json`` + ``sensitivity.png``; a ``report.json`` already in the folder gains
the curves (section ``sensitivity``) and its ``report.html`` is rendered again.

Nothing is written until the analysis has finished.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..files import atomic_write_bytes, atomic_write_text
from ..metrics import load_metric, parse_metric
from ..allocate.sensitivity import SensitivityConfig, analyze_sensitivity
from ..report.io import REPORT_HTML, REPORT_JSON, load_report, write_report
from ..report.plots import sensitivity_curves_png
from ..report.sensitivity import SENSITIVITY_JSON, attach_sensitivity
from .config import DataSource, ModelSource
from .inputs import load_inputs, val_loader

__all__ = ["SENSITIVITY_PNG", "AnalysisResult", "run_analysis"]

SENSITIVITY_PNG = "sensitivity.png"
Log = Callable[[str], None]


@dataclass(frozen=True)
class AnalysisResult:
    """The sensitivity document (as written) and the files written."""

    document: dict[str, Any]
    files: dict[str, str]


def run_analysis(model: ModelSource, data: DataSource, config: SensitivityConfig,
                 out_dir: str | Path, *, log: Log | None = None,
                 on_point: Callable[[str, float, float], None] | None = None
                 ) -> AnalysisResult:
    """Measure per-group sensitivity of ``model`` on ``data`` and write it into ``out_dir``."""
    say: Log = log if log is not None else (lambda _msg: None)
    say(f"model: {model.model_spec().text}")
    inputs = load_inputs(model, data, log=say)
    say(f"data: {inputs.data.name}, {len(inputs.data.y_val)} validation samples")
    metric = parse_metric(data.metric)
    result = analyze_sensitivity(inputs.model, inputs.example, val_loader(inputs.data),
                                 config=config, metric_fn=load_metric(metric),
                                 on_point=on_point)
    document = {**result.to_dict(), "metric": metric.name, "metric_spec": metric.text,
                "metric_fraction": metric.fraction, "split": "validation",
                "dataset": inputs.data.name, "model": inputs.spec.text,
                "input_shape": list(inputs.example.shape), "settings": {
                    "importance": config.importance, "ignore": list(config.ignore),
                    "round_to": config.round_to, "groups": list(config.groups)}}
    png = sensitivity_curves_png(document, title=f"Sensitivity of {inputs.spec.text}")
    folder = Path(out_dir)
    atomic_write_text(folder / SENSITIVITY_JSON, json.dumps(document, indent=1) + "\n")
    files = {"sensitivity_json": str(folder / SENSITIVITY_JSON)}
    if png is not None:
        atomic_write_bytes(folder / SENSITIVITY_PNG, png)
        files["sensitivity_png"] = str(folder / SENSITIVITY_PNG)
    if (folder / REPORT_JSON).is_file():
        report = load_report(folder)
        attach_sensitivity(report, folder)
        written = write_report(report, folder, html=(folder / REPORT_HTML).is_file())
        files["report_json"] = str(written.json)
        if written.html is not None:
            files["report_html"] = str(written.html)
        say(f"report updated with sensitivity curves: {written.json}")
    return AnalysisResult(document, files)
