"""Tiny models (random weights) for the depth tests, and which modules end each residual
branch of a block: zeroing them makes the block the identity on its residual stream."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from prunekit.testing import hf_example

IDS = torch.randint(0, 100, (2, 8), generator=torch.Generator().manual_seed(0))
IMAGES = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


@dataclass(frozen=True)
class Family:
    build: Callable[[], nn.Module]
    inputs: torch.Tensor
    block: str  # the block the exactness test removes
    branch_ends: tuple[str, ...]  # modules (under the block) whose outputs end its branches
    exact: bool  # Block.exact expected


def llama(layers: int = 3) -> nn.Module:
    return hf_example("llama", "causal", num_hidden_layers=layers, initializer_range=0.2)


def gpt2(layers: int = 3) -> nn.Module:
    return hf_example("gpt2", "causal", n_layer=layers, initializer_range=0.2)


def bert() -> nn.Module:
    return hf_example("bert", num_hidden_layers=3, initializer_range=0.2)


def resnet18() -> nn.Module:
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=10).eval()


@torch.no_grad()
def spread(model: nn.Module) -> nn.Module:
    """Linear weights ~ N(0, 1/fan_in): outputs of order one, so the checks mean something."""
    for module in model.modules():
        if isinstance(module, nn.Linear):
            module.weight.normal_(0.0, module.in_features ** -0.5)
    return model


def tv_vit() -> nn.Module:
    from torchvision.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    return spread(VisionTransformer(image_size=32, patch_size=8, num_layers=3, num_heads=2,
                                    hidden_dim=32, mlp_dim=64, num_classes=10)).eval()


def timm_vit() -> nn.Module:
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    return spread(VisionTransformer(img_size=32, patch_size=8, embed_dim=32, depth=3,
                                    num_heads=2, num_classes=10)).eval()


def tv_swin() -> nn.Module:
    from torchvision.models.swin_transformer import SwinTransformer

    torch.manual_seed(0)
    return spread(SwinTransformer(patch_size=[4, 4], embed_dim=16, depths=[2, 2],
                                  num_heads=[2, 2], window_size=[2, 2], num_classes=10)).eval()


FAMILIES: dict[str, Family] = {
    "llama": Family(llama, IDS, "model.layers.1", ("self_attn.o_proj", "mlp.down_proj"), True),
    "gpt2": Family(gpt2, IDS, "transformer.h.1", ("attn.c_proj", "mlp.c_proj"), True),
    # post-norm: exact here because the block's input is already layer-normalized
    "bert": Family(bert, IDS, "encoder.layer.1", ("attention.output.dense", "output.dense"),
                   False),
    # the last BatchNorm ends the branch; relu(x) == x on the non-negative input
    "resnet18": Family(resnet18, IMAGES, "layer1.1", ("bn2",), True),
    "tv_vit": Family(tv_vit, IMAGES, "encoder.layers.encoder_layer_1",
                     ("self_attention.out_proj", "mlp.3"), True),
    "timm_vit": Family(timm_vit, IMAGES, "blocks.1", ("attn.proj", "mlp.fc2"), True),
    "tv_swin": Family(tv_swin, IMAGES, "features.1.1", ("attn.proj", "mlp.3"), True),
}


@torch.no_grad()
def zero_branches(model: nn.Module, block: str, ends: tuple[str, ...]) -> nn.Module:
    """Zero the weight and bias of each branch-ending module of ``block`` (in place)."""
    for end in ends:
        module = model.get_submodule(f"{block}.{end}")
        for name in ("weight", "bias"):
            tensor = getattr(module, name, None)
            if tensor is not None:
                tensor.zero_()
    return model


@torch.no_grad()
def run(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    out = model(inputs)
    if isinstance(out, torch.Tensor):
        return out
    return out.logits if getattr(out, "logits", None) is not None else out.last_hidden_state
