"""Transformer families for the engine tests: every example of the Hugging Face family table
(:mod:`prunekit.hf.families`), plus the timm and torchvision vision transformers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from prunekit.hf.families import FAMILIES
from prunekit.testing import hf_example

IDS = torch.randint(0, 100, (1, 8), generator=torch.Generator().manual_seed(0))
IMAGE = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))


@dataclass(frozen=True)
class Case:
    """How to build one family's model, what to feed it, the unit that prunes its attention."""

    build: Callable[[], torch.nn.Module]
    inputs: torch.Tensor
    split_units: str


def _hf(model_type: str, decoder: bool, image: bool) -> Callable[[], torch.nn.Module]:
    head = "image-classifier" if image else ("causal" if decoder else "classifier")
    return lambda: hf_example(model_type, head)


def _timm(name: str) -> Callable[[], torch.nn.Module]:
    import timm

    return lambda: timm.create_model(name, img_size=32, patch_size=8, depth=2, num_classes=10)


def _torchvision_vit() -> torch.nn.Module:
    import torchvision

    return torchvision.models.VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=4, hidden_dim=64, mlp_dim=96,
        num_classes=10)


def _torchvision_swin() -> torch.nn.Module:
    import torchvision

    return torchvision.models.SwinTransformer(
        patch_size=[4, 4], embed_dim=32, depths=[2, 2], num_heads=[2, 4], window_size=[4, 4],
        num_classes=10)


#: "hf-<model type>" for every example of the family table, then the vision zoos
CASES: dict[str, Case] = {
    f"hf-{model_type}": Case(_hf(model_type, fam.decoder, example.inputs == "pixel_values"),
                             IMAGE if example.inputs == "pixel_values" else IDS,
                             fam.split_units)
    for fam in FAMILIES for model_type, example in fam.examples.items()
}
CASES.update({
    "timm-vit": Case(_timm("vit_tiny_patch16_224"), IMAGE, "inner"),
    "timm-deit": Case(_timm("deit_tiny_distilled_patch16_224"), IMAGE, "inner"),
    "torchvision-vit": Case(_torchvision_vit, IMAGE, "inner"),
    "torchvision-swin": Case(_torchvision_swin, IMAGE, "inner"),
})


def build(family: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return CASES[family].build().eval()


def first_output(out: object) -> torch.Tensor:
    return out.logits if hasattr(out, "logits") else out  # type: ignore[return-value]
