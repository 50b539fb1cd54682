"""Conversion: the converted module matches onnxruntime, keeps weights as parameters of
standard layers, and fails clearly on what it cannot convert."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import prunekit
from prunekit.errors import ConfigError, PrunekitError, UnsupportedOpError
from prunekit.onnx import example_inputs, load

from helpers.onnx_files import export_torch, save_graph
from helpers.onnx_models import FoldedNet, TinyAttention, VisionNet


def _op_types(path: Path) -> set[str]:
    import onnx

    return {n.op_type for n in onnx.load(str(path)).graph.node}


@pytest.fixture(scope="module")
def vision_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("onnx") / "vision.onnx"
    return export_torch(VisionNet(), torch.randn(2, 3, 16, 16), path,
                        input_names=["image"], output_names=["logits"],
                        dynamic={"image": {0: "batch"}, "logits": {0: "batch"}})


def test_vision_graph_matches_onnxruntime(vision_file: Path) -> None:
    ops = _op_types(vision_file)
    assert {"Conv", "BatchNormalization", "Concat", "Split", "Reshape", "Transpose",
            "Resize"} <= ops
    model = load(vision_file)
    assert model.conversion is not None
    assert model.conversion["onnxruntime"]["max_rel_diff"][0] <= 1e-5
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert sorted({c.groups for c in convs}) == [1, 2, 16]
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert any(isinstance(m, nn.Linear) for m in model.modules())
    # weights are parameters, not constants: the only buffers are BN statistics
    assert {n.rsplit(".", 1)[-1] for n, b in model.named_buffers() if b.numel() > 1} <= \
        {"running_mean", "running_var"}


def test_new_batch_size_after_conversion(vision_file: Path) -> None:
    model = load(vision_file)
    with torch.no_grad():
        assert model(torch.randn(5, 3, 16, 16)).shape == (5, 10)


def test_folded_batch_norm_graph(tmp_path: Path) -> None:
    torch.manual_seed(0)
    path = export_torch(FoldedNet(), torch.randn(2, 1, 8, 8), tmp_path / "folded.onnx",
                        input_names=["x"], output_names=["y"], dynamic={"x": {0: "n"}})
    assert "BatchNormalization" not in _op_types(path)
    model = load(path)
    assert model.conversion["onnxruntime"]["max_rel_diff"][0] <= 1e-5


def test_attention_as_matmul_softmax(tmp_path: Path) -> None:
    torch.manual_seed(0)
    path = export_torch(TinyAttention(), torch.randn(2, 6, 32), tmp_path / "att.onnx",
                        input_names=["tokens"], output_names=["logits"],
                        dynamic={"tokens": {0: "batch", 1: "seq"}})
    assert {"MatMul", "Softmax"} <= _op_types(path)
    model = load(path)
    assert model.conversion["onnxruntime"]["max_rel_diff"][0] <= 1e-5
    with torch.no_grad():  # another sequence length runs too
        assert model(torch.randn(3, 9, 32)).shape == (3, 5)


def test_converted_attention_moves_to_another_dtype(tmp_path: Path) -> None:
    """``Module.to`` walks every submodule, Softmax included; the result computes in float64."""
    torch.manual_seed(0)
    path = export_torch(TinyAttention(), torch.randn(2, 6, 32), tmp_path / "att.onnx",
                        input_names=["tokens"], output_names=["logits"])
    model = load(path)
    x = torch.randn(2, 6, 32)
    with torch.no_grad():
        expected = model(x).double()
        wide = model.to(torch.float64)(x.double())
    assert wide.dtype == torch.float64
    torch.testing.assert_close(wide, expected, rtol=1e-4, atol=1e-5)


def _lstm_graph(path: Path, op: str, direction: str, hidden: int = 6, size: int = 4,
                seq: int = 5) -> Path:
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    dirs = 2 if direction == "bidirectional" else 1
    gates = {"LSTM": 4, "GRU": 3, "RNN": 1}[op]
    inits = {"W": rng.normal(0, 0.5, (dirs, gates * hidden, size)).astype(np.float32),
             "R": rng.normal(0, 0.5, (dirs, gates * hidden, hidden)).astype(np.float32),
             "B": rng.normal(0, 0.5, (dirs, 2 * gates * hidden)).astype(np.float32),
             "fc_w": rng.normal(0, 0.5, (3, dirs * hidden)).astype(np.float32),
             "fc_b": rng.normal(0, 0.5, (3,)).astype(np.float32),
             "perm_shape": np.array([0, -1], dtype=np.int64)}
    attrs = {"hidden_size": hidden, "direction": direction}
    if op == "GRU":
        attrs["linear_before_reset"] = 1
    outputs = ["Y", "Y_h"] + (["Y_c"] if op == "LSTM" else [])
    nodes = [helper.make_node(op, ["x", "W", "R", "B"], outputs, name="rnn", **attrs),
             helper.make_node("Transpose", ["Y_h"], ["h_t"], perm=[1, 0, 2], name="t"),
             helper.make_node("Reshape", ["h_t", "perm_shape"], ["h"], name="flat"),
             helper.make_node("Gemm", ["h", "fc_w", "fc_b"], ["logits"], transB=1, name="fc")]
    return save_graph(path, nodes,
                      [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                     [seq, "batch", size])],
                      [helper.make_tensor_value_info("logits", TensorProto.FLOAT,
                                                     ["batch", 3])],
                      inits, opset=14)


@pytest.mark.parametrize("op,direction", [("LSTM", "forward"), ("LSTM", "bidirectional"),
                                          ("GRU", "forward"), ("GRU", "bidirectional"),
                                          ("RNN", "forward")])
def test_recurrent_nodes(tmp_path: Path, op: str, direction: str) -> None:
    path = _lstm_graph(tmp_path / f"{op}.onnx", op, direction)
    model = load(path)
    assert model.conversion["onnxruntime"]["max_rel_diff"][0] <= 1e-5
    kind = {"LSTM": nn.LSTM, "GRU": nn.GRU, "RNN": nn.RNN}[op]
    assert any(isinstance(m, kind) for m in model.modules())
    x = example_inputs(model.signature)
    result = prunekit.prune(model, x, ratio=0.5)
    assert model(*x).shape == (x[0].shape[1], 3)
    assert result.plan.tensors  # the recurrent hidden units were pruned


def test_unsupported_op_names_op_node_and_opset(tmp_path: Path) -> None:
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Relu", ["x"], ["r"], name="act"),
             helper.make_node("Det", ["r"], ["y"], name="the_determinant")]
    path = save_graph(tmp_path / "det.onnx", nodes,
                      [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 3])],
                      [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])], {}, opset=15)
    with pytest.raises(UnsupportedOpError) as caught:
        load(path)
    message = str(caught.value)
    assert "'Det'" in message and "'the_determinant'" in message and "opset 15" in message


def test_outputs_not_needed_are_dropped(tmp_path: Path) -> None:
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Relu", ["x"], ["kept"], name="act"),
             helper.make_node("Det", ["x"], ["other"], name="det")]
    path = save_graph(tmp_path / "two.onnx", nodes,
                      [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 3])],
                      [helper.make_tensor_value_info("kept", TensorProto.FLOAT, [3, 3]),
                       helper.make_tensor_value_info("other", TensorProto.FLOAT, [])], {})
    model = load(path, outputs=["kept"])
    assert model.signature.output_names == ["kept"]
    with pytest.raises(ConfigError, match="no output"):
        load(path, outputs=["missing"])


def test_disagreement_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from prunekit.onnx.ops import elementwise

    path = export_torch(FoldedNet(), torch.randn(2, 1, 8, 8), tmp_path / "f.onnx",
                        input_names=["x"], output_names=["y"])
    monkeypatch.setitem(elementwise.UNARY, "Relu", torch.sigmoid)  # a wrong conversion
    with pytest.raises(PrunekitError, match="disagrees with onnxruntime"):
        load(path)


def test_not_an_onnx_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf at all \x00\x01")
    with pytest.raises(PrunekitError):
        load(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load(tmp_path / "missing.onnx")


def test_prunekit_onnx_attribute_is_lazy() -> None:
    import importlib
    import sys

    assert prunekit.onnx.load is load
    assert importlib.import_module("onnx") is sys.modules["onnx"]  # not shadowed
    assert not hasattr(sys.modules["onnx"], "OnnxModel")


def test_reshapes_follow_a_dynamic_batch(tmp_path: Path) -> None:
    """A merge to ``[-1, 3]`` and a split back with the file's ``-1`` on the batch side run
    at any batch size after converting at batch 2, like onnxruntime."""
    from onnx import TensorProto, helper

    from prunekit.onnx.check import run_onnxruntime

    nodes = [helper.make_node("Reshape", ["x", "flat"], ["f"], name="merge"),
             helper.make_node("Relu", ["f"], ["r"], name="act"),
             helper.make_node("Reshape", ["r", "back"], ["y"], name="split")]
    path = save_graph(
        tmp_path / "reshape.onnx", nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8, 3])],
        {"flat": np.array([-1, 3], dtype=np.int64), "back": np.array([-1, 8, 3], dtype=np.int64)})
    model = load(path)
    x = torch.randn(5, 8, 3)
    expected = run_onnxruntime(path, {"x": x})[0]
    with torch.no_grad():
        assert np.allclose(model(x).numpy(), expected)
