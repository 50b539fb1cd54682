"""Masks as parametrizations: state-dict keys, forward, gradients, finalisation."""

from __future__ import annotations

import torch
import torch.nn as nn

from prunekit.mask import (
    NM,
    MaskConfig,
    finalize,
    finalized_state_dict,
    get_mask,
    is_masked,
    mask_sparsity,
    remove_mask,
    set_mask,
    sparsify,
)


def _model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 4))


def test_state_dict_keys_while_masked_and_after_finalise() -> None:
    model = _model()
    dense_keys = list(model.state_dict())
    assert dense_keys == ["0.weight", "0.bias", "3.weight", "3.bias"]
    sparsify(model, 0.5)
    masked_keys = set(model.state_dict())
    # parametrize moves the weight to ...original; the mask buffer is non-persistent
    assert masked_keys == {"0.bias", "0.parametrizations.weight.original",
                           "3.bias", "3.parametrizations.weight.original"}
    assert not any("mask" in k for k in masked_keys)
    assert set(finalized_state_dict(model)) == set(dense_keys)
    finalize(model)
    assert set(model.state_dict()) == set(dense_keys)  # same keys (order may differ)
    assert not is_masked(model[0]) and not is_masked(model[3])


def test_forward_uses_masked_weight_and_gradients_stop_at_pruned() -> None:
    model = _model()
    original = model[3].weight.detach().clone()
    sparsify(model, 0.75)
    mask = get_mask(model[3])
    assert mask is not None and mask.dtype == torch.bool
    assert torch.equal(model[3].weight, torch.where(mask, original, 0.0))
    model(torch.randn(2, 3, 6, 6)).sum().backward()
    grad = model[3].parametrizations.weight.original.grad
    assert grad is not None and (grad[~mask] == 0).all() and (grad[mask] != 0).any()


def test_masking_keeps_the_parameter_object_for_optimizers() -> None:
    model = _model()
    param = model[3].weight
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sparsify(model, 0.5)
    assert model[3].parametrizations.weight.original is param
    before = param.detach().clone()
    model(torch.randn(2, 3, 6, 6)).sum().backward()
    opt.step()  # the optimizer created before masking updates the masked layer
    mask = get_mask(model[3])
    changed = model[3].parametrizations.weight.original != before
    assert changed[mask].any() and not changed[~mask].any()


def test_finalise_bakes_positive_zeros_and_matches_finalized_state_dict() -> None:
    model = _model()
    sparsify(model, 0.6)
    expected = {k: v.clone() for k, v in finalized_state_dict(model).items()}
    x = torch.randn(2, 3, 6, 6)
    before = model(x)
    finalize(model)
    after_state = model.state_dict()
    for key, value in expected.items():
        assert torch.equal(after_state[key], value)
    w = model[3].weight
    zero = w == 0
    assert abs(zero.float().mean().item() - 0.6) < 0.01
    assert not torch.signbit(w[zero]).any()  # +0.0, not -0.0 (keeps bitmasks honest)
    assert torch.equal(model(x), before)


def test_set_mask_replaces_in_place_and_remove_without_bake() -> None:
    layer = nn.Linear(4, 3)
    w = layer.weight.detach().clone()
    set_mask(layer, torch.zeros(3, 4, dtype=torch.bool))
    buffer = get_mask(layer)
    set_mask(layer, torch.ones(3, 4, dtype=torch.bool))
    assert get_mask(layer) is buffer and buffer.all()
    remove_mask(layer, bake=False)
    assert torch.equal(layer.weight, w) and set(layer.state_dict()) == {"weight", "bias"}


def test_mask_sparsity_report() -> None:
    model = _model()
    sparsify(model, 0.25, MaskConfig(ignore=("0",)))
    report = mask_sparsity(model)
    assert set(report) == {"3.weight", "total"}
    assert report["3.weight"] == report["total"] == 0.25


def test_attention_input_projection_is_masked_too() -> None:
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(d_model=16, nhead=2, dim_feedforward=32,
                                       batch_first=True, dropout=0.0)
    dense_keys = set(layer.state_dict())
    masks = sparsify(layer, 0.5, MaskConfig(pattern=NM(2, 4)))
    assert set(masks) == {"self_attn.in_proj_weight", "self_attn.out_proj.weight",
                          "linear1.weight", "linear2.weight"}
    x = torch.randn(2, 5, 16)
    with torch.no_grad():
        masked_out = layer.eval()(x)
        finalize(layer)
        assert set(layer.state_dict()) == dense_keys
        assert torch.allclose(layer(x), masked_out, atol=1e-6)
    w = layer.self_attn.in_proj_weight
    assert ((w != 0).reshape(48, 4, 4).sum(-1) <= 2).all()
