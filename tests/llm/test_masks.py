"""Masks have exactly the requested pattern, for every method."""

from __future__ import annotations

import pytest
import torch

from prunekit.llm.config import OneShotConfig
from prunekit.llm.masks import nm_prune_mask, pruned_count, row_prune_mask
from prunekit.llm.methods import METHOD_FNS
from prunekit.llm.stats import InputStats


def _layer(rows: int = 24, cols: int = 64) -> tuple[torch.Tensor, InputStats]:
    g = torch.Generator().manual_seed(0)
    w = torch.randn(rows, cols, generator=g)
    x = torch.randn(256, cols, generator=g) @ torch.randn(cols, cols, generator=g) * 0.3
    stats = InputStats(cols, hessian=True, device=torch.device("cpu"))
    stats.add(x)
    return w, stats


def test_row_mask_prunes_exact_count_per_row() -> None:
    scores = torch.rand(7, 33)
    mask = row_prune_mask(scores, 10)
    assert (mask.sum(1) == 10).all()
    kept_min = scores.masked_fill(mask, float("inf")).min(1).values
    pruned_max = scores.masked_fill(~mask, float("-inf")).max(1).values
    assert (pruned_max <= kept_min).all()


@pytest.mark.parametrize("n,m", [(2, 4), (4, 8), (1, 4)])
def test_nm_mask_prunes_m_minus_n_per_group(n: int, m: int) -> None:
    mask = nm_prune_mask(torch.rand(5, 4 * m), n, m)
    assert ((~mask).reshape(5, 4, m).sum(-1) == n).all()


@pytest.mark.parametrize("method", sorted(METHOD_FNS))
@pytest.mark.parametrize("sparsity", [0.3, 0.5, 0.7])
def test_unstructured_exact_zeros_per_row(method: str, sparsity: float) -> None:
    w, stats = _layer()
    out = METHOD_FNS[method](w, stats, OneShotConfig(method=method, sparsity=sparsity,
                                                     blocksize=16))
    zeros = (out == 0).sum(1)
    assert (zeros == pruned_count(w.shape[1], sparsity)).all()


@pytest.mark.parametrize("method", sorted(METHOD_FNS))
@pytest.mark.parametrize("pattern,n,m", [("2:4", 2, 4), ("4:8", 4, 8)])
def test_nm_exactly_n_nonzeros_per_group(method: str, pattern: str, n: int, m: int) -> None:
    w, stats = _layer()
    out = METHOD_FNS[method](w, stats, OneShotConfig(method=method, sparsity=(m - n) / m,
                                                     pattern=pattern, blocksize=16))
    nonzeros = (out != 0).reshape(w.shape[0], -1, m).sum(-1)
    assert (nonzeros == n).all()
