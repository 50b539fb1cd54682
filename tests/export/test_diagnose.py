"""Why-not-faster findings from measured figures: channel alignment from PyTorch's FLOP
counter, launch-boundness from per-sample times, op time from ORT profiles (synthetic
profiles and injected timings here, so the verdicts do not depend on this machine)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from prunekit.export.config import QuantizeConfig
from prunekit.export.deploy import Row, Variant, _diagnose
from prunekit.export.diagnose import (
    channel_alignment,
    compare_profiles,
    int8_findings,
    launch_bound,
    layer_macs,
)
from prunekit.export.quantize import QuantizedFile
from prunekit.measure.latency import LatencyResult
from prunekit.measure.onnxrt import summarize_profile


def _net(c1: int, c2: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, c1, 1), nn.ReLU(), nn.Conv2d(c1, c2, 1), nn.Flatten(),
                         nn.Linear(c2 * 4, 16))


def test_layer_macs_and_channel_alignment_are_exact() -> None:
    x = torch.randn(1, 3, 2, 2)
    dense, pruned = _net(32, 32), _net(20, 32)
    macs = layer_macs(pruned, x)
    assert macs == {"0": 3 * 20 * 4, "2": 20 * 32 * 4, "4": 128 * 16}
    finding = channel_alignment(dense, pruned, x, x)
    total = sum(macs.values())
    # layers 0 (3 -> 20) and 2 (20 -> 32) have 20 channels: not a multiple of 16 nor of 8
    assert finding.figures["pruned_share_not_multiple_of_16"] == pytest.approx(
        (240 + 2560) / total)
    assert finding.figures["pruned_share_not_multiple_of_8"] == pytest.approx(
        (240 + 2560) / total)
    assert finding.figures["dense_share_not_multiple_of_16"] == 0.0
    assert "round_to=16" in finding.detail
    assert finding.figures["largest_misaligned_layers"][0] == "2 20→32"


def test_launch_bound_compares_time_per_sample() -> None:
    found = launch_bound({1: 1.0, 8: 2.0}, "pruned eager fp32")
    assert found is not None and found.figures["ratio"] == pytest.approx(4.0)
    assert "dominated by per-op overhead" in found.detail
    calm = launch_bound({1: 1.0, 8: 7.2}, "x")
    assert calm is not None and "not launch-bound" in calm.detail
    assert launch_bound({8: 1.0}, "x") is None


def _events(ops: list[tuple[str, str, int]], runs: int) -> list[dict]:
    events, ts = [], 0
    for _ in range(runs + 1):  # the first run is the warm-up the summary skips
        events.append({"cat": "Session", "name": "model_run", "ts": ts, "dur": 1})
        for node, op, dur in ops:
            ts += 1
            events.append({"cat": "Node", "name": f"{node}_kernel_time", "ts": ts, "dur": dur,
                           "args": {"op_name": op}})
        ts += 10
    return events


def test_profiles_are_summed_by_op_type_and_compared() -> None:
    dense = summarize_profile(_events([("c1", "Conv", 900), ("a", "Add", 100)], 2), 2)
    assert dense.total_ms == pytest.approx(1.0)
    assert [(o.op_type, o.nodes) for o in dense.ops] == [("Conv", 1), ("Add", 1)]
    assert dense.share(["Conv"]) == pytest.approx(0.9)
    pruned = summarize_profile(_events([("c1", "Conv", 300), ("r", "ReorderInput", 200),
                                        ("a", "Add", 100)], 2), 2)
    found = compare_profiles(dense, pruned, "pruned fp32")
    assert found.figures["grew"][0]["op_type"] == "ReorderInput"
    assert "layout reorders 33%" in found.detail and "(dense 0%)" in found.detail


def test_int8_findings_name_float_layers() -> None:
    from pathlib import Path

    qfile = QuantizedFile("int8-dynamic", Path("m.onnx"), 10,
                          float_nodes=(("features.0", "Conv"),))
    profile = summarize_profile(_events([("c", "Conv", 800), ("q", "DynamicQuantizeLinear", 100),
                                         ("m", "MatMulInteger", 100)], 1), 1)
    found = {f.kind: f for f in int8_findings(qfile, profile, "pruned int8-dynamic")}
    assert "features.0 (Conv)" in found["fell-back"].detail
    assert found["op-time"].figures["float_share"] == pytest.approx(0.8)
    assert found["op-time"].figures["conversion_share"] == pytest.approx(0.1)


def _lat(ms: float) -> LatencyResult:
    return LatencyResult(ms, ms, ms, 1, 1, "cpu", "float32", 1)


def test_only_rows_below_their_promise_are_diagnosed() -> None:
    x = torch.randn(1, 3, 2, 2)
    variants = [Variant("dense", _net(32, 32), x), Variant("pruned", _net(20, 32), x)]
    macs_dense, macs_pruned = 400, 100  # a 4x reduction, injected
    rows = [Row("dense", "eager", "fp32", 1, macs_dense, _lat(4.0)),
            Row("dense", "eager", "fp32", 8, macs_dense, _lat(16.0)),
            Row("pruned", "eager", "fp32", 1, macs_pruned, _lat(2.0)),   # 2x of 4x: short
            Row("pruned", "eager", "fp32", 8, macs_pruned, _lat(4.5)),
            Row("pruned", "eager", "bf16", 1, macs_pruned, _lat(0.95)),  # 4.2x: fine
            Row("pruned", "eager", "bf16", 8, macs_pruned, _lat(3.9))]
    found = _diagnose(rows, variants, {}, {}, QuantizeConfig(), lambda _m: None)
    assert [(e["runtime"], e["format"]) for e in found["rows"]] == [("eager", "fp32")]
    entry = found["rows"][0]
    assert entry["macs_reduction"] == 4.0
    assert entry["per_batch"][0]["eta"] == pytest.approx(0.5)
    assert {f["kind"] for f in entry["findings"]} == {"launch-bound"}
    assert found["channels"]["kind"] == "channels"
