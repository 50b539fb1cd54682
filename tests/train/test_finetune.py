"""The fine-tuning loop on small synthetic problems: learning, early stopping, restore-best,
custom loss/inputs, distillation, and config validation."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from helpers.train import KeywordModel, blobs, keyword_batches, mlp  # same folder

from prunekit.errors import ConfigError
from prunekit.train import DistillConfig, FinetuneConfig, evaluate, finetune


@pytest.mark.numerics
def test_learns_and_records_history() -> None:
    train, val = blobs()
    model = mlp()
    result = finetune(model, train, val, FinetuneConfig(epochs=8, lr=1e-2))
    assert len(result.history) == 8
    assert result.best_metric > 0.9 > result.initial_metric - 0.5
    assert result.history[-1].lr == pytest.approx(0.0, abs=1e-9)  # cosine reaches 0
    assert evaluate(model, val) == pytest.approx(result.best_metric)


def test_sgd_constant_schedule_without_clipping() -> None:
    train, val = blobs()
    config = FinetuneConfig(epochs=3, lr=5e-2, optimizer="sgd", schedule="constant",
                            grad_clip=None)
    result = finetune(mlp(), train, val, config)
    assert all(r.lr == pytest.approx(5e-2) for r in result.history)


def test_early_stopping_and_restore_best() -> None:
    train, val = blobs()
    model = mlp()
    initial = copy.deepcopy(model.state_dict())
    reference = [p.detach().clone() for p in model.parameters()]

    def closeness(outputs: torch.Tensor, targets: torch.Tensor) -> float:
        # Highest for the initial weights: every training step makes it worse.
        return -sum(float((p - r).abs().sum()) for p, r in zip(model.parameters(), reference))

    config = FinetuneConfig(epochs=10, lr=1e-2, patience=2)
    result = finetune(model, train, val, config, metric_fn=closeness)
    assert result.stopped_early and len(result.history) == 2
    assert result.best_epoch == 0
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(tensor, initial[name])


def test_custom_loss_and_dict_inputs() -> None:
    """Batches given by keyword train exactly as the same tensors given by position, and the
    custom loss is the one that is minimised (once per training batch)."""
    train, val = blobs()
    wrap, wrap_val = keyword_batches(train), keyword_batches(val)
    calls = []

    def loss_fn(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return nn.functional.cross_entropy(out, target, label_smoothing=0.1)

    config = FinetuneConfig(epochs=2, lr=1e-2)
    by_keyword = KeywordModel()
    result = finetune(by_keyword, wrap, wrap_val, config, loss_fn=loss_fn)
    assert len(calls) == 2 * len(wrap)
    by_position = mlp()
    positional = [(x["features"], y) for x, y in wrap]
    reference = finetune(by_position, positional,
                         [(x["features"], y) for x, y in wrap_val], config, loss_fn=loss_fn)
    assert result.best_metric == reference.best_metric
    for a, b in zip(by_keyword.net.parameters(), by_position.parameters()):
        assert torch.equal(a, b)
    plain = mlp()
    finetune(plain, positional, [(x["features"], y) for x, y in wrap_val], config)
    assert any(not torch.equal(a, b) for a, b in zip(plain.parameters(),
                                                      by_position.parameters()))


@pytest.mark.numerics
def test_distillation_from_a_teacher() -> None:
    train, val = blobs()
    teacher = mlp()
    finetune(teacher, train, val, FinetuneConfig(epochs=6, lr=1e-2))
    torch.manual_seed(1)
    student = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 3))
    result = finetune(student, train, val, FinetuneConfig(epochs=15, lr=3e-2), teacher=teacher,
                      distill=DistillConfig(temperature=2.0, alpha=0.9))
    assert result.best_metric > 0.85
    assert not teacher.training


def test_distill_without_teacher_is_an_error() -> None:
    train, val = blobs()
    with pytest.raises(ConfigError, match="teacher"):
        finetune(mlp(), train, val, FinetuneConfig(epochs=1), distill=DistillConfig())


def test_zero_epochs_only_evaluates() -> None:
    train, val = blobs()
    result = finetune(mlp(), train, val, FinetuneConfig(epochs=0))
    assert result.history == [] and result.best_epoch == 0


@pytest.mark.parametrize("kwargs", [
    {"epochs": -1}, {"lr": 0.0}, {"optimizer": "adam"}, {"weight_decay": -1.0},
    {"momentum": 1.0}, {"schedule": "step"}, {"grad_clip": 0.0}, {"patience": 0},
    {"min_delta": -0.1}, {"mode": "best"},
])
def test_config_validation(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        FinetuneConfig(**kwargs)  # type: ignore[arg-type]


def test_config_is_frozen() -> None:
    config = FinetuneConfig()
    with pytest.raises(AttributeError):
        config.epochs = 3  # type: ignore[misc]
