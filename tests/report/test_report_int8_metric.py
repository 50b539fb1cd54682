"""report.html shows the int8 figures of ``prunekit export --int8`` in its before/after
table, the metric by name (percentages only for fractions) and CUDA-graph timing."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from prunekit.report import (
    ReportError,
    load_report,
    write_report,
)
from prunekit.report.html import render_html

INT8 = {"quantized_linear_layers": 2, "size_bytes": {"fp32": 103_783, "int8": 51_625},
        "latency_ms_median": {"fp32": 0.25, "int8": 0.125}, "max_abs_diff_vs_fp32": 1.3e-4,
        "latency_conditions": {"device": "cpu", "threads": 1, "repeats": 20,
                               "dtype": "float32 input"},
        "method": "torch.ao.quantization.quantize_dynamic({nn.Linear}, qint8)", "note": ""}


def test_int8_rows_in_the_before_after_table(report: dict[str, Any], tmp_path: Path) -> None:
    assert "pruned int8" not in render_html(report)
    doc = copy.deepcopy(report)
    doc["int8"] = dict(INT8)
    files = write_report(doc, tmp_path)
    assert load_report(tmp_path)["int8"] == INT8
    assert files.html is not None
    page = files.html.read_text()
    table = page[page.index("<h2>Before and after</h2>"):page.index("<h2>Kept units")]
    assert "<th>pruned fp32</th><th>pruned int8</th><th>fp32 / int8</th>" in table
    assert ("<td>int8: serialized size (bytes, state dict)</td><td class=num>103,783</td>"
            "<td class=num>51,625</td><td class=num>2.01&times;</td>") in table
    assert ("<td>int8: latency median (ms)</td><td class=num>0.250</td>"
            "<td class=num>0.125</td><td class=num>2.00&times;</td>") in table
    assert "2 Linear layer(s) quantized" in table and "1 thread(s), median of 20 runs" in table


def test_malformed_int8_section_is_rejected(report: dict[str, Any]) -> None:
    doc = copy.deepcopy(report)
    doc["int8"] = {"size_bytes": {"fp32": 10}, "latency_ms_median": {"fp32": 1, "int8": 1}}
    with pytest.raises(ReportError, match=r"int8.size_bytes lacks \['int8'\]"):
        write_report(doc, "unused")


def test_metric_name_and_format_follow_the_task(report: dict[str, Any]) -> None:
    page = render_html(report)
    assert "metric: top-5 accuracy" in page and "<th>top-5 accuracy</th>" in page
    assert "90.00%" in page
    doc = copy.deepcopy(report)
    doc["task"].update(metric="my_metric.py:f1", metric_spec="my_metric.py:f1",
                       metric_fraction=False)
    page = render_html(doc)
    assert "my_metric.py:f1" in page and "<td class=num>0.9</td>" in page
    assert "90.00%" not in page


def test_cuda_graph_timing_is_stated(report: dict[str, Any]) -> None:
    assert report["after"]["latency_ms"]["cuda_graph"] is False
    assert "CUDA-graph" not in render_html(report)
    doc = copy.deepcopy(report)
    doc["after"]["latency_ms"]["cuda_graph"] = True
    assert "timed as CUDA-graph replays" in render_html(doc)
