"""Modules of model zoos whose forward reshapes by size attributes the slicing must update.

They are registered by qualified class name, so prunekit imports no zoo: torchvision and timm
here, Hugging Face transformers with their family's row in :mod:`prunekit.hf.families`. For attention, the
head count and head size are read back from the pruned projection: with head splits pruned
by head-size position (``split_units="inner"``) the head size shrinks; with whole heads
(``"outer"``) the head count does. Attention scales stay as they were.
"""

from __future__ import annotations

from typing import Any

import torch.nn as nn

from .base import Handler, ModuleShapes, register_handler_by_name


class HeadAttributes(Handler):
    """``proj`` projects to ``fused * heads * head_dim`` features (``fused=3`` for a fused
    q/k/v); the forward reshapes with the ``heads`` and ``head_dim`` attributes, and
    ``total`` (if given) holds ``heads * head_dim``. ``conv1d``: the weight is stored
    ``[in, out]`` (Hugging Face ``Conv1D``)."""

    def __init__(self, proj: str, heads: str, head_dim: str, *, fused: int = 1,
                 total: str | None = None, conv1d: bool = False) -> None:
        self.proj, self.heads, self.head_dim = proj, heads, head_dim
        self.fused, self.total, self.conv1d = fused, total, conv1d

    def attributes(self, module: nn.Module, shapes: ModuleShapes) -> dict[str, Any]:
        weight = shapes.params.get(f"{self.proj}.weight")
        heads, head_dim = getattr(module, self.heads, None), getattr(module, self.head_dim, None)
        if weight is None or not isinstance(heads, int) or not isinstance(head_dim, int):
            return {}
        per_part = (weight[1] if self.conv1d else weight[0]) // self.fused
        if shapes.split_units == "outer" and per_part % head_dim == 0:
            heads = per_part // head_dim
        elif per_part % heads == 0:
            head_dim = per_part // heads
        else:
            return {}
        attrs: dict[str, Any] = {self.heads: heads, self.head_dim: head_dim}
        if self.total is not None:
            attrs[self.total] = heads * head_dim
        return attrs


class Conv1DAttributes(Handler):
    """Hugging Face ``Conv1D`` (GPT-2): a linear layer with weight ``[nx, nf]`` whose
    forward reshapes to ``nf`` features."""

    def attributes(self, module: nn.Module, shapes: ModuleShapes) -> dict[str, Any]:
        weight = shapes.params.get("weight")
        return {} if weight is None else {"nx": weight[0], "nf": weight[1]}


class TorchvisionViTHandler(Handler):
    """torchvision's ``VisionTransformer`` reshapes the patch embedding with ``hidden_dim``."""

    def attributes(self, module: nn.Module, shapes: ModuleShapes) -> dict[str, Any]:
        weight = shapes.params.get("conv_proj.weight")
        return {} if weight is None else {"hidden_dim": weight[0]}


register_handler_by_name("torchvision.models.vision_transformer.VisionTransformer",
                         handler=TorchvisionViTHandler())
register_handler_by_name("torchvision.models.maxvit.RelativePositionalMultiHeadAttention",
                         handler=HeadAttributes("to_qkv", "n_heads", "head_dim", fused=3))
register_handler_by_name("timm.layers.attention.Attention",
                         handler=HeadAttributes("qkv", "num_heads", "head_dim", fused=3,
                                                total="attn_dim"))
