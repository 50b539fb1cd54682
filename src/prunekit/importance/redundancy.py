"""Redundancy criteria: a unit that others can stand in for is less important.

Both compare whole units: each unit's vector is the concatenation of its slices in every
parameter member of the group (buffers ignored).
"""

from __future__ import annotations

import torch

from .base import GroupSlices, register_importance
from .reduce import NormalizedImportance, as_float, scored_members


def unit_vectors(group: GroupSlices, criterion: str) -> torch.Tensor:
    """Each unit's parameter slices concatenated, shape ``[n_units, features]``."""
    members = scored_members(group, criterion)
    return torch.cat([as_float(m.unit_values()) for m in members], dim=1)


@register_importance("redundancy")
class RedundancyImportance(NormalizedImportance):
    """``1 - max`` cosine similarity of a unit to any other unit of the group.

    A unit that (nearly) duplicates another scores near 0. A unit whose vector is all
    zeros has no direction; it is treated as fully redundant and scores 0. A group of one
    unit scores 1.
    """

    def score(self, group: GroupSlices) -> torch.Tensor:
        vectors = unit_vectors(group, self.name)
        n = vectors.shape[0]
        if n < 2:
            return torch.ones(n, dtype=vectors.dtype, device=vectors.device)
        norms = torch.linalg.vector_norm(vectors, dim=1)
        zero = norms == 0
        unit = vectors / torch.where(zero, torch.ones_like(norms), norms).unsqueeze(1)
        similarity = (unit @ unit.T).clamp(-1.0, 1.0)
        similarity.fill_diagonal_(-float("inf"))
        max_similarity = similarity.amax(dim=1)
        max_similarity = torch.where(zero, torch.ones_like(max_similarity), max_similarity)
        return 1.0 - max_similarity


@register_importance("geometric_median")
class GeometricMedianImportance(NormalizedImportance):
    """Sum of Euclidean distances from a unit's vector to every other unit's (FPGM).

    Units near the geometric median of the group can be replaced by the others and score
    lowest.
    """

    def score(self, group: GroupSlices) -> torch.Tensor:
        vectors = unit_vectors(group, self.name).double()  # float64 keeps the fast matmul form exact enough
        distances = torch.cdist(vectors.unsqueeze(0), vectors.unsqueeze(0)).squeeze(0)
        return distances.sum(dim=1).to(torch.float32)
