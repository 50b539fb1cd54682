"""Handlers of the common layers: convolutions, linear, normalisation, embeddings."""

from __future__ import annotations

from typing import Any, cast

import torch.nn as nn

from .base import Handler, ModuleShapes, register_handler


@register_handler(nn.Conv1d, nn.Conv2d, nn.Conv3d)
class ConvHandler(Handler):
    """Depthwise-style convolutions (one input channel per group) lose whole groups;
    other grouped convolutions keep their group count."""

    def attributes(self, module: nn.Module, shapes: ModuleShapes) -> dict[str, Any]:
        module = cast(nn.modules.conv._ConvNd, module)  # registered for conv classes
        out_c, in_g = shapes.params["weight"][:2]
        groups = module.groups
        if groups > 1 and module.in_channels // groups == 1:
            groups = out_c // (module.out_channels // module.groups)
        return {"out_channels": out_c, "in_channels": in_g * groups, "groups": groups}


@register_handler(nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
class ConvTransposeHandler(Handler):
    def attributes(self, module: nn.Module, shapes: ModuleShapes) -> dict[str, Any]:
        module = cast(nn.modules.conv._ConvNd, module)  # registered for conv classes
        in_c, out_g = shapes.params["weight"][:2]
        groups = module.groups
        if groups > 1 and module.in_channels // groups == 1 and module.out_channels // groups == 1:
            groups = in_c
        return {"in_channels": in_c, "out_channels": out_g * groups, "groups": groups}


@register_handler(nn.Linear)
class LinearHandler(Handler):
    def attributes(self, module: nn.Module, shapes: ModuleShapes) -> dict[str, Any]:
        out_f, in_f = shapes.params["weight"]
        return {"out_features": out_f, "in_features": in_f}


def _channels(shapes: ModuleShapes, *names: str) -> int | None:
    for name in names:
        if name in shapes.params:
            return shapes.params[name][0]
    shape = shapes.input_shape()
    return None if shape is None else shape[1] if len(shape) > 1 else shape[0]


@register_handler(nn.modules.batchnorm._NormBase)
class BatchNormHandler(Handler):
    """BatchNorm and InstanceNorm: ``num_features``."""

    def attributes(self, module: nn.Module, shapes: ModuleShapes) -> dict[str, Any]:
        n = _channels(shapes, "weight", "running_mean")
        return {} if n is None else {"num_features": n}


@register_handler(nn.GroupNorm)
class GroupNormHandler(Handler):
    def attributes(self, module: nn.Module, shapes: ModuleShapes) -> dict[str, Any]:
        n = _channels(shapes, "weight")
        if n is None:
            shape = shapes.input_shape()
            n = None if shape is None or len(shape) < 2 else shape[1]
        if n is None:
            return {}
        group_norm = cast(nn.GroupNorm, module)
        per_channel = group_norm.num_groups == group_norm.num_channels
        return {"num_channels": n, "num_groups": n} if per_channel else {"num_channels": n}


@register_handler(nn.LayerNorm, nn.RMSNorm)
class LayerNormHandler(Handler):
    def attributes(self, module: nn.Module, shapes: ModuleShapes) -> dict[str, Any]:
        n_dims = len(module.normalized_shape)  # type: ignore[arg-type]
        if "weight" in shapes.params:
            return {"normalized_shape": list(shapes.params["weight"])}
        shape = shapes.input_shape()
        return {} if shape is None else {"normalized_shape": list(shape[-n_dims:])}


@register_handler(nn.PReLU)
class PReLUHandler(Handler):
    def attributes(self, module: nn.Module, shapes: ModuleShapes) -> dict[str, Any]:
        return {"num_parameters": shapes.params["weight"][0]}


@register_handler(nn.Embedding, nn.EmbeddingBag)
class EmbeddingHandler(Handler):
    def attributes(self, module: nn.Module, shapes: ModuleShapes) -> dict[str, Any]:
        rows, cols = shapes.params["weight"]
        return {"num_embeddings": rows, "embedding_dim": cols}


@register_handler(nn.Unflatten)
class UnflattenHandler(Handler):
    def attributes(self, module: nn.Module, shapes: ModuleShapes) -> dict[str, Any]:
        module = cast(nn.Unflatten, module)
        out = shapes.output_shape()
        if out is None or isinstance(module.dim, str):
            return {}
        start = module.dim if module.dim >= 0 else len(out) - len(module.unflattened_size) + module.dim + 1
        return {"unflattened_size": list(out[start:start + len(module.unflattened_size)])}
