"""The sequential pipeline on tiny Hugging Face models of every supported family."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import torch
from helpers.llm import ONESHOT_TYPES, calibration

from prunekit.llm import (
    CalibrationData,
    OneShotConfig,
    embedding_fidelity,
    find_layers,
    mean_pooled_embeddings,
    perplexity,
    prune_sequential,
)
from prunekit.llm.layers import get_weight_2d, prunable_layers

Factory = Callable[[str], torch.nn.Module]


def _data(family: str) -> CalibrationData:
    return calibration(family)


def _last_block_outputs(model: torch.nn.Module, data: CalibrationData,
                        batch_size: int) -> list[torch.Tensor]:
    """Run the (pruned) model end to end and catch what its last block returns."""
    caught: list[torch.Tensor] = []
    hook = find_layers(model)[-1].register_forward_hook(
        lambda _m, _i, out: caught.append(out[0] if isinstance(out, tuple) else out))
    try:
        with torch.no_grad():
            for ids, mask in data.batches(batch_size):
                kwargs = {} if mask is None else {"attention_mask": mask}
                model(input_ids=ids, **kwargs)
    finally:
        hook.remove()
    return caught


@pytest.mark.parametrize("family", ONESHOT_TYPES)
@pytest.mark.parametrize("method,pattern", [("wanda", "unstructured"),
                                            ("sparsegpt", "2:4"), ("magnitude", "4:8")])
def test_pipeline_hidden_equals_end_to_end(tiny_model: Factory, family: str, method: str,
                                           pattern: str) -> None:
    model = tiny_model(family)
    data = _data(family)
    options = {"blocksize": 16} if method == "sparsegpt" else None
    config = OneShotConfig(method=method, sparsity=0.5, pattern=pattern, batch_size=4,
                           options=options)
    result = prune_sequential(model, data, config, return_hidden=True)
    assert result.hidden is not None
    expected = _last_block_outputs(model, data, config.batch_size)
    assert len(expected) == len(result.hidden) == 2
    for got, want in zip(result.hidden, expected):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    assert result.sparsity == pytest.approx(0.5, abs=1e-6)
    n_linear = sum(len(prunable_layers(b)) for b in find_layers(model))
    assert len(result.layers) == n_linear > 0


def test_pipeline_leaves_non_block_weights_and_ignored_layers(tiny_model: Factory) -> None:
    model = tiny_model("llama")
    before = copy.deepcopy(model)
    config = OneShotConfig(method="sparsegpt", sparsity=0.5, ignore=("mlp.down_proj",))
    result = prune_sequential(model, _data("llama"), config)
    assert all("down_proj" not in r.name for r in result.layers)
    torch.testing.assert_close(model.model.embed_tokens.weight, before.model.embed_tokens.weight)
    torch.testing.assert_close(model.lm_head.weight, before.lm_head.weight)
    for blk, blk0 in zip(find_layers(model), find_layers(before)):
        torch.testing.assert_close(blk.mlp.down_proj.weight, blk0.mlp.down_proj.weight)
        assert float((blk.self_attn.q_proj.weight == 0).float().mean()) == 0.5
    assert model.training is False


def test_gpt2_conv1d_pruned_along_input_dim(tiny_model: Factory) -> None:
    model = tiny_model("gpt2")
    prune_sequential(model, _data("gpt2"), OneShotConfig(method="wanda", sparsity=0.5,
                                                         pattern="2:4"))
    w = get_weight_2d(find_layers(model)[0].mlp.c_proj)  # Conv1D stored [in, out]
    assert ((w != 0).reshape(w.shape[0], -1, 4).sum(-1) == 2).all()


def test_perplexity_matches_model_loss(tiny_model: Factory) -> None:
    model = tiny_model("llama")
    ids = torch.randint(0, 100, (3, 12), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        loss = model(input_ids=ids, labels=ids).loss
    assert perplexity(model, ids, batch_size=3) == pytest.approx(float(loss.exp()), rel=1e-4)


def test_embedding_fidelity_is_one_unpruned_and_lower_pruned(tiny_model: Factory) -> None:
    model = tiny_model("bert")
    data = _data("bert")
    ref = mean_pooled_embeddings(model, data.input_ids, data.attention_mask)
    assert embedding_fidelity(ref, ref) == pytest.approx(1.0, abs=1e-5)
    prune_sequential(model, data, OneShotConfig(method="magnitude", sparsity=0.5))
    pruned = mean_pooled_embeddings(model, data.input_ids, data.attention_mask)
    assert not torch.allclose(ref, pruned)
    assert 0.5 < embedding_fidelity(ref, pruned) < 1.0


def test_embedding_fidelity_is_mean_cosine() -> None:
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    b = torch.tensor([[3.0, 0.0], [2.0, 0.0]])  # cosines 1 and 0
    assert embedding_fidelity(a, b) == pytest.approx(0.5)
