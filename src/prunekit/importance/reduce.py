"""Shared machinery of the criteria: reduction across coupled slices, normalization, bases.

A criterion that scores a group in several parts (one score vector per member, or per
BatchNorm scale) reduces the parts to one score per unit with a :data:`Reduction`, then
normalizes the result within the group with a :data:`Normalization`, so that scores of
different groups can be ranked together. The base classes here own that logic; concrete
criteria only say how to compute the parts.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import get_args
from collections.abc import Sequence

import torch

from ..errors import ConfigError
from .base import GroupSlices, Importance, MemberSlice, Normalization, Reduction

REDUCTIONS: tuple[str, ...] = get_args(Reduction)
NORMALIZATIONS: tuple[str, ...] = get_args(Normalization)


def as_float(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` detached, in float32 unless it is already float32 or float64."""
    tensor = tensor.detach()
    if tensor.dtype in (torch.float32, torch.float64):
        return tensor
    return tensor.to(torch.float32)


def check_option(kind: str, value: str, allowed: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``allowed``, else raise a :class:`ConfigError`."""
    if value not in allowed:
        raise ConfigError(f"unknown {kind} {value!r}; choose one of {list(allowed)}")
    return value


def reduce_scores(parts: Sequence[torch.Tensor], how: Reduction = "sum") -> torch.Tensor:
    """Reduce score vectors of equal shape ``[n_units]`` to one, element-wise."""
    check_option("reduction", how, REDUCTIONS)
    if len(parts) == 0:
        raise ConfigError("nothing to reduce: a criterion produced no partial scores")
    stacked = torch.stack([as_float(p) for p in parts])
    if how == "sum":
        return stacked.sum(dim=0)
    if how == "mean":
        return stacked.mean(dim=0)
    return stacked.amax(dim=0)


def normalize_scores(scores: torch.Tensor, how: Normalization = "none") -> torch.Tensor:
    """Normalize one group's scores so that scores of different groups are comparable.

    ``"mean"``, ``"max"`` and ``"sum"`` divide by that statistic of the group;
    ``"standard"`` subtracts the mean and divides by the (population) standard deviation.
    Division is by the divisor's absolute value, so the order of units never flips. When
    the divisor is zero (e.g. all scores zero, or all equal for ``"standard"``) the
    scores are left unchanged for the division step, so no NaN or infinity is produced.
    """
    check_option("normalization", how, NORMALIZATIONS)
    scores = as_float(scores)
    if how == "none" or scores.numel() == 0:
        return scores
    if how == "standard":
        centered = scores - scores.mean()
        divisor = scores.std(unbiased=False)
        return centered / divisor if divisor > 0 else centered
    if how == "mean":
        divisor = scores.mean()
    elif how == "max":
        divisor = scores.amax()
    else:
        divisor = scores.sum()
    divisor = divisor.abs()
    return scores / divisor if divisor > 0 else scores


class NormalizedImportance(Importance):
    """A criterion computing one raw score vector per group, then normalizing it.

    Subclasses implement :meth:`score`; calling the criterion checks the shape of the
    result and applies ``normalize``.
    """

    def __init__(self, normalize: Normalization = "none") -> None:
        self.normalize: Normalization = check_option(  # type: ignore[assignment]
            "normalization", normalize, NORMALIZATIONS
        )

    @abstractmethod
    def score(self, group: GroupSlices) -> torch.Tensor:
        """Raw (not normalized) scores of ``group``, shape ``[group.n_units]``."""

    def __call__(self, group: GroupSlices) -> torch.Tensor:
        scores = self.score(group)
        if tuple(scores.shape) != (group.n_units,):
            raise ConfigError(
                f"importance {self.name!r} produced scores of shape {tuple(scores.shape)} "
                f"for group {group.name!r}, expected ({group.n_units},)"
            )
        return normalize_scores(scores, self.normalize)

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({options})"


class ReducedImportance(NormalizedImportance):
    """A criterion computing several partial score vectors, reduced with ``reduce``."""

    def __init__(self, reduce: Reduction = "sum", normalize: Normalization = "none") -> None:
        super().__init__(normalize=normalize)
        self.reduce: Reduction = check_option(  # type: ignore[assignment]
            "reduction", reduce, REDUCTIONS
        )

    @abstractmethod
    def partial_scores(self, group: GroupSlices) -> Sequence[torch.Tensor]:
        """Score vectors of shape ``[group.n_units]`` to be reduced into one."""

    def score(self, group: GroupSlices) -> torch.Tensor:
        parts = self.partial_scores(group)
        for part in parts:
            if tuple(part.shape) != (group.n_units,):
                raise ConfigError(
                    f"importance {self.name!r} produced a partial score of shape "
                    f"{tuple(part.shape)} for group {group.name!r}, expected ({group.n_units},)"
                )
        return reduce_scores(parts, self.reduce)


def scored_members(group: GroupSlices, criterion: str) -> tuple[MemberSlice, ...]:
    """The parameter members of ``group`` (buffers ignored), checked for consistency."""
    members = group.weight_members()
    if not members:
        raise ConfigError(
            f"group {group.name!r} has no parameter members for importance {criterion!r} "
            "to score (only buffers); use a criterion that does not read weights, or "
            "ignore the modules of this group"
        )
    for member in members:
        if member.n_units != group.n_units:
            raise ConfigError(
                f"member {member.name!r} of group {group.name!r} indexes {member.n_units} "
                f"units, but the group has {group.n_units}"
            )
    return members


class MemberImportance(ReducedImportance):
    """A criterion scoring each parameter member on its own; buffers are ignored.

    Subclasses implement :meth:`score_member`; per-member scores are reduced across
    members with ``reduce`` and normalized within the group with ``normalize``.
    """

    @abstractmethod
    def score_member(self, member: MemberSlice, group: GroupSlices) -> torch.Tensor:
        """Scores of ``member``'s units, shape ``[member.n_units]``."""

    def partial_scores(self, group: GroupSlices) -> Sequence[torch.Tensor]:
        return [self.score_member(m, group) for m in scored_members(group, self.name)]
