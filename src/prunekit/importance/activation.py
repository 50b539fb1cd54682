"""Activation criteria: statistics of each unit's output on calibration data."""

from __future__ import annotations

import torch

from ..errors import ConfigError
from .base import ActivationStats, GroupSlices, register_importance
from .reduce import NormalizedImportance, as_float


def group_activations(group: GroupSlices, criterion: str) -> ActivationStats:
    """The activation statistics of ``group``, or a :class:`ConfigError` saying how to get them."""
    if group.activations is None:
        raise ConfigError(
            f"importance {criterion!r} needs activation statistics, but group "
            f"{group.name!r} has none; pass calibration data so activations can be recorded"
        )
    return group.activations


def _per_unit(values: torch.Tensor, group: GroupSlices, what: str) -> torch.Tensor:
    if tuple(values.shape) != (group.n_units,):
        raise ConfigError(
            f"activation statistic {what} of group {group.name!r} has shape "
            f"{tuple(values.shape)}, expected ({group.n_units},)"
        )
    return as_float(values)


@register_importance("activation")
class ActivationImportance(NormalizedImportance):
    """Mean absolute activation of each unit on calibration data."""

    needs_activations = True

    def score(self, group: GroupSlices) -> torch.Tensor:
        stats = group_activations(group, self.name)
        return _per_unit(stats.mean_abs, group, "mean_abs")


@register_importance("apoz")
class APoZImportance(NormalizedImportance):
    """``1 - `` average percentage of zeros: units that are more often zero score lower."""

    needs_activations = True

    def score(self, group: GroupSlices) -> torch.Tensor:
        stats = group_activations(group, self.name)
        return 1.0 - _per_unit(stats.zero_fraction, group, "zero_fraction")
