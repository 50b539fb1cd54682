"""Classification data from local files: ``.npz`` arrays (``x``, ``y``) and CSV tables.

Both become :class:`ArrayData` (train/validation tensors, class count, feature names), split
the same stratified, seeded way as the built-in digits. CSV columns must be numeric except
the label column, whose values (numbers or strings) become classes ``0..K-1``.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError
from .digits import _stratified_split

__all__ = ["ArrayData", "load_csv", "load_npz", "split_arrays"]


@dataclass(frozen=True)
class ArrayData:
    """Train and validation tensors of a classification task (labels ``int64``).

    ``feature_names`` names the features along dim 1 of the inputs (CSV columns), when known;
    ``class_names`` names the classes when the data defines them (image subfolders, a
    ``ClassLabel``, string labels): then ``num_classes`` is exact, else it is one more than
    the largest label seen.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    num_classes: int
    name: str
    feature_names: tuple[str, ...] | None = None
    class_names: tuple[str, ...] | None = None


def split_arrays(x: np.ndarray, y: np.ndarray, *, name: str, val_fraction: float = 0.2,
                 seed: int = 0, feature_names: tuple[str, ...] | None = None,
                 class_names: tuple[str, ...] | None = None) -> ArrayData:
    """Split ``x``/``y`` (stratified by label, fixed by ``seed``) into :class:`ArrayData`;
    with ``class_names``, labels index them."""
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    if x.ndim < 2 or y.ndim != 1 or len(x) != len(y):
        raise ConfigError(f"{name}: x must be (N, ...) and y (N,) with the same N; got x "
                          f"{tuple(x.shape)} and y {tuple(y.shape)}")
    if len(y) < 2:
        raise ConfigError(f"{name}: needs at least 2 samples, got {len(y)}")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
        raise ConfigError(f"{name}: labels y must be integers >= 0 (class indices)")
    if class_names is not None and y.max() >= len(class_names):
        raise ConfigError(f"{name}: label {int(y.max())} is out of range for "
                          f"{len(class_names)} classes")
    train, val = _stratified_split(y, val_fraction, seed)
    if len(val) == 0 or len(train) == 0:
        raise ConfigError(f"{name}: too few samples to split off a validation set")
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    yt = torch.from_numpy(y.astype(np.int64))
    classes = len(class_names) if class_names is not None else int(y.max()) + 1
    return ArrayData(xt[train].contiguous(), yt[train].contiguous(), xt[val].contiguous(),
                     yt[val].contiguous(), classes, name, feature_names, class_names)


def load_npz(path: str | os.PathLike[str], *, val_fraction: float = 0.2,
             seed: int = 0) -> ArrayData:
    """Arrays ``x`` (inputs) and ``y`` (class indices) from an ``.npz`` file (no pickle)."""
    source = Path(path)
    if not source.is_file():
        raise ConfigError(f"data file {str(source)!r} does not exist")
    try:
        with np.load(source, allow_pickle=False) as arrays:
            missing = {"x", "y"} - set(arrays.files)
            if missing:
                raise ConfigError(f"{str(source)!r} lacks array(s) {sorted(missing)}; it has "
                                  f"{sorted(arrays.files)} (expected x and y)")
            x, y = arrays["x"], arrays["y"]
    except (OSError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{str(source)!r} is not a readable .npz file: {exc}") from None
    return split_arrays(x, y, name=source.name, val_fraction=val_fraction, seed=seed)


def load_csv(path: str | os.PathLike[str], *, label_column: str = "label",
             val_fraction: float = 0.2, seed: int = 0) -> ArrayData:
    """A CSV table with a header row: numeric feature columns and one label column."""
    source = Path(path)
    if not source.is_file():
        raise ConfigError(f"data file {str(source)!r} does not exist")
    with open(source, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    if len(rows) < 2:
        raise ConfigError(f"{str(source)!r} needs a header row and data rows")
    header = [h.strip() for h in rows[0]]
    if label_column not in header:
        raise ConfigError(f"{str(source)!r} has no label column {label_column!r}; its columns "
                          f"are {header}: pass --label-column")
    li = header.index(label_column)
    names = tuple(h for i, h in enumerate(header) if i != li)
    if not names:
        raise ConfigError(f"{str(source)!r} has no feature columns besides {label_column!r}")
    features, labels = [], []
    for n, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise ConfigError(f"{str(source)!r} line {n}: {len(row)} cells, header has "
                              f"{len(header)}")
        try:
            features.append([float(c) for i, c in enumerate(row) if i != li])
        except ValueError:
            raise ConfigError(f"{str(source)!r} line {n}: feature values must be numbers") \
                from None
        labels.append(row[li].strip())
    classes, y = np.unique(np.asarray(labels), return_inverse=True)
    class_names: tuple[str, ...] | None = tuple(str(c) for c in classes)
    if all(_is_int(c) for c in classes):  # numeric labels keep their own class index
        numeric = np.asarray([int(c) for c in labels], dtype=np.int64)
        if numeric.min() >= 0:
            y, class_names = numeric, None
    return split_arrays(np.asarray(features, dtype=np.float32), np.asarray(y, dtype=np.int64),
                        name=source.name, val_fraction=val_fraction, seed=seed,
                        feature_names=names, class_names=class_names)


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True
