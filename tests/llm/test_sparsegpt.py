"""SparseGPT's OBS solver: identity at 0%, lazy block updates exact, better than masking."""

from __future__ import annotations

import torch

from prunekit.llm.methods import Magnitude, SparseGPT, SparseGPTOptions, Wanda
from prunekit.llm.sparsegpt import sparsegpt_prune
from prunekit.mask.calibration import InputStats
from prunekit.mask.patterns import Unstructured


def _data(rows: int = 32, cols: int = 96) -> tuple[torch.Tensor, torch.Tensor, InputStats]:
    g = torch.Generator().manual_seed(1)
    w = torch.randn(rows, cols, generator=g)
    x = torch.randn(512, cols, generator=g) @ torch.randn(cols, cols, generator=g) * 0.2
    stats = InputStats(cols, hessian=True, device=torch.device("cpu"))
    stats.add(x)
    return w, x, stats


def _error(w: torch.Tensor, w2: torch.Tensor, x: torch.Tensor) -> float:
    return float(((w - w2) @ x.t()).norm())


def test_zero_sparsity_leaves_weights_unchanged() -> None:
    w, _, stats = _data()
    out = sparsegpt_prune(w, stats.hessian, 0.0, blocksize=32)
    torch.testing.assert_close(out, w, rtol=0, atol=1e-6)


def test_inputs_are_not_modified() -> None:
    w, _, stats = _data()
    w0, h0 = w.clone(), stats.hessian.clone()
    sparsegpt_prune(w, stats.hessian, 0.5)
    assert torch.equal(w, w0) and torch.equal(stats.hessian, h0)


def test_lazy_block_updates_equal_column_by_column() -> None:
    # With N:M the masks do not depend on the block size, so any blocksize must give the
    # same weights: the lazy batched update is exact, not an approximation.
    w, _, stats = _data()
    a = sparsegpt_prune(w, stats.hessian, 0.5, nm=(2, 4), blocksize=4)
    b = sparsegpt_prune(w, stats.hessian, 0.5, nm=(2, 4), blocksize=96)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_reconstruction_beats_wanda_and_magnitude() -> None:
    g = torch.Generator().manual_seed(3)
    w = torch.randn(32, 96, generator=g)
    # correlated inputs (rank 24 + noise): what the kept weights can compensate for
    x = torch.randn(512, 24, generator=g) @ torch.randn(24, 96, generator=g)
    x += 0.1 * torch.randn(512, 96, generator=g)
    stats = InputStats(96, hessian=True, device=torch.device("cpu"))
    stats.add(x)
    methods = (Magnitude(), Wanda(), SparseGPT(SparseGPTOptions(blocksize=32)))
    errors = {m.name: _error(w, m.prune(w, stats, 0.5, Unstructured("row")), x) for m in methods}
    assert errors["sparsegpt"] < 0.75 * min(errors["wanda"], errors["magnitude"]), errors


def test_dead_input_columns_are_zeroed() -> None:
    w, x, _ = _data()
    x[:, 5] = 0.0
    stats = InputStats(w.shape[1], hessian=True, device=torch.device("cpu"))
    stats.add(x)
    out = sparsegpt_prune(w, stats.hessian, 0.25)
    assert (out[:, 5] == 0).all() and torch.isfinite(out).all()
