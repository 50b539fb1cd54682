"""Converted models prune exactly (zeroed units removed without changing outputs) and go back
to ONNX with their input/output names, dynamic axes and opset."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import prunekit
from prunekit.onnx import example_inputs, export, load, read_signature

from helpers.onnx_files import assert_prunes_exactly, export_torch
from helpers.onnx_models import FoldedNet, TinyAttention, VisionNet

CASES = {
    "vision": (VisionNet, (2, 3, 16, 16), {"image": {0: "batch"}, "logits": {0: "batch"}}),
    "folded": (FoldedNet, (2, 1, 8, 8), {"image": {0: "n"}, "logits": {0: "n"}}),
    "attention": (TinyAttention, (2, 6, 32), {"image": {0: "batch", 1: "tokens"},
                                               "logits": {0: "batch"}}),
}


def _file(tmp_path: Path, case: str, opset: int | None = None) -> Path:
    factory, shape, dynamic = CASES[case]
    torch.manual_seed(0)
    return export_torch(factory(), torch.randn(*shape), tmp_path / f"{case}.onnx",
                        input_names=["image"], output_names=["logits"], dynamic=dynamic,
                        opset=opset)


@pytest.mark.parametrize("case", sorted(CASES))
def test_pruning_a_converted_model_is_exact(tmp_path: Path, case: str) -> None:
    model = load(_file(tmp_path, case))
    x = example_inputs(model.signature)[0]
    assert_prunes_exactly(model, x)


@pytest.mark.parametrize("case", sorted(CASES))
def test_round_trip_keeps_names_axes_and_opset(tmp_path: Path, case: str) -> None:
    source = _file(tmp_path, case)
    model = load(source)
    prunekit.prune(model, example_inputs(model.signature)[0][:1], ratio=0.5)
    facts = export(model, tmp_path / "pruned.onnx")
    before, after = read_signature(source), read_signature(tmp_path / "pruned.onnx")
    assert after.input_names == before.input_names == ["image"]
    assert after.output_names == before.output_names == ["logits"]
    assert after.opset == before.opset
    assert after.dynamic_axes() == before.dynamic_axes()
    assert facts["onnxruntime"]["max_rel_diff"][0] <= 1e-4
    # the exported file runs at another batch size (its batch axis stayed dynamic)
    from prunekit.onnx.check import run_onnxruntime

    shape = list(CASES[case][1])
    shape[0] = 3
    out = run_onnxruntime(tmp_path / "pruned.onnx", {"image": torch.randn(*shape)})[0]
    assert out.shape[0] == 3


def test_unpruned_round_trip_matches_the_original(tmp_path: Path) -> None:
    source = _file(tmp_path, "vision")
    model = load(source)
    export(model, tmp_path / "again.onnx")
    from prunekit.onnx.check import run_onnxruntime

    x = {"image": torch.randn(4, 3, 16, 16)}
    first, second = run_onnxruntime(source, x)[0], run_onnxruntime(tmp_path / "again.onnx", x)[0]
    assert abs(first - second).max() <= 1e-4 * abs(first).max()


def test_an_older_opset_is_kept(tmp_path: Path) -> None:
    """A file at opset 17 (below what the exporter writes) comes back at opset 17."""
    import onnx
    from onnx import version_converter

    source = _file(tmp_path, "folded")
    old = version_converter.convert_version(onnx.load(str(source)), 17)
    onnx.save(old, str(tmp_path / "old.onnx"))
    model = load(tmp_path / "old.onnx")
    assert model.signature.opset == 17
    prunekit.prune(model, example_inputs(model.signature)[0][:1], ratio=0.5)
    facts = export(model, tmp_path / "old_pruned.onnx")
    assert facts["opset"] == 17 == read_signature(tmp_path / "old_pruned.onnx").opset


def test_export_needs_a_converted_model(tmp_path: Path) -> None:
    from prunekit.errors import ConfigError

    with pytest.raises(ConfigError, match="prunekit.onnx.load"):
        export(FoldedNet(), tmp_path / "x.onnx")  # type: ignore[arg-type]
