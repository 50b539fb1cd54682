"""Compressed checkpoints: bit-exact round trip, size, atomic writes, bad files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from safetensors.torch import save_file

from prunekit.errors import PlanError
from prunekit.mask import (
    finalize,
    finalized_state_dict,
    load_compressed,
    load_compressed_into,
    save_compressed,
    sparsify,
)


def _bits_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.is_floating_point():
        ints = {2: torch.int16, 4: torch.int32, 8: torch.int64}[a.element_size()]
        return torch.equal(a.contiguous().view(ints), b.contiguous().view(ints))
    return torch.equal(a, b)


def test_round_trip_is_bit_exact_for_awkward_tensors(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(0)
    sparse = torch.randn(37, 11, generator=gen)  # 407 elements: not a multiple of 8
    sparse[torch.rand(37, 11, generator=gen) < 0.9] = 0.0
    sparse[0, 0], sparse[0, 1], sparse[0, 2] = -0.0, float("nan"), float("-inf")
    state = {
        "sparse": sparse,
        "half": torch.where(torch.rand(64, generator=gen) < 0.8, 0.0,
                            torch.randn(64, generator=gen)).half(),
        "bf16": torch.zeros(5, 16, dtype=torch.bfloat16).index_fill_(1, torch.tensor([3]), -2.5),
        "f64": torch.zeros(100, dtype=torch.float64).index_fill_(0, torch.tensor([7]), 1e-300),
        "dense": torch.randn(4, 4, generator=gen),
        "ints": torch.tensor([0, 0, 0, 5, 0, 0, 0, 0, 0, -3], dtype=torch.int64),
        "flags": torch.tensor([True, False, True]),
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 3),
        "steps": torch.tensor(12),
    }
    path = save_compressed(state, tmp_path / "ckpt.safetensors")
    loaded = load_compressed(path)
    assert list(loaded) == list(state)
    for key, value in state.items():
        assert _bits_equal(loaded[key], value), key
    assert torch.signbit(loaded["sparse"][0, 0])  # -0.0 survives


def test_masked_model_saves_finalised_weights_and_loads_into_fresh_model(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 36, 256))
    sparsify(model, 0.9)
    expected = {k: v.clone() for k, v in finalized_state_dict(model).items()}
    path = save_compressed(model, tmp_path / "model.safetensors")
    fresh = nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 36, 256))
    load_compressed_into(fresh, path)
    for key, value in expected.items():
        assert _bits_equal(fresh.state_dict()[key], value), key
    finalize(model)
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(fresh(x), model(x))
    dense_path = tmp_path / "dense.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(dense_path))
    assert path.stat().st_size < 0.15 * dense_path.stat().st_size


def test_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "c.safetensors"
    save_compressed({"a": torch.zeros(64)}, target)
    before = target.read_bytes()

    def failing_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        save_compressed({"a": torch.ones(64)}, target)
    monkeypatch.undo()
    assert target.read_bytes() == before  # old file intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.safetensors"]  # no temp left


def test_bad_files_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="does not exist"):
        load_compressed(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file at all")
    with pytest.raises(PlanError, match="not a valid safetensors"):
        load_compressed(junk)
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(3)}, str(plain))
    with pytest.raises(PlanError, match="not a prunekit compressed checkpoint"):
        load_compressed(plain)
    path = save_compressed({"w": torch.zeros(3)}, tmp_path / "c.safetensors")
    with pytest.raises(PlanError, match="does not fit"):
        load_compressed_into(nn.Linear(3, 2), path)
