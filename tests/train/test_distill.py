"""Distillation loss: zero for identical logits, positive otherwise, validated settings."""

from __future__ import annotations

import pytest
import torch

from prunekit.errors import ConfigError
from prunekit.train import DistillConfig, distillation_loss, distilled_loss


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_zero_when_student_equals_teacher(temperature: float) -> None:
    logits = torch.randn(16, 10) * 5
    loss = distillation_loss(logits, logits.clone(), temperature)
    assert loss.item() == pytest.approx(0.0, abs=1e-6)


def test_positive_and_differentiable_when_logits_differ() -> None:
    student = torch.randn(8, 10, requires_grad=True)
    teacher = torch.randn(8, 10)
    loss = distillation_loss(student, teacher, 2.0)
    assert loss.item() > 0
    loss.backward()
    assert student.grad is not None and torch.isfinite(student.grad).all()


def test_blend_weights_soft_and_task_terms() -> None:
    logits = torch.randn(4, 3)
    task = torch.tensor(2.5)
    only_task = distilled_loss(logits, logits, task, DistillConfig(temperature=3.0, alpha=0.25))
    assert only_task.item() == pytest.approx(0.75 * 2.5, abs=1e-6)


def test_shape_mismatch_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="differ in shape"):
        distillation_loss(torch.randn(2, 10), torch.randn(2, 5))


@pytest.mark.parametrize("kwargs", [{"temperature": 0.0}, {"temperature": -1.0},
                                    {"alpha": 1.5}, {"alpha": -0.1}])
def test_config_validation(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        DistillConfig(**kwargs)
