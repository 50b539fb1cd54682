"""Deployment measurement on the digits CNN: every (variant, runtime, format, batch) is a
row, the choice is the chooser's verdict on those rows, rows that gain less than their MACs
are diagnosed, and quantization-aware recovery runs when int8 loses more than the budget."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from prunekit.data.digits import DigitsData
from prunekit.errors import ConfigError, QuantizationError
from prunekit.export.calibration import Calibration
from prunekit.export.choose import Candidate, choose_format
from prunekit.export.config import QuantizeConfig
from prunekit.export.deploy import Deployment, Row, Variant, int8_drop, measure_deployment
from prunekit.train import evaluate

FAST = dict(runtimes=("eager", "onnxruntime"), warmup=0, repeats=2, threads=1)


@pytest.fixture(scope="module")
def deployment(dense: torch.nn.Module, pruned: torch.nn.Module, digits: DigitsData,
               calibration: Calibration, val: DataLoader,
               tmp_path_factory: pytest.TempPathFactory) -> tuple[Deployment, Path]:
    folder = tmp_path_factory.mktemp("deploy")
    config = QuantizeConfig(formats=("int8-qdq", "int8-dynamic"), **FAST)
    example = digits.x_val[:1]
    result = measure_deployment(
        [Variant("dense", dense, example, keep=False),
         Variant("pruned", pruned, example, config.candidate_formats())],
        folder, config, calibration=calibration, evaluate=lambda m: evaluate(m, val),
        samples=digits.x_val)
    return result, folder


def test_every_runtime_format_and_batch_is_a_row(deployment: tuple[Deployment, Path]) -> None:
    result, folder = deployment
    keys = {(r.variant, r.runtime, r.format, r.batch_size) for r in result.rows}
    formats = {r.format for r in result.rows if r.variant == "pruned"
               and r.runtime == "onnxruntime"}
    assert formats == {"fp32", "int8-qdq", "int8-dynamic"}
    for b in (1, 8):
        assert ("dense", "onnxruntime", "fp32", b) in keys
        assert ("pruned", "eager", "fp32", b) in keys
        assert ("pruned", "onnxruntime", "int8-qdq", b) in keys
    assert all(r.status == "ok" and r.latency is not None for r in result.rows)
    assert all(r.latency.batch_size == r.batch_size for r in result.rows if r.latency)
    # pruned files are kept (the dense ones were measured in a temporary folder)
    assert sorted(p.name for p in folder.iterdir()) == [
        "model.int8-dynamic.onnx", "model.int8-qdq.onnx", "model.onnx"]
    qdq = result.row("pruned", "onnxruntime", "int8-qdq", 8)
    fp32 = result.row("pruned", "onnxruntime", "fp32", 8)
    dense8 = result.row("dense", "onnxruntime", "fp32", 8)
    assert qdq is not None and fp32 is not None and dense8 is not None
    assert qdq.file_bytes < fp32.file_bytes < dense8.file_bytes
    assert qdq.macs == fp32.macs < dense8.macs
    # the metric is each model's own, measured on the validation data
    assert fp32.metric == pytest.approx(result.row("pruned", "eager", "fp32", 1).metric)
    assert abs(qdq.metric - fp32.metric) < 0.05 and qdq.cosine > 0.99


def test_the_choice_is_the_choosers_verdict_on_the_rows(
        deployment: tuple[Deployment, Path]) -> None:
    result, _ = deployment
    for b, choice in result.choices.items():
        candidates = [Candidate(r.candidate, r.latency.median_ms, r.metric, r.cosine)
                      for r in result.rows if r.variant == "pruned" and r.batch_size == b]
        again = choose_format(candidates, baseline="onnxruntime/fp32")
        assert (again.format, again.verdicts) == (choice.format, choice.verdicts)
        chosen = next(r for r in result.rows if r.variant == "pruned" and r.batch_size == b
                      and r.candidate == choice.format)
        base = result.row("pruned", "onnxruntime", "fp32", b)
        assert chosen.latency.median_ms <= base.latency.median_ms  # never a slower one
    section = result.to_dict()
    assert set(section["chosen"]) == {"1", "8"}
    assert section["conditions"]["threads"] == 1 and section["conditions"]["batch_sizes"] == [1, 8]


def test_rows_below_their_macs_promise_are_diagnosed(
        deployment: tuple[Deployment, Path]) -> None:
    result, _ = deployment
    diagnosis = result.diagnosis
    assert diagnosis["threshold_eta"] == 0.8
    for entry in diagnosis["rows"]:
        etas = [p["eta"] for p in entry["per_batch"] if "eta" in p]
        own = [p["speedup_vs_own_fp32"] for p in entry["per_batch"] if "speedup_vs_own_fp32" in p]
        assert any(e < 0.8 for e in etas) or any(s < 1 for s in own)
        kinds = {f["kind"] for f in entry["findings"]}
        assert "launch-bound" in kinds
        if entry["runtime"] == "onnxruntime" and entry["format"] == "int8-dynamic":
            assert "fell-back" in kinds and "op-time" in kinds
    if diagnosis["rows"]:
        assert diagnosis["channels"]["kind"] == "channels"


def test_quantization_aware_recovery_runs_when_int8_loses_too_much(
        dense: torch.nn.Module, pruned: torch.nn.Module, digits: DigitsData,
        calibration: Calibration, val: DataLoader, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import prunekit.export.deploy as deploy

    monkeypatch.setattr(deploy, "int8_drop", lambda *args: (0.2, "int8-qdq"))
    seen = []

    def recover(model: torch.nn.Module) -> torch.nn.Module:
        seen.append(model)
        return model

    config = QuantizeConfig(formats=("int8-qdq",), batch_sizes=(2,), diagnose=False, **FAST)
    result = measure_deployment(
        [Variant("pruned", pruned, digits.x_val[:1], config.candidate_formats())], tmp_path,
        config, calibration=calibration, evaluate=lambda m: evaluate(m, val), recover=recover)
    assert seen == [pruned]
    assert result.qat["triggered"] and result.qat["variant"] == "pruned+qat"
    assert {r.format for r in result.rows if r.variant == "pruned+qat"
            and r.runtime == "onnxruntime"} == {"fp32", "int8-qdq"}
    assert (tmp_path / "model.qat.int8-qdq.onnx").is_file()
    assert "pruned+qat:onnxruntime/int8-qdq" in dict(result.choices[2].verdicts)


def _row(fmt: str, ms: float, metric: float) -> Row:
    return Row("pruned", "onnxruntime", fmt, 8, 100, _lat(ms), metric=metric)


def _lat(ms: float):  # noqa: ANN202 - a LatencyResult
    from prunekit.measure.latency import LatencyResult

    return LatencyResult(ms, ms, ms, 1, 1, "cpu", "float32", 8)


def test_int8_drop_looks_at_int8_formats_that_are_faster() -> None:
    config = QuantizeConfig(batch_sizes=(8,))
    rows = [_row("fp32", 10.0, 0.95), _row("int8-qdq", 4.0, 0.90),
            _row("int8-dynamic", 9.9, 0.95)]  # dynamic: no loss, but not faster
    assert int8_drop(rows, "pruned", config) == (pytest.approx(0.05), "int8-qdq")
    assert int8_drop(rows[:1] + rows[2:], "pruned", config) is None
    assert int8_drop([_row("fp32", 10.0, 0.95)], "pruned", config) is None


def test_an_explicit_static_request_without_calibration_fails_before_writing(
        pruned: torch.nn.Module, digits: DigitsData, tmp_path: Path) -> None:
    config = QuantizeConfig(int8="static", **FAST)
    with pytest.raises(QuantizationError, match="needs calibration data"):
        measure_deployment([Variant("pruned", pruned, digits.x_val[:1],
                                    config.candidate_formats())], tmp_path, config)
    assert not (tmp_path / "model.int8-qdq.onnx").exists()
    # auto mode states why the static formats are missing instead
    auto = QuantizeConfig(formats=None, batch_sizes=(1,), diagnose=False, **FAST)
    result = measure_deployment([Variant("pruned", pruned, digits.x_val[:1],
                                         ("fp32", "int8-qdq"))], tmp_path / "auto", auto)
    row = result.row("pruned", "onnxruntime", "int8-qdq", 1)
    assert row is not None and row.status.startswith("skipped: no calibration data")


def test_config_candidates_and_validation() -> None:
    assert QuantizeConfig(int8="static").candidate_formats() == ("fp32", "int8-qdq",
                                                                 "int8-qoperator")
    assert QuantizeConfig(int8="dynamic").candidate_formats() == ("fp32", "int8-dynamic")
    assert QuantizeConfig().candidate_formats()[0] == "fp32"
    assert QuantizeConfig(formats=("int8-qdq",)).formats == ("fp32", "int8-qdq")
    assert QuantizeConfig(batch_sizes=(8, 1, 8)).batch_sizes == (1, 8)
    assert not QuantizeConfig(int8="dynamic").needs_calibration
    for bad, match in ((dict(int8="int4"), "int8 must be one of"),
                       (dict(formats=("int4",)), "unknown formats"),
                       (dict(runtimes=("eager",)), "must include onnxruntime"),
                       (dict(batch_sizes=(0,)), "batch_sizes"),
                       (dict(min_speedup=0.5), "min_speedup"),
                       (dict(calibrate_method="mse"), "calibrate_method")):
        with pytest.raises(ConfigError, match=match):
            QuantizeConfig(**bad)  # type: ignore[arg-type]
