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
    code, stdout, err = cli(["export", str(pruned_out), "--format", "onnx", "--json"])
    assert code == 0, err
    result = json.loads(stdout)
    assert (pruned_out / "pruned" / "model.onnx").is_file()
    assert result["onnx_check"]["max_abs_diff"] < 1e-4 and "deployment" not in result
    assert result["model"] == "prunekit:digits_cnn" and result["input_shape"] == [1, 1, 8, 8]
    code, stdout, err = cli(["export", str(pruned_out), "--int8", "dynamic", "--runtimes",
                             "onnxruntime", "--batch-sizes", "1", "--threads", "1",
                             "--repeats", "2", "--json"])
    assert code == 0, err
    result = json.loads(stdout)
    q = result["deployment"]
    rows = {(r["variant"], r["format"]): r for r in q["rows"]}
    assert rows[("pruned", "int8-dynamic")]["file_bytes"] > 0
    assert rows[("pruned", "int8-dynamic")]["latency_ms"]["threads"] == 1
    assert q["files"]["pruned:int8-dynamic"]["quantized_layers"] == 1  # the Linear head
    saved = json.loads((pruned_out / "pruned" / "export.json").read_text())
    assert saved == result
    from prunekit.report import load_report
    assert load_report(pruned_out)["deployment"] == q  # the folder's report gains the rows
    assert result["report"] == str(pruned_out / "report.json")
    page = (pruned_out / "report.html").read_text()  # and its page shows them
    section = page[page.index("<h2>Deployment</h2>"):page.index("<h2>Settings")]
    assert "<td>int8-dynamic</td>" in section
    assert f"{rows[('pruned', 'int8-dynamic')]['file_bytes']:,}" in section


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
