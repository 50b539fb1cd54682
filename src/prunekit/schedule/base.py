"""What a sparsity schedule is, and the open registry schedules live in.

A schedule answers two questions about optimizer step ``t`` (the number of
``optimizer.step()`` calls so far): is ``t`` a step at which masks are recomputed, and
what sparsity should the model have then. Before the first update step the sparsity is 0.
Schedules are frozen dataclasses validated in ``__post_init__``; register your own with
:func:`register_schedule` and build any from its name with :func:`get_schedule`.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

from ..errors import ConfigError
from .._internal import validate
from .._internal.registry import Registry

S = TypeVar("S", bound="Schedule")


class Schedule(ABC):
    """Base class of sparsity schedules (implementations are frozen dataclasses)."""

    name: ClassVar[str] = ""
    # Every schedule exposes (as fields or properties):
    start: int  # the first update step
    end: int  # the last update step; afterwards the sparsity stays at final_sparsity
    final_sparsity: float  # the sparsity reached at end

    @abstractmethod
    def is_update_step(self, step: int) -> bool:
        """Whether masks are recomputed after ``step`` optimizer steps."""

    @abstractmethod
    def sparsity_at(self, step: int) -> float:
        """The target sparsity after ``step`` optimizer steps (0 before :attr:`start`)."""

    def to_dict(self) -> dict[str, Any]:
        """``{"name": ..., **fields}``: plain data for checkpoints and recipes."""
        if not dataclasses.is_dataclass(self):
            raise ConfigError(f"{type(self).__name__} must be a dataclass to be serialised")
        return {"name": self.name, **dataclasses.asdict(self)}


_REGISTRY: Registry[type[Schedule]] = Registry(
    "schedule", "prunekit.schedule.register_schedule")


def register_schedule(name: str) -> Callable[[type[S]], type[S]]:
    """Class decorator: make a schedule available by ``name``."""
    return _REGISTRY.register(name)  # type: ignore[return-value]


def available_schedules() -> list[str]:
    """Names of the registered schedules, sorted."""
    return _REGISTRY.names()


def get_schedule(name: str, **options: Any) -> Schedule:
    """Build the schedule registered as ``name`` from its fields."""
    cls = _REGISTRY.get(name)
    known: set[str] = ({f.name for f in dataclasses.fields(cls)}
                       if dataclasses.is_dataclass(cls) else set())
    unknown = sorted(set(options) - known) if known else []
    if unknown:
        raise ConfigError(f"schedule {name!r} has no option(s) {unknown}; "
                          f"its options are {sorted(known)}")
    return cls(**options)


def schedule_from_dict(data: Mapping[str, Any]) -> Schedule:
    """Inverse of :meth:`Schedule.to_dict`."""
    options = dict(data)
    name = options.pop("name", None)
    if not isinstance(name, str):
        raise ConfigError(f"a schedule needs a 'name' naming one of {available_schedules()}")
    return get_schedule(name, **options)


def as_schedule(value: object) -> Schedule:
    """``value`` as a :class:`Schedule`: one already, or its dict (``to_dict``)."""
    schedule = schedule_from_dict(value) if isinstance(value, Mapping) else value
    if not isinstance(schedule, Schedule):
        raise ConfigError(f"schedule must be a prunekit.schedule.Schedule (e.g. "
                          f"CubicSchedule(...)) or its dict, got {value!r}")
    return schedule


def check_example(example_inputs: object) -> None:
    """Refuse a missing example input, which a training-time pruner traces the model on."""
    if example_inputs is None:
        raise ConfigError("example_inputs is required: a tensor (or tuple/dict of tensors) "
                          "shaped like one real batch")


def check_step(value: object, what: str, where: str, minimum: int = 0) -> int:
    """Return ``value`` if it is an integer ``>= minimum``, else raise :class:`ConfigError`."""
    return validate.check_int(value, f"schedule {where!r}: {what}", minimum=minimum,
                              hint="steps are counted in optimizer steps")


def check_fraction(value: object, what: str, where: str) -> float:
    """Return ``value`` as a float if it lies in ``[0, 1)``, else raise :class:`ConfigError`."""
    return validate.check_fraction(value, f"schedule {where!r}: {what}",
                                   hint="0.9 means 90% of the weights are zero")
