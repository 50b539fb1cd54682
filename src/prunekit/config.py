"""Configuration of a structured pruning run (a frozen, validated dataclass)."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, Mapping

from .errors import ConfigError
from .importance.base import Importance, Normalization, Reduction, available_importances


def _check_ratio(value: float, what: str) -> None:
    if not isinstance(value, (int, float)) or not 0.0 <= float(value) < 1.0:
        raise ConfigError(f"{what} must be a number in [0, 1), got {value!r}")


@dataclass(frozen=True)
class PruneConfig:
    """How much to prune, by which criterion, where, and under which constraints.

    - ``ratio``: fraction of units removed from each group (``scope="local"``) or from all
      units together (``scope="global"``).
    - ``flops_reduction`` / ``params_reduction``: instead of a ratio, remove until the model
      has that many times fewer FLOPs / parameters (e.g. ``2.0`` = half).
    - ``overrides``: per-group ratios by module name (glob patterns allowed).
    - ``ignore``: modules (glob patterns) whose tensors keep their shape.
    - ``round_to``: kept units per group are rounded up to a multiple (e.g. 8).
    - ``min_units``: never keep fewer units than this in any group (at least 1).
    - ``max_ratio``: in global scope, never remove more than this fraction of one group.
    - ``input_features``: ``(input position, dim)`` pairs whose features may be removed.
    - ``split_units``: when a reshape splits features into ``(heads, head size)``, prune
      the same head-size positions in every head (``"inner"``, the default) or whole heads
      (``"outer"``; with grouped-query attention, whole key/value groups).
    """

    ratio: float = 0.5
    importance: str | Importance = "l2"
    scope: Literal["local", "global"] = "local"
    reduce: Reduction = "sum"
    normalize: Normalization | None = None
    flops_reduction: float | None = None
    params_reduction: float | None = None
    overrides: Mapping[str, float] = field(default_factory=dict)
    ignore: tuple[str, ...] = ()
    round_to: int = 1
    min_units: int = 1
    max_ratio: float = 0.9
    input_features: tuple[tuple[int, int], ...] = ()
    exact_only: bool = False
    verify: bool = True
    split_units: Literal["inner", "outer"] = "inner"

    def __post_init__(self) -> None:
        _check_ratio(self.ratio, "ratio")
        _check_ratio(self.max_ratio, "max_ratio")
        if self.split_units not in ("inner", "outer"):
            raise ConfigError(f"split_units must be 'inner' (head size) or 'outer' (whole "
                              f"heads), got {self.split_units!r}")
        if self.scope not in ("local", "global"):
            raise ConfigError(f"scope must be 'local' or 'global', got {self.scope!r}")
        if isinstance(self.importance, str) and self.importance not in available_importances():
            raise ConfigError(f"unknown importance criterion {self.importance!r}; choose one of "
                              f"{available_importances()}")
        for name, target in (("flops_reduction", self.flops_reduction),
                             ("params_reduction", self.params_reduction)):
            if target is not None and (not isinstance(target, (int, float)) or target < 1.0):
                raise ConfigError(f"{name} must be a number >= 1 (e.g. 2.0 for half), got {target!r}")
        if self.flops_reduction is not None and self.params_reduction is not None:
            raise ConfigError("give flops_reduction or params_reduction, not both")
        if not isinstance(self.round_to, int) or self.round_to < 1:
            raise ConfigError(f"round_to must be a positive integer, got {self.round_to!r}")
        if not isinstance(self.min_units, int) or self.min_units < 1:
            raise ConfigError(f"min_units must be an integer >= 1, got {self.min_units!r}")
        for pattern, value in dict(self.overrides).items():
            _check_ratio(value, f"override ratio for {pattern!r}")
        object.__setattr__(self, "overrides", MappingProxyType(dict(self.overrides)))
        object.__setattr__(self, "ignore", tuple(self.ignore))
        object.__setattr__(self, "input_features",
                           tuple((int(a), int(b)) for a, b in self.input_features))

    def criterion(self) -> Importance:
        """The importance criterion with this config's ``reduce`` and ``normalize``
        (``normalize`` defaults to ``"mean"`` in global scope, so groups compare)."""
        from .scoring import make_importance

        normalize = self.normalize or ("mean" if self.scope == "global" else "none")
        return make_importance(self.importance, reduce=self.reduce, normalize=normalize)

    def settings(self) -> dict[str, Any]:
        """Plain-data view for plans and reports."""
        importance = self.importance if isinstance(self.importance, str) else \
            type(self.importance).__name__
        return {"ratio": self.ratio, "importance": importance, "scope": self.scope,
                "reduce": self.reduce, "normalize": self.normalize,
                "flops_reduction": self.flops_reduction,
                "params_reduction": self.params_reduction, "overrides": dict(self.overrides),
                "ignore": list(self.ignore), "round_to": self.round_to,
                "min_units": self.min_units, "max_ratio": self.max_ratio,
                "input_features": [list(p) for p in self.input_features],
                "split_units": self.split_units}
