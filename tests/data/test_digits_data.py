"""The built-in digits data: shapes, scaling, a fixed stratified split, seeded loaders."""

from __future__ import annotations

import pytest
import torch

from prunekit.data import digits_loaders, load_digits_data
from prunekit.errors import ConfigError


def test_shapes_scaling_and_split() -> None:
    data = load_digits_data()
    assert data.x_train.shape[1:] == (1, 8, 8) and data.x_train.dtype == torch.float32
    assert len(data.x_train) + len(data.x_val) == 1797
    assert abs(len(data.x_val) - 0.2 * 1797) < 10
    assert data.x_train.min() >= 0 and data.x_train.max() <= 1
    assert data.y_train.dtype == torch.int64 and set(data.y_val.tolist()) == set(range(10))


def test_split_is_fixed_by_seed() -> None:
    a, b, c = load_digits_data(seed=0), load_digits_data(seed=0), load_digits_data(seed=1)
    assert torch.equal(a.x_val, b.x_val) and torch.equal(a.y_train, b.y_train)
    assert not torch.equal(a.x_val, c.x_val)


def test_loaders_are_seeded() -> None:
    data = load_digits_data()
    first = next(iter(digits_loaders(32, data=data)[0]))[1]
    again = next(iter(digits_loaders(32, data=data)[0]))[1]
    assert torch.equal(first, again) and len(first) == 32


@pytest.mark.parametrize("kwargs", [{"val_fraction": 0.0}, {"val_fraction": 1.0}])
def test_bad_split_fraction(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        load_digits_data(**kwargs)
