"""SparseGPT: OBS pruning that re-fits the kept weights (:mod:`prunekit.llm.sparsegpt`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...errors import ConfigError
from ...mask.calibration import InputStats
from ...mask.patterns import NM, Pattern
from ..._internal.validate import check_int, check_number
from ..sparsegpt import sparsegpt_prune
from .base import OneShotMethod, register_oneshot_method


@dataclass(frozen=True)
class SparseGPTOptions:
    """``blocksize`` columns are pruned and compensated at a time; ``damp`` (a fraction of
    the mean Hessian diagonal) is added to the Hessian's diagonal."""

    blocksize: int = 128
    damp: float = 0.01

    def __post_init__(self) -> None:
        check_int(self.blocksize, "blocksize", minimum=1)
        check_number(self.damp, "damp", above=0.0, below=1.0, hint="0.01 is typical")


@register_oneshot_method("sparsegpt")
class SparseGPT(OneShotMethod):
    """Chooses the mask while it re-fits the kept weights, column block by column block."""

    Options = SparseGPTOptions

    @property
    def needs_hessian(self) -> bool:
        return True

    def check(self, pattern: Pattern) -> None:
        if isinstance(pattern, NM) and self.options.blocksize % pattern.m:
            raise ConfigError(
                f"SparseGPT blocksize ({self.options.blocksize}) must be a multiple of M "
                f"({pattern.m}) so N:M groups do not straddle SparseGPT blocks")

    def prune(self, weight: torch.Tensor, stats: InputStats, sparsity: float,
              pattern: Pattern) -> torch.Tensor:
        nm = (pattern.n, pattern.m) if isinstance(pattern, NM) else None
        return sparsegpt_prune(weight, stats.hessian, sparsity, nm=nm,
                               blocksize=self.options.blocksize, damp=self.options.damp)
