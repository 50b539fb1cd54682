"""What a one-shot method is, its options, and the registry methods live in.

A method prunes one linear layer at a time: from its weight (``[out, in]``, float32) and the
statistics of its calibration inputs (:class:`~prunekit.mask.InputStats`) it returns the
pruned weight, at a sparsity and in a pattern (:class:`~prunekit.mask.Unstructured` with
``scope="row"``: the same count in every output row; :class:`~prunekit.mask.NM`). Each
method declares its own frozen options dataclass (``Options``); register a new method with
:func:`register_oneshot_method` and it is available by name to
:class:`~prunekit.llm.OneShotConfig` and ``prunekit oneshot --method``.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from ...errors import ConfigError
from ...mask.calibration import InputStats
from ...mask.patterns import NM, Pattern
from ..._internal.registry import Registry
from ..._internal.validate import check_int
from ..swaps import swap_refine

__all__ = ["MaskOptions", "MaskingMethod", "NoOptions", "OneShotMethod",
           "available_oneshot_methods", "get_oneshot_method", "method_options",
           "register_oneshot_method"]


@dataclass(frozen=True)
class NoOptions:
    """A method without options."""


@dataclass(frozen=True)
class MaskOptions:
    """Options of methods that choose a mask from scores and keep the weights' values.

    ``swap_rounds`` refines each layer's mask afterwards with up to that many swaps per
    output row, each lowering the layer's reconstruction error on the calibration inputs
    (:mod:`prunekit.llm.swaps`); it needs the layer's ``in x in`` input Hessian. 0 keeps
    the plain method.
    """

    swap_rounds: int = 0

    def __post_init__(self) -> None:
        check_int(self.swap_rounds, "swap_rounds", minimum=0,
                  hint="100 is plenty for most layers")


class OneShotMethod(ABC):
    """Prunes one linear layer from its weight and input statistics."""

    name: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions

    def __init__(self, options: Any = None) -> None:
        self.options = self.Options() if options is None else options

    @property
    def needs_hessian(self) -> bool:
        """Whether the layer's ``X^T X`` must be gathered (it costs ``in x in`` memory)."""
        return False

    def check(self, pattern: Pattern) -> None:
        """Raise :class:`~prunekit.ConfigError` if the method cannot produce ``pattern``."""

    @abstractmethod
    def prune(self, weight: torch.Tensor, stats: InputStats, sparsity: float,
              pattern: Pattern) -> torch.Tensor:
        """The pruned ``[out, in]`` weight (float32); ``weight`` itself is not changed."""


class MaskingMethod(OneShotMethod):
    """Zero the lowest-scored weights of every row (or N:M group); no weight update."""

    Options: ClassVar[type] = MaskOptions

    @property
    def needs_hessian(self) -> bool:
        return self.options.swap_rounds > 0

    @abstractmethod
    def scores(self, weight: torch.Tensor, stats: InputStats) -> torch.Tensor:
        """One score per weight (higher = kept)."""

    def prune(self, weight: torch.Tensor, stats: InputStats, sparsity: float,
              pattern: Pattern) -> torch.Tensor:
        keep = pattern.masks({"weight": self.scores(weight, stats)}, sparsity)["weight"]
        if self.options.swap_rounds:
            nm = (pattern.n, pattern.m) if isinstance(pattern, NM) else None
            keep = swap_refine(weight, stats.hessian, keep, nm=nm,
                               max_rounds=self.options.swap_rounds)
        return weight.masked_fill(~keep, 0.0)


_METHODS: Registry[type[OneShotMethod]] = Registry(
    "one-shot method", "prunekit.llm.register_oneshot_method")


def register_oneshot_method(name: str) -> Callable[[type[OneShotMethod]], type[OneShotMethod]]:
    """Class decorator: make a one-shot method available by ``name``."""
    return _METHODS.register(name)


def available_oneshot_methods() -> list[str]:
    """Names of the registered one-shot methods, sorted."""
    return _METHODS.names()


def method_options(name: str, options: Any = None) -> Any:
    """The options dataclass of method ``name`` from an instance, a mapping or ``None``."""
    kind = _METHODS.get(name).Options
    if options is None:
        return kind()
    if isinstance(options, kind):
        return options
    if not isinstance(options, Mapping):
        raise ConfigError(f"options of one-shot method {name!r} must be a {kind.__name__} or a "
                          f"mapping of its fields, got {options!r}")
    known = {f.name for f in dataclasses.fields(kind)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(f"one-shot method {name!r} has no option {unknown[0]!r}; its options "
                          f"are {sorted(known) or 'none'}")
    return kind(**options)


def get_oneshot_method(name: str, options: Any = None) -> OneShotMethod:
    """The method registered as ``name`` with its options (see :func:`method_options`)."""
    return _METHODS.get(name)(method_options(name, options))
