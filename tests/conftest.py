"""Fixtures shared by every test directory.

Plain helpers (small data sets, models, calibration batches) are modules of
``tests/helpers`` (``from helpers.train import mlp``); fixtures are here:

- ``cli``: run ``prunekit ARGS`` in-process; ``tabular``: a CSV / npz table and a model file;
- ``tiny_model``: a seeded tiny Hugging Face model per model type of the family table;
- ``digits``, ``val``, ``train_at``, ``trained``: the built-in digits and a briefly trained
  DigitsCNN (deterministic, built once per session).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from prunekit.data.digits import DigitsData, load_digits_data
from prunekit.models.digits_cnn import DigitsCNN
from prunekit.train import FinetuneConfig, finetune

from helpers.cli import MLP_SOURCE, run_cli
from helpers.llm import tiny_hf_model

WIDTHS = (8, 16, 32)


# -- command line ---------------------------------------------------------------------------
@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[[list[str]], tuple[int, str, str]]:
    """Run ``prunekit ARGS`` in-process; return (exit code, stdout, stderr)."""
    return lambda args: run_cli(capsys, args)


@pytest.fixture
def tabular(tmp_path: Path) -> tuple[Path, Path]:
    """A 6-feature, 3-class CSV (columns a..f + label) and a factory file for a small MLP."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(90, 6)).astype(np.float32)
    y = np.argmax(x[:, :3], axis=1)
    lines = ["a,b,c,d,e,f,label"] + [",".join(f"{v:.4f}" for v in row) + f",{c}"
                                     for row, c in zip(x, y)]
    table = tmp_path / "table.csv"
    table.write_text("\n".join(lines) + "\n")
    source = tmp_path / "mlp.py"
    source.write_text(MLP_SOURCE)
    np.savez(tmp_path / "arrays.npz", x=x, y=y)
    return table, source


# -- Hugging Face -----------------------------------------------------------------------------
@pytest.fixture
def tiny_model() -> Callable[[str], torch.nn.Module]:
    """Factory: ``tiny_model("llama")`` -> a seeded, eval-mode tiny model of that type."""
    pytest.importorskip("transformers")
    return tiny_hf_model


# -- digits -----------------------------------------------------------------------------------
def _train_loader(data: DigitsData, seed: int, batch_size: int = 64) -> DataLoader:
    return DataLoader(TensorDataset(data.x_train, data.y_train), batch_size=batch_size,
                      shuffle=True, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="session")
def digits() -> DigitsData:
    return load_digits_data(seed=0)


@pytest.fixture(scope="session")
def val(digits: DigitsData) -> DataLoader:
    """The validation split, in a fixed order."""
    return DataLoader(TensorDataset(digits.x_val, digits.y_val), batch_size=512)


@pytest.fixture(scope="session")
def train_at(digits: DigitsData) -> Callable[[int], DataLoader]:
    """``train_at(seed)``: the training split, shuffled in an order fixed by ``seed``."""
    return lambda seed: _train_loader(digits, seed)


@pytest.fixture(scope="session")
def trained(digits: DigitsData, val: DataLoader) -> DigitsCNN:
    torch.manual_seed(0)
    model = DigitsCNN(WIDTHS)
    finetune(model, _train_loader(digits, 0), val, FinetuneConfig(epochs=4, lr=5e-3))
    return model.eval()
