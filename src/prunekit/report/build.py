"""Assemble a ``report.json`` document (schema version 1) from measured figures."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from typing import Any

from ..environment import versions
from ..errors import ConfigError
from ..plan.document import Plan
from .schema import SCHEMA, VERSION, validate_report
from .stats import ModelStats

__all__ = ["STAGES", "build_report", "layer_rows", "point"]


def layer_rows(plan: Plan) -> list[dict[str, Any]]:
    """Per coupled group: its modules and how many units (channels, neurons) it kept."""
    return [{"group": g.name, "modules": list(g.modules), "units_before": int(g.units),
             "units_after": int(g.units) - len(g.removed), "exact": bool(g.exact)}
            for g in plan.groups]


STAGES = ("dense", "pruned", "reconstructed", "decomposed", "fine-tuned")


def point(label: str, stage: str, stats: ModelStats | None = None, *, macs: int | None = None,
          params: int | None = None, metric: float | None = None) -> dict[str, Any]:
    """One metric-vs-MACs point (from ``stats`` or explicit figures).

    ``stage`` is ``"dense"``, ``"pruned"`` (before recovery), ``"reconstructed"`` (layers
    re-fitted without training), ``"decomposed"`` (layers factorized, before fine-tuning)
    or ``"fine-tuned"``.
    """
    if stage not in STAGES:
        raise ConfigError(f"stage must be one of {STAGES}, got {stage!r}")
    if stats is not None:
        macs = stats.macs if macs is None else macs
        params = stats.params if params is None else params
        metric = stats.metric if metric is None else metric
    return {"label": label, "stage": stage, "macs": macs, "params": params, "metric": metric}


def _ratio(before: float, after: float) -> float | None:
    return float(before) / float(after) if after else None


def build_report(*, model: Mapping[str, Any], task: Mapping[str, Any], before: ModelStats,
                 after: ModelStats, plan: Plan | None = None,
                 points: Sequence[Mapping[str, Any]] = (),
                 settings: Mapping[str, Any] | None = None,
                 timings_s: Mapping[str, float] | None = None,
                 files: Mapping[str, str] | None = None,
                 decomposition: Mapping[str, Any] | None = None,
                 speed: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A validated report document; ``ratios`` are before/after (``2.0`` = halved).

    ``model`` describes the model (``name``, ``input_shape``); ``task`` the data and metric
    (``dataset``, ``metric``, ``split``, sample counts); ``decomposition`` the low-rank
    factorizations (:meth:`prunekit.DecomposeResult.to_dict`), one row per layer; ``speed``
    the interleaved dense-vs-pruned timing (:func:`prunekit.report.speed.speed_section`).
    """
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "version": VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "model": dict(model),
        "task": dict(task),
        "before": before.to_dict(),
        "after": after.to_dict(),
        "ratios": {"params": _ratio(before.params, after.params),
                   "macs": _ratio(before.macs, after.macs),
                   "size": _ratio(before.size_bytes, after.size_bytes),
                   "latency": _ratio(before.latency.median_ms, after.latency.median_ms)},
        "layers": layer_rows(plan) if plan is not None else [],
        "points": [dict(p) for p in points],
        "settings": dict(settings or {}),
        "timings_s": dict(timings_s or {}),
        "files": dict(files or {}),
        "versions": versions(),
    }
    if decomposition is not None:
        report["decomposition"] = dict(decomposition)
    if speed is not None:
        report["speed"] = dict(speed)
    return validate_report(report)
