"""Coverage subset for CI: representative torchvision families pruned at ratio 0.5.

Each model must keep its output shape and run with strictly fewer MACs. Inputs are as small
as each architecture allows (ViT is built with ``image_size=64``: the same layers, a shorter
position embedding). The full sweep over every
torchvision classifier is the ``slow`` test below (run with ``pytest -m slow``) and
``benchmarks/coverage.py``.
"""

from __future__ import annotations

import pytest
import torch

import prunekit
from prunekit.measure import count_flops

torchvision = pytest.importorskip("torchvision")

# model name -> input side: the smallest convenient size the architecture accepts.
SUBSET = {
    "resnet18": 64,
    "densenet121": 64,
    "mobilenet_v3_small": 64,
    "shufflenet_v2_x0_5": 64,
    "convnext_tiny": 64,
    "swin_t": 64,
    "vit_b_16": 64,  # built with image_size=64 (see BUILD_KWARGS)
}
# constructor arguments that let a model take the small input above.
BUILD_KWARGS = {"vit_b_16": {"image_size": 64}}
# torchvision classifiers whose default input is not 224x224.
FULL_SIZE = {"inception_v3": 299}


def _prune_and_check(name: str, side: int, **kwargs) -> None:
    torch.manual_seed(0)
    model = torchvision.models.get_model(name, weights=None, **kwargs).eval()
    x = torch.randn(1, 3, side, side)
    with torch.no_grad():
        shape = model(x).shape
    macs_before = count_flops(model, x)

    prunekit.prune(model, x, ratio=0.5)

    model.eval()
    with torch.no_grad():
        out = model(x)
    assert out.shape == shape, f"{name}: output shape {tuple(shape)} -> {tuple(out.shape)}"
    assert torch.isfinite(out).all(), f"{name}: non-finite outputs after pruning"
    macs_after = count_flops(model, x)
    assert macs_after < macs_before, f"{name}: MACs did not drop ({macs_before} -> {macs_after})"


@pytest.mark.parametrize("name", list(SUBSET))
def test_prune_subset(name: str) -> None:
    _prune_and_check(name, SUBSET[name], **BUILD_KWARGS.get(name, {}))


def _all_models() -> list[str]:
    return list(torchvision.models.list_models(module=torchvision.models))


@pytest.mark.slow
@pytest.mark.parametrize("name", _all_models())
def test_prune_every_torchvision_model(name: str) -> None:
    _prune_and_check(name, FULL_SIZE.get(name, 224))
