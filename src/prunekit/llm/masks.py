"""Prune-masks (True = zeroed) from per-weight scores of a 2-D ``[out, in]`` weight.

Unstructured masks zero the same number of weights in every output row; N:M masks zero
``M - N`` of every ``M`` consecutive weights along the input dimension.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError


def pruned_count(total: int, sparsity: float) -> int:
    """How many of ``total`` weights a row loses at ``sparsity`` (rounded to nearest)."""
    return round(sparsity * total)


def check_nm_shape(name: str, in_features: int, n: int, m: int) -> None:
    """Raise :class:`ConfigError` unless ``in_features`` is divisible by ``m``."""
    if in_features % m:
        raise ConfigError(
            f"{n}:{m} sparsity runs along the input dimension, but layer {name!r} has "
            f"{in_features} input features, not divisible by {m}; add it to "
            f"OneShotConfig(ignore=...) or choose an M that divides {in_features}"
        )


def row_prune_mask(scores: torch.Tensor, count: int) -> torch.Tensor:
    """Mask of the ``count`` lowest scores in every row."""
    mask = torch.zeros_like(scores, dtype=torch.bool)
    if count > 0:
        idx = torch.topk(scores, count, dim=1, largest=False).indices
        mask.scatter_(1, idx, True)
    return mask


def nm_prune_mask(scores: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Mask of the ``m - n`` lowest scores in every group of ``m`` along dim 1."""
    rows, cols = scores.shape
    if cols % m:
        raise ConfigError(f"N:M mask: {cols} columns are not divisible by M={m}")
    grouped = scores.reshape(rows, cols // m, m)
    idx = torch.topk(grouped, m - n, dim=2, largest=False).indices
    mask = torch.zeros_like(grouped, dtype=torch.bool)
    mask.scatter_(2, idx, True)
    return mask.reshape(rows, cols)


def prune_mask(scores: torch.Tensor, sparsity: float,
               nm: tuple[int, int] | None) -> torch.Tensor:
    """Per-row unstructured mask at ``sparsity``, or an N:M mask when ``nm`` is given."""
    if nm is not None:
        return nm_prune_mask(scores, *nm)
    return row_prune_mask(scores, pruned_count(scores.shape[1], sparsity))
