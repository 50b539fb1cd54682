"""Data specs: ``digits`` (built in), ``path.npz`` (arrays ``x``, ``y``), ``path.csv`` or an
image folder (one subfolder of images per class)."""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from .arrays import ArrayData, load_csv, load_npz
from .digits import NUM_CLASSES, load_digits_data
from .images import is_image_folder, load_image_folder

__all__ = ["describe_data_spec", "load_data_spec"]


def load_data_spec(spec: str, *, label_column: str = "label", val_fraction: float = 0.2,
                   seed: int = 0, image_size: int = 224) -> ArrayData:
    """Load the classification data ``spec`` names, split into train and validation."""
    text = spec.strip()
    if text == "digits":
        data = load_digits_data(val_fraction, seed)
        return ArrayData(data.x_train, data.y_train, data.x_val, data.y_val, NUM_CLASSES,
                         "sklearn digits (8x8, 10 classes)")
    suffix = Path(text).suffix.lower()
    if suffix == ".npz":
        return load_npz(text, val_fraction=val_fraction, seed=seed)
    if suffix == ".csv":
        return load_csv(text, label_column=label_column, val_fraction=val_fraction, seed=seed)
    if is_image_folder(text):
        return load_image_folder(text, image_size=image_size, val_fraction=val_fraction,
                                 seed=seed)
    raise ConfigError(f"unknown data spec {spec!r}: use digits, path/to/data.npz (arrays x "
                      "and y), path/to/table.csv or an image folder (class subfolders)")


def describe_data_spec() -> str:
    """One line for help texts."""
    return ("digits (built in), path/to/data.npz (arrays x, y), path/to/table.csv or an "
            "image folder (class subfolders)")
