"""Shared fixtures: a small DigitsCNN trained briefly on the built-in digits (deterministic)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from prunekit.data.digits import DigitsData, load_digits_data
from prunekit.models.digits_cnn import DigitsCNN
from prunekit.train import FinetuneConfig, finetune

WIDTHS = (8, 16, 32)


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
