"""Wanda: zero the lowest ``|W_ij| * ||X_j||`` in every output row (or N:M group)."""

from __future__ import annotations

import torch

from ...mask.calibration import InputStats
from ...mask.scores import expand_input_norm, wanda_scores
from .base import MaskingMethod, register_oneshot_method


@register_oneshot_method("wanda")
class Wanda(MaskingMethod):
    """Weights times the L2 norm of their input feature on the calibration data."""

    def scores(self, weight: torch.Tensor, stats: InputStats) -> torch.Tensor:
        return wanda_scores(weight, expand_input_norm(weight.shape, stats.column_norms))
