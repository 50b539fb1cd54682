"""Outlier-weighted layer-wise sparsity (OWL): per-block sparsities from outlier ratios.

A block's outlier ratio is the fraction of its linear layers' Wanda scores ``|W|·||X||``
above ``threshold`` times their layer's mean score. Blocks rich in outliers matter more, so
they get lower sparsity: ratios are mapped linearly onto ``[target - spread, target +
spread]`` (most outliers → least sparse), then shifted so the parameter-weighted mean
sparsity equals ``target``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..mask.scores import expand_input_norm, wanda_scores


def outlier_ratio(weights: Sequence[torch.Tensor], column_norms: Sequence[torch.Tensor],
                  threshold: float) -> float:
    """Fraction of Wanda scores above ``threshold`` × their layer's mean, over all layers."""
    outliers, total = 0, 0
    for weight, norms in zip(weights, column_norms):
        scores = wanda_scores(weight.float(), expand_input_norm(weight.shape, norms))
        outliers += int((scores > threshold * scores.mean()).sum())
        total += scores.numel()
    return outliers / total if total else 0.0


def block_sparsities(ratios: Sequence[float], sizes: Sequence[int], target: float,
                     spread: float) -> list[float]:
    """Per-block sparsity: more outliers → less sparse, weighted mean ``target``."""
    r = torch.tensor(ratios, dtype=torch.float64)
    w = torch.tensor(sizes, dtype=torch.float64)
    span = float(r.max() - r.min())
    if span == 0.0 or spread == 0.0:
        return [float(target)] * len(ratios)
    sparsity = target + spread - 2 * spread * (r - r.min()) / span  # in [t - spread, t + spread]
    sparsity += target - float((sparsity * w).sum() / w.sum())
    return sparsity.clamp(0.0, 0.99).tolist()
