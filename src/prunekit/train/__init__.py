"""Recovery after pruning: a plain-PyTorch fine-tuning loop with optional distillation and
input mixup."""

from .distill import DistillConfig, distillation_loss, distilled_loss
from .finetune import (
                       EpochRecord,
                       FinetuneConfig,
                       FinetuneResult,
                       accuracy,
                       evaluate,
                       finetune,
)
from .mixup import Mixup

__all__ = [
                       "DistillConfig",
                       "EpochRecord",
                       "FinetuneConfig",
                       "FinetuneResult",
                       "Mixup",
                       "accuracy",
                       "distillation_loss",
                       "distilled_loss",
                       "evaluate",
                       "finetune",
]
