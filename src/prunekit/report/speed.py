"""The report's ``speed`` section: dense against pruned, timed interleaved, at batch 1 and
at the batch size the model serves, with throughput and where the time goes.

Every row comes from :func:`prunekit.measure.compare.compare_latency` (A/B rounds in
alternating order, medians of each, and the median per-round ratio), so load on the machine
affects both models alike. When the latency speed-up falls far below the MACs reduction,
the section says why with measured figures: the fixed per-pass cost (fitted from two batch
sizes) and the ops and module calls of one pass, which pruning channels does not remove.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from ..errors import ReportError
from ..measure.compare import compare_latency, fixed_cost, launch_floor
from ..measure.counts import ExampleInputs
from ..measure.latency import LatencyResult

__all__ = ["METHOD", "check_speed", "speed_lines", "speed_section"]

METHOD = ("interleaved A/B: each round times dense and pruned once, in alternating order; "
          "medians of each, speed-up = median of per-round ratios")

_ROW = ("batch_size", "dense_ms", "pruned_ms", "speedup", "dense_per_s", "pruned_per_s",
        "rounds", "threads", "device", "dtype")


def _row(dense: LatencyResult, pruned: LatencyResult, speedup: float) -> dict[str, Any]:
    batch = dense.batch_size or 1
    return {"batch_size": dense.batch_size, "dense_ms": dense.median_ms,
            "pruned_ms": pruned.median_ms, "speedup": speedup,
            "dense_per_s": batch * 1e3 / dense.median_ms if dense.median_ms > 0 else None,
            "pruned_per_s": batch * 1e3 / pruned.median_ms if pruned.median_ms > 0 else None,
            "dense_p10_ms": dense.p10_ms, "dense_p90_ms": dense.p90_ms,
            "pruned_p10_ms": pruned.p10_ms, "pruned_p90_ms": pruned.p90_ms,
            "rounds": dense.repeats, "threads": dense.threads, "device": dense.device,
            "dtype": dense.dtype}


def speed_section(dense: nn.Module, pruned: nn.Module,
                  inputs_by_batch: Mapping[int, ExampleInputs], *, serving_batch: int,
                  macs_ratio: float | None, warmup: int = 10, rounds: int = 50,
                  threads: int | None = None) -> tuple[dict[str, Any],
                                                       dict[int, tuple[LatencyResult,
                                                                       LatencyResult]]]:
    """Time ``dense`` and ``pruned`` interleaved at each batch size of ``inputs_by_batch``;
    return the section and, per batch size, the (dense, pruned) results."""
    if serving_batch not in inputs_by_batch:
        raise ReportError(f"serving batch {serving_batch} is not among the timed batch sizes "
                          f"{sorted(inputs_by_batch)}")
    rows = []
    results: dict[int, tuple[LatencyResult, LatencyResult]] = {}
    for batch in sorted(inputs_by_batch):
        # fewer rounds at large batches keep the run short; never fewer than 5
        n = rounds if batch == 1 else max(5, rounds // 3)
        comparison = compare_latency({"dense": dense, "pruned": pruned},
                                     inputs_by_batch[batch], warmup=min(warmup, n),
                                     rounds=n, threads=threads)
        d, p = comparison.results["dense"], comparison.results["pruned"]
        results[batch] = (d, p)
        rows.append(_row(d, p, comparison.speedup("dense", "pruned")))
    section: dict[str, Any] = {"method": METHOD, "serving_batch": serving_batch,
                               "macs_ratio": macs_ratio, "rows": rows}
    batches = sorted(results)
    if len(batches) >= 2:
        small, large = batches[0], batches[-1]
        section["fixed"] = {
            name: fixed_cost(results[small][i], results[large][i]).to_dict()
            for i, name in enumerate(("dense", "pruned"))}
    smallest = inputs_by_batch[batches[0]]
    section["launch"] = launch_floor(dense, smallest, threads=threads).to_dict()
    return section, results


def check_speed(data: Any, where: str = "speed") -> dict[str, Any]:
    """Check a speed section's structure; return it."""
    if not isinstance(data, dict):
        raise ReportError(f"{where} must be an object, got {type(data).__name__}")
    for key in ("method", "serving_batch", "rows"):
        if key not in data:
            raise ReportError(f"{where} lacks {key!r}")
    if not isinstance(data["rows"], list) or not data["rows"]:
        raise ReportError(f"{where}.rows must be a non-empty list")
    for i, row in enumerate(data["rows"]):
        if not isinstance(row, dict):
            raise ReportError(f"{where}.rows[{i}] must be an object")
        missing = [k for k in _ROW if k not in row]
        if missing:
            raise ReportError(f"{where}.rows[{i}] lacks {missing}")
    if data["serving_batch"] not in [row["batch_size"] for row in data["rows"]]:
        raise ReportError(f"{where}: serving batch {data['serving_batch']} has no row")
    return data


def _per_s(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}/s"


def speed_lines(section: Mapping[str, Any]) -> list[str]:
    """Plain-text lines for a newcomer: the serving-batch headline first, then batch-1
    latency, then (when latency gains far less than MACs) where the time goes."""
    rows = {row["batch_size"]: row for row in section["rows"]}
    serving = rows[section["serving_batch"]]
    macs = section.get("macs_ratio")
    macs_text = f" (MACs {macs:.2f}x fewer)" if macs else ""
    lines = [
        f"served at batch {serving['batch_size']}: throughput {serving['speedup']:.2f}x "
        f"({_per_s(serving['dense_per_s'])} -> {_per_s(serving['pruned_per_s'])}){macs_text}",
    ]
    one = rows.get(1)
    if one is not None and one is not serving:
        lines.append(f"batch 1: latency {one['speedup']:.2f}x ({one['dense_ms']:.3f} -> "
                     f"{one['pruned_ms']:.3f} ms)")
    first = rows[min(rows)]
    fixed = section.get("fixed")
    if macs and first["speedup"] < 0.75 * macs and fixed:
        dense_fixed = fixed["dense"]["fixed_ms"]
        share = dense_fixed / first["dense_ms"] if first["dense_ms"] > 0 else 0.0
        launch = section.get("launch") or {}
        ops = (f"; one pass runs {launch['ops']} ATen ops and {launch['module_calls']} "
               "module calls whatever the widths" if launch else "")
        lines.append(
            f"why batch {first['batch_size']} gains less than the MACs: {100 * share:.0f}% of "
            f"the dense pass ({dense_fixed:.3f} of {first['dense_ms']:.3f} ms) is fixed "
            f"per-pass cost (dispatch, kernel setup, module calls; fitted from batches "
            f"{fixed['dense']['small_batch']} and {fixed['dense']['large_batch']}) that "
            f"pruning channels cannot remove{ops}: the model is launch-bound there; "
            f"per-sample work shrank "
            f"{_ratio(fixed['dense']['per_sample_ms'], fixed['pruned']['per_sample_ms'])}")
    lines.append(f"timing: {serving['device']}, {serving['dtype']}, {serving['threads']} "
                 f"thread(s); {section['method']}")
    return lines


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b > 0 else "-"
