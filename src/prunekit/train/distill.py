"""Knowledge distillation from the unpruned teacher: KL divergence between softened logits.

``loss = alpha * T**2 * KL(softmax(teacher / T) || softmax(student / T))
       + (1 - alpha) * task_loss``

The ``T**2`` factor keeps the gradient scale of the soft term independent of ``T``
(Hinton et al., 2015). The soft term is exactly zero when student and teacher logits agree.
With ``features`` named, ``feature_weight`` times the relative feature mismatch of
:mod:`.features` is added (FitNets-style hints through a trained linear adapter).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .._internal.validate import check_number

__all__ = ["DistillConfig", "distillation_loss", "distilled_loss"]


@dataclass(frozen=True)
class DistillConfig:
    """Distillation settings.

    - ``temperature`` T > 0 and soft-loss weight ``alpha`` in [0, 1].
    - ``features``: module names (as in ``model.named_modules()``, the same in the pruned
      student and the teacher) whose outputs the student should match; empty: logits only.
    - ``feature_weight`` >= 0: weight of the feature term, which is relative to the teacher's
      feature energy (1 means a mismatch as large as the feature itself costs 1).
    """

    temperature: float = 4.0
    alpha: float = 0.7
    features: tuple[str, ...] = ()
    feature_weight: float = 1.0

    def __post_init__(self) -> None:
        features = (self.features,) if isinstance(self.features, str) else self.features
        if not isinstance(features, (tuple, list)) or not all(
                isinstance(n, str) and n for n in features):
            raise ConfigError(f"distillation features must be a list of module names, got "
                              f"{self.features!r}")
        if len(set(features)) != len(features):
            raise ConfigError(f"distillation features name a module twice: {list(features)}")
        object.__setattr__(self, "features", tuple(features))
        check_number(self.feature_weight, "distillation feature_weight", minimum=0.0)
        check_number(self.temperature, "distillation temperature", above=0.0)
        check_number(self.alpha, "distillation alpha", minimum=0.0, maximum=1.0)

    def settings(self) -> dict[str, Any]:
        """Plain-data view for reports."""
        return asdict(self)


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                      temperature: float = 4.0) -> torch.Tensor:
    """``T**2 * KL(teacher || student)`` on temperature-softened logits, mean over the batch.

    Logits may have any leading shape; the last dimension holds the classes.
    """
    if student_logits.shape != teacher_logits.shape:
        raise ConfigError(f"student logits {tuple(student_logits.shape)} and teacher logits "
                          f"{tuple(teacher_logits.shape)} differ in shape; distill a model "
                          "into one with the same outputs")
    classes = student_logits.shape[-1]
    student = F.log_softmax(student_logits.float().reshape(-1, classes) / temperature, dim=-1)
    teacher = F.log_softmax(teacher_logits.detach().float().reshape(-1, classes) / temperature,
                            dim=-1)
    kl = F.kl_div(student, teacher, reduction="batchmean", log_target=True)
    return kl * (temperature ** 2)


def distilled_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                   task_loss: torch.Tensor, config: DistillConfig) -> torch.Tensor:
    """Blend of the soft distillation term and the task loss, weighted by ``config.alpha``."""
    soft = distillation_loss(student_logits, teacher_logits, config.temperature)
    return config.alpha * soft + (1.0 - config.alpha) * task_loss
