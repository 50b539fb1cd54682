"""The ``report.json`` schema: its name, version, and a structural check (docs/report.md)."""

from __future__ import annotations

import math
from typing import Any

from ..errors import ReportError

__all__ = ["SCHEMA", "VERSION", "ReportError", "check_sensitivity", "validate_report"]

SCHEMA = "prunekit.report"
VERSION = 1

_TOP = ("schema", "version", "created", "model", "task", "before", "after", "ratios",
        "layers", "points", "settings", "versions")
_STATS = ("params", "macs", "flops", "size_bytes", "file_bytes", "latency_ms", "metric")
_LATENCY = ("median", "p10", "p90", "repeats", "warmup", "threads", "batch_size", "device",
            "dtype")
_LAYER = ("group", "modules", "units_before", "units_after")
_POINT = ("label", "stage", "macs", "params", "metric")
_FACTOR = ("name", "kind", "rank", "params_before", "params_after", "macs_before", "macs_after",
           "error", "energy", "ms_dense", "ms", "reason")


def _require(obj: Any, keys: tuple[str, ...], where: str) -> None:
    if not isinstance(obj, dict):
        raise ReportError(f"{where} must be an object, got {type(obj).__name__}")
    missing = [k for k in keys if k not in obj]
    if missing:
        raise ReportError(f"{where} lacks {missing}")


def _number(value: Any, where: str, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ReportError(f"{where} must be a finite number, got {value!r}")


def _finite(value: Any) -> bool:
    return (not isinstance(value, bool) and isinstance(value, (int, float))
            and math.isfinite(value))


def check_sensitivity(data: Any, where: str = "sensitivity") -> dict[str, Any]:
    """Check a sensitivity section (``baseline``, ``ratios``, ``curves``…); return it."""
    if not isinstance(data, dict):
        raise ReportError(f"{where} must be an object, got {type(data).__name__}")
    missing = [k for k in ("baseline", "ratios", "curves") if k not in data]
    if missing:
        raise ReportError(f"{where} lacks {missing}")
    if not _finite(data["baseline"]):
        raise ReportError(f"{where}.baseline must be a finite number")
    ratios = data["ratios"]
    if not isinstance(ratios, list) or not all(_finite(r) for r in ratios):
        raise ReportError(f"{where}.ratios must be a list of numbers")
    curves = data["curves"]
    if not isinstance(curves, dict):
        raise ReportError(f"{where}.curves must be an object (group -> metrics)")
    for key, values in curves.items():
        if (not isinstance(values, list) or len(values) != len(ratios)
                or not all(_finite(v) for v in values)):
            raise ReportError(f"{where}.curves[{key!r}] must hold one number per ratio")
    if data.get("mode", "max") not in ("max", "min"):
        raise ReportError(f"{where}.mode must be 'max' or 'min'")
    return data


def _check_int8(data: Any, where: str) -> None:
    """The ``int8`` section of ``prunekit export --int8``: fp32 and int8 size and latency."""
    _require(data, ("size_bytes", "latency_ms_median"), where)
    for key in ("size_bytes", "latency_ms_median"):
        _require(data[key], ("fp32", "int8"), f"{where}.{key}")
        for kind in ("fp32", "int8"):
            _number(data[key][kind], f"{where}.{key}.{kind}")


def _check_decomposition(data: Any, where: str) -> None:
    """The ``decomposition`` section: one row per candidate layer (factorized or not)."""
    _require(data, ("layers",), where)
    if not isinstance(data["layers"], list):
        raise ReportError(f"{where}.layers must be a list")
    for i, row in enumerate(data["layers"]):
        _require(row, _FACTOR, f"{where}.layers[{i}]")
        for key in ("params_before", "params_after", "macs_before", "macs_after"):
            _number(row[key], f"{where}.layers[{i}].{key}")
        for key in ("error", "energy", "ms_dense", "ms"):
            _number(row[key], f"{where}.layers[{i}].{key}", optional=True)
        if row["kind"] is None and not row["reason"]:
            raise ReportError(f"{where}.layers[{i}] is neither factorized nor has a reason")


def _check_depth_width(data: Any, where: str) -> None:
    """The ``depth_width`` section: every candidate as measured, and the chosen one."""
    _require(data, ("target", "candidates", "chosen"), where)
    if not isinstance(data["candidates"], list):
        raise ReportError(f"{where}.candidates must be a list")
    for i, row in enumerate(data["candidates"] + [data["chosen"]]):
        at = f"{where}.candidates[{i}]" if i < len(data["candidates"]) else f"{where}.chosen"
        _require(row, ("blocks", "ranking", "macs_reduction", "ms", "speedup"), at)
        if not isinstance(row["blocks"], list):
            raise ReportError(f"{at}.blocks must be a list of module names")
        for key in ("macs_reduction", "ms", "speedup"):
            _number(row[key], f"{at}.{key}")


def validate_report(data: Any, source: str = "report") -> dict[str, Any]:
    """Check ``data`` against schema version 1 and return it; raise :class:`ReportError`."""
    _require(data, ("schema", "version"), source)
    if data["schema"] != SCHEMA:
        raise ReportError(f"{source} is not a prunekit report (schema {data['schema']!r})")
    if data["version"] != VERSION:
        raise ReportError(f"{source} has report version {data['version']!r}; this prunekit "
                          f"reads version {VERSION}")
    _require(data, _TOP, source)
    for side in ("before", "after"):
        stats = data[side]
        _require(stats, _STATS, f"{source}: {side}")
        for key in ("params", "macs", "flops", "size_bytes"):
            _number(stats[key], f"{source}: {side}.{key}")
        _number(stats["file_bytes"], f"{source}: {side}.file_bytes", optional=True)
        _number(stats["metric"], f"{source}: {side}.metric", optional=True)
        _require(stats["latency_ms"], _LATENCY, f"{source}: {side}.latency_ms")
        for key in ("median", "p10", "p90", "threads"):
            _number(stats["latency_ms"][key], f"{source}: {side}.latency_ms.{key}")
    if not isinstance(data["layers"], list) or not isinstance(data["points"], list):
        raise ReportError(f"{source}: layers and points must be lists")
    for i, row in enumerate(data["layers"]):
        _require(row, _LAYER, f"{source}: layers[{i}]")
    for i, point in enumerate(data["points"]):
        _require(point, _POINT, f"{source}: points[{i}]")
    if data.get("sensitivity") is not None:
        check_sensitivity(data["sensitivity"], f"{source}: sensitivity")
    if data.get("int8") is not None:
        _check_int8(data["int8"], f"{source}: int8")
    if data.get("decomposition") is not None:
        _check_decomposition(data["decomposition"], f"{source}: decomposition")
    if data.get("depth_width") is not None:
        _check_depth_width(data["depth_width"], f"{source}: depth_width")
    if data.get("speed") is not None:
        from .speed import check_speed

        check_speed(data["speed"], f"{source}: speed")
    if data.get("deployment") is not None:
        from .deployment import check_deployment

        check_deployment(data["deployment"], f"{source}: deployment")
    if data.get("training") is not None:
        from .training import check_training

        check_training(data["training"], f"{source}: training")
    memory = [data[side].get("peak_memory") for side in ("before", "after")]
    for side, value in zip(("before", "after"), memory):
        if value is not None:
            _require(value, ("rss_growth_bytes", "method"), f"{source}: {side}.peak_memory")
    return data
