"""Mixup of training inputs for fine-tuning, chiefly for distillation ("function matching").

Each sample ``i`` of a batch is blended with sample ``perm[i]`` of the same batch:
``x_i' = lam_i * x_i + (1 - lam_i) * x_perm[i]`` with ``lam_i ~ Beta(a, a)`` folded onto
``[0.5, 1]`` (``max(lam, 1 - lam)``), so every mixed sample stays closest to its own image
and label. The task loss is blended the same way; a distillation teacher sees the *mixed*
inputs, so the student learns to match the teacher's function on many more points than the
training set holds (Beyer et al., 2022, "Knowledge distillation: A good teacher is patient
and consistent"). Draws come from a NumPy generator seeded from torch's global generator
when fine-tuning starts, so ``torch.manual_seed`` makes a run repeatable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .outputs import logits_of

__all__ = ["MixedBatch", "Mixup", "mixed_task_loss"]


@dataclass(frozen=True)
class MixedBatch:
    """Mixed inputs, the per-sample weights ``lam`` (N,) and the partner indices ``perm``."""

    inputs: torch.Tensor
    lam: torch.Tensor
    perm: torch.Tensor


class Mixup:
    """Per-sample mixup with ``lam ~ Beta(alpha, alpha)`` folded onto ``[0.5, 1]``."""

    def __init__(self, alpha: float, seed: int) -> None:
        if not isinstance(alpha, (int, float)) or not alpha > 0 or not np.isfinite(alpha):
            raise ConfigError(f"mixup alpha must be a finite number > 0, got {alpha!r}")
        self.alpha = float(alpha)
        self.rng = np.random.default_rng(seed)

    @classmethod
    def from_torch_seed(cls, alpha: float) -> Mixup:
        """A mixup whose draws follow torch's global generator (one draw from it)."""
        return cls(alpha, int(torch.randint(0, 2**62, (1,)).item()))

    def __call__(self, inputs: Any) -> MixedBatch:
        if not isinstance(inputs, torch.Tensor) or not inputs.is_floating_point():
            raise ConfigError("mixup blends floating-point input tensors (images, features); "
                              f"this loader yields {type(inputs).__name__} inputs "
                              f"{_describe(inputs)}; set FinetuneConfig(mixup=0.0)")
        if inputs.dim() < 1 or inputs.shape[0] < 1:
            raise ConfigError(f"mixup needs batched inputs (N, ...), got shape "
                              f"{tuple(inputs.shape)}")
        n = int(inputs.shape[0])
        lam_np = self.rng.beta(self.alpha, self.alpha, size=n)
        lam_np = np.maximum(lam_np, 1.0 - lam_np)
        perm = torch.from_numpy(self.rng.permutation(n)).to(inputs.device)
        lam = torch.from_numpy(lam_np).to(device=inputs.device, dtype=inputs.dtype)
        shape = (n,) + (1,) * (inputs.dim() - 1)
        mixed = lam.view(shape) * inputs + (1.0 - lam.view(shape)) * inputs[perm]
        return MixedBatch(mixed, lam, perm)


def _describe(inputs: Any) -> str:
    if isinstance(inputs, torch.Tensor):
        return f"of dtype {inputs.dtype}"
    return "(mixup needs one tensor, not a tuple or dict)"


def mixed_task_loss(outputs: torch.Tensor, targets: torch.Tensor, batch: MixedBatch,
                    loss_fn: Callable[[Any, Any], torch.Tensor] | None) -> torch.Tensor:
    """The task loss of mixed inputs: ``lam * loss(y) + (1 - lam) * loss(y[perm])``.

    With the default cross-entropy (``loss_fn=None``) the weights are per sample; a custom
    ``loss_fn`` returns one number per batch, so it is weighted by the batch mean of ``lam``.
    """
    if not isinstance(targets, torch.Tensor) or targets.dim() < 1:
        raise ConfigError("mixup needs batched tensor targets (N, ...) to pair with the mixed "
                          "inputs; set FinetuneConfig(mixup=0.0)")
    partner = targets[batch.perm]
    if loss_fn is None:
        lam = batch.lam.to(torch.float32)
        logits = logits_of(outputs).float()
        own = F.cross_entropy(logits, targets, reduction="none")
        other = F.cross_entropy(logits, partner, reduction="none")
        return (lam * own + (1.0 - lam) * other).mean()
    weight = float(batch.lam.float().mean())
    return weight * loss_fn(outputs, targets) + (1.0 - weight) * loss_fn(outputs, partner)
