"""Zero a block's residual branches, remove the block: outputs unchanged, for every family."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("torchvision")
pytest.importorskip("timm")

from helpers.depth import FAMILIES, run, zero_branches  # noqa: E402

from prunekit.depth import find_blocks, remove_blocks  # noqa: E402


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_removing_a_zeroed_block_leaves_outputs_unchanged(family: str):
    fam = FAMILIES[family]
    model = fam.build()
    original = run(model, fam.inputs)
    blocks = {b.name: b for b in find_blocks(model, fam.inputs)}
    assert fam.block in blocks and blocks[fam.block].exact == fam.exact
    zero_branches(model, fam.block, fam.branch_ends)
    reference = run(model, fam.inputs)
    assert (reference - original).abs().max() > 1e-3  # the block did something before
    params = sum(p.numel() for p in model.parameters())
    removed = remove_blocks(model, [fam.block], fam.inputs)
    assert [b.name for b in removed] == [fam.block]
    out = run(model, fam.inputs)
    assert out.shape == reference.shape
    assert (out - reference).abs().max() <= 1e-5
    assert sum(p.numel() for p in model.parameters()) == params - blocks[fam.block].params


def test_hugging_face_layers_are_deleted_and_reindexed():
    model = FAMILIES["llama"].build()
    remove_blocks(model, ["model.layers.0"], FAMILIES["llama"].inputs)
    assert len(model.model.layers) == 2 and model.config.num_hidden_layers == 2
    assert [layer.self_attn.layer_idx for layer in model.model.layers] == [0, 1]


def test_other_blocks_become_identity_and_replay_on_a_fresh_model():
    fam = FAMILIES["resnet18"]
    model = fam.build()
    remove_blocks(model, ["layer1.1", "layer3.1"], fam.inputs)
    assert isinstance(model.layer1[1], torch.nn.Identity)
    fresh = fam.build()
    remove_blocks(fresh, ["layer1.1", "layer3.1"], fam.inputs)
    fresh.load_state_dict(model.state_dict())  # names are stable: strict load works
    assert torch.equal(run(fresh, fam.inputs), run(model, fam.inputs))
