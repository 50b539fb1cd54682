"""What a decomposition did, per layer and in total (plain data for reports)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from torch import nn

from ..plan.document import Plan

__all__ = ["DecomposeResult", "LayerDecision"]


@dataclass(frozen=True)
class LayerDecision:
    """One candidate layer: factorized (``kind``, ``rank``) or left dense (``reason``).

    ``error`` is the relative output error (``on``: ``calibration`` inputs or ``weights``),
    ``energy`` the fraction of the spectrum kept; ``ms_dense`` / ``ms`` the layer's measured
    time (when timed), dense and factorized.
    """

    name: str
    layer: str
    kind: str | None
    rank: tuple[int, ...] | None
    full_rank: tuple[int, ...] | None
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int
    error: float | None = None
    energy: float | None = None
    on: str | None = None
    ms_dense: float | None = None
    ms: float | None = None
    reason: str | None = None

    @property
    def factorized(self) -> bool:
        return self.kind is not None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("rank", "full_rank"):
            data[key] = None if data[key] is None else list(data[key])
        return data


@dataclass
class DecomposeResult:
    """The model (changed in place), the plan that replays it, and every layer's decision."""

    model: nn.Module
    plan: Plan
    layers: list[LayerDecision] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    target: dict[str, Any] = field(default_factory=dict)

    @property
    def factorized(self) -> list[LayerDecision]:
        return [d for d in self.layers if d.factorized]

    def to_dict(self) -> dict[str, Any]:
        """The report's ``decomposition`` section."""
        return {"settings": dict(self.plan.settings.get("decompose", {})),
                "target": dict(self.target),
                "layers": [d.to_dict() for d in self.layers],
                "skipped": dict(self.skipped)}
