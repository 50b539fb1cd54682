"""Normalization-scale criterion (network slimming): ``|gamma|`` of BatchNorm-like layers."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..errors import ConfigError
from .base import GroupSlices, register_importance
from .reduce import ReducedImportance, as_float

SCALE_KEY = "scale"


@register_importance("bn_scale")
class BNScaleImportance(ReducedImportance):
    """Absolute value of the per-unit affine scale of normalization layers.

    This criterion does not look at layer types. By convention the engine puts the
    per-unit scale of every normalization affine weight in the group into
    ``group.extras["scale"]``: shape ``[n_units]`` for one such layer, or
    ``[n_layers, n_units]`` when the group couples several (e.g. BatchNorms joined by a
    residual add), in which case their ``|gamma|`` are reduced with ``reduce``.
    A group without that entry raises a :class:`ConfigError`.
    """

    def partial_scores(self, group: GroupSlices) -> Sequence[torch.Tensor]:
        scale = group.extras.get(SCALE_KEY)
        if scale is None:
            raise ConfigError(
                f"group {group.name!r} has no BatchNorm (normalization) scale, so importance "
                f"'bn_scale' cannot score it; use 'l2' instead, or ignore this group"
            )
        scale = as_float(scale).abs()
        if scale.dim() == 1:
            scale = scale.unsqueeze(0)
        if scale.dim() != 2 or scale.shape[1] != group.n_units:
            raise ConfigError(
                f"extras['scale'] of group {group.name!r} has shape {tuple(scale.shape)}, "
                f"expected ({group.n_units},) or (n_layers, {group.n_units})"
            )
        return list(scale.unbind(0))
