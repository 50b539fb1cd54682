"""Hugging Face datasets saved with ``save_to_disk`` as data specs (built locally, no
downloads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from prunekit.data.hf_dataset import is_hf_dataset_dir, load_hf_dataset
from prunekit.data.spec import load_data_spec
from prunekit.errors import ConfigError

datasets = pytest.importorskip("datasets")


def _images(n: int, size: tuple[int, int], mode: str = "L") -> list[object]:
    from PIL import Image

    rng = np.random.default_rng(0)
    shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
    return [Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode)
            for _ in range(n)]


@pytest.fixture
def image_dict(tmp_path: Path) -> Path:
    """A DatasetDict (train 12 / test 6) of 6x6 grayscale images with a ClassLabel."""
    features = datasets.Features({"image": datasets.Image(),
                                  "label": datasets.ClassLabel(names=["a", "b", "c"])})

    def make(n: int) -> object:
        return datasets.Dataset.from_dict(
            {"image": _images(n, (6, 6)), "label": [i % 3 for i in range(n)]},
            features=features)

    root = tmp_path / "images_hf"
    datasets.DatasetDict({"train": make(12), "test": make(6)}).save_to_disk(str(root))
    return root


def test_dataset_dict_of_images_keeps_its_splits_and_converts_images(image_dict: Path) -> None:
    assert is_hf_dataset_dir(image_dict) and is_hf_dataset_dir(image_dict / "train")
    data = load_data_spec(str(image_dict))
    assert tuple(data.x_train.shape) == (12, 1, 6, 6) and tuple(data.x_val.shape) == (6, 1, 6, 6)
    assert data.x_train.dtype.is_floating_point
    assert 0.0 <= float(data.x_train.min()) and float(data.x_train.max()) <= 1.0
    assert data.num_classes == 3 and data.y_val.tolist() == [0, 1, 2, 0, 1, 2]
    assert data.class_names == ("a", "b", "c")  # a ClassLabel: the class count is exact
    assert "splits train / test" in data.name and "a, b, c" in data.name
    # the model's input per sample decides channels and size
    rgb = load_data_spec(str(image_dict), sample_shape=(3, 8, 8))
    assert tuple(rgb.x_val.shape) == (6, 3, 8, 8)
    # one split, divided into train and validation
    one = load_data_spec(str(image_dict), split="train", val_fraction=0.25)
    assert len(one.y_train) + len(one.y_val) == 12 and len(one.y_val) == 3
    swapped = load_data_spec(str(image_dict), split="test,train")
    assert len(swapped.y_train) == 6 and len(swapped.y_val) == 12


def test_single_dataset_of_numeric_columns_and_string_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    table = {"a": rng.normal(size=40).tolist(), "b": rng.normal(size=40).tolist(),
             "c": list(range(40)), "species": ["cat", "dog"] * 20}
    root = tmp_path / "table_hf"
    datasets.Dataset.from_dict(table).save_to_disk(str(root))
    data = load_hf_dataset(root, label_column="species")
    assert data.feature_names == ("a", "b", "c") and data.x_train.shape[1] == 3
    assert data.num_classes == 2 and set(data.y_train.tolist()) == {0, 1}
    assert data.class_names == ("cat", "dog")
    picked = load_hf_dataset(root, label_column="species", feature_column="a,c")
    assert picked.feature_names == ("a", "c")
    column_c = picked.x_train[:, 1].tolist() + picked.x_val[:, 1].tolist()
    assert sorted(column_c) == [float(i) for i in range(40)]


def test_array_column_is_reshaped_to_the_model_input(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    pixels = rng.integers(0, 256, (20, 16), dtype=np.uint8)
    root = tmp_path / "pixels_hf"
    datasets.Dataset.from_dict({"pixel_values": pixels.tolist(), "meta": ["x"] * 20,
                                "labels": [i % 2 for i in range(20)]},
                               features=datasets.Features({
                                   "pixel_values": datasets.Sequence(datasets.Value("uint8")),
                                   "meta": datasets.Value("string"),
                                   "labels": datasets.Value("int64")})).save_to_disk(str(root))
    data = load_hf_dataset(root, sample_shape=(1, 4, 4))  # "labels" found for "label"
    assert tuple(data.x_train.shape[1:]) == (1, 4, 4) and float(data.x_train.max()) <= 1.0
    flat = load_hf_dataset(root)
    assert tuple(flat.x_train.shape[1:]) == (16,)


@pytest.mark.parametrize("kwargs, message", [
    ({"split": "validation"}, "has no split 'validation'; its splits are ['train', 'test']"),
    ({"split": "a,b,c"}, "must be NAME or TRAIN,VAL"),
    ({"label_column": "cls"}, "has no label column 'cls'; its columns are ['image', 'label']"),
    ({"feature_column": "pixels"}, "has no column 'pixels'"),
    ({"feature_column": "label"}, "is the label column"),
])
def test_bad_options_name_what_is_available(image_dict: Path, kwargs: dict[str, str],
                                            message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_hf_dataset(image_dict, **kwargs)  # type: ignore[arg-type]
    assert message in str(info.value)


def test_ambiguous_inputs_and_non_hf_options_are_errors(tmp_path: Path) -> None:
    root = tmp_path / "mixed_hf"
    datasets.Dataset.from_dict({"text": ["a", "b"] * 5, "note": ["x", "y"] * 5,
                                "label": [0, 1] * 5}).save_to_disk(str(root))
    with pytest.raises(ConfigError, match="cannot tell which column holds the inputs; its "
                                          r"columns are \['text', 'note', 'label'\]"):
        load_hf_dataset(root)
    with pytest.raises(ConfigError, match="must hold numbers"):
        load_hf_dataset(root, feature_column="text")
    with pytest.raises(ConfigError, match="single split"):
        load_hf_dataset(root, split="train")
    with pytest.raises(ConfigError, match="applies to Hugging Face datasets only"):
        load_data_spec("digits", split="train")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "dataset_dict.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not a readable Hugging Face dataset folder"):
        load_data_spec(str(tmp_path / "broken"))
