"""``prunekit analyze MODEL_SPEC``: per-group sensitivity curves (each group pruned alone at
several ratios, no fine-tuning), written as ``sensitivity.json`` + ``sensitivity.png``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .common import (
    Printer,
    check_model_spec,
    data_options,
    model_and_pruning_options,
    emit_json,
    format_table,
    json_option,
    out_option,
    parse_shape,
    quiet_option,
)

__all__ = ["analyze"]


def _ratios(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of ratios",
                                 param_hint="--ratios") from None


@click.command("analyze")
@click.argument("model_spec")
@data_options
@click.option("--ratios", default="0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9", show_default=True,
              help="Fractions of each group's units to remove, increasing, in (0, 1).")
@click.option("--groups", multiple=True,
              help="Only groups whose key matches this glob (e.g. 'features.*'); repeatable.")
@click.option("--importance", default="l2", show_default=True, help="Importance criterion.")
@model_and_pruning_options
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the train/validation split.")
@out_option("prunekit-out", "Folder for sensitivity.json and sensitivity.png (a report.json "
                            "there gains the curves).")
@json_option
@quiet_option
def analyze(model_spec: str, data_spec: str, label_column: str, image_size: int,
            split: str | None, feature_column: str | None, metric: str, ratios: str,
            groups: tuple[str, ...], importance: str, model_args: dict[str, Any],
            ignore: tuple[str, ...], round_to: int,
            input_shape: str | None, weights: Path | None, trust_pickle: bool, seed: int,
            out: Path, as_json: bool, quiet: bool) -> None:
    """Measure how much the validation metric (--metric, default accuracy) of MODEL_SPEC
    drops when each coupled group alone loses a fraction of its units (no fine-tuning)."""
    from ..errors import ConfigError
    from ..metrics import format_metric
    from ..allocate.sensitivity import SensitivityConfig
    from ..workflow.analyze import run_analysis
    from ..workflow.config import DataSource, ModelSource

    check_model_spec(model_spec, model_args)
    shape = parse_shape(input_shape) if input_shape else None
    try:
        config = SensitivityConfig(ratios=_ratios(ratios), groups=groups, importance=importance,
                                   ignore=ignore, round_to=round_to)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    printer = Printer(quiet=quiet or as_json)
    last = config.ratios[-1]

    def on_point(key: str, ratio: float, _value: float) -> None:
        if ratio == last:
            printer.info(f"  {key}: done")

    result = run_analysis(
        ModelSource(model_spec, None if weights is None else str(weights), shape, trust_pickle,
                    model_args),
        DataSource(data_spec, label_column, seed=seed, image_size=image_size, split=split,
                   feature_column=feature_column, metric=metric), config, out,
        log=printer.info, on_point=on_point)
    doc = result.document
    if as_json:
        emit_json({"sensitivity": doc, "files": result.files})
        return
    base = float(doc["baseline"])
    fraction = bool(doc["metric_fraction"])
    headers = ["group (units)", *[f"{r:g}" for r in doc["ratios"]]]
    rows = [[f"{key} ({doc['units'].get(key, '?')})",
             *[f"{100 * (base - v):+.1f}" if fraction else f"{base - v:+.4g}"
               for v in values]]
            for key, values in doc["curves"].items()]
    unit = " in points" if fraction else ""
    printer.result(f"{doc['metric']} drop{unit} (baseline {format_metric(base, fraction)}), "
                   "each group pruned alone at each ratio, no fine-tuning:")
    printer.result(format_table(headers, rows))
    printer.result("files: " + ", ".join(result.files.values()))
