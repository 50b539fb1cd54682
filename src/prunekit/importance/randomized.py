"""Random scores: a baseline that every real criterion should beat."""

from __future__ import annotations

import zlib

import torch

from ..errors import ConfigError
from .base import GroupSlices, Normalization, register_importance
from .reduce import NormalizedImportance


@register_importance("random")
class RandomImportance(NormalizedImportance):
    """Uniform random scores in ``[0, 1)``, reproducible from ``seed``.

    Each group draws from its own ``torch.Generator`` seeded by ``seed`` and the group's
    name, so the scores of a group do not depend on the order groups are scored in, differ
    between groups, and never touch the global random state.
    """

    def __init__(self, seed: int = 0, normalize: Normalization = "none") -> None:
        super().__init__(normalize=normalize)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"random importance seed must be an integer, got {seed!r}")
        self.seed = seed

    def score(self, group: GroupSlices) -> torch.Tensor:
        group_key = zlib.crc32(group.name.encode("utf-8"))
        generator = torch.Generator(device="cpu")
        generator.manual_seed((self.seed * 0x9E3779B1 + group_key) % (2**63))
        scores = torch.rand(group.n_units, generator=generator)
        device = group.members[0].tensor.device if group.members else torch.device("cpu")
        return scores.to(device)
