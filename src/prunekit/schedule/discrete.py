"""Discrete schedules: one shot at a given step, or a list of (step, sparsity) milestones."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

from ..errors import ConfigError
from .base import Schedule, check_fraction, check_step, register_schedule


@register_schedule("one_shot")
@dataclass(frozen=True, kw_only=True)
class OneShotSchedule(Schedule):
    """Prune to ``sparsity`` once, after ``step`` optimizer steps (0 = before training)."""

    sparsity: float
    step: int = 0

    def __post_init__(self) -> None:
        check_fraction(self.sparsity, "sparsity", self.name)
        check_step(self.step, "step", self.name)

    @property
    def start(self) -> int:  # type: ignore[override]
        return self.step

    @property
    def end(self) -> int:  # type: ignore[override]
        return self.step

    @property
    def final_sparsity(self) -> float:  # type: ignore[override]
        return self.sparsity

    @classmethod
    def at_epoch(cls, epoch: int, steps_per_epoch: int, sparsity: float) -> OneShotSchedule:
        """Prune once at the start of epoch ``epoch`` (0-based; after ``epoch`` full epochs
        of ``steps_per_epoch`` optimizer steps): one shot inside training."""
        check_step(epoch, "epoch", cls.name)
        check_step(steps_per_epoch, "steps_per_epoch", cls.name, minimum=1)
        return cls(sparsity=sparsity, step=int(epoch) * int(steps_per_epoch))

    def is_update_step(self, step: int) -> bool:
        return step == self.step

    def sparsity_at(self, step: int) -> float:
        return self.sparsity if step >= self.step else 0.0


@register_schedule("steps")
@dataclass(frozen=True, kw_only=True)
class StepSchedule(Schedule):
    """Iterative pruning: jump to each ``(step, sparsity)`` milestone when it is reached.

    Example: ``StepSchedule(milestones=((100, 0.5), (200, 0.75), (300, 0.875)))``.
    Steps must increase and sparsities must not decrease.
    """

    milestones: tuple[tuple[int, float], ...]

    def __post_init__(self) -> None:
        where = self.name
        try:
            pairs = tuple((m[0], m[1]) for m in self.milestones)
            if any(len(m) != 2 for m in self.milestones):
                raise TypeError
        except (TypeError, IndexError, KeyError):
            raise ConfigError(f"schedule {where!r}: milestones must be (step, sparsity) "
                              f"pairs, got {self.milestones!r}") from None
        if not pairs:
            raise ConfigError(f"schedule {where!r}: give at least one (step, sparsity) "
                              "milestone")
        for step, sparsity in pairs:
            check_step(step, "each milestone step", where)
            check_fraction(sparsity, "each milestone sparsity", where)
        for (s0, v0), (s1, v1) in pairwise(pairs):
            if s1 <= s0:
                raise ConfigError(f"schedule {where!r}: milestone step {s1} comes at or "
                                  f"before {s0}; list milestones in increasing step order")
            if v1 < v0:
                raise ConfigError(f"schedule {where!r}: sparsity falls from {v0} to {v1} at "
                                  f"step {s1}; sparsity may only grow")
        object.__setattr__(self, "milestones",
                           tuple((int(s), float(v)) for s, v in pairs))

    @property
    def start(self) -> int:  # type: ignore[override]
        return self.milestones[0][0]

    @property
    def end(self) -> int:  # type: ignore[override]
        return self.milestones[-1][0]

    @property
    def final_sparsity(self) -> float:  # type: ignore[override]
        return self.milestones[-1][1]

    def is_update_step(self, step: int) -> bool:
        return any(step == s for s, _ in self.milestones)

    def sparsity_at(self, step: int) -> float:
        value = 0.0
        for s, v in self.milestones:
            if step >= s:
                value = v
        return value
