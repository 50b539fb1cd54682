"""Modules of model zoos whose forward reshapes by size attributes the slicing must update.

They are registered by qualified class name, so prunekit imports no zoo. For attention with
a fused q/k/v projection and the default
unit of a head split (one position of the head dimension, the same in every head), only the
head size changes: it is read back from the pruned projection. The attention scale stays as
it was, so zeroed positions removed leave the outputs unchanged.
"""

from __future__ import annotations

from typing import Any

import torch.nn as nn

from .base import Handler, ModuleShapes, register_handler_by_name


class FusedQKVAttentionHandler(Handler):
    """``qkv`` projects to ``3 * heads * head_dim`` features; the forward reshapes with the
    module's ``heads`` and ``head_dim`` attributes (and ``attn_dim`` where present)."""

    def __init__(self, qkv: str, heads: str, head_dim: str) -> None:
        self.qkv, self.heads, self.head_dim = qkv, heads, head_dim

    def attributes(self, module: nn.Module, shapes: ModuleShapes) -> dict[str, Any]:
        weight = shapes.params.get(f"{self.qkv}.weight")
        heads = getattr(module, self.heads, None)
        if weight is None or not isinstance(heads, int) or weight[0] % (3 * heads):
            return {}
        head_dim = weight[0] // (3 * heads)
        attrs: dict[str, Any] = {self.head_dim: head_dim}
        if isinstance(getattr(module, "attn_dim", None), int):
            attrs["attn_dim"] = heads * head_dim
        return attrs


register_handler_by_name("torchvision.models.maxvit.RelativePositionalMultiHeadAttention",
                         handler=FusedQKVAttentionHandler("to_qkv", "n_heads", "head_dim"))
register_handler_by_name("timm.layers.attention.Attention",
                         handler=FusedQKVAttentionHandler("qkv", "num_heads", "head_dim"))


class TorchvisionViTHandler(Handler):
    """torchvision's ``VisionTransformer`` reshapes the patch embedding with ``hidden_dim``."""

    def attributes(self, module: nn.Module, shapes: ModuleShapes) -> dict[str, Any]:
        weight = shapes.params.get("conv_proj.weight")
        return {} if weight is None else {"hidden_dim": weight[0]}


register_handler_by_name("torchvision.models.vision_transformer.VisionTransformer",
                         handler=TorchvisionViTHandler())
