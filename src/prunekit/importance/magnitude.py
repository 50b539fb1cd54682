"""Magnitude criteria: the norm of each unit's weights."""

from __future__ import annotations

import torch

from .base import GroupSlices, MemberSlice, register_importance
from .reduce import MemberImportance, scored_members


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


def _is_bias(member: MemberSlice) -> bool:
    return member.tensor.dim() == 1 and member.name.rsplit(".", 1)[-1] == "bias"


@register_importance("group_l2")
class GroupL2Importance(MemberImportance):
    """Euclidean norm of all of a unit's weights across its coupled layers, biases left out.

    Each member contributes the squared norm of the unit's slice; summed across members
    (``reduce="sum"``, the default) this ranks units by the norm of their whole coupled weight
    vector, the measure group lasso penalises (``"l2"`` instead adds the members' norms).
    Biases are offsets, not connections, and are skipped unless a group has nothing else.
    """

    def partial_scores(self, group: GroupSlices) -> list[torch.Tensor]:
        members = scored_members(group, self.name)
        weights = [m for m in members if not _is_bias(m)] or list(members)
        return [self.score_member(m, group) for m in weights]

    def score_member(self, member: MemberSlice, group: GroupSlices) -> torch.Tensor:
        return member.unit_norms(2).square()
