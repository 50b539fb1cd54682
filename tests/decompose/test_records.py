"""Factorizations travel with the plan: JSON, replay on a fresh model, save/load without
pickle, after channel pruning, Hugging Face folders and ONNX."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from torch import nn

import prunekit
from prunekit.decompose.api import replay
from prunekit.errors import PlanError
from prunekit.models.digits_cnn import DigitsCNN


def _cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return DigitsCNN(widths=(8, 12, 16)).eval()


def _decomposed(seed: int = 0, **options) -> tuple[nn.Module, prunekit.Plan, torch.Tensor]:
    model = _cnn(seed)
    x = torch.randn(4, 1, 8, 8)
    result = prunekit.decompose(model, x, **{"rank_ratio": 0.5, **options})
    assert result.factorized
    return model, result.plan, x


def test_the_plan_records_factorizations_as_versioned_plain_data(tmp_path) -> None:
    _, plan, _ = _decomposed(conv=("tucker2",))
    data = json.loads(plan.save(tmp_path / "plan.json").read_text())
    assert data["version"] == 2
    record = data["decompositions"][0]
    assert record == {"module": "features.0.0", "kind": "tucker2", "rank": [1, 4],
                      "layer": {"type": "Conv2d", "in_channels": 1, "out_channels": 8,
                                "kernel_size": [3, 3], "stride": [1, 1], "padding": [1, 1],
                                "dilation": [1, 1], "groups": 1, "padding_mode": "zeros",
                                "bias": False},
                      "activation_aware": False}
    assert prunekit.Plan.load(tmp_path / "plan.json").decompositions == data["decompositions"]


def test_plans_without_factorizations_stay_version_1(tmp_path) -> None:
    model = _cnn()
    plan = prunekit.prune(model, torch.randn(1, 1, 8, 8), ratio=0.5).plan
    assert json.loads(plan.save(tmp_path / "p.json").read_text())["version"] == 1


def test_apply_plan_replays_factorizations_on_a_fresh_model() -> None:
    model, plan, x = _decomposed()
    fresh = prunekit.apply_plan(_cnn(), prunekit.Plan.from_dict(plan.to_dict()))
    assert str(fresh) == str(model)
    torch.testing.assert_close(fresh(x), model(x), rtol=0, atol=1e-6)


def test_save_and_load_without_pickle_give_the_same_outputs(tmp_path) -> None:
    model, plan, x = _decomposed(conv=("spatial_svd", "tucker2"), rank_ratio=None, energy=0.8)
    prunekit.save_pruned(model, plan, tmp_path / "out")
    loaded = prunekit.load_pruned(_cnn(seed=1), tmp_path / "out")  # other weights: all loaded
    assert torch.equal(loaded(x), model(x))


def test_decomposition_after_channel_pruning_replays_from_the_unpruned_model(tmp_path) -> None:
    model = _cnn()
    x = torch.randn(4, 1, 8, 8)
    pruned = prunekit.prune(model, x[:1], ratio=0.5)
    result = prunekit.decompose(model, x[:1], rank_ratio=0.5, plan=pruned.plan,
                                calibration=[x], activation_aware=True)
    assert result.plan.tensors == pruned.plan.tensors and result.plan.decompositions
    prunekit.save_pruned(model, result.plan, tmp_path / "out")
    loaded = prunekit.load_pruned(_cnn(), tmp_path / "out")
    assert torch.equal(loaded(x), model(x))
    replayed = replay(_cnn(), result.plan, calibration=[x])
    torch.testing.assert_close(replayed(x), model(x), rtol=0, atol=1e-5)


def test_activation_aware_factors_are_not_recomputed_without_data() -> None:
    model = _cnn()
    x = torch.randn(4, 1, 8, 8)
    plan = prunekit.decompose(model, x, rank_ratio=0.5, conv=(), calibration=[x],
                              activation_aware=True).plan
    fresh = _cnn()
    before = copy.deepcopy(fresh.state_dict())
    with pytest.raises(PlanError, match="activation-aware.*load_pruned"):
        prunekit.apply_plan(fresh, plan)
    assert all(torch.equal(v, before[k]) for k, v in fresh.state_dict().items())


def test_a_plan_for_another_architecture_is_refused() -> None:
    _, plan, _ = _decomposed()
    with pytest.raises(PlanError, match="another architecture"):
        prunekit.apply_plan(DigitsCNN(widths=(8, 12, 20)), plan)
    data = plan.to_dict()
    data["decompositions"][0]["kind"] = "cp"
    with pytest.raises(PlanError, match="kind 'cp'"):
        prunekit.apply_plan(_cnn(), prunekit.Plan.from_dict(data))
    data["decompositions"] = {"not": "a list"}
    with pytest.raises(PlanError, match="list"):
        prunekit.Plan.from_dict(data)


def test_onnx_export_of_a_decomposed_model_matches_pytorch(tmp_path) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from prunekit.export.onnx import check_onnx, export_onnx

    model, _, x = _decomposed(conv=("spatial_svd", "tucker2"), rank_ratio=None, energy=0.9)
    export_onnx(model, x, tmp_path / "model.onnx")
    check = check_onnx(tmp_path / "model.onnx", model, x)
    assert check.ok(1e-4), check


def _bert() -> nn.Module:
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=4, intermediate_size=48,
                                     max_position_embeddings=32)
    torch.manual_seed(0)
    return transformers.BertModel(config).eval()


def test_a_decomposed_hugging_face_model_reloads_with_the_same_outputs(tmp_path) -> None:
    from prunekit.hf import load_pruned_transformers, save_pruned_transformers

    model = _bert()
    ids = torch.randint(0, 60, (3, 10))
    mask = torch.ones_like(ids)
    mask[0, 7:] = 0
    batch = {"input_ids": ids, "attention_mask": mask}
    pruned = prunekit.prune(model, {"input_ids": ids[:1]}, ratio=0.0, split_units="outer",
                            overrides={"encoder.layer.*.intermediate.dense": 0.5})
    result = prunekit.decompose(model, batch, plan=pruned.plan, calibration=[batch],
                                activation_aware=True, rank_ratio=0.25, layers=["encoder.*"])
    assert len(result.factorized) == 12
    save_pruned_transformers(model, result.plan, tmp_path / "bert")
    reloaded = load_pruned_transformers(tmp_path / "bert")
    expected = model(**batch).last_hidden_state
    assert torch.equal(reloaded(**batch).last_hidden_state, expected)


def test_plans_with_factorizations_are_not_composed() -> None:
    from prunekit.recover import compose_plans

    _, plan, _ = _decomposed()
    with pytest.raises(PlanError, match="compose the pruning plans first"):
        compose_plans(plan, prunekit.Plan())
