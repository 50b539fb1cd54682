"""Recovery after pruning: a plain-PyTorch fine-tuning loop with optional distillation."""

from .distill import DistillConfig, distillation_loss, distilled_loss
from .finetune import (
                       EpochRecord,
                       FinetuneConfig,
                       FinetuneResult,
                       accuracy,
                       evaluate,
                       finetune,
)

__all__ = [
                       "DistillConfig",
                       "EpochRecord",
                       "FinetuneConfig",
                       "FinetuneResult",
                       "accuracy",
                       "distillation_loss",
                       "distilled_loss",
                       "evaluate",
                       "finetune",
]
