"""``.npz`` and CSV classification data: labels, feature names, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from prunekit.data.spec import load_data_spec
from prunekit.errors import ConfigError


def test_csv_string_labels_and_feature_names(tmp_path: Path) -> None:
    rows = ["x1,kind,x2"] + [f"{i},{'cat' if i % 2 else 'dog'},{i * 0.5}" for i in range(20)]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    data = load_data_spec(str(tmp_path / "t.csv"), label_column="kind")
    assert data.feature_names == ("x1", "x2") and data.num_classes == 2
    assert data.class_names == ("cat", "dog")
    assert data.x_train.shape[1] == 2 and len(data.y_train) + len(data.y_val) == 20
    with pytest.raises(ConfigError, match=r"no label column 'label'.*\['x1', 'kind', 'x2'\]"):
        load_data_spec(str(tmp_path / "t.csv"))


def test_npz_arrays_and_errors(tmp_path: Path) -> None:
    np.savez(tmp_path / "ok.npz", x=np.zeros((10, 1, 4, 4), np.float32), y=np.arange(10) % 2)
    data = load_data_spec(str(tmp_path / "ok.npz"), val_fraction=0.2)
    assert data.x_val.shape[1:] == (1, 4, 4) and data.num_classes == 2
    assert data.class_names is None  # integer labels only bound the class count
    np.savez(tmp_path / "bad.npz", inputs=np.zeros((4, 2)))
    with pytest.raises(ConfigError, match="lacks array"):
        load_data_spec(str(tmp_path / "bad.npz"))
    with pytest.raises(ConfigError, match="unknown data spec"):
        load_data_spec("imagenet")


def test_class_names_bound_the_labels_and_name_known_classes(tmp_path: Path) -> None:
    from prunekit.data.arrays import split_arrays

    x, y = np.zeros((15, 2), np.float32), np.arange(15) % 3
    with pytest.raises(ConfigError) as caught:
        split_arrays(x, y, name="t", class_names=("a", "b"))
    assert str(caught.value) == "t: label 2 is out of range for 2 classes"
    assert split_arrays(x, y, name="t", class_names=("a", "b", "c", "d")).num_classes == 4
    assert load_data_spec("digits").class_names == tuple("0123456789")
    rows = ["x,label"] + [f"{i},{i % 3}" for i in range(12)]
    (tmp_path / "n.csv").write_text("\n".join(rows) + "\n")
    numeric = load_data_spec(str(tmp_path / "n.csv"))
    assert numeric.class_names is None and numeric.num_classes == 3
