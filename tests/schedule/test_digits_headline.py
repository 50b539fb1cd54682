"""Issue 4's headline: gradual 90% unstructured and 2:4 pruning inside a plain training
loop on scikit-learn's bundled handwritten digits stay within 1 point of dense accuracy."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from prunekit.mask import NM, MaskConfig, Unstructured, finalize, mask_sparsity
from prunekit.schedule import CubicSchedule, GradualPruner

sklearn_datasets = pytest.importorskip("sklearn.datasets")
model_selection = pytest.importorskip("sklearn.model_selection")

EPOCHS = 40
BATCH = 128
LR = 3e-3


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, ...]:
    data = sklearn_datasets.load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(data.target)
    train, test = model_selection.train_test_split(
        list(range(len(y))), test_size=0.25, random_state=0, stratify=data.target)
    return x[train], y[train], x[test], y[test]


def digits_cnn() -> nn.Sequential:
    """Conv(1→16) → Conv(16→32) → pool → Linear(512→256) → Linear(256→10)."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10))


def train(digits: tuple[torch.Tensor, ...], config: MaskConfig | None,
          final_sparsity: float) -> tuple[nn.Module, float]:
    """The same plain loop for every run; the pruner is one extra call per step."""
    x_train, y_train, x_test, y_test = digits
    model = digits_cnn()
    steps_per_epoch = -(-len(y_train) // BATCH)
    total = EPOCHS * steps_per_epoch
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    lr_schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=LR, total_steps=total)
    pruner = None
    if config is not None:
        schedule = CubicSchedule(final_sparsity=final_sparsity, start=total // 10,
                                 end=total // 2, frequency=steps_per_epoch)
        pruner = GradualPruner(model, schedule, config)
    order = torch.Generator().manual_seed(0)
    for _ in range(EPOCHS):
        model.train()
        perm = torch.randperm(len(y_train), generator=order)
        for b in range(steps_per_epoch):
            idx = perm[b * BATCH:(b + 1) * BATCH]
            optimizer.zero_grad()
            F.cross_entropy(model(x_train[idx]), y_train[idx]).backward()
            optimizer.step()
            lr_schedule.step()
            if pruner is not None:
                pruner.step()
    if pruner is not None:
        assert pruner.done
    model.eval()
    with torch.no_grad():
        accuracy = (model(x_test).argmax(1) == y_test).float().mean().item() * 100
    return model, accuracy


@pytest.mark.numerics
def test_gradual_unstructured_90_and_two_four_match_dense(digits: tuple[torch.Tensor, ...]
                                                          ) -> None:
    _, dense = train(digits, None, 0.0)
    assert dense > 96.0  # a sanity floor: the dense baseline itself is a good model

    # 90% unstructured over every layer but the 144-weight input conv, ranked globally
    model, unstructured = train(
        digits, MaskConfig(pattern=Unstructured("global"), ignore=("0",)), 0.9)
    assert mask_sparsity(model)["total"] == pytest.approx(0.9, abs=1e-4)
    x_test = digits[2]
    with torch.no_grad():
        before = model(x_test)
        finalize(model)
        assert torch.equal(model(x_test), before)

    # 2:4 on every layer whose input dimension is divisible by 4 (not the 1-channel input)
    model, two_four = train(digits, MaskConfig(pattern=NM(2, 4), ignore=("0",)), 0.5)
    for index in (2, 6, 8):
        weight = model[index].weight.detach()
        runs = (weight != 0).movedim(1, -1).reshape(-1, 4).sum(-1)
        assert (runs <= 2).all() and mask_sparsity(model)[f"{index}.weight"] == 0.5

    assert unstructured >= dense - 1.0, (dense, unstructured)
    assert two_four >= dense - 1.0, (dense, two_four)
