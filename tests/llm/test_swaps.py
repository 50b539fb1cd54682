"""Mask swaps: never raise a row's reconstruction error, keep the pattern, keep the weights."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from helpers.llm import calibration

from prunekit.errors import ConfigError
from prunekit.llm import OneShotConfig, prune_sequential
from prunekit.llm.methods import MaskOptions, Wanda
from prunekit.llm.swaps import reconstruction_error, swap_refine
from prunekit.mask.calibration import InputStats
from prunekit.mask.compute import nm_mask
from prunekit.mask.patterns import Unstructured
from prunekit.mask.scores import expand_input_norm, wanda_scores


def keep_mask(scores: torch.Tensor, sparsity: float, nm: tuple[int, int] | None) -> torch.Tensor:
    """Row-wise keep-mask of the lowest ``sparsity`` of ``scores`` pruned, or exact N:M."""
    if nm is not None:
        return nm_mask(scores, *nm)
    return Unstructured("row").masks({"w": scores}, sparsity)["w"]


def wanda_of(w: torch.Tensor, norms: torch.Tensor) -> torch.Tensor:
    return wanda_scores(w, expand_input_norm(w.shape, norms))


def _layer(rows: int, cols: int, seed: int) -> tuple[torch.Tensor, InputStats]:
    """A float64 weight and the statistics of correlated inputs with a few outlier features."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(rows, cols, generator=g, dtype=torch.float64)
    x = torch.randn(512, 8, generator=g, dtype=torch.float64) @ torch.randn(
        8, cols, generator=g, dtype=torch.float64)
    x += 0.3 * torch.randn(512, cols, generator=g, dtype=torch.float64)
    x[:, :3] *= 10.0
    stats = InputStats(cols, hessian=True, device=torch.device("cpu"))
    stats.add(x)
    return w, stats


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("nm", [None, (2, 4), (1, 4)])
def test_swaps_lower_every_row_error_and_keep_the_pattern(seed: int,
                                                           nm: tuple[int, int] | None) -> None:
    rows, cols = 12, 32
    w, stats = _layer(rows, cols, seed)
    sparsity = 0.5 if nm is None else (nm[1] - nm[0]) / nm[1]
    h = stats.hessian.double()
    start = keep_mask(wanda_of(w, stats.column_norms), sparsity, nm)
    refined = swap_refine(w, h, start, nm=nm, max_rounds=500)
    before = reconstruction_error(w, h, start)
    after = reconstruction_error(w, h, refined)
    assert torch.all(after <= before * (1 + 1e-12))
    assert after.sum() < 0.9 * before.sum()  # correlated inputs: the diagonal alone is not enough
    if nm is None:
        assert torch.equal(refined.sum(dim=1), start.sum(dim=1))
    else:
        per_group = refined.view(rows, cols // nm[1], nm[1]).sum(dim=2)
        assert torch.all(per_group == nm[0])


def test_nm_swaps_end_where_no_single_swap_in_a_group_helps() -> None:
    rows, cols, m = 6, 16, 4
    w, stats = _layer(rows, cols, 7)
    h = stats.hessian.double()
    refined = swap_refine(w, h, keep_mask(w.abs(), 0.5, (2, m)), nm=(2, m), max_rounds=1000)
    best = reconstruction_error(w, h, refined)
    for row in range(rows):
        for group in range(cols // m):
            idx = range(group * m, (group + 1) * m)
            for back, cut in itertools.product(idx, idx):
                if not refined[row, back] and refined[row, cut]:
                    trial = refined.clone()
                    trial[row, back], trial[row, cut] = True, False
                    assert reconstruction_error(w, h, trial)[row] >= best[row] - 1e-9


def test_wanda_masks_are_kept_when_inputs_are_uncorrelated() -> None:
    # With a diagonal Hessian the error of a row is the sum of its pruned Wanda scores
    # squared, which Wanda's own choice already minimises: no swap can help.
    g = torch.Generator().manual_seed(3)
    w = torch.randn(10, 24, generator=g, dtype=torch.float64)
    sumsq = torch.rand(24, generator=g, dtype=torch.float64) * 5 + 0.1
    start = keep_mask(wanda_of(w, sumsq.sqrt()), 0.5, None)
    assert torch.equal(swap_refine(w, torch.diag(sumsq / 7), start), start)


def test_rows_in_chunks_give_the_same_mask_and_weights_are_untouched() -> None:
    w, stats = _layer(10, 16, 1)
    start = keep_mask(w.abs(), 0.5, None)
    w_before = w.clone()
    whole = swap_refine(w, stats.hessian, start)
    assert torch.equal(swap_refine(w, stats.hessian, start, row_chunk=3), whole)
    assert torch.equal(w, w_before)
    assert not torch.equal(whole, start)


def test_rows_with_nothing_or_everything_pruned_are_left_alone() -> None:
    w, stats = _layer(2, 8, 2)
    start = torch.tensor([[False] * 8, [True] * 8])
    assert torch.equal(swap_refine(w, stats.hessian, start), start)


def test_bad_shapes_are_config_errors() -> None:
    w, stats = _layer(4, 8, 0)
    with pytest.raises(ConfigError, match="hessian"):
        swap_refine(w, stats.hessian[:4, :4], torch.zeros(4, 8, dtype=torch.bool))
    with pytest.raises(ConfigError, match="divisible"):
        swap_refine(w[:, :6], stats.hessian[:6, :6], torch.zeros(4, 6, dtype=torch.bool),
                    nm=(2, 4))


def test_config_takes_swaps_for_mask_methods_only() -> None:
    assert OneShotConfig(method="wanda", swap_rounds=10).needs_hessian
    assert not OneShotConfig(method="wanda").needs_hessian
    with pytest.raises(ConfigError, match="'sparsegpt' has no option 'swap_rounds'"):
        OneShotConfig(method="sparsegpt", swap_rounds=10)
    with pytest.raises(ConfigError, match="swap_rounds"):
        OneShotConfig(swap_rounds=-1)


def test_method_with_swaps_beats_plain_wanda_on_the_layer_error() -> None:
    w, stats = _layer(16, 32, 5)
    plain = Wanda().prune(w, stats, 0.5, Unstructured("row"))
    swapped = Wanda(MaskOptions(swap_rounds=50)).prune(w, stats, 0.5, Unstructured("row"))
    h = stats.hessian.double()
    assert torch.equal((swapped == 0).sum(dim=1), (plain == 0).sum(dim=1))
    assert torch.equal(swapped[swapped != 0], w[swapped != 0])
    assert reconstruction_error(w, h, swapped != 0).sum() < \
        reconstruction_error(w, h, plain != 0).sum()


@pytest.mark.parametrize("pattern", ["unstructured", "2:4"])
def test_pipeline_with_swaps_prunes_every_layer_exactly(tiny_model, pattern: str) -> None:
    model = tiny_model("llama")
    result = prune_sequential(model, calibration("llama"),
                              OneShotConfig(method="wanda", pattern=pattern, swap_rounds=20))
    assert result.layers and all(abs(r.sparsity - 0.5) < 1e-9 for r in result.layers)
    for block in model.model.layers:
        w = block.mlp.down_proj.weight
        if pattern == "2:4":
            assert torch.all((w.view(w.shape[0], -1, 4) == 0).sum(dim=2) == 2)
        else:
            assert torch.all((w == 0).sum(dim=1) == w.shape[1] // 2)


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(1, 5), groups=st.integers(1, 6), seed=st.integers(0, 2**16),
       nm=st.sampled_from([None, (1, 4), (2, 4), (4, 8)]),
       sparsity=st.sampled_from([0.25, 0.5, 0.75]))
def test_generated_layers_keep_pattern_and_never_lose(rows: int, groups: int, seed: int,
                                                      nm: tuple[int, int] | None,
                                                      sparsity: float) -> None:
    cols = groups * (nm[1] if nm else 4)
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(rows, cols, generator=g, dtype=torch.float64)
    x = torch.randn(3 * cols, cols, generator=g, dtype=torch.float64)
    x[:, 0] += 5 * x[:, -1]  # some correlation between features
    h = x.t() @ x / x.shape[0]
    start = keep_mask(torch.rand(rows, cols, generator=g, dtype=torch.float64),
                      sparsity, nm)
    refined = swap_refine(w, h, start, nm=nm, max_rounds=300)
    assert torch.all(reconstruction_error(w, h, refined)
                     <= reconstruction_error(w, h, start) * (1 + 1e-12) + 1e-12)
    if nm is None:
        assert torch.equal(refined.sum(dim=1), start.sum(dim=1))
    else:
        kept = refined.view(rows, -1, nm[1]).sum(dim=2)
        assert torch.all(kept == nm[0])
