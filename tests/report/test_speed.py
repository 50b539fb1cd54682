"""The report's speed section: structure, schema check and the newcomer's lines."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from torch import nn

from prunekit.errors import ReportError
from prunekit.report.speed import check_speed, speed_lines, speed_section


def _row(batch: int, dense_ms: float, pruned_ms: float) -> dict[str, Any]:
    return {"batch_size": batch, "dense_ms": dense_ms, "pruned_ms": pruned_ms,
            "speedup": dense_ms / pruned_ms, "dense_per_s": batch * 1e3 / dense_ms,
            "pruned_per_s": batch * 1e3 / pruned_ms, "rounds": 5, "threads": 1,
            "device": "cpu", "dtype": "float32"}


def _section(one: tuple[float, float], serving: tuple[float, float]) -> dict[str, Any]:
    return {"method": "interleaved", "serving_batch": 64, "macs_ratio": 4.0,
            "rows": [_row(1, *one), _row(64, *serving)],
            "fixed": {"dense": {"small_batch": 1, "large_batch": 64, "fixed_ms": 0.12,
                                "per_sample_ms": 0.05},
                      "pruned": {"small_batch": 1, "large_batch": 64, "fixed_ms": 0.11,
                                 "per_sample_ms": 0.02}},
            "launch": {"ops": 17, "module_calls": 17, "op_us": 1.0, "call_us": 1.0,
                       "floor_ms": 0.034}}


def test_lines_lead_with_serving_throughput_and_explain_a_launch_bound_batch_1() -> None:
    lines = speed_lines(_section((0.18, 0.135), (3.4, 1.45)))
    assert lines[0].startswith("served at batch 64: throughput 2.34x")
    assert "MACs 4.00x fewer" in lines[0]
    assert lines[1].startswith("batch 1: latency 1.33x")
    assert "launch-bound" in lines[2] and "17 ATen ops" in lines[2]
    assert "per-sample work shrank 2.50x" in lines[2]
    assert "interleaved" in lines[-1]


def test_no_launch_bound_line_when_latency_follows_the_macs() -> None:
    lines = speed_lines(_section((1.0, 0.27), (40.0, 10.5)))
    assert not any("launch-bound" in line for line in lines)


def test_check_speed_names_what_is_missing() -> None:
    good = _section((0.18, 0.135), (3.4, 1.45))
    assert check_speed(good) is good
    bad = copy.deepcopy(good)
    del bad["rows"][0]["pruned_ms"]
    with pytest.raises(ReportError, match=r"rows\[0\] lacks \['pruned_ms'\]"):
        check_speed(bad)
    bad = copy.deepcopy(good)
    bad["serving_batch"] = 32
    with pytest.raises(ReportError, match="serving batch 32 has no row"):
        check_speed(bad)


def test_speed_section_times_every_batch_and_fits_the_fixed_cost() -> None:
    dense = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))
    pruned = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    inputs = {1: torch.randn(1, 8), 4: torch.randn(4, 8)}
    section, results = speed_section(dense, pruned, inputs, serving_batch=4, macs_ratio=3.7,
                                     warmup=0, rounds=5, threads=1)
    check_speed(section)
    assert [row["batch_size"] for row in section["rows"]] == [1, 4]
    assert set(results) == {1, 4} and results[4][0].batch_size == 4
    assert set(section["fixed"]) == {"dense", "pruned"}
    assert section["launch"]["module_calls"] == 4
    with pytest.raises(ReportError, match="serving batch 8"):
        speed_section(dense, pruned, inputs, serving_batch=8, macs_ratio=None)
