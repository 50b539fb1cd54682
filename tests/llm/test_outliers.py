"""Outlier-weighted layer-wise sparsity (OWL): the allocation rule and the pipeline with it."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from prunekit.errors import ConfigError
from prunekit.llm import CalibrationData, OneShotConfig, prune_sequential
from prunekit.llm.outliers import block_sparsities, outlier_ratio


def test_more_outliers_means_less_sparsity_and_the_weighted_mean_is_the_target() -> None:
    sparsities = block_sparsities([0.01, 0.05, 0.03], [100, 100, 200], target=0.5, spread=0.1)
    assert sparsities[1] < sparsities[2] < sparsities[0]
    assert max(sparsities) - min(sparsities) == pytest.approx(0.2)
    mean = (sparsities[0] * 100 + sparsities[1] * 100 + sparsities[2] * 200) / 400
    assert mean == pytest.approx(0.5)


def test_equal_outlier_ratios_give_uniform_sparsity() -> None:
    assert block_sparsities([0.02, 0.02], [10, 30], target=0.6, spread=0.08) == [0.6, 0.6]


def test_outlier_ratio_counts_scores_above_threshold_times_the_layer_mean() -> None:
    weight = torch.ones(2, 4)
    norms = torch.tensor([1.0, 1.0, 1.0, 21.0])  # scores: 1,1,1,21 per row; mean 6
    assert outlier_ratio([weight], [norms], threshold=3.0) == pytest.approx(0.25)
    assert outlier_ratio([weight], [norms], threshold=4.0) == 0.0


def test_pipeline_prunes_blocks_non_uniformly_at_the_target_mean(
        tiny_model: Callable[[str], torch.nn.Module]) -> None:
    model = tiny_model("llama")
    with torch.no_grad():  # make block 0 outlier-rich: a few huge weights
        layer = model.model.layers[0].mlp.down_proj
        layer.weight[:, :3] *= 50.0
    ids = torch.randint(0, 100, (6, 16), generator=torch.Generator().manual_seed(0))
    config = OneShotConfig(method="wanda", sparsity=0.5, batch_size=4, outlier_weighted=True,
                           outlier_spread=0.1)
    result = prune_sequential(model, CalibrationData(ids), config)
    per_block: dict[int, list[float]] = {}
    for report in result.layers:
        per_block.setdefault(report.block, []).append(report.sparsity)
    first, last = per_block[0][0], per_block[max(per_block)][0]
    assert first < last  # the outlier-rich block kept more weights
    assert result.sparsity == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize("kwargs, match", [
    ({"pattern": "2:4", "outlier_weighted": True}, "cannot"),
    ({"outlier_threshold": 0}, "outlier_threshold"),
    ({"outlier_spread": 0.6}, "outlier_spread"),
])
def test_bad_outlier_settings_are_refused(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        OneShotConfig(sparsity=0.5, **kwargs)
