"""ONNX Runtime's formats of an exported pruned digits CNN: valid files, outputs close to
fp32, what was quantized, and clear errors with nothing written on bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from prunekit.data.digits import DigitsData
from prunekit.errors import QuantizationError
from prunekit.export import Calibration, QuantizeOptions, calibration_from_batches, convert_onnx
from prunekit.export.quantize import format_file
from prunekit.measure.onnxrt import onnx_session, run_onnx

LAYERS = ("features.0.0", "features.1.0", "features.3.0", "classifier")


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _weight_bytes(path: Path) -> int:
    model = onnx.load(str(path))
    return sum(onnx.numpy_helper.to_array(t).nbytes for t in model.graph.initializer)


@pytest.mark.numerics
@pytest.mark.parametrize("fmt", ["fp16", "int8-qdq", "int8-qoperator", "int8-dynamic"])
def test_formats_are_valid_and_close_to_fp32(fmt: str, pruned_onnx: Path, pruned: torch.nn.Module,
                                             digits: DigitsData, calibration: Calibration,
                                             tmp_path: Path) -> None:
    out = convert_onnx(pruned_onnx, tmp_path / f"model.{fmt}.onnx", fmt, calibration=calibration)
    onnx.checker.check_model(onnx.load(str(out.path)))
    got = run_onnx(onnx_session(out.path, threads=1), digits.x_val)
    with torch.no_grad():
        expected = pruned(digits.x_val).numpy()
    assert got.shape == expected.shape
    assert _cosine(got, expected) > 0.995
    assert (got.argmax(1) == expected.argmax(1)).mean() >= 0.97
    assert out.bytes == out.path.stat().st_size
    if fmt in ("int8-qdq", "int8-qoperator"):
        assert sorted(out.quantized) == sorted(LAYERS) and out.float_nodes == ()
        # weights a quarter of fp32 (the file also holds the exporter's node metadata)
        assert _weight_bytes(out.path) < 0.3 * _weight_bytes(pruned_onnx)
        assert out.settings["calibration_samples"] == 256
    if fmt == "int8-dynamic":  # MatMul only by default: the convolutions stay in float
        assert {name for name, _ in out.float_nodes} == set(LAYERS[:3])


def test_static_needs_calibration_and_writes_nothing(pruned_onnx: Path, tmp_path: Path) -> None:
    target = tmp_path / "model.int8-qdq.onnx"
    with pytest.raises(QuantizationError, match="needs calibration data.*--calibration"):
        convert_onnx(pruned_onnx, target, "int8-qdq")
    assert list(tmp_path.iterdir()) == []


def test_op_type_the_quantizer_cannot_take_names_the_modules(pruned_onnx: Path,
                                                             calibration: Calibration,
                                                             tmp_path: Path) -> None:
    with pytest.raises(QuantizationError) as info:
        convert_onnx(pruned_onnx, tmp_path / "q.onnx", "int8-dynamic",
                     options=QuantizeOptions(op_types=("Gemm",)))
    assert "cannot take op type 'Gemm'" in str(info.value)
    assert "classifier" in str(info.value)  # the module behind the Gemm node
    with pytest.raises(QuantizationError, match="'ReduceMean'"):
        convert_onnx(pruned_onnx, tmp_path / "q.onnx", "int8-qdq", calibration=calibration,
                     options=QuantizeOptions(op_types=("Conv", "ReduceMean")))
    assert list(tmp_path.iterdir()) == []


def test_calibration_that_does_not_fit_names_the_input(pruned_onnx: Path,
                                                       tmp_path: Path) -> None:
    wrong = calibration_from_batches([torch.randn(4, 1, 6, 6)], source="wrong data")
    with pytest.raises(QuantizationError, match=r"shape \(4, 1, 6, 6\).*input 'input'"):
        convert_onnx(pruned_onnx, tmp_path / "q.onnx", "int8-qdq", calibration=wrong)
    with pytest.raises(QuantizationError, match="yielded no batches"):
        calibration_from_batches([], source="empty data")
    assert list(tmp_path.iterdir()) == []


def test_excluded_modules_stay_float(pruned_onnx: Path, calibration: Calibration,
                                     tmp_path: Path) -> None:
    out = convert_onnx(pruned_onnx, tmp_path / "q.onnx", "int8-qdq", calibration=calibration,
                       options=QuantizeOptions(exclude=("classifier",)))
    assert [name for name, _ in out.float_nodes] == ["classifier"]
    assert "classifier" not in out.quantized
    with pytest.raises(QuantizationError, match=r"\['head'\]"):
        convert_onnx(pruned_onnx, tmp_path / "q2.onnx", "int8-qdq", calibration=calibration,
                     options=QuantizeOptions(exclude=("head",)))


def test_a_failing_quantizer_leaves_no_partial_file(pruned_onnx: Path, calibration: Calibration,
                                                    tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime.quantization as q

    def broken(model_input: str, model_output: str, *args: object, **kwargs: object) -> None:
        Path(model_output).write_bytes(b"half a model")
        raise RuntimeError("disk full")

    monkeypatch.setattr(q, "quantize_static", broken)
    target = tmp_path / "model.int8-qdq.onnx"
    with pytest.raises(QuantizationError, match="quantizer failed: RuntimeError: disk full"):
        convert_onnx(pruned_onnx, target, "int8-qdq", calibration=calibration)
    assert list(tmp_path.iterdir()) == []  # neither the target nor the staging folder


def test_reduce_range_follows_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    import prunekit.export.quantize as quantize

    monkeypatch.setattr(quantize, "cpu_flags", lambda: frozenset({"avx2"}))
    assert QuantizeOptions().resolved_reduce_range() is True
    monkeypatch.setattr(quantize, "cpu_flags", lambda: frozenset({"avx2", "avx512_vnni"}))
    assert QuantizeOptions().resolved_reduce_range() is False
    assert QuantizeOptions(reduce_range=True).resolved_reduce_range() is True


def test_bad_options_and_file_names() -> None:
    from prunekit.errors import ConfigError

    with pytest.raises(ConfigError, match="calibrate_method"):
        QuantizeOptions(calibrate_method="best")
    with pytest.raises(ConfigError, match="op_types must be a list"):
        QuantizeOptions(op_types="Conv")  # type: ignore[arg-type]
    base = Path("out/model.onnx")
    assert format_file(base, "fp32") == base
    assert format_file(base, "int8-qdq") == Path("out/model.int8-qdq.onnx")
