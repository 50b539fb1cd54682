"""Shared fixtures: a DigitsCNN trained briefly on the built-in digits, then pruned, its
ONNX export and calibration batches from the training split."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import prunekit
from prunekit.data.digits import DigitsData, load_digits_data
from prunekit.export import Calibration, calibration_from_batches, export_onnx
from prunekit.models.digits_cnn import DigitsCNN
from prunekit.train import FinetuneConfig, finetune

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


@pytest.fixture(scope="session")
def digits() -> DigitsData:
    return load_digits_data(seed=0)


@pytest.fixture(scope="session")
def val(digits: DigitsData) -> DataLoader:
    return DataLoader(TensorDataset(digits.x_val, digits.y_val), batch_size=256)


@pytest.fixture(scope="session")
def dense(digits: DigitsData, val: DataLoader) -> DigitsCNN:
    torch.manual_seed(0)
    model = DigitsCNN((16, 32, 64))
    train = DataLoader(TensorDataset(digits.x_train, digits.y_train), batch_size=64,
                       shuffle=True, generator=torch.Generator().manual_seed(0))
    finetune(model, train, val, FinetuneConfig(epochs=3, lr=5e-3))
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
