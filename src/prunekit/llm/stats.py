"""Calibration statistics of a linear layer's inputs, gathered by a forward hook.

``sumsq[j]`` is the sum of squares of input feature ``j`` over calibration tokens (Wanda's
``||X_j||^2``); ``hessian`` is ``X^T X / count`` (SparseGPT's layer-wise Hessian, up to
a factor 2 that damping makes irrelevant). Padding tokens can be excluded by setting
``token_mask`` before each batch.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle


class InputStats:
    """Accumulates input statistics of one layer while its hook is attached."""

    def __init__(self, in_features: int, *, hessian: bool, device: torch.device) -> None:
        self.count = 0
        self.sumsq = torch.zeros(in_features, dtype=torch.float32, device=device)
        self._xtx = (torch.zeros(in_features, in_features, dtype=torch.float32, device=device)
                     if hessian else None)
        self.token_mask: torch.Tensor | None = None

    def add(self, x: torch.Tensor) -> None:
        """Add a batch of inputs ``[..., in_features]`` (rows where ``token_mask`` is False skipped)."""
        if self.token_mask is not None and x.shape[:-1] == self.token_mask.shape:
            x = x[self.token_mask.to(torch.bool)]
        x = x.reshape(-1, x.shape[-1]).to(torch.float32)
        self.count += x.shape[0]
        self.sumsq += (x * x).sum(dim=0)
        if self._xtx is not None:
            self._xtx.addmm_(x.t(), x)

    def attach(self, module: nn.Module) -> RemovableHandle:
        """Register a forward hook on ``module`` that feeds its input to :meth:`add`."""
        def hook(_mod: nn.Module, inputs: tuple[torch.Tensor, ...], _out: object) -> None:
            self.add(inputs[0].detach())
        return module.register_forward_hook(hook)

    @property
    def column_norms(self) -> torch.Tensor:
        """``||X_j||_2`` per input feature."""
        return self.sumsq.sqrt()

    @property
    def hessian(self) -> torch.Tensor:
        """``X^T X / count`` (only when created with ``hessian=True``)."""
        if self._xtx is None:
            raise RuntimeError("InputStats was created without hessian=True")
        return self._xtx / max(self.count, 1)
