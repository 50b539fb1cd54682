"""Gradual schedules: sparsity grows from ``initial_sparsity`` to ``final_sparsity``
between ``start`` and ``end``, with masks recomputed every ``frequency`` steps (and at
``end``)."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass

from ..errors import ConfigError
from .base import Schedule, check_fraction, check_step, register_schedule


@dataclass(frozen=True, kw_only=True)
class GradualSchedule(Schedule):
    """Shared fields and validation of the gradual schedules (not registered itself)."""

    final_sparsity: float
    start: int = 0
    end: int
    frequency: int = 1
    initial_sparsity: float = 0.0

    def __post_init__(self) -> None:
        where = self.name or type(self).__name__
        check_fraction(self.final_sparsity, "final_sparsity", where)
        check_fraction(self.initial_sparsity, "initial_sparsity", where)
        check_step(self.start, "start", where)
        check_step(self.end, "end", where)
        check_step(self.frequency, "frequency", where, minimum=1)
        if self.end <= self.start:
            raise ConfigError(
                f"schedule {where!r}: end ({self.end}) is not after start ({self.start}); "
                "a gradual schedule needs end > start (both in optimizer steps) — set a "
                "later end, or use the 'one_shot' schedule to prune at a single step"
            )
        if self.initial_sparsity > self.final_sparsity:
            raise ConfigError(
                f"schedule {where!r}: initial_sparsity ({self.initial_sparsity}) is above "
                f"final_sparsity ({self.final_sparsity}); sparsity may only grow"
            )

    def progress(self, step: int) -> float:
        """Fraction of the way from ``start`` to ``end``, clamped to ``[0, 1]``."""
        return min(1.0, max(0.0, (step - self.start) / (self.end - self.start)))

    def is_update_step(self, step: int) -> bool:
        if step < self.start or step > self.end:
            return False
        return (step - self.start) % self.frequency == 0 or step == self.end

    def sparsity_at(self, step: int) -> float:
        if step < self.start:
            return 0.0
        return self.shape(self.progress(step))

    @abstractmethod
    def shape(self, p: float) -> float:
        """Sparsity at progress ``p`` in ``[0, 1]``."""


@register_schedule("cubic")
@dataclass(frozen=True, kw_only=True)
class CubicSchedule(GradualSchedule):
    """Zhu & Gupta (2017): ``s_t = s_f + (s_i - s_f) (1 - (t - t0) / (n Δt))^3``.

    Prunes fast early, when there are many redundant weights, and slowly near the end.
    """

    def shape(self, p: float) -> float:
        s_i, s_f = self.initial_sparsity, self.final_sparsity
        return s_f + (s_i - s_f) * (1.0 - p) ** 3


@register_schedule("linear")
@dataclass(frozen=True, kw_only=True)
class LinearSchedule(GradualSchedule):
    """Sparsity grows linearly from ``initial_sparsity`` to ``final_sparsity``."""

    def shape(self, p: float) -> float:
        return self.initial_sparsity + (self.final_sparsity - self.initial_sparsity) * p


@register_schedule("exponential")
@dataclass(frozen=True, kw_only=True)
class ExponentialSchedule(GradualSchedule):
    """The kept fraction decays geometrically: ``1 - s_t = (1 - s_i)^(1-p) (1 - s_f)^p``.

    Each equal stretch of steps removes the same *fraction of the remaining* weights, as
    in iterative magnitude pruning.
    """

    def shape(self, p: float) -> float:
        keep_i, keep_f = 1.0 - self.initial_sparsity, 1.0 - self.final_sparsity
        return 1.0 - keep_i ** (1.0 - p) * keep_f ** p
