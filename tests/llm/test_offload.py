"""Blocks offloaded to disk: the same pruned weights as in memory, one block in memory at a
time, files that are valid checkpoint shards, and a clear error for a block with no file."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import torch

from prunekit.errors import ConfigError
from prunekit.llm import CalibrationData, OneShotConfig, find_layers, prune_sequential

Factory = Callable[[str], torch.nn.Module]
DATA = CalibrationData(torch.randint(0, 100, (4, 16), generator=torch.Generator().manual_seed(0)))


@pytest.mark.parametrize("family", ["llama", "gpt2", "bert"])
@pytest.mark.parametrize("method", ["wanda", "sparsegpt"])
def test_offloaded_run_prunes_exactly_like_the_in_memory_run(tiny_model: Factory, tmp_path,
                                                             family: str, method: str) -> None:
    config = OneShotConfig(method=method, sparsity=0.5, batch_size=2,
                           outlier_weighted=method == "wanda")
    in_memory = tiny_model(family)
    offloaded = copy.deepcopy(in_memory)
    prune_sequential(in_memory, DATA, config)
    prune_sequential(offloaded, DATA, config, offload_dir=tmp_path / "blocks")
    expected = in_memory.state_dict()
    for name, tensor in offloaded.state_dict().items():
        assert torch.equal(tensor, expected[name]), name


def test_only_the_block_being_pruned_is_in_memory(tiny_model: Factory, tmp_path) -> None:
    model = tiny_model("llama")
    blocks = find_layers(model)
    seen: list[int] = []

    def check(index: int) -> Callable[..., None]:
        def hook(*_: object) -> None:
            materialised = [i for i, b in enumerate(blocks)
                            if not next(b.parameters()).is_meta]
            assert materialised in ([index], [])  # [] only while block 0's inputs are caught
            if materialised:
                seen.append(index)
        return hook

    for i, block in enumerate(blocks):
        block.register_forward_pre_hook(check(i))
    prune_sequential(model, DATA, OneShotConfig(method="wanda", sparsity=0.5, batch_size=2),
                     offload_dir=tmp_path, keep_offloaded=True)
    assert sorted(set(seen)) == list(range(len(blocks)))
    assert all(next(b.parameters()).is_meta for b in blocks)


def test_kept_files_are_shards_under_the_models_names(tiny_model: Factory, tmp_path) -> None:
    from safetensors.torch import load_file

    model = tiny_model("llama")
    reference = copy.deepcopy(model)
    config = OneShotConfig(method="magnitude", sparsity=0.5, batch_size=2)
    prune_sequential(reference, DATA, config)
    prune_sequential(model, DATA, config, offload_dir=tmp_path, keep_offloaded=True)
    shard = load_file(tmp_path / "block-00001.safetensors")
    expected = reference.state_dict()
    assert shard and all(torch.equal(t, expected[name]) for name, t in shard.items()
                         if name in expected)
    assert "model.layers.1.mlp.down_proj.weight" in shard


def test_a_block_on_meta_without_its_file_is_refused(tiny_model: Factory, tmp_path) -> None:
    model = tiny_model("llama")
    find_layers(model)[1].to_empty(device="meta")
    with pytest.raises(ConfigError, match="block 1 .* no weights in memory"):
        prune_sequential(model, DATA, OneShotConfig(sparsity=0.5), offload_dir=tmp_path)
