"""``prunekit.decompose``: the entry point, importing the machinery only when called (so that
``import prunekit`` does not load the calibration, latency and sensitivity modules)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from torch import nn

from ..measure.counts import ExampleInputs
from ..plan.document import Plan
from .config import DecomposeConfig
from .result import DecomposeResult

if TYPE_CHECKING:
    from ..allocate.sensitivity import SensitivityResult
    from .latency import LayerTimes

__all__ = ["decompose"]


def decompose(model: nn.Module, example_inputs: ExampleInputs, *,
              config: DecomposeConfig | None = None, calibration: Iterable[Any] | None = None,
              plan: Plan | None = None, latency: LayerTimes | None = None,
              sensitivity: SensitivityResult | None = None,
              **options: Any) -> DecomposeResult:
    """Factorize ``model``'s Linear and Conv2d layers in place; see
    :func:`prunekit.decompose.api.decompose` (e.g. ``prunekit.decompose(model, x,
    energy=0.95)`` or ``params_reduction=2.0, calibration=batches, activation_aware=True``)."""
    from .api import decompose as run

    return run(model, example_inputs, config=config, calibration=calibration, plan=plan,
               latency=latency, sensitivity=sensitivity, **options)
