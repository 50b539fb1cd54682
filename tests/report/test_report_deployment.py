"""The report's ``deployment`` section: checked on write and read, shown in report.html."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from prunekit.report import ReportError, load_report, write_report

ROW = {"variant": "pruned", "runtime": "onnxruntime", "format": "int8-qdq", "batch_size": 8,
       "macs": 100, "latency_ms": {"median": 2.0, "p10": 1.9, "p90": 2.2, "repeats": 10,
                                   "threads": 2, "device": "cpu", "dtype": "float32 input"},
       "file": "model.int8-qdq.onnx", "file_bytes": 12_345, "metric": 0.95,
       "cosine_vs_fp32": 0.9999, "status": "ok"}
DENSE = dict(ROW, variant="dense", format="fp32", macs=400, file=None, file_bytes=49_000,
             latency_ms=dict(ROW["latency_ms"], median=5.0))
SECTION = {"conditions": {"cpu": "Test CPU", "cpu_flags": ["avx2"], "threads": 2,
                          "repeats": 10, "warmup": 3, "onnxruntime": "1.x",
                          "provider": "CPUExecutionProvider", "torch": "2.x",
                          "min_speedup": 1.05, "budget": 0.005},
           "rows": [DENSE, ROW, dict(ROW, format="int8-qoperator", latency_ms=None,
                                     status="error: something broke")],
           "chosen": {"8": {"format": "onnxruntime/int8-qdq", "reason": "measured 2.5x"}},
           "diagnosis": {"channels": {"kind": "channels", "detail": "40% of MACs off 16",
                                      "figures": {}},
                         "rows": [{"variant": "pruned", "runtime": "onnxruntime",
                                   "format": "int8-qdq", "macs_reduction": 4.0,
                                   "per_batch": [{"batch_size": 8,
                                                  "speedup_vs_dense_fp32": 2.5, "eta": 0.62}],
                                   "findings": [{"kind": "launch-bound",
                                                 "detail": "batch 1 is overhead", "figures": {}}]
                                   }]},
           "qat": {"triggered": False, "reason": "within budget"}}


def test_deployment_section_round_trips_and_renders(report: dict[str, Any],
                                                    tmp_path: Path) -> None:
    doc = copy.deepcopy(report)
    doc["deployment"] = copy.deepcopy(SECTION)
    files = write_report(doc, tmp_path)
    assert load_report(tmp_path)["deployment"] == SECTION
    assert files.html is not None
    page = files.html.read_text()
    section = page[page.index("<h2>Deployment</h2>"):page.index("<h2>Settings")]
    assert "Timed on Test CPU (flags: avx2), 2 thread(s), median of 10 runs" in section
    assert ("<td>pruned</td><td>onnxruntime</td><td>int8-qdq</td><td class=num>8</td>"
            "<td class=num>2.000</td>") in section
    assert "<td class=num>2.50&times;</td><td class=num>12,345</td>" in section
    assert "<td class=num>95.00%</td>" in section
    assert "<td colspan=6>error: something broke</td>" in section
    assert "batch 8: <b>onnxruntime/int8-qdq</b> &mdash; measured 2.5x" in section
    assert "Why not faster (measured)" in section and "40% of MACs off 16" in section
    assert "&eta; 0.62" in section and "batch 1 is overhead" in section
    assert "Quantization-aware recovery: not needed (within budget)" in section


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("chosen"), r"deployment lacks \['chosen'\]"),
    (lambda d: d["rows"][0].pop("format"), r"rows\[0\] lacks one of"),
    (lambda d: d["rows"][1].update(latency_ms={"p10": 1}), "must be null or have a median"),
    (lambda d: d["chosen"].update({"1": {"format": "x"}}), "must have a format and a reason"),
])
def test_malformed_deployment_sections_are_rejected(report: dict[str, Any], change: Any,
                                                    message: str) -> None:
    doc = copy.deepcopy(report)
    doc["deployment"] = copy.deepcopy(SECTION)
    change(doc["deployment"])
    with pytest.raises(ReportError, match=message):
        write_report(doc, "unused")
