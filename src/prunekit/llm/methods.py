"""The one-shot pruning methods, keyed by name: weight + input statistics -> pruned weight."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .config import OneShotConfig
from .masks import prune_mask
from .sparsegpt import sparsegpt_prune
from .stats import InputStats
from .swaps import swap_refine

MethodFn = Callable[[torch.Tensor, InputStats, OneShotConfig], torch.Tensor]


def _apply_mask(weight: torch.Tensor, mask: torch.Tensor, stats: InputStats,
                config: OneShotConfig) -> torch.Tensor:
    """Zero the masked weights, after refining the mask by swaps when the config asks."""
    if config.swap_rounds:
        mask = swap_refine(weight, stats.hessian, mask, nm=config.nm,
                           max_rounds=config.swap_rounds)
    return weight.masked_fill(mask, 0.0)


def magnitude(weight: torch.Tensor, stats: InputStats, config: OneShotConfig) -> torch.Tensor:
    """Zero the smallest ``|W|`` per row (or per N:M group)."""
    return _apply_mask(weight, prune_mask(weight.abs(), config.sparsity, config.nm), stats, config)


def wanda_scores(weight: torch.Tensor, column_norms: torch.Tensor) -> torch.Tensor:
    """Wanda importance ``|W_ij| * ||X_j||_2``."""
    return weight.abs() * column_norms.to(weight)[None, :]


def wanda(weight: torch.Tensor, stats: InputStats, config: OneShotConfig) -> torch.Tensor:
    """Zero the lowest ``|W| * ||X||`` per output row (or per N:M group); no weight update."""
    mask = prune_mask(wanda_scores(weight, stats.column_norms), config.sparsity, config.nm)
    return _apply_mask(weight, mask, stats, config)


def sparsegpt(weight: torch.Tensor, stats: InputStats, config: OneShotConfig) -> torch.Tensor:
    """SparseGPT: OBS pruning with re-fit of the kept weights."""
    return sparsegpt_prune(weight, stats.hessian, config.sparsity, nm=config.nm,
                           blocksize=config.blocksize, damp=config.damp)


METHOD_FNS: dict[str, MethodFn] = {"magnitude": magnitude, "wanda": wanda,
                                   "sparsegpt": sparsegpt}
