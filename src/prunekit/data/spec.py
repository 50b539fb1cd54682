"""Data specs: ``digits`` (built in), ``path.npz`` (arrays ``x``, ``y``), ``path.csv``, a
Hugging Face dataset saved with ``save_to_disk`` (a folder with ``dataset_dict.json``, or
``state.json`` and ``dataset_info.json``) or an image folder (one subfolder of images per
class)."""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from .arrays import ArrayData, load_csv, load_npz
from .digits import NUM_CLASSES, load_digits_data
from .hf_dataset import is_hf_dataset_dir, load_hf_dataset
from .images import is_image_folder, load_image_folder

__all__ = ["describe_data_spec", "load_data_spec"]


def load_data_spec(spec: str, *, label_column: str = "label", val_fraction: float = 0.2,
                   seed: int = 0, image_size: int = 224, split: str | None = None,
                   feature_column: str | None = None,
                   sample_shape: tuple[int, ...] | None = None) -> ArrayData:
    """Load the classification data ``spec`` names, split into train and validation.

    ``split``, ``feature_column`` and ``sample_shape`` (the model's input per sample, which
    images are converted to) apply to Hugging Face datasets only.
    """
    text = spec.strip()
    if is_hf_dataset_dir(text):
        return load_hf_dataset(text, split=split, feature_column=feature_column,
                               label_column=label_column, image_size=image_size,
                               sample_shape=sample_shape, val_fraction=val_fraction, seed=seed)
    for name, value in (("split", split), ("feature column", feature_column)):
        if value is not None:
            raise ConfigError(f"a {name} ({value!r}) applies to Hugging Face datasets only, "
                              f"not to {spec!r}")
    if text == "digits":
        data = load_digits_data(val_fraction, seed)
        return ArrayData(data.x_train, data.y_train, data.x_val, data.y_val, NUM_CLASSES,
                         "sklearn digits (8x8, 10 classes)",
                         class_names=tuple(str(i) for i in range(NUM_CLASSES)))
    suffix = Path(text).suffix.lower()
    if suffix == ".npz":
        return load_npz(text, val_fraction=val_fraction, seed=seed)
    if suffix == ".csv":
        return load_csv(text, label_column=label_column, val_fraction=val_fraction, seed=seed)
    if is_image_folder(text):
        return load_image_folder(text, image_size=image_size, val_fraction=val_fraction,
                                 seed=seed)
    raise ConfigError(f"unknown data spec {spec!r}: use {describe_data_spec()}")


def describe_data_spec() -> str:
    """One line for help texts."""
    return ("digits (built in), path/to/data.npz (arrays x, y), path/to/table.csv, a Hugging "
            "Face dataset folder (save_to_disk) or an image folder (class subfolders)")
