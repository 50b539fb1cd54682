"""Score → mask → install: the shared step of one-shot masking and gradual pruning."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import torch
import torch.nn as nn

from ..errors import ConfigError
from ..importance import Importance
from .calibration import InputNormRecorder
from .parametrization import get_mask, masked_modules
from .patterns import Pattern, Unstructured, check_sparsity
from .scores import element_scores, resolve_element_importance
from .targets import DEFAULT_LAYER_TYPES, MaskTarget, maskable_targets

Calibrate = Callable[[nn.Module], None]
"""Runs the model on calibration data; for gradient criteria it also calls ``backward()``."""


@dataclass(frozen=True)
class MaskConfig:
    """How masks are computed: pattern, importance criterion, and which layers.

    - ``pattern``: :class:`Unstructured` (local or global), :class:`NM` or :class:`Block`;
    - ``importance``: a registered name (``"l1"`` = magnitude, ``"gradient"``,
      ``"taylor"``) or an instance such as :class:`InputNormWeightedImportance`;
    - ``ignore``: glob patterns of module names left dense (e.g. ``("conv1", "fc")``);
    - ``regrow``: when masks are recomputed, may pruned weights come back? With the default
      ``False`` sparsity only grows, and a pruned weight stays pruned.
    """

    pattern: Pattern = field(default_factory=Unstructured)
    importance: str | Importance = "l1"
    importance_options: Mapping[str, object] = field(default_factory=dict)
    ignore: tuple[str, ...] = ()
    layer_types: tuple[type[nn.Module], ...] = DEFAULT_LAYER_TYPES
    regrow: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.pattern, Pattern):
            raise ConfigError(f"MaskConfig.pattern must be Unstructured(), NM(n, m) or "
                              f"Block(shape), got {self.pattern!r}")
        if isinstance(self.ignore, str) or not all(isinstance(i, str) for i in self.ignore):
            raise ConfigError(f"MaskConfig.ignore must be a tuple of module-name patterns, "
                              f"got {self.ignore!r}")
        object.__setattr__(self, "ignore", tuple(self.ignore))
        if not self.layer_types or not all(isinstance(t, type) and issubclass(t, nn.Module)
                                           for t in self.layer_types):
            raise ConfigError(f"MaskConfig.layer_types must be nn.Module classes, got "
                              f"{self.layer_types!r}")
        object.__setattr__(self, "layer_types", tuple(self.layer_types))
        object.__setattr__(self, "importance_options",
                           MappingProxyType(dict(self.importance_options)))
        self.criterion()  # unknown names and non-element-wise criteria fail here

    def criterion(self) -> Importance:
        """The importance criterion, resolved from the registry."""
        return resolve_element_importance(self.importance, dict(self.importance_options))

    def targets(self, model: nn.Module) -> dict[str, MaskTarget]:
        """The tensors to mask by name, each checked against the pattern (e.g. N:M)."""
        targets = maskable_targets(model, self.layer_types, self.ignore)
        for key, target in targets.items():
            self.pattern.check_shape(key, target.tensor.shape)
        return targets


def _calibrated(model: nn.Module, targets: Mapping[str, MaskTarget], criterion: Importance,
                calibrate: Calibrate | None) -> tuple[dict[str, torch.Tensor | None],
                                                      dict[str, torch.Tensor]]:
    """Gradients (by tensor) and input norms (by module) for ``targets``, as needed."""
    params = {k: t.tensor for k, t in targets.items()}
    needs_grad = criterion.needs_gradients
    needs_act = criterion.needs_activations
    if calibrate is None:
        if needs_act:
            raise ConfigError(
                f"importance {type(criterion).__name__} needs activations; pass "
                "calibrate=fn where fn(model) runs the model on calibration batches"
            )
        return ({n: p.grad for n, p in params.items()} if needs_grad else {}), {}
    if not (needs_grad or needs_act):
        return {}, {}
    saved = {p: p.grad for p in model.parameters()}
    for p in saved:
        p.grad = None
    try:
        if needs_act:
            modules = {t.module_name: t.module for t in targets.values()}
            with InputNormRecorder(modules) as recorder:
                calibrate(model)
            norms = recorder.norms()
        else:
            calibrate(model)
            norms = {}
        grads = {n: p.grad for n, p in params.items()} if needs_grad else {}
    finally:
        for p, g in saved.items():
            p.grad = g
    return grads, norms


def layer_scores(model: nn.Module, targets: Mapping[str, MaskTarget], criterion: Importance,
                 calibrate: Calibrate | None = None) -> dict[str, torch.Tensor]:
    """Importance scores of each target's (unmasked) weight, of the weight's shape."""
    grads, norms = _calibrated(model, targets, criterion, calibrate)
    if criterion.needs_activations:
        missing = sorted({t.module_name for t in targets.values()} - set(norms))
        if missing:
            raise ConfigError(f"calibration never ran layers {missing}; make calibrate(model) "
                              "run the whole model, or ignore those layers")
    return {
        key: element_scores(criterion, key, t.tensor, grad=grads.get(key),
                            input_norm=norms.get(t.module_name),
                            groups=int(getattr(t.module, "groups", 1)))
        for key, t in targets.items()
    }


def apply_masks(targets: Mapping[str, MaskTarget], pattern: Pattern,
                scores: Mapping[str, torch.Tensor], sparsity: float,
                regrow: bool = False) -> dict[str, torch.Tensor]:
    """Compute masks from ``scores`` at ``sparsity`` and install them; returns the masks.

    Without ``regrow`` weights already pruned get score ``-inf``, so they stay pruned.
    """
    ranked = {}
    for key, target in targets.items():
        s = scores[key].to(torch.float64)
        current = target.mask
        if not regrow and current is not None:
            s = s.masked_fill(~current, float("-inf"))
        ranked[key] = s
    masks = pattern.masks(ranked, sparsity)
    for key, target in targets.items():
        target.set_mask(masks[key])
    return masks


def sparsify(model: nn.Module, sparsity: float, config: MaskConfig | None = None,
             calibrate: Calibrate | None = None,
             scores: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """One-shot masking: install masks at ``sparsity`` on the layers of ``config``.

    ``scores`` (``{tensor name: tensor of the weight's shape}``, e.g. ``"fc.weight"``)
    replaces the criterion. Returns the keep-masks by tensor name; the model keeps running
    with masked weights.
    """
    config = config or MaskConfig()
    sparsity = check_sparsity(sparsity, "sparsify")
    targets = config.targets(model)
    if scores is None:
        scores = layer_scores(model, targets, config.criterion(), calibrate)
    else:
        for key, target in targets.items():
            shape = tuple(target.tensor.shape)
            if key not in scores or tuple(scores[key].shape) != shape:
                raise ConfigError(f"scores for {key!r} are missing or not of the weight's "
                                  f"shape {shape}")
    with torch.no_grad():
        return apply_masks(targets, config.pattern, scores, sparsity, config.regrow)


def mask_sparsity(model: nn.Module) -> dict[str, float]:
    """Fraction of zeros in each mask (``"module.weight"``) and ``"total"`` over all masks."""
    out: dict[str, float] = {}
    zeros = total = 0
    for mod_name, module, name in masked_modules(model):
        mask = get_mask(module, name)
        assert mask is not None
        z = int((~mask).sum())
        out[f"{mod_name}.{name}" if mod_name else name] = z / mask.numel()
        zeros += z
        total += mask.numel()
    out["total"] = zeros / total if total else 0.0
    return out
