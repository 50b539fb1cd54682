"""``prunekit prune model.onnx`` (fine-tuned, with a report) then ``prunekit export`` back to
ONNX with the file's own names, dynamic axes and opset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from prunekit.cli.main import run
from prunekit.models.spec import parse_model_spec
from prunekit.onnx import read_signature

from helpers.onnx_files import export_torch
from helpers.onnx_models import FoldedNet


def _cli(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = run(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_prune_finetune_report_and_export(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    source = export_torch(FoldedNet(), torch.randn(2, 1, 8, 8), tmp_path / "digits.onnx",
                          input_names=["pixels"], output_names=["scores"],
                          dynamic={"pixels": {0: "n"}, "scores": {0: "n"}})
    assert parse_model_spec(str(source)).kind == "onnx"
    out = tmp_path / "out"
    code, stdout, err = _cli(capsys, ["prune", str(source), "--data", "digits", "--ratio",
                                      "0.5", "--finetune-epochs", "1", "--repeats", "2",
                                      "--threads", "1", "--no-html", "--out", str(out),
                                      "--json"])
    assert code == 0, err
    report = json.loads(stdout)["report"]
    conversion = report["model"]["onnx_conversion"]
    assert conversion["opset"] == read_signature(source).opset
    assert conversion["onnxruntime"]["max_rel_diff"][0] <= 1e-4
    assert report["after"]["params"] < report["before"]["params"]
    code, stdout, err = _cli(capsys, ["export", str(out), "--int8", "dynamic", "--runtimes",
                                      "onnxruntime", "--batch-sizes", "2", "--repeats", "2",
                                      "--threads", "1", "--json"])
    assert code == 0, err
    result = json.loads(stdout)
    files = result["deployment"]["files"]
    int8 = out / "pruned" / files["pruned:int8-dynamic"]["file"]
    assert int8.is_file() and files["pruned:int8-dynamic"]["bytes"] < files["pruned:fp32"]["bytes"]
    assert read_signature(int8).input_names == ["pixels"]
    exported = read_signature(out / "pruned" / "model.onnx")
    original = read_signature(source)
    assert exported.input_names == ["pixels"] and exported.output_names == ["scores"]
    assert exported.opset == original.opset
    assert exported.dynamic_axes() == original.dynamic_axes()
    assert result["onnx_check"]["max_rel_diff"] <= 1e-3


def test_unsupported_op_is_a_one_line_error(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from onnx import TensorProto, helper

    from helpers.onnx_files import save_graph

    nodes = [helper.make_node("Flatten", ["x"], ["f"], name="flat"),
             helper.make_node("NonZero", ["f"], ["y"], name="where_nonzero")]
    path = save_graph(tmp_path / "nz.onnx", nodes,
                      [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
                      [helper.make_tensor_value_info("y", TensorProto.INT64, [2, None])], {},
                      opset=13)
    code, _, err = _cli(capsys, ["prune", str(path), "--out", str(tmp_path / "o")])
    assert code != 0
    assert "'NonZero'" in err and "'where_nonzero'" in err and "opset 13" in err
    assert "Traceback" not in err


def test_data_is_laid_out_as_the_file_reads_it(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """The digits (1 x 8 x 8 per sample) feed an ``N x 8 x 8 x 1`` input unchanged in order."""
    from helpers.onnx_models import ChannelsLast

    torch.manual_seed(0)
    source = export_torch(ChannelsLast(), torch.randn(2, 8, 8, 1), tmp_path / "nhwc.onnx",
                          input_names=["pixels"], output_names=["scores"],
                          dynamic={"pixels": {0: "n"}})
    code, stdout, err = _cli(capsys, ["prune", str(source), "--repeats", "2", "--threads", "1",
                                      "--no-html", "--out", str(tmp_path / "o"), "--json"])
    assert code == 0, err
    assert json.loads(stdout)["report"]["model"]["input_shape"] == [1, 8, 8, 1]
