"""Configuration of a structured pruning run (a frozen, validated dataclass)."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal
from collections.abc import Mapping

from ..errors import ConfigError
from ..importance.base import Importance, Normalization, Reduction, available_importances
from .._internal.validate import check_choice, check_fraction, check_int, check_number, settings_of


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
        check_fraction(self.ratio, "ratio")
        check_fraction(self.max_ratio, "max_ratio")
        check_choice(self.split_units, "split_units", ("inner", "outer"),
                     hint="'inner' prunes head-size positions, 'outer' whole heads")
        check_choice(self.scope, "scope", ("local", "global"))
        if isinstance(self.importance, str) and self.importance not in available_importances():
            raise ConfigError(f"unknown importance criterion {self.importance!r}; choose one of "
                              f"{available_importances()}")
        for name in ("flops_reduction", "params_reduction"):
            check_number(getattr(self, name), name, minimum=1.0, optional=True,
                         hint="e.g. 2.0 for half")
        if self.flops_reduction is not None and self.params_reduction is not None:
            raise ConfigError("give flops_reduction or params_reduction, not both")
        check_int(self.round_to, "round_to", minimum=1)
        check_int(self.min_units, "min_units", minimum=1)
        for pattern, value in dict(self.overrides).items():
            check_fraction(value, f"override ratio for {pattern!r}")
        object.__setattr__(self, "overrides", MappingProxyType(dict(self.overrides)))
        object.__setattr__(self, "ignore", tuple(self.ignore))
        object.__setattr__(self, "input_features",
                           tuple((int(a), int(b)) for a, b in self.input_features))

    def criterion(self) -> Importance:
        """The importance criterion with this config's ``reduce`` and ``normalize``
        (``normalize`` defaults to ``"mean"`` in global scope, so groups compare)."""
        from ..importance.scoring import make_importance

        normalize = self.normalize or ("mean" if self.scope == "global" else "none")
        return make_importance(self.importance, reduce=self.reduce, normalize=normalize)

    def settings(self) -> dict[str, Any]:
        """Plain-data view for plans and reports (every field; a criterion instance by its
        class name)."""
        return settings_of(self)
