"""Masks have exactly the requested pattern, for every registered one-shot method."""

from __future__ import annotations

import pytest
import torch

from prunekit.llm.config import OneShotConfig
from prunekit.llm.methods import available_oneshot_methods
from prunekit.mask.calibration import InputStats
from prunekit.mask.compute import nm_mask, prune_lowest_per_row, pruned_count


def _layer(rows: int = 24, cols: int = 64) -> tuple[torch.Tensor, InputStats]:
    g = torch.Generator().manual_seed(0)
    w = torch.randn(rows, cols, generator=g)
    x = torch.randn(256, cols, generator=g) @ torch.randn(cols, cols, generator=g) * 0.3
    stats = InputStats(cols, hessian=True, device=torch.device("cpu"))
    stats.add(x)
    return w, stats


def _prune(method: str, w: torch.Tensor, stats: InputStats, **settings: object) -> torch.Tensor:
    options = {"blocksize": 16} if method == "sparsegpt" else None
    config = OneShotConfig(method=method, options=options, **settings)  # type: ignore[arg-type]
    return config.method_impl().prune(w, stats, config.sparsity, config.mask_pattern)


def test_row_mask_prunes_exact_count_per_row() -> None:
    scores = torch.rand(7, 33)
    keep = prune_lowest_per_row(scores, 10)
    assert ((~keep).sum(1) == 10).all()
    kept_min = scores.masked_fill(~keep, float("inf")).min(1).values
    pruned_max = scores.masked_fill(keep, float("-inf")).max(1).values
    assert (pruned_max <= kept_min).all()


@pytest.mark.parametrize("n,m", [(2, 4), (4, 8), (1, 4)])
def test_nm_mask_keeps_n_per_group(n: int, m: int) -> None:
    keep = nm_mask(torch.rand(5, 4 * m), n, m)
    assert (keep.reshape(5, 4, m).sum(-1) == n).all()


@pytest.mark.parametrize("method", available_oneshot_methods())
@pytest.mark.parametrize("sparsity", [0.3, 0.5, 0.7])
def test_unstructured_exact_zeros_per_row(method: str, sparsity: float) -> None:
    w, stats = _layer()
    zeros = (_prune(method, w, stats, sparsity=sparsity) == 0).sum(1)
    assert (zeros == pruned_count(w.shape[1], sparsity)).all()


@pytest.mark.parametrize("method", available_oneshot_methods())
@pytest.mark.parametrize("pattern,n,m", [("2:4", 2, 4), ("4:8", 4, 8)])
def test_nm_exactly_n_nonzeros_per_group(method: str, pattern: str, n: int, m: int) -> None:
    w, stats = _layer()
    out = _prune(method, w, stats, sparsity=(m - n) / m, pattern=pattern)
    nonzeros = (out != 0).reshape(w.shape[0], -1, m).sum(-1)
    assert (nonzeros == n).all()
