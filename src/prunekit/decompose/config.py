"""Settings of a decomposition run (a frozen, validated dataclass)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from collections.abc import Mapping

from ..errors import ConfigError

__all__ = ["CRITERIA", "TARGETS", "DecomposeConfig"]

#: per-layer criteria and global targets; exactly one of them is given
CRITERIA = ("rank_ratio", "energy", "error")
TARGETS = ("params_reduction", "macs_reduction", "latency_reduction")
CONV_KINDS = ("spatial_svd", "tucker2")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(value)


@dataclass(frozen=True)
class DecomposeConfig:
    """Which layers, which factorizations, and how their ranks are chosen.

    Exactly one way to choose ranks:

    - per layer: ``rank_ratio`` (keep this fraction of each layer's full rank), ``energy``
      (the smallest rank whose spectrum keeps this fraction of ``Σ σ²``), or ``error`` (the
      cheapest rank whose relative output error ``||ΔW X|| / ||W X||`` on the calibration
      inputs, or ``||ΔW|| / ||W||`` without them, stays within this budget);
    - for the whole model: ``params_reduction``, ``macs_reduction`` or
      ``latency_reduction`` (times fewer, e.g. ``2.0``), reached while losing the least
      (squared relative error, or a measured sensitivity).

    ``ranks`` fixes the rank of the layers it names (glob patterns; an integer, or
    ``(r_in, r_out)`` for Tucker-2) whatever the criterion. A layer is left dense when its
    factorization would not have fewer parameters (or, with latency, would not run faster).

    - ``layers`` / ``ignore``: glob patterns of module names to consider / leave alone
      (default: every ``nn.Linear`` and ``nn.Conv2d``).
    - ``activation_aware``: Linear layers are whitened by their calibration inputs
      (SVD-LLM); ``damp`` (relative to the Gram matrix's mean diagonal) keeps it definite.
    - ``conv``: the factorizations tried on convolutions (``spatial_svd``, ``tucker2``;
      ``()`` leaves convolutions alone); per layer the one with the fewest parameters that
      meets the criterion wins.
    - ``round_to``: ranks are rounded up to a multiple (e.g. 8, for fast kernels).
    - ``points``: ranks measured per layer where each one costs a computation (conv errors
      on calibration data, Tucker-2 ranks, latency timings).
    - ``tucker_iterations``: HOOI sweeps after HOSVD.
    - ``time_layers``: time each factorized layer and its dense original on their real
      inputs (for reports; a latency target times every option anyway).
    """

    rank_ratio: float | None = None
    energy: float | None = None
    error: float | None = None
    params_reduction: float | None = None
    macs_reduction: float | None = None
    latency_reduction: float | None = None
    ranks: Mapping[str, Any] = field(default_factory=dict)
    layers: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    activation_aware: bool = False
    conv: tuple[str, ...] = CONV_KINDS
    damp: float = 0.01
    round_to: int = 1
    points: int = 16
    tucker_iterations: int = 2
    time_layers: bool = False

    def __post_init__(self) -> None:
        given = [n for n in (*CRITERIA, *TARGETS) if getattr(self, n) is not None]
        if len(given) > 1:
            raise ConfigError(f"give one way to choose ranks, not {len(given)}: {given}")
        if not given and not self.ranks:
            raise ConfigError("say how to choose ranks: one of rank_ratio=, energy=, error=, "
                              "params_reduction=, macs_reduction=, latency_reduction= (e.g. "
                              "energy=0.95), or ranks={layer: rank}")
        for name in ("rank_ratio", "energy"):
            value = getattr(self, name)
            if value is not None and (not _number(value) or not 0.0 < value <= 1.0):
                raise ConfigError(f"{name} must be a number in (0, 1], got {value!r}")
        if self.error is not None and (not _number(self.error) or self.error < 0.0):
            raise ConfigError(f"error must be a relative error >= 0 (0.05 = 5%), got "
                              f"{self.error!r}")
        for name in TARGETS:
            value = getattr(self, name)
            if value is not None and (not _number(value) or value <= 1.0):
                raise ConfigError(f"{name} must be a number > 1 (2.0 = half), got {value!r}")
        for name in ("activation_aware", "time_layers"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")
        conv = tuple(self.conv)
        unknown = [k for k in conv if k not in CONV_KINDS]
        if unknown:
            raise ConfigError(f"unknown conv factorization {unknown[0]!r}; choose from "
                              f"{list(CONV_KINDS)} (or () to leave convolutions alone)")
        if not _number(self.damp) or not 0.0 <= self.damp < 1.0:
            raise ConfigError(f"damp must be a number in [0, 1), got {self.damp!r}")
        for name, low in (("round_to", 1), ("points", 2), ("tucker_iterations", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
        ranks = {}
        for pattern, rank in dict(self.ranks).items():
            if not isinstance(pattern, str) or not pattern:
                raise ConfigError(f"ranks keys are module names or glob patterns, got "
                                  f"{pattern!r}")
            values = [rank] if isinstance(rank, int) and not isinstance(rank, bool) else rank
            if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple)) or \
                    not 1 <= len(values) <= 2 or any(isinstance(v, bool) or not isinstance(
                        v, int) for v in values):
                raise ConfigError(f"ranks[{pattern!r}] must be an integer, or [r_in, r_out] "
                                  f"for Tucker-2, got {rank!r}")
            if min(values) <= 0:
                raise ConfigError(f"ranks[{pattern!r}] = {rank!r}: a rank must be at least 1")
            ranks[pattern] = values[0] if len(values) == 1 else tuple(values)
        object.__setattr__(self, "ranks", MappingProxyType(ranks))
        object.__setattr__(self, "conv", conv)
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "ignore", tuple(self.ignore))

    @property
    def criterion(self) -> str | None:
        """The name of the rank criterion or target given (``None``: ``ranks`` only)."""
        return next((n for n in (*CRITERIA, *TARGETS) if getattr(self, n) is not None), None)

    def settings(self) -> dict[str, Any]:
        """Plain-data view for plans and reports."""
        return {"rank_ratio": self.rank_ratio, "energy": self.energy, "error": self.error,
                "params_reduction": self.params_reduction,
                "macs_reduction": self.macs_reduction,
                "latency_reduction": self.latency_reduction,
                "ranks": {k: list(v) if isinstance(v, tuple) else v
                          for k, v in self.ranks.items()},
                "layers": list(self.layers), "ignore": list(self.ignore),
                "activation_aware": self.activation_aware, "conv": list(self.conv),
                "damp": self.damp, "round_to": self.round_to, "points": self.points,
                "tucker_iterations": self.tucker_iterations, "time_layers": self.time_layers}
