"""Depth-pruned Hugging Face decoders still generate with a key/value cache, and a
depth-pruned model saves and reloads through prunekit.hf."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from helpers.depth import FAMILIES, IDS, run, zero_branches  # noqa: E402

from prunekit import ConfigError, Plan  # noqa: E402
from prunekit.depth import prune_depth, remove_blocks  # noqa: E402
from prunekit.hf import load_pruned_transformers, save_pruned_transformers  # noqa: E402

PROMPT = IDS[:1]


def _generate(model: torch.nn.Module) -> torch.Tensor:
    return model.generate(PROMPT, max_new_tokens=4, do_sample=False, min_new_tokens=4,
                          pad_token_id=0)


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_pruned_decoder_generates_the_same_tokens_with_its_cache(family: str):
    fam = FAMILIES[family]
    model = zero_branches(fam.build(), fam.block, fam.branch_ends)
    expected = _generate(model)
    remove_blocks(model, [fam.block], fam.inputs)
    assert model.config.num_hidden_layers == 2
    out = _generate(model)
    assert out.shape == (1, PROMPT.shape[1] + 4)
    assert torch.equal(out, expected)


def test_generation_with_the_first_layer_removed_uses_reindexed_cache_slots():
    model = FAMILIES["llama"].build()
    remove_blocks(model, ["model.layers.0"], IDS)
    cache = transformers.DynamicCache(config=model.config)
    with torch.no_grad():
        full = model(PROMPT).logits
        first = model(PROMPT[:, :-1], past_key_values=cache, use_cache=True).logits
        last = model(PROMPT[:, -1:], past_key_values=cache, use_cache=True).logits
    assert len(cache.layers) == 2
    assert torch.allclose(torch.cat([first, last], dim=1), full, atol=1e-5)


def test_layer_types_follow_the_removed_layers():
    torch.manual_seed(0)
    config = transformers.Qwen2Config(hidden_size=64, intermediate_size=96, num_hidden_layers=3,
                                      num_attention_heads=4, num_key_value_heads=2,
                                      vocab_size=100, use_sliding_window=True, sliding_window=4,
                                      max_window_layers=1)
    model = transformers.Qwen2ForCausalLM(config).eval()
    types = list(model.config.layer_types)
    remove_blocks(model, ["model.layers.1"], IDS)
    assert model.config.layer_types == [types[0], types[2]]
    assert _generate(model).shape == (1, PROMPT.shape[1] + 4)


@pytest.mark.parametrize("family", ["llama", "gpt2", "bert"])
def test_depth_pruned_model_saves_and_reloads(family: str, tmp_path):
    fam = FAMILIES[family]
    model = fam.build()
    prune_depth(model, [fam.inputs], n_blocks=1)
    save_pruned_transformers(model, Plan(), tmp_path / "pruned")
    loaded = load_pruned_transformers(tmp_path / "pruned")
    assert loaded.config.num_hidden_layers == 2
    assert torch.equal(run(loaded, fam.inputs), run(model, fam.inputs))


def test_heterogeneous_configs_are_refused_before_any_change():
    model = FAMILIES["llama"].build()
    model.config.per_layer_config = {1: {"intermediate_size": 96}}
    with pytest.raises(ConfigError, match="heterogeneous"):
        remove_blocks(model, ["model.layers.0"], IDS)
    assert len(model.model.layers) == 3 and model.config.num_hidden_layers == 3


def test_encoder_decoder_lists_keep_a_layer_each_and_their_own_counts():
    torch.manual_seed(0)
    model = transformers.BartModel(transformers.BartConfig(
        d_model=64, encoder_layers=1, decoder_layers=3, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=96, decoder_ffn_dim=96,
        vocab_size=100)).eval()
    with pytest.raises(ConfigError, match=r"cannot remove every layer of \['encoder.layers'\]"):
        remove_blocks(model, ["encoder.layers.0"], IDS)
    with pytest.raises(ConfigError, match="without emptying a layer list; at most 2"):
        prune_depth(model, IDS, n_blocks=3)
    result = prune_depth(model, IDS, n_blocks=2)
    assert len(result.removed) == 2
    assert all(name.startswith("decoder.layers.") for name in result.removed)
    assert (model.config.encoder_layers, model.config.decoder_layers) == (1, 1)
    assert model(IDS).last_hidden_state.shape == (2, 8, 64)


def test_position_dependent_layers_only_lose_their_last_layers():
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config(
        n_embd=64, n_layer=3, n_head=4, vocab_size=100, bos_token_id=0, eos_token_id=0,
        scale_attn_by_inverse_layer_idx=True)).eval()
    with pytest.raises(ConfigError, match="scale_attn_by_inverse_layer_idx is set"):
        remove_blocks(model, ["transformer.h.0"], IDS)
    remove_blocks(model, ["transformer.h.2"], IDS)
    assert model.config.n_layer == 2
