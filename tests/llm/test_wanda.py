"""Wanda uses activation norms: it beats magnitude when inputs have outlier features."""

from __future__ import annotations

import torch

from prunekit.llm.methods import Magnitude, Wanda
from prunekit.mask.calibration import InputStats
from prunekit.mask.patterns import Unstructured
from prunekit.mask.scores import expand_input_norm, wanda_scores


def test_wanda_beats_magnitude_on_outlier_features() -> None:
    g = torch.Generator().manual_seed(2)
    rows, cols = 48, 128
    w = torch.randn(rows, cols, generator=g)
    base = torch.randn(1024, 16, generator=g) @ torch.randn(16, cols, generator=g)  # correlated
    x = base + 0.1 * torch.randn(1024, cols, generator=g)
    x[:, :6] *= 25.0  # a few outlier features, as in LLM activations
    stats = InputStats(cols, hessian=False, device=torch.device("cpu"))
    stats.add(x)
    rows_pattern = Unstructured("row")
    err = {cls.name: float(((w - cls().prune(w, stats, 0.5, rows_pattern)) @ x.t()).norm())
           for cls in (Magnitude, Wanda)}
    assert err["wanda"] < 0.7 * err["magnitude"], err


def test_scores_are_weight_times_column_norm() -> None:
    w = torch.tensor([[1.0, -2.0], [3.0, 0.5]])
    scores = wanda_scores(w, expand_input_norm(w.shape, torch.tensor([2.0, 0.5])))
    assert torch.equal(scores, torch.tensor([[2.0, 1.0], [6.0, 0.25]]))


def test_token_mask_excludes_padding() -> None:
    stats = InputStats(2, hessian=True, device=torch.device("cpu"))
    stats.token_mask = torch.tensor([[True, False]])
    stats.add(torch.tensor([[[1.0, 2.0], [100.0, 100.0]]]))
    assert stats.count == 1
    assert torch.equal(stats.sumsq, torch.tensor([1.0, 4.0]))
    assert torch.equal(stats.hessian, torch.tensor([[1.0, 2.0], [2.0, 4.0]]))
