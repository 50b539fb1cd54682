"""The prunable linear layers of a block, and their weights seen as ``[out, in]``.

``nn.Linear`` stores ``[out, in]``; GPT-2's ``Conv1D`` stores ``[in, out]``. Both read the
last dimension of their input, so calibration statistics are gathered the same way.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def _is_conv1d(module: nn.Module) -> bool:
    weight = getattr(module, "weight", None)
    return (type(module).__name__ == "Conv1D" and hasattr(module, "nf")
            and isinstance(weight, torch.Tensor) and weight.dim() == 2)


def prunable_layers(block: nn.Module, ignore: tuple[str, ...] = ()) -> dict[str, nn.Module]:
    """Linear-like layers of ``block`` by qualified name, skipping names containing ``ignore``."""
    return {
        name: mod for name, mod in block.named_modules()
        if (isinstance(mod, nn.Linear) or _is_conv1d(mod))
        and not any(pat in name for pat in ignore)
    }


def in_features(module: Any) -> int:
    """Size of the input dimension the layer contracts."""
    return int(module.weight.shape[0] if _is_conv1d(module) else module.weight.shape[1])


def shape_2d(module: Any) -> torch.Size:
    """The weight's shape as ``[out_features, in_features]``."""
    shape = module.weight.shape
    return torch.Size((shape[1], shape[0])) if _is_conv1d(module) else shape


def get_weight_2d(module: Any) -> torch.Tensor:
    """A float32 copy of the weight as ``[out_features, in_features]``."""
    w = module.weight.detach()
    w = w.t() if _is_conv1d(module) else w
    return w.to(torch.float32).clone()


@torch.no_grad()
def set_weight_2d(module: Any, weight: torch.Tensor) -> None:
    """Write an ``[out, in]`` weight back, in the layer's own layout and dtype."""
    w = weight.t() if _is_conv1d(module) else weight
    module.weight.copy_(w.to(module.weight.dtype))
