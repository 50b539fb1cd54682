"""Open registries keyed by name (importance criteria, schedules): one small class for all."""

from __future__ import annotations

from typing import Generic, TypeVar
from collections.abc import Callable

from ..errors import ConfigError

T = TypeVar("T", bound=type)


class Registry(Generic[T]):
    """Classes registered under a name; ``kind`` and ``register_with`` shape the messages."""

    def __init__(self, kind: str, register_with: str) -> None:
        self.kind = kind
        self.register_with = register_with
        self._classes: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Class decorator: make a class available by ``name`` (sets its ``name``)."""

        def decorate(cls: T) -> T:
            if name in self._classes:
                raise ConfigError(f"{self.kind} {name!r} is already registered")
            cls.name = name  # type: ignore[attr-defined]
            self._classes[name] = cls
            return cls

        return decorate

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._classes)

    def get(self, name: str) -> T:
        """The class registered as ``name``, or a clear error listing the choices."""
        try:
            return self._classes[name]
        except KeyError:
            raise ConfigError(f"unknown {self.kind} {name!r}; choose one of {self.names()} "
                              f"or register your own with {self.register_with}") from None
