"""Quantization-aware fine-tuning: train a (pruned) model with the rounding int8 will apply.

:func:`attach_fake_quant` makes every ``Conv1d/2d/3d`` and ``Linear`` see what ONNX Runtime's
static int8 computes: weights rounded to int8 per output channel (symmetric, scale
``max|w| / 127``, or 7 bits with ``reduce_range``) through a parametrization, and inputs
rounded to uint8 per tensor (asymmetric, range tracked by a moving average while training)
through a forward pre-hook. Gradients pass straight through the rounding
(``torch.fake_quantize_per_channel_affine`` / ``..._per_tensor_affine``, PyTorch core ops).
A weight that carries a prunekit mask keeps it: the fake quantization runs after the mask,
and zero stays exactly zero. :meth:`FakeQuant.remove` takes only the fake quantization
away again; the pruned shapes and masks are untouched, and the model is float again, ready
to be exported and quantized with calibration (:mod:`prunekit.export.quantize`).

:func:`quantization_aware_finetune` wraps :func:`prunekit.train.finetune` with it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import nn
from torch.nn.utils import parametrize

from ..errors import ConfigError
from ..train.distill import DistillConfig
from ..train.finetune import FinetuneConfig, FinetuneResult, MetricFn, accuracy, finetune

__all__ = ["FakeQuant", "attach_fake_quant", "quantization_aware_finetune"]

_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


class WeightFakeQuant(nn.Module):
    """Parametrization: int8 rounding per output channel (dimension 0), symmetric."""

    def __init__(self, reduce_range: bool = False) -> None:
        super().__init__()
        self.qmax = 63 if reduce_range else 127

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        flat = weight.detach().reshape(weight.shape[0], -1)
        scale = (flat.abs().amax(dim=1) / self.qmax).clamp_min(1e-12).float()
        zero = torch.zeros(weight.shape[0], dtype=torch.int32, device=weight.device)
        return torch.fake_quantize_per_channel_affine(weight, scale, zero, 0, -self.qmax,
                                                      self.qmax)


class InputFakeQuant:
    """Forward pre-hook: uint8 rounding of a layer's input per tensor, asymmetric, with a
    range that follows a moving average of batch minima/maxima in training mode."""

    def __init__(self, momentum: float = 0.1) -> None:
        self.momentum = momentum
        self.low: float | None = None
        self.high: float | None = None

    def __call__(self, module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        x = args[0] if args else None
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            return None
        if module.training or self.low is None or self.high is None:
            lo, hi = float(x.detach().min()), float(x.detach().max())
            if self.low is not None and self.high is not None:
                lo = self.low + self.momentum * (lo - self.low)
                hi = self.high + self.momentum * (hi - self.high)
            self.low, self.high = lo, hi
        low, high = min(self.low, 0.0), max(self.high, 0.0)
        scale = max((high - low) / 255.0, 1e-12)
        zero = int(min(max(round(-low / scale), 0), 255))
        return (torch.fake_quantize_per_tensor_affine(x, scale, zero, 0, 255), *args[1:])


def _chain(module: nn.Module) -> nn.ModuleList:
    """The parametrizations of ``module.weight`` (a ``ParametrizationList``)."""
    return cast(nn.ModuleList, module.parametrizations["weight"])  # type: ignore[index]


@dataclass
class FakeQuant:
    """What :func:`attach_fake_quant` installed; :meth:`remove` undoes exactly that."""

    modules: dict[str, nn.Module]
    hooks: list[Any] = field(default_factory=list)
    inputs: dict[str, InputFakeQuant] = field(default_factory=dict)

    def remove(self) -> None:
        """Take the fake quantization off again (masks and other parametrizations stay)."""
        for handle in self.hooks:
            handle.remove()
        self.hooks.clear()
        for module in self.modules.values():
            chain = _chain(module)
            index = next(i for i, p in enumerate(chain) if isinstance(p, WeightFakeQuant))
            if len(chain) == 1:
                parametrize.remove_parametrizations(module, "weight", leave_parametrized=False)
            else:
                del chain[index]
        self.modules.clear()


def attach_fake_quant(model: nn.Module, *, reduce_range: bool = False,
                      exclude: Iterable[str] = ()) -> FakeQuant:
    """Install int8 fake quantization on every conv/linear layer of ``model`` not in
    ``exclude`` (module names; their submodules too)."""
    skipped = tuple(exclude)
    modules = {name: m for name, m in model.named_modules()
               if isinstance(m, _LAYERS) and isinstance(getattr(m, "weight", None), torch.Tensor)
               and not any(name == e or name.startswith(e + ".") for e in skipped)}
    if not modules:
        raise ConfigError("the model has no Conv/Linear layer to quantize (after exclude)")
    for name, module in modules.items():
        if parametrize.is_parametrized(module, "weight") and any(
                isinstance(p, WeightFakeQuant) for p in _chain(module)):
            raise ConfigError(f"{name} already has fake quantization attached")
    state = FakeQuant(dict(modules))
    for name, module in modules.items():
        parametrize.register_parametrization(module, "weight", WeightFakeQuant(reduce_range))
        observer = InputFakeQuant()
        state.inputs[name] = observer
        state.hooks.append(module.register_forward_pre_hook(observer))
    return state


def quantization_aware_finetune(model: nn.Module, train_loader: Iterable[Any],
                                val_loader: Iterable[Any], config: FinetuneConfig, *,
                                metric_fn: MetricFn = accuracy,
                                teacher: nn.Module | None = None,
                                distill: DistillConfig | None = None,
                                reduce_range: bool = False,
                                exclude: Iterable[str] = ()) -> FinetuneResult:
    """Fine-tune ``model`` in place with int8 fake quantization attached, then remove it;
    the validation metric during training is the fake-quantized one."""
    state = attach_fake_quant(model, reduce_range=reduce_range, exclude=exclude)
    try:
        return finetune(model, train_loader, val_loader, config, metric_fn=metric_fn,
                        teacher=teacher, distill=distill)
    finally:
        state.remove()
