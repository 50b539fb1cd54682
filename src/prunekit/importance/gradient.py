"""Gradient-based criteria: gradient magnitude and first-order Taylor expansion.

Both read :attr:`MemberSlice.grad`, which the engine fills by running a loss on
calibration data; they ignore buffers.
"""

from __future__ import annotations

from typing import Literal

import torch

from ..errors import ConfigError
from .base import GroupSlices, MemberSlice, Normalization, Reduction, register_importance
from .reduce import MemberImportance, as_float, check_option


def member_grad(member: MemberSlice, group: GroupSlices, criterion: str) -> torch.Tensor:
    """The gradient of ``member``, or a :class:`ConfigError` saying how to get one."""
    grad = member.grad
    if grad is None:
        raise ConfigError(
            f"importance {criterion!r} needs gradients, but parameter {member.name!r} of "
            f"group {group.name!r} has none; pass calibration data and a loss so that "
            "gradients can be computed (and make sure the parameter requires grad)"
        )
    if grad.shape != member.tensor.shape:
        raise ConfigError(
            f"gradient of {member.name!r} in group {group.name!r} has shape "
            f"{tuple(grad.shape)}, expected {tuple(member.tensor.shape)}"
        )
    return grad


@register_importance("gradient")
class GradientImportance(MemberImportance):
    """Mean (or sum, with ``unit_reduce="sum"``) of ``|g|`` over each unit's slice."""

    needs_gradients = True

    def __init__(
        self,
        unit_reduce: Literal["mean", "sum"] = "mean",
        reduce: Reduction = "sum",
        normalize: Normalization = "none",
    ) -> None:
        super().__init__(reduce=reduce, normalize=normalize)
        self.unit_reduce = check_option("gradient unit reduction", unit_reduce, ("mean", "sum"))

    def score_member(self, member: MemberSlice, group: GroupSlices) -> torch.Tensor:
        grad = as_float(member.unit_values(member_grad(member, group, self.name))).abs()
        return grad.mean(dim=1) if self.unit_reduce == "mean" else grad.sum(dim=1)


@register_importance("taylor")
class TaylorImportance(MemberImportance):
    """First-order Taylor estimate of the loss change when a unit is removed.

    Default: ``|sum(w * g)|`` over each unit's slice (the change of removing the whole
    unit). With ``per_element=True``: ``sum(|w * g|)`` (each weight's change counted on
    its own, so contributions of opposite signs do not cancel).
    """

    needs_gradients = True

    def __init__(
        self,
        per_element: bool = False,
        reduce: Reduction = "sum",
        normalize: Normalization = "none",
    ) -> None:
        super().__init__(reduce=reduce, normalize=normalize)
        self.per_element = bool(per_element)

    def score_member(self, member: MemberSlice, group: GroupSlices) -> torch.Tensor:
        grad = as_float(member.unit_values(member_grad(member, group, self.name)))
        product = as_float(member.unit_values()) * grad
        if self.per_element:
            return product.abs().sum(dim=1)
        return product.sum(dim=1).abs()
