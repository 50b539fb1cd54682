"""scikit-learn's bundled handwritten digits (1,797 real 8x8 images, 10 classes) as tensors.

The images ship inside scikit-learn, so nothing is downloaded. Pixels (0..16) are scaled to
[0, 1] and shaped ``(N, 1, 8, 8)``; the train/validation split is stratified and fixed by a
seed, so every run sees the same split.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from ..errors import ConfigError

__all__ = ["DigitsData", "digits_loaders", "load_digits_data"]

NUM_CLASSES = 10
IMAGE_SHAPE = (1, 8, 8)


@dataclass(frozen=True)
class DigitsData:
    """Train and validation tensors: images ``(N, 1, 8, 8)`` float32 in [0, 1], labels int64."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor

    @property
    def num_classes(self) -> int:
        return NUM_CLASSES


def _stratified_split(labels: np.ndarray, val_fraction: float,
                      seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    train_idx: list[np.ndarray] = []
    val_idx: list[np.ndarray] = []
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        n_val = round(len(idx) * val_fraction)
        val_idx.append(idx[:n_val])
        train_idx.append(idx[n_val:])
    return np.sort(np.concatenate(train_idx)), np.sort(np.concatenate(val_idx))


def load_digits_data(val_fraction: float = 0.2, seed: int = 0) -> DigitsData:
    """Load the digits and split them (stratified, fixed by ``seed``) into train/validation."""
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    try:
        from sklearn.datasets import load_digits
    except ImportError:  # pragma: no cover - scikit-learn is a dependency
        raise ConfigError("the built-in digits data needs scikit-learn: pip install scikit-learn") \
            from None
    bunch = load_digits()
    images = np.asarray(bunch.images, dtype=np.float32) / 16.0
    labels = np.asarray(bunch.target, dtype=np.int64)
    train, val = _stratified_split(labels, val_fraction, seed)
    x = torch.from_numpy(images).unsqueeze(1)
    y = torch.from_numpy(labels)
    return DigitsData(x[train].contiguous(), y[train].contiguous(),
                      x[val].contiguous(), y[val].contiguous())


def digits_loaders(batch_size: int = 64, *, val_fraction: float = 0.2, seed: int = 0,
                   data: DigitsData | None = None) -> tuple[DataLoader, DataLoader]:
    """Train (shuffled with a seeded generator) and validation DataLoaders over the digits."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    data = data if data is not None else load_digits_data(val_fraction, seed)
    generator = torch.Generator().manual_seed(seed)
    train = DataLoader(TensorDataset(data.x_train, data.y_train), batch_size=batch_size,
                       shuffle=True, generator=generator)
    val = DataLoader(TensorDataset(data.x_val, data.y_val), batch_size=256, shuffle=False)
    return train, val
