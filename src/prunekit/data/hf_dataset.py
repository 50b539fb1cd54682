"""Hugging Face datasets saved to disk (``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``).

A ``Dataset`` folder holds ``state.json`` and ``dataset_info.json``; a ``DatasetDict`` folder
holds ``dataset_dict.json`` and one such folder per split. Read with
``datasets.load_from_disk`` (local files only; ``datasets`` is imported only here).

- **Splits**: ``split`` is ``NAME`` (that split, divided into train/validation by
  ``val_fraction`` and ``seed`` like the other local data) or ``TRAIN,VAL`` (used as they
  are). Without it a ``DatasetDict`` uses ``train`` and, when present, ``validation`` /
  ``valid`` / ``val`` / ``test`` as validation; a single split is divided.
- **Inputs** (``feature_column``): an ``Image`` column, an array column, or one or more
  numeric scalar columns (``a,b,c``, stacked into features named after the columns).
  Without it: the first ``Image`` column, else a column named ``image``, ``img``,
  ``pixel_values``, ``pixels``, ``x``, ``features`` or ``input(s)``, else the only column
  besides the label, else every numeric scalar column.
- **Labels** (``label_column``, default ``label``; ``labels``, ``target``, ``y`` are tried
  when ``label`` is absent): ``ClassLabel`` or non-negative integers keep their index;
  strings become classes ``0..K-1`` in sorted order.
- **Images** become float tensors ``(C, H, W)`` in [0, 1]. With ``sample_shape`` (the
  model's example input without its batch, e.g. ``(1, 8, 8)``) of 1 or 3 channels, images
  are converted to that many channels and resized to that size; otherwise grayscale
  images keep one channel, others become RGB, and images keep their size when all share
  one (else they are resized to ``image_size`` square). Array columns become float32
  (``uint8`` values are taken as pixels and scaled to [0, 1]) and are reshaped to
  ``sample_shape`` when the element counts match.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from .arrays import ArrayData, split_arrays

__all__ = ["is_hf_dataset_dir", "load_hf_dataset"]

_VAL_SPLITS = ("validation", "valid", "val", "test")
_INPUT_NAMES = ("image", "img", "pixel_values", "pixels", "x", "features", "inputs", "input")
_LABEL_NAMES = ("labels", "target", "y")
_GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def is_hf_dataset_dir(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a folder written by ``save_to_disk`` (a Dataset or DatasetDict)."""
    root = Path(path)
    return root.is_dir() and ((root / "dataset_dict.json").is_file()
                              or ((root / "state.json").is_file()
                                  and (root / "dataset_info.json").is_file()))


def _load(root: Path) -> Any:
    try:
        import datasets
    except ImportError:
        raise ConfigError(f"{str(root)!r} is a Hugging Face dataset: reading it needs the "
                          "datasets package: pip install 'prunekit[hf]'") from None
    try:
        return datasets.load_from_disk(str(root))
    except Exception as exc:  # noqa: BLE001 - corrupt folders raise many kinds of errors
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise ConfigError(f"{str(root)!r} is not a readable Hugging Face dataset folder "
                          f"({type(exc).__name__}: {first})") from None


def _pick_splits(loaded: Any, root: Path, split: str | None) -> tuple[Any, Any | None, str]:
    """The training dataset, the validation dataset (or None) and a description."""
    names: list[str] = [] if split is None else [s.strip() for s in split.split(",")]
    if split is not None and (len(names) > 2 or not all(names)):
        raise ConfigError(f"split {split!r} must be NAME or TRAIN,VAL")
    if not hasattr(loaded, "keys"):  # a single Dataset
        own = str(loaded.split) if getattr(loaded, "split", None) is not None else None
        if split is not None and (len(names) != 1 or names[0] != own):
            raise ConfigError(f"{str(root)!r} holds a single split ({own or 'unnamed'}), not "
                              f"a DatasetDict: drop --split (it is divided into train and "
                              "validation)")
        return loaded, None, f"split {own}" if own else "one split"
    available = list(loaded.keys())
    if split is None:
        if "train" in available:
            val = next((s for s in _VAL_SPLITS if s in available), None)
            names = ["train"] if val is None else ["train", val]
        elif len(available) == 1:
            names = available
        else:
            raise ConfigError(f"{str(root)!r} has splits {available} and none is 'train': "
                              "pass --split NAME (or TRAIN,VAL)")
    missing = [n for n in names if n not in available]
    if missing:
        raise ConfigError(f"{str(root)!r} has no split {missing[0]!r}; its splits are "
                          f"{available}: pass --split NAME (or TRAIN,VAL)")
    if len(names) == 2:
        return loaded[names[0]], loaded[names[1]], f"splits {names[0]} / {names[1]}"
    return loaded[names[0]], None, f"split {names[0]}"


def _label_column(columns: list[str], wanted: str, root: Path) -> str:
    if wanted in columns:
        return wanted
    if wanted == "label":
        for name in _LABEL_NAMES:
            if name in columns:
                return name
    raise ConfigError(f"{str(root)!r} has no label column {wanted!r}; its columns are "
                      f"{columns}: pass --label-column")


def _is_numeric_value(feature: Any) -> bool:
    import datasets

    if isinstance(feature, datasets.ClassLabel):
        return True
    dtype = getattr(feature, "dtype", "") if isinstance(feature, datasets.Value) else ""
    return dtype == "bool" or dtype.startswith(("int", "uint", "float"))


def _input_columns(features: Any, label: str, wanted: str | None, root: Path) -> list[str]:
    import datasets

    columns = [c for c in features if c != label]
    if wanted is not None:
        chosen = [c.strip() for c in wanted.split(",") if c.strip()]
        unknown = [c for c in chosen if c not in features]
        if not chosen or unknown:
            raise ConfigError(f"{str(root)!r} has no column {(unknown or [wanted])[0]!r}; its "
                              f"columns are {list(features)}: pass --feature-column")
        if label in chosen:
            raise ConfigError(f"column {label!r} is the label column; it cannot also be an "
                              "input (--feature-column)")
        if len(chosen) > 1 and not all(_is_numeric_value(features[c]) for c in chosen):
            raise ConfigError(f"several input columns must all be numeric scalars; "
                              f"{chosen} are not: pass one image or array column")
        return chosen
    images = [c for c in columns if isinstance(features[c], datasets.Image)]
    named = [c for c in _INPUT_NAMES if c in columns]
    if images or named:
        return [(images or named)[0]]
    if len(columns) == 1:
        return columns
    if columns and all(_is_numeric_value(features[c]) for c in columns):
        return columns
    raise ConfigError(f"{str(root)!r}: cannot tell which column holds the inputs; its "
                      f"columns are {list(features)}: pass --feature-column NAME (or several "
                      "numeric columns as A,B,C)")


def _image_plan(images: list[Any], sample_shape: tuple[int, ...] | None,
                image_size: int) -> tuple[str, tuple[int, int] | None]:
    """PIL mode and (width, height) to resize to (None: keep) for a list of images."""
    if sample_shape is not None and len(sample_shape) == 3 and sample_shape[0] in (1, 3):
        return ("L" if sample_shape[0] == 1 else "RGB"), (sample_shape[2], sample_shape[1])
    mode = "L" if all(im.mode in _GRAY_MODES for im in images) else "RGB"
    sizes = {im.size for im in images}
    return mode, None if len(sizes) == 1 else (image_size, image_size)


def _images(values: list[Any], column: str, sample_shape: tuple[int, ...] | None,
            image_size: int) -> np.ndarray:
    from PIL import Image

    if not values:
        return np.zeros((0, 1, 1, 1), dtype=np.float32)
    if not all(isinstance(v, Image.Image) for v in values):
        raise ConfigError(f"column {column!r} holds undecodable images")
    mode, size = _image_plan(values, sample_shape, image_size)
    out = []
    for image in values:
        image = image.convert(mode)
        if size is not None and image.size != size:
            image = image.resize(size, Image.Resampling.BILINEAR)
        array = np.asarray(image, dtype=np.float32) / 255.0
        out.append(array[None] if array.ndim == 2 else array.transpose(2, 0, 1))
    return np.stack(out)


def _leaf_dtype(feature: Any) -> str | None:
    """The declared element type of a (possibly nested) feature, e.g. ``uint8``."""
    for _ in range(8):
        dtype = getattr(feature, "dtype", None)
        if isinstance(dtype, str) and dtype != "list":
            return dtype
        inner = getattr(feature, "feature", None)
        if inner is None:
            return None
        feature = inner
    return None


def _arrays(dataset: Any, column: str, sample_shape: tuple[int, ...] | None) -> np.ndarray:
    raw = dataset.select_columns([column]).with_format("numpy")[:][column]
    try:
        x = np.asarray(raw if isinstance(raw, np.ndarray) else list(raw))
    except ValueError:
        x = np.asarray([None])  # ragged: reported below
    if x.dtype == object or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise ConfigError(f"column {column!r} must hold numbers or arrays of one shape "
                          f"(got {x.dtype} values): choose another --feature-column")
    pixels = x.dtype == np.uint8 or _leaf_dtype(dataset.features[column]) == "uint8"
    x = x.astype(np.float32) / 255.0 if pixels else x.astype(np.float32)
    if x.ndim == 1:
        x = x[:, None]
    if sample_shape is not None and int(np.prod(x.shape[1:])) == int(np.prod(sample_shape)):
        x = x.reshape(len(x), *sample_shape)
    return x


def _inputs(dataset: Any, columns: list[str], sample_shape: tuple[int, ...] | None,
            image_size: int) -> np.ndarray:
    import datasets

    if len(columns) > 1:
        return np.stack([_arrays(dataset, c, None)[:, 0] for c in columns], axis=1)
    column = columns[0]
    if isinstance(dataset.features[column], datasets.Image):
        return _images(list(dataset[column]), column, sample_shape, image_size)
    return _arrays(dataset, column, sample_shape)


def _labels(datasets_: list[Any], column: str) -> tuple[list[np.ndarray], int | None,
                                                        tuple[str, ...] | None]:
    """Integer labels per dataset, the class count (ClassLabel) and class names."""
    import datasets

    feature = datasets_[0].features[column]
    raw = [np.asarray(list(d[column])) for d in datasets_]
    if isinstance(feature, datasets.ClassLabel):
        return [r.astype(np.int64) for r in raw], feature.num_classes, tuple(feature.names)
    dtype = getattr(feature, "dtype", None) if isinstance(feature, datasets.Value) else None
    if dtype in ("string", "large_string"):
        classes, inverse = np.unique(np.concatenate(raw), return_inverse=True)
        bounds = np.cumsum([len(r) for r in raw])[:-1]
        return ([p.astype(np.int64) for p in np.split(inverse, bounds)], len(classes),
                tuple(str(c) for c in classes))
    if dtype == "bool" or (dtype or "").startswith(("int", "uint")):
        labels = [r.astype(np.int64) for r in raw]
        if any(len(r) and r.min() < 0 for r in labels):
            raise ConfigError(f"label column {column!r} holds negative values; labels must be "
                              "class indices >= 0 or strings")
        return labels, None, None
    raise ConfigError(f"label column {column!r} holds {feature} values; classification needs "
                      "integer classes, a ClassLabel or strings: pass --label-column")


def load_hf_dataset(path: str | os.PathLike[str], *, split: str | None = None,
                    feature_column: str | None = None, label_column: str = "label",
                    image_size: int = 224, sample_shape: tuple[int, ...] | None = None,
                    val_fraction: float = 0.2, seed: int = 0) -> ArrayData:
    """A saved Hugging Face dataset as train/validation tensors (see the module notes)."""
    root = Path(path)
    if not is_hf_dataset_dir(root):
        raise ConfigError(f"{str(root)!r} is not a Hugging Face dataset folder (no "
                          "dataset_dict.json, nor state.json with dataset_info.json)")
    train, val, where = _pick_splits(_load(root), root, split)
    label = _label_column(list(train.features), label_column, root)
    inputs = _input_columns(train.features, label, feature_column, root)
    parts = [train] if val is None else [train, val]
    for part in parts[1:]:
        absent = [c for c in [label, *inputs] if c not in part.features]
        if absent:
            raise ConfigError(f"{str(root)!r}: the validation split lacks column(s) {absent}")
    labels, count, names = _labels(parts, label)
    xs = [_inputs(p, inputs, sample_shape, image_size) for p in parts]
    feature_names = tuple(inputs) if len(inputs) > 1 else None
    nonempty = [y for y in labels if len(y)]
    classes = count if count is not None else (
        max(int(y.max()) for y in nonempty) + 1 if nonempty else 0)
    shown = f": {', '.join(names)}" if names and len(names) <= 10 else ""
    name = (f"{root.name} (Hugging Face dataset, {where}, input {', '.join(inputs)}, "
            f"{classes} classes{shown})")
    class_names = names if count is not None else None
    if val is None:
        data = split_arrays(xs[0], labels[0], name=name, val_fraction=val_fraction,
                            seed=seed, feature_names=feature_names, class_names=class_names)
    else:
        if min(len(labels[0]), len(labels[1])) < 1:
            raise ConfigError(f"{str(root)!r}: the train and validation splits need at least "
                              "one sample each")
        if xs[0].shape[1:] != xs[1].shape[1:]:
            raise ConfigError(f"{str(root)!r}: train samples of shape {xs[0].shape[1:]} and "
                              f"validation samples of shape {xs[1].shape[1:]} differ")
        data = ArrayData(torch.from_numpy(np.ascontiguousarray(xs[0])),
                         torch.from_numpy(labels[0]), torch.from_numpy(
                             np.ascontiguousarray(xs[1])), torch.from_numpy(labels[1]),
                         classes, name, feature_names, class_names)
    return data
