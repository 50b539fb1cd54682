"""A pruned Hugging Face model's config follows its modules: uniform sizes are written back,
the originals kept for prunekit's loader; a plain ``from_pretrained`` of the saved folder is
then either the same model or a loud size mismatch, never a silently different model."""

from __future__ import annotations

import pytest
import torch

import prunekit

transformers = pytest.importorskip("transformers")

from helpers.families import CASES as FAMILIES  # noqa: E402
from helpers.families import build, first_output  # noqa: E402
from prunekit.testing import randomize_weights as randomize  # noqa: E402

HF = sorted(f for f in FAMILIES if f.startswith("hf-"))


def pruned_and_saved(family: str, split: str, folder):
    from prunekit.hf import save_pruned_transformers

    model = randomize(build(family)).float()
    x = FAMILIES[family].inputs
    result = prunekit.prune(model, x, ratio=0.5, split_units=split)
    save_pruned_transformers(model, result.plan, folder)
    return model, x


@pytest.mark.parametrize("family", HF)
def test_whole_head_pruning_writes_the_sizes_and_plain_transformers_loads_it(family, tmp_path):
    from prunekit.hf import load_pruned_transformers

    model, x = pruned_and_saved(family, "outer", tmp_path / "m")
    original = model.config.prunekit_original
    hidden_key = "n_embd" if family == "hf-gpt2" else "hidden_size"
    assert original[hidden_key] == 64 and getattr(model.config, hidden_key) == 32
    with torch.no_grad():
        expected = first_output(model(x))
        assert torch.equal(first_output(load_pruned_transformers(tmp_path / "m")(x)), expected)
        plain = type(model).from_pretrained(tmp_path / "m").eval()
        assert torch.allclose(first_output(plain(x)), expected, atol=1e-5)


@pytest.mark.parametrize("family", ["hf-bert", "hf-gpt2", "hf-opt", "hf-vit"])
def test_a_shrunk_head_size_with_its_old_scale_is_not_claimed(family, tmp_path):
    from prunekit.hf import load_pruned_transformers

    model, x = pruned_and_saved(family, "inner", tmp_path / "m")
    hidden_key = "n_embd" if family == "hf-gpt2" else "hidden_size"
    assert getattr(model.config, hidden_key) == 64  # heads of 8 scaled as heads of 16
    with torch.no_grad():
        assert torch.equal(first_output(load_pruned_transformers(tmp_path / "m")(x)),
                           first_output(model(x)))
    with pytest.raises(Exception, match="mismatch"):
        type(model).from_pretrained(tmp_path / "m")


def test_non_uniform_sizes_stay_and_reload_through_prunekit(tmp_path):
    from prunekit.hf import load_pruned_transformers, save_pruned_transformers

    model = build("hf-llama")
    x = FAMILIES["hf-llama"].inputs
    result = prunekit.prune(model, x, ratio=0.25, split_units="outer",
                            overrides={"model.layers.1.mlp.gate_proj": 0.75})
    assert model.config.intermediate_size == 96  # the two layers differ: nothing to write
    assert model.config.hidden_size == 48
    save_pruned_transformers(model, result.plan, tmp_path / "m")
    with torch.no_grad():
        assert torch.equal(load_pruned_transformers(tmp_path / "m")(x).logits, model(x).logits)


def test_pruning_a_shape_only_copy_leaves_the_shared_config_alone():
    from prunekit.graph.trace import meta_copy

    model = build("hf-llama")
    result = prunekit.prune(build("hf-llama"), FAMILIES["hf-llama"].inputs, ratio=0.5,
                            split_units="outer")
    copy = meta_copy(model)
    assert copy.config is model.config  # the copy shares it, as verification's copies do
    prunekit.apply_plan(copy, result.plan)
    assert model.config.hidden_size == 64 and not hasattr(model.config, "prunekit_original")
