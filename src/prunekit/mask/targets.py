"""Which tensors get masks: Linear and Conv weights and attention input projections by
default, minus ignored module names."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

import torch
import torch.nn as nn

from ..errors import ConfigError
from .parametrization import get_mask, original_parameter, set_mask

DEFAULT_LAYER_TYPES: tuple[type[nn.Module], ...] = (
    nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.MultiheadAttention)

# nn.MultiheadAttention keeps its input projections as its own parameters (its output
# projection is an nn.Linear child, found on its own).
_ATTENTION_WEIGHTS = ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight")


@dataclass(frozen=True, eq=False)
class MaskTarget:
    """One maskable tensor: ``module.<param>`` of the module named ``module_name``."""

    module_name: str
    module: nn.Module
    param: str

    @property
    def key(self) -> str:
        """The tensor's name in the model, e.g. ``"layer1.0.conv1.weight"``."""
        return f"{self.module_name}.{self.param}" if self.module_name else self.param

    @property
    def tensor(self) -> torch.Tensor:
        """The unmasked parameter."""
        return original_parameter(self.module, self.param)

    @property
    def mask(self) -> torch.Tensor | None:
        """The installed keep-mask, or ``None``."""
        return get_mask(self.module, self.param)

    def set_mask(self, mask: torch.Tensor) -> None:
        """Install or replace the keep-mask."""
        set_mask(self.module, mask, self.param)


def _weight_names(module: nn.Module) -> list[str]:
    names = _ATTENTION_WEIGHTS if isinstance(module, nn.MultiheadAttention) else ("weight",)
    return [n for n in names
            if isinstance(original_parameter(module, n) if hasattr(module, n) else None,
                          nn.Parameter)]


def maskable_targets(model: nn.Module,
                     layer_types: Sequence[type[nn.Module]] = DEFAULT_LAYER_TYPES,
                     ignore: Sequence[str] = ()) -> dict[str, MaskTarget]:
    """Weights of ``layer_types`` modules whose name matches no glob pattern in ``ignore``.

    Returns ``{tensor name: target}`` in model order; raises :class:`ConfigError` when
    nothing is left to mask.
    """
    found: dict[str, MaskTarget] = {}
    for name, module in model.named_modules():
        if not any(isinstance(module, kind) for kind in layer_types):
            continue
        if any(fnmatchcase(name, pattern) for pattern in ignore):
            continue
        for param in _weight_names(module):
            target = MaskTarget(name, module, param)
            found[target.key] = target
    if not found:
        kinds = ", ".join(t.__name__ for t in layer_types)
        raise ConfigError(
            f"no layer to mask in {type(model).__name__}: no {kinds} module is left after "
            f"ignoring {list(ignore)}; check MaskConfig(ignore=..., layer_types=...)"
        )
    return found
