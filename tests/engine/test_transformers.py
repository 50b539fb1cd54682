"""Hugging Face transformers built from configs (random weights): whole heads and grouped
query attention, pruned exactly, and decoders still generate with a key/value cache."""

from __future__ import annotations

import pytest
import torch

import prunekit
from prunekit.testing import run_exact_check

transformers = pytest.importorskip("transformers")

from prunekit.hf.families import FAMILIES  # noqa: E402
from prunekit.testing import hf_example  # noqa: E402
from prunekit.testing import randomize_weights as randomize  # noqa: E402

IDS = torch.randint(0, 100, (1, 8), generator=torch.Generator().manual_seed(0))


def llama(kv_heads: int) -> torch.nn.Module:
    return hf_example("llama", "causal", num_key_value_heads=kv_heads)


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
    model = hf_example("bert")
    result = prunekit.prune(model, IDS, ratio=0.5, split_units="outer")
    assert not any("attention" in name for name in result.skipped)
    assert model.encoder.layer[0].attention.self.query.out_features == 32
    assert model(IDS).last_hidden_state.shape == (1, 8, 64)


#: the text families of the table (layer-by-layer pruning supports them)
TEXT = sorted(t for fam in FAMILIES if fam.oneshot for t in fam.examples)
DECODERS = sorted(t for fam in FAMILIES if fam.oneshot and fam.decoder for t in fam.examples)


@pytest.mark.parametrize("family", TEXT)
@pytest.mark.parametrize("split_units", ["inner", "outer"])
def test_heads_and_ffn_neurons_prune_exactly(family: str, split_units: str):
    """Zeroed heads (or head-size positions) and FFN neurons removed: outputs unchanged."""

    def make() -> torch.nn.Module:
        return hf_example(family)

    check = run_exact_check(randomize(make()), IDS, split_units=split_units)
    assert check.max_diff <= 1e-9
    assert check.params_after < check.params_before
    pruned = prunekit.prune(make(), IDS, ratio=0.5, split_units=split_units)
    attention_skipped = [n for n in pruned.skipped if "attn" in n or "attention" in n]
    if split_units == "outer" or family not in ("llama", "mistral", "qwen2"):
        assert attention_skipped == []  # rotary position embeddings pin the head size
    assert pruned.model(IDS)[0].shape[:2] == (1, 8)


@pytest.mark.parametrize("family", [t for t in DECODERS if t != "llama"])  # llama: above
def test_pruned_decoders_generate_with_their_cache(family: str):
    model = hf_example(family, "causal")
    prunekit.prune(model, IDS, ratio=0.5, split_units="outer")
    out = model.generate(IDS, max_new_tokens=4, do_sample=False, min_new_tokens=4)
    assert out.shape == (1, 12)


def test_save_and_reload_a_non_uniformly_pruned_decoder(tmp_path):
    from prunekit.hf import load_pruned_transformers, save_pruned_transformers

    model = llama(2)
    result = prunekit.prune(model, IDS, ratio=0.25, split_units="outer",
                            overrides={"model.layers.1.mlp.gate_proj": 0.75})
    sizes = [layer.mlp.gate_proj.out_features for layer in model.model.layers]
    assert sizes[0] != sizes[1]  # per-layer shapes differ
    save_pruned_transformers(model, result.plan, tmp_path / "pruned")
    loaded = load_pruned_transformers(tmp_path / "pruned")
    assert [layer.mlp.gate_proj.out_features for layer in loaded.model.layers] == sizes
    with torch.no_grad():
        assert torch.equal(model(IDS).logits, loaded(IDS).logits)
    assert loaded.generate(IDS, max_new_tokens=3, do_sample=False, min_new_tokens=3).shape == (1, 11)


def test_loading_a_folder_without_the_manifest_is_refused(tmp_path):
    from prunekit.hf import load_pruned_transformers

    model = llama(2)
    result = prunekit.prune(model, IDS, ratio=0.5)
    prunekit.save_pruned(model, result.plan, tmp_path / "plain")
    with pytest.raises(prunekit.PlanError, match="manifest .* is missing"):
        load_pruned_transformers(tmp_path / "plain")


@pytest.mark.parametrize("change, message", [({"format": "other"}, "was not written by"),
                                             ({"class": "NoSuchModel"}, "has no model class")])
def test_a_foreign_or_unknown_manifest_is_refused(tmp_path, change, message):
    import json

    from prunekit.hf import load_pruned_transformers, save_pruned_transformers

    model = llama(2)
    result = prunekit.prune(model, IDS, ratio=0.5)
    folder = save_pruned_transformers(model, result.plan, tmp_path / "pruned")
    manifest = json.loads((folder / "prunekit.json").read_text())
    (folder / "prunekit.json").write_text(json.dumps({**manifest, **change}))
    with pytest.raises(prunekit.PlanError, match=message):
        load_pruned_transformers(folder)
