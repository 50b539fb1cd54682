"""Shared fixtures: a DigitsCNN trained briefly on the built-in digits, then pruned, its
ONNX export and calibration batches from the training split."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

import prunekit
from prunekit.data.digits import DigitsData, digits_loaders, load_digits_data
from prunekit.export import Calibration, calibration_from_batches, export_onnx
from prunekit.models.digits_cnn import DigitsCNN
from prunekit.train import FinetuneConfig, finetune

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


@pytest.fixture(scope="session")
def digits() -> DigitsData:
    return load_digits_data(seed=0)


@pytest.fixture(scope="session")
def loaders(digits: DigitsData) -> tuple[DataLoader, DataLoader]:
    return digits_loaders(data=digits)


@pytest.fixture(scope="session")
def val(loaders: tuple[DataLoader, DataLoader]) -> DataLoader:
    return loaders[1]


@pytest.fixture(scope="session")
def dense(loaders: tuple[DataLoader, DataLoader]) -> DigitsCNN:
    torch.manual_seed(0)
    model = DigitsCNN((16, 32, 64))
    finetune(model, *loaders, FinetuneConfig(epochs=3, lr=5e-3))
    return model.eval()


@pytest.fixture(scope="session")
def pruned(dense: DigitsCNN, digits: DigitsData) -> DigitsCNN:
    model = copy.deepcopy(dense)
    prunekit.prune(model, digits.x_val[:1], ratio=0.25)
    return model.eval()


@pytest.fixture(scope="session")
def calibration(digits: DigitsData) -> Calibration:
    return calibration_from_batches(
        [digits.x_train[i:i + 64] for i in range(0, 256, 64)], source="digits training split")


@pytest.fixture(scope="session")
def pruned_onnx(pruned: DigitsCNN, digits: DigitsData,
                tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    export_onnx(pruned, digits.x_val[:1], path, dynamic_batch=True)
    return path
