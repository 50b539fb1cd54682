"""Quantization-aware fine-tuning keeps the pruned shapes and the masks, makes the layers
see int8 rounding while attached, and leaves a float model behind."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.utils.data import DataLoader

import prunekit
from prunekit.errors import ConfigError
from prunekit.mask.parametrization import get_mask, set_mask
from prunekit.models.digits_cnn import DigitsCNN
from prunekit.recover.qat import attach_fake_quant, quantization_aware_finetune
from prunekit.train import FinetuneConfig


@pytest.fixture
def pruned_masked(trained: DigitsCNN, digits) -> tuple[DigitsCNN, torch.Tensor]:  # noqa: ANN001
    model = copy.deepcopy(trained)
    prunekit.prune(model, digits.x_val[:1], ratio=0.5)
    layer = model.features[1][0]
    mask = torch.rand(layer.weight.shape, generator=torch.Generator().manual_seed(0)) > 0.5
    set_mask(layer, mask)
    return model, mask


def test_attached_layers_see_int8_rounding(pruned_masked: tuple[DigitsCNN, torch.Tensor],
                                           digits) -> None:  # noqa: ANN001
    model, mask = pruned_masked
    float_out = model(digits.x_val[:32]).detach()
    state = attach_fake_quant(model)
    conv = model.features[0][0]
    levels = [torch.unique(conv.weight[c]).numel() for c in range(conv.weight.shape[0])]
    assert max(levels) <= 255
    w = conv.parametrizations.weight.original[0]
    step = w.abs().max() / 127
    assert torch.allclose(conv.weight[0], torch.round(w / step) * step, atol=1e-6)
    masked = model.features[1][0]
    assert bool((masked.weight[~mask] == 0).all())  # zero stays exactly zero
    assert not torch.equal(model(digits.x_val[:32]).detach(), float_out)
    state.remove()
    assert torch.equal(model(digits.x_val[:32]).detach(), float_out)
    assert not parametrize.is_parametrized(conv)
    assert [type(p).__name__ for p in masked.parametrizations.weight] == ["WeightMask"]


def test_qat_keeps_pruned_shapes_and_masks(pruned_masked: tuple[DigitsCNN, torch.Tensor],
                                           train_at: Callable[[int], DataLoader],
                                           val: DataLoader) -> None:
    model, mask = pruned_masked
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = quantization_aware_finetune(model, train_at(0), val,
                                         FinetuneConfig(epochs=1, lr=1e-3, restore_best=False))
    assert len(result.history) == 1
    assert {k: v.shape for k, v in model.state_dict().items()} == shapes
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    layer = model.features[1][0]
    assert torch.equal(get_mask(layer), mask) and bool((layer.weight[~mask] == 0).all())
    assert not any(hook for m in model.modules() for hook in m._forward_pre_hooks.values())


def test_exclude_and_errors(trained: DigitsCNN) -> None:
    model = copy.deepcopy(trained)
    state = attach_fake_quant(model, exclude=["classifier"])
    assert "classifier" not in state.modules and "features.0.0" in state.modules
    with pytest.raises(ConfigError, match="already has fake quantization"):
        attach_fake_quant(model)
    state.remove()
    with pytest.raises(ConfigError, match="no Conv/Linear layer"):
        attach_fake_quant(nn.Sequential(nn.ReLU()))
