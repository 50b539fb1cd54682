"""Hugging Face transformers built from configs (random weights): whole heads and grouped
query attention, pruned exactly, and decoders still generate with a key/value cache."""

from __future__ import annotations

import pytest
import torch

import prunekit
from prunekit.testing import run_exact_check

transformers = pytest.importorskip("transformers")

from test_exact_handlers import randomize  # noqa: E402  (same folder)

IDS = torch.randint(0, 100, (1, 8), generator=torch.Generator().manual_seed(0))


def llama(kv_heads: int) -> torch.nn.Module:
    torch.manual_seed(0)
    config = transformers.LlamaConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                      num_key_value_heads=kv_heads, intermediate_size=96,
                                      vocab_size=100)
    return transformers.LlamaForCausalLM(config).eval()


def test_grouped_query_attention_prunes_whole_key_value_groups_exactly():
    graph = prunekit.DependencyGraph.build(llama(2), IDS, split_units="outer")
    heads = graph.group_named("model.layers.0.self_attn.q_proj")
    members = {m.tensor.rsplit(".", 2)[-2]: m.index.shape for m in heads.members}
    # 2 units, each a key/value head with its 2 query heads (16 features per head)
    assert heads.n_units == 2 and heads.exact
    assert members == {"q_proj": (2, 32), "k_proj": (2, 16), "v_proj": (2, 16), "o_proj": (2, 32)}
    check = run_exact_check(randomize(llama(2)), IDS, split_units="outer")
    assert check.max_diff <= 1e-9 and check.params_after < check.params_before


def test_pruned_llama_generates_with_its_cache():
    model = llama(2)
    prunekit.prune(model, IDS, ratio=0.5, split_units="outer")
    attn = model.model.layers[0].self_attn
    assert (attn.q_proj.out_features, attn.k_proj.out_features, attn.o_proj.in_features) == (32, 16, 32)
    assert model.model.layers[0].mlp.gate_proj.out_features == 48
    out = model.generate(IDS, max_new_tokens=4, do_sample=False, min_new_tokens=4)
    assert out.shape == (1, 12)


def test_bert_whole_heads_prune_without_skips():
    torch.manual_seed(0)
    config = transformers.BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=96, vocab_size=100)
    model = transformers.BertModel(config).eval()
    result = prunekit.prune(model, IDS, ratio=0.5, split_units="outer")
    assert not any("attention" in name for name in result.skipped)
    assert model.encoder.layer[0].attention.self.query.out_features == 32
    assert model(IDS).last_hidden_state.shape == (1, 8, 64)
