"""ONNX Runtime sessions: timing states its conditions, a session behind a module call."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from prunekit.export import export_onnx  # noqa: E402
from prunekit.measure.onnxrt import OnnxModule, measure_onnx_latency, profile_onnx  # noqa: E402


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, nn.Module]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3)).eval()
    path = tmp_path_factory.mktemp("ort") / "mlp.onnx"
    export_onnx(model, torch.randn(1, 6), path, dynamic_batch=True)
    return path, model


def test_latency_states_batch_threads_and_provider(onnx_file: tuple[Path, nn.Module]) -> None:
    path, _ = onnx_file
    lat = measure_onnx_latency(path, torch.randn(5, 6), warmup=1, repeats=3, threads=1)
    assert lat.batch_size == 5 and lat.threads == 1 and lat.repeats == 3
    assert "onnxruntime" in lat.device and lat.dtype == "float32 input"
    assert 0 < lat.p10_ms <= lat.median_ms <= lat.p90_ms


def test_a_session_runs_behind_a_module_at_any_batch(onnx_file: tuple[Path, nn.Module]) -> None:
    path, model = onnx_file
    session = OnnxModule(path, threads=1)
    x = torch.randn(7, 6)
    with torch.no_grad():
        assert torch.allclose(session(x), model(x), atol=1e-5)


def test_profile_sees_the_nodes(onnx_file: tuple[Path, nn.Module]) -> None:
    path, _ = onnx_file
    profile = profile_onnx(path, torch.randn(4, 6), runs=2, threads=1)
    assert profile.runs == 2 and profile.total_ms > 0
    assert sum(o.share for o in profile.ops) == pytest.approx(1.0)
    assert profile.to_dict()["ops"]
