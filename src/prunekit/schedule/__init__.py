"""Sparsity schedules (an open registry keyed by name) and the in-loop gradual pruner.

Built in: ``"one_shot"``, ``"cubic"`` (Zhu & Gupta), ``"linear"``, ``"exponential"`` and
``"steps"``. All steps are counted in optimizer steps. :class:`GradualPruner` masks
weights; :class:`StructuredGradualPruner` masks whole channel groups and removes them at
the end; :class:`ShrinkingPruner` removes them for real at every pruning step.
"""

from __future__ import annotations

from .base import (
    Schedule,
    available_schedules,
    get_schedule,
    register_schedule,
    schedule_from_dict,
)
from .discrete import OneShotSchedule, StepSchedule
from .gradual import CubicSchedule, ExponentialSchedule, GradualSchedule, LinearSchedule
from .pruner import GradualPruner
from .shrink import ShrinkConfig, ShrinkEvent, ShrinkingPruner, rewrap_ddp
from .shrink_checkpoint import load_training_checkpoint, save_training_checkpoint
from .structured import StructuredConfig, StructuredGradualConfig, StructuredGradualPruner

__all__ = [
    "CubicSchedule", "ExponentialSchedule", "GradualPruner", "GradualSchedule",
    "LinearSchedule", "OneShotSchedule", "Schedule", "ShrinkConfig", "ShrinkEvent",
    "ShrinkingPruner", "StepSchedule", "StructuredConfig",
    "StructuredGradualConfig", "StructuredGradualPruner", "available_schedules",
    "get_schedule", "load_training_checkpoint", "register_schedule", "rewrap_ddp",
    "save_training_checkpoint", "schedule_from_dict",
]
