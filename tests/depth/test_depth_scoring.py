"""Scoring: a block made the identity is the least important, by every criterion, and the
calibration data may come as tensors, dicts or prunekit CalibrationData."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("torchvision")

from helpers.depth import FAMILIES, IDS, run, zero_branches  # noqa: E402

from prunekit.depth import (  # noqa: E402
    DepthCriterion,
    available_depth_criteria,
    find_blocks,
    prune_depth,
    register_depth_criterion,
    score_blocks,
)
from prunekit.llm import calibration_from_tensors  # noqa: E402


@pytest.mark.parametrize("family", ["llama", "resnet18"])
@pytest.mark.parametrize("criterion", ["cosine", "angular"])
def test_identity_block_scores_zero_and_is_removed_first(family: str, criterion: str):
    fam = FAMILIES[family]
    model = zero_branches(fam.build(), fam.block, fam.branch_ends)
    blocks = find_blocks(model, fam.inputs)
    scores = score_blocks(model, blocks, [fam.inputs, fam.inputs], criterion=criterion)
    assert set(scores) == {b.name for b in blocks}
    assert scores[fam.block] == pytest.approx(0.0, abs=1e-5)
    assert min(scores, key=scores.__getitem__) == fam.block
    assert all(s > 1e-3 for name, s in scores.items() if name != fam.block)
    result = prune_depth(model, [fam.inputs], n_blocks=1, criterion=criterion)
    assert result.removed == [fam.block] and result.exact
    assert result.params_after < result.params_before


@pytest.mark.parametrize("higher_is_better", [True, False])
def test_metric_criterion_scores_the_drop_of_a_callable(higher_is_better: bool):
    fam = FAMILIES["llama"]
    model = zero_branches(fam.build(), fam.block, fam.branch_ends)
    target = run(model, IDS)
    calls = []

    def error(m: torch.nn.Module) -> float:
        calls.append(1)
        err = float((run(m, IDS) - target).pow(2).mean())
        return -err if higher_is_better else err

    result = prune_depth(model, IDS, n_blocks=1, criterion="metric", metric=error,
                         higher_is_better=higher_is_better)
    assert len(calls) == 1 + 3  # baseline, then each block skipped alone
    assert result.removed == [fam.block]
    assert result.scores[fam.block] == pytest.approx(0.0, abs=1e-9)
    assert all(s > 0 for name, s in result.scores.items() if name != fam.block)


def test_ratio_candidates_and_calibration_formats():
    model = FAMILIES["llama"].build()
    mask = torch.ones_like(IDS)
    data = calibration_from_tensors(IDS, mask)
    result = prune_depth(model, data, ratio=0.5, blocks=["model.layers.0", "model.layers.2"])
    assert len(result.removed) == 1 and result.removed[0] in ("model.layers.0", "model.layers.2")
    assert len(result.blocks) == 3 and model.config.num_hidden_layers == 2
    again = prune_depth(model, {"input_ids": IDS, "attention_mask": mask}, ratio=0.0)
    assert again.removed == [] and len(again.blocks) == 2


def test_registered_criteria_are_used_by_name():
    name = "test-last-is-least"

    if name not in available_depth_criteria():
        @register_depth_criterion(name)
        class LastIsLeast(DepthCriterion):
            def score(self, model, blocks, batches):
                return {b.name: float(len(blocks) - i) for i, b in enumerate(blocks)}

    assert {"cosine", "angular", "metric", name} <= set(available_depth_criteria())
    fam = FAMILIES["resnet18"]
    result = prune_depth(fam.build(), fam.inputs, n_blocks=2, criterion=name)
    assert result.removed == ["layer4.1", "layer3.1"]
