"""Masks installed with ``torch.nn.utils.parametrize``, and finalisation.

What this does to state-dict keys (``torch.nn.utils.parametrize`` moves the parameter):

- while a mask is installed on ``fc.weight``, ``model.state_dict()`` holds
  ``fc.parametrizations.weight.original`` (the unmasked values) instead of ``fc.weight``;
  reading ``fc.weight`` returns the masked weight (``torch.where(mask, original, 0)``), and
  gradients reach ``original`` only where the mask keeps it;
- the mask is a *non-persistent* buffer of the parametrization
  (``fc.parametrizations.weight.0.mask``), so it is not in the model's state dict: masks
  travel in :meth:`prunekit.schedule.GradualPruner.state_dict` or in a finalised
  checkpoint, where pruned weights are zeros;
- :func:`finalize` bakes the masks into the weights and removes the parametrizations, so
  the keys are the model's own again (``fc.weight``; it now comes after ``fc.bias`` in
  the state dict's order, which ``load_state_dict`` does not mind). :func:`finalized_state_dict` gives
  that state dict without changing the model.

The original ``nn.Parameter`` object is kept (it becomes ``...original``), so an optimizer
created before or after masking keeps working.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
import torch.nn as nn
from torch.nn.utils import parametrize

from ..errors import ConfigError


class WeightMask(nn.Module):
    """Parametrization ``w -> where(mask, w, 0)`` with the mask as a non-persistent buffer."""

    mask: torch.Tensor

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask.to(torch.bool), persistent=False)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return torch.where(self.mask, weight, weight.new_zeros(()))


def _parametrizations(module: nn.Module) -> Any:
    """``module.parametrizations`` (a ``ModuleDict`` of ``ParametrizationList``)."""
    return module.parametrizations


def _find(module: nn.Module, name: str) -> WeightMask | None:
    if not parametrize.is_parametrized(module, name):
        return None
    for p in _parametrizations(module)[name]:
        if isinstance(p, WeightMask):
            return p
    return None


def is_masked(module: nn.Module, name: str = "weight") -> bool:
    """Whether ``module.<name>`` carries a prunekit mask."""
    return _find(module, name) is not None


def get_mask(module: nn.Module, name: str = "weight") -> torch.Tensor | None:
    """The boolean keep-mask of ``module.<name>`` (a live buffer), or ``None``."""
    found = _find(module, name)
    return None if found is None else found.mask


def original_parameter(module: nn.Module, name: str = "weight") -> torch.Tensor:
    """The unmasked parameter behind ``module.<name>`` (the parameter itself if unmasked)."""
    if parametrize.is_parametrized(module, name):
        return _parametrizations(module)[name].original
    return getattr(module, name)


def set_mask(module: nn.Module, mask: torch.Tensor, name: str = "weight") -> None:
    """Install ``mask`` on ``module.<name>``, or replace the installed one in place."""
    param = original_parameter(module, name)
    if tuple(mask.shape) != tuple(param.shape):
        raise ConfigError(
            f"mask of shape {tuple(mask.shape)} does not fit {type(module).__name__}.{name} "
            f"of shape {tuple(param.shape)}; compute masks from scores of the weight's shape"
        )
    found = _find(module, name)
    if found is None:
        parametrize.register_parametrization(module, name,
                                             WeightMask(mask.to(param.device)))
    else:
        found.mask.copy_(mask.to(device=found.mask.device, dtype=torch.bool))


def masked_modules(model: nn.Module) -> Iterator[tuple[str, nn.Module, str]]:
    """``(module name, module, parameter name)`` for every mask installed in ``model``."""
    for mod_name, module in model.named_modules():
        if not parametrize.is_parametrized(module):
            continue
        for tensor_name in list(_parametrizations(module).keys()):
            if _find(module, tensor_name) is not None:
                yield mod_name, module, tensor_name


def remove_mask(module: nn.Module, name: str = "weight", bake: bool = True) -> None:
    """Remove the mask of ``module.<name>``; with ``bake`` pruned weights become zeros.

    Other parametrizations on the same tensor are kept.
    """
    found = _find(module, name)
    if found is None:
        return
    plist = _parametrizations(module)[name]
    if bake:
        with torch.no_grad():
            original = plist.original
            original.copy_(torch.where(found.mask, original, original.new_zeros(())))
    if len(plist) == 1:
        parametrize.remove_parametrizations(module, name, leave_parametrized=False)
        return
    keep = [p for p in plist if p is not found]
    parametrize.remove_parametrizations(module, name, leave_parametrized=False)
    for p in keep:
        parametrize.register_parametrization(module, name, p)


def finalize(model: nn.Module) -> nn.Module:
    """Bake every mask into its weight and remove the parametrizations (in place)."""
    for _, module, name in list(masked_modules(model)):
        remove_mask(module, name, bake=True)
    return model


def finalized_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict ``model`` will have after :func:`finalize`, model left unchanged.

    Masked tensors appear under their own key (``fc.weight``) with pruned entries zero.
    """
    state = model.state_dict()
    replaced: dict[str, tuple[str, torch.Tensor]] = {}
    for mod_name, module, name in masked_modules(model):
        prefix = f"{mod_name}." if mod_name else ""
        if len(_parametrizations(module)[name]) != 1:
            raise ConfigError(
                f"{prefix}{name} carries other parametrizations besides its mask; "
                "call prunekit.mask.finalize(model) and save model.state_dict() instead"
            )
        replaced[f"{prefix}parametrizations.{name}.original"] = (
            f"{prefix}{name}", getattr(module, name).detach())
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key in replaced:
            new_key, baked = replaced[key]
            out[new_key] = baked
        else:
            out[key] = value
    return out
