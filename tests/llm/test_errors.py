"""Bad settings and inputs raise ConfigError with a message that says what to change."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from prunekit.errors import ConfigError
from prunekit.llm import (
    CalibrationData,
    OneShotConfig,
    calibration_from_tensors,
    calibration_from_text,
    find_layers,
    prune_sequential,
)


class WordTokenizer:
    """A stand-in tokenizer: one id per whitespace-separated word."""

    def __call__(self, text: str, **_: Any) -> dict[str, torch.Tensor]:
        return {"input_ids": torch.tensor([[hash(w) % 100 for w in text.split()]])}


@pytest.mark.parametrize("sparsity", [-0.1, 1.0, 1.5, True, "0.5"])
def test_sparsity_outside_unit_interval(sparsity: Any) -> None:
    with pytest.raises(ConfigError, match=r"sparsity must be a number in \[0, 1\)"):
        OneShotConfig(sparsity=sparsity)


@pytest.mark.parametrize("kwargs,match", [
    ({"method": "obs"}, "unknown method"),
    ({"pattern": "2-4"}, "'unstructured' or 'N:M'"),
    ({"pattern": "4:2"}, "'unstructured' or 'N:M'"),
    ({"pattern": "2:4", "sparsity": 0.6}, "sparsity must be 0.5"),
    ({"method": "sparsegpt", "pattern": "4:8", "sparsity": 0.5, "options": {"blocksize": 12}},
     "multiple of M"),
    ({"method": "sparsegpt", "options": {"damp": 0.0}}, "damp must be a number in"),
    ({"method": "wanda", "options": {"damp": 0.01}}, "'wanda' has no option 'damp'"),
    ({"method": "sparsegpt", "options": 3}, "SparseGPTOptions or a mapping"),
    ({"batch_size": 0}, "batch_size"),
    ({"ignore": ["x"]}, "tuple of strings"),
])
def test_bad_config(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        OneShotConfig(**kwargs)


def test_calibration_text_too_short(tmp_path: Path) -> None:
    path = tmp_path / "calib.txt"
    path.write_text("only a few words here")
    with pytest.raises(ConfigError, match=r"too short: it has 5 tokens .* = 32 are needed"):
        calibration_from_text(path, WordTokenizer(), num_samples=4, seq_len=8)
    data = calibration_from_text("w " * 40, WordTokenizer(), num_samples=4, seq_len=8)
    assert data.input_ids.shape == (4, 8)


def test_calibration_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        calibration_from_text(tmp_path / "nope.txt", WordTokenizer(), num_samples=1, seq_len=1)


def test_calibration_bad_tensors() -> None:
    with pytest.raises(ConfigError, match="2-D tensor"):
        CalibrationData(torch.zeros(2, 3, 4, dtype=torch.long))
    with pytest.raises(ConfigError, match="integer token ids"):
        CalibrationData(torch.zeros(2, 3))
    with pytest.raises(ConfigError, match="shape of input_ids"):
        CalibrationData(torch.zeros(2, 3, dtype=torch.long), torch.ones(2, 4))
    assert calibration_from_tensors(torch.arange(5)).input_ids.shape == (1, 5)


def test_unsupported_family() -> None:
    model = torch.nn.Linear(4, 4)
    model.config = SimpleNamespace(model_type="gpt_neox")  # type: ignore[assignment]
    with pytest.raises(ConfigError, match=r"model_type='gpt_neox'.*supported.*'llama'"):
        find_layers(model)
    data = CalibrationData(torch.zeros(1, 4, dtype=torch.long))
    with pytest.raises(ConfigError, match="does not support Linear"):
        prune_sequential(model, data, OneShotConfig())


def test_sequence_longer_than_model_limit(tiny_model: Callable[[str], torch.nn.Module]) -> None:
    model = tiny_model("gpt2")  # n_positions=64
    data = CalibrationData(torch.zeros(2, 65, dtype=torch.long))
    with pytest.raises(ConfigError, match="at most 64 positions"):
        prune_sequential(model, data, OneShotConfig())


def test_nm_needs_divisible_in_features() -> None:
    transformers = pytest.importorskip("transformers")
    config = transformers.LlamaConfig(hidden_size=32, intermediate_size=68, num_hidden_layers=1,
                                      num_attention_heads=4, vocab_size=100)
    model = transformers.LlamaForCausalLM(config).eval()
    data = CalibrationData(torch.zeros(2, 8, dtype=torch.long))
    with pytest.raises(ConfigError, match=r"'block 0: mlp.down_proj' has 68 input .* by 8"):
        prune_sequential(model, data, OneShotConfig(pattern="4:8", sparsity=0.5))
    prune_sequential(model, data, OneShotConfig(pattern="2:4", sparsity=0.5))  # 68 % 4 == 0
