"""Magnitude: zero the smallest ``|W|`` in every output row (or N:M group)."""

from __future__ import annotations

import torch

from ...mask.calibration import InputStats
from .base import MaskingMethod, register_oneshot_method


@register_oneshot_method("magnitude")
class Magnitude(MaskingMethod):
    """Keeps the largest ``|W_ij|``; needs no calibration statistics."""

    def scores(self, weight: torch.Tensor, stats: InputStats) -> torch.Tensor:
        return weight.abs()
