"""``prunekit export`` (ONNX checked in onnxruntime, optional int8) and ``prunekit report``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

Runner = Callable[[list[str]], tuple[int, str, str]]
FAST = ["--repeats", "2", "--threads", "1"]


@pytest.fixture
def pruned_out(cli: Runner, tmp_path: Path) -> Path:
    out = tmp_path / "out"
    code, _, _ = cli(["prune", "prunekit:digits_cnn", "--out", str(out), "--quiet", *FAST])
    assert code == 0
    return out


def test_export_onnx_matches_pytorch_and_int8(cli: Runner, pruned_out: Path) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    code, stdout, err = cli(["export", str(pruned_out), "--format", "onnx", "--int8",
                             "--threads", "1", "--json"])
    assert code == 0, err
    result = json.loads(stdout)
    assert (pruned_out / "pruned" / "model.onnx").is_file()
    assert result["onnx_check"]["max_abs_diff"] < 1e-4
    assert result["model"] == "prunekit:digits_cnn" and result["input_shape"] == [1, 1, 8, 8]
    q = result["int8"]
    assert q["quantized_linear_layers"] == 2 and q["size_bytes"]["int8"] < q["size_bytes"]["fp32"]
    assert q["latency_ms_median"]["int8"] > 0 and q["latency_conditions"]["threads"] == 1
    saved = json.loads((pruned_out / "pruned" / "export.json").read_text())
    assert saved == result
    from prunekit.report import load_report
    assert load_report(pruned_out)["int8"] == q  # the folder's report gains the int8 figures
    assert result["report"] == str(pruned_out / "report.json")
    page = (pruned_out / "report.html").read_text()  # and its page shows them
    table = page[page.index("<h2>Before and after</h2>"):page.index("<h2>Kept units")]
    assert "<th>pruned int8</th>" in table
    assert f"<td class=num>{q['size_bytes']['int8']:,}</td>" in table
    assert f"<td class=num>{q['latency_ms_median']['int8']:,.3f}</td>" in table


def test_export_without_plan_is_a_usage_error(cli: Runner, tmp_path: Path) -> None:
    code, _, err = cli(["export", str(tmp_path)])
    assert code == 2 and "holds no plan.json" in err


def test_report_rerenders_html(cli: Runner, pruned_out: Path) -> None:
    (pruned_out / "report.html").unlink()
    code, stdout, _ = cli(["report", str(pruned_out)])
    assert code == 0 and "report.html" in stdout
    page = (pruned_out / "report.html").read_text()
    assert page.startswith("<!doctype html>") and "digits_cnn" in page
    (pruned_out / "report.json").write_text('{"schema": "other", "version": 1}')
    code, _, err = cli(["report", str(pruned_out)])
    assert code == 1 and "not a prunekit report" in err and "Traceback" not in err
