"""Magnitude criteria: the norm of each unit's weights."""

from __future__ import annotations

import torch

from .base import GroupSlices, MemberSlice, register_importance
from .reduce import MemberImportance


@register_importance("l1")
class L1Importance(MemberImportance):
    """Sum of absolute weights of each unit's slice, per member, reduced across members.

    Buffers (running statistics) are ignored. Options: ``reduce`` (``"sum"``, ``"mean"``,
    ``"max"``) across members and ``normalize`` within the group.
    """

    def score_member(self, member: MemberSlice, group: GroupSlices) -> torch.Tensor:
        return member.unit_norms(1)


@register_importance("l2")
class L2Importance(MemberImportance):
    """Euclidean norm of each unit's slice, per member, reduced across members.

    Buffers (running statistics) are ignored. Options: ``reduce`` (``"sum"``, ``"mean"``,
    ``"max"``) across members and ``normalize`` within the group.
    """

    def score_member(self, member: MemberSlice, group: GroupSlices) -> torch.Tensor:
        return member.unit_norms(2)
