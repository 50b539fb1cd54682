"""Statistics of layer inputs on calibration data, collected with forward pre-hooks.

:class:`InputStats` accumulates, for one layer, ``sumsq[j]`` (the squared L2 norm of input
feature ``j`` over every token, sample and position: Wanda's ``||X_j||^2``) and, on request,
``X^T X`` (the layer-wise Hessian of SparseGPT and of least-squares re-fits) and the sum of
the inputs. :class:`InputNormRecorder` keeps one per module for masked sparsity. Padding
tokens are left out by setting :attr:`InputStats.token_mask` before each batch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

import torch
import torch.nn as nn
from torch.utils.hooks import RemovableHandle

from ..errors import ConfigError

__all__ = ["InputNormRecorder", "InputStats"]


class InputStats:
    """Accumulates statistics of one layer's inputs, batch by batch.

    - ``features``: size of the input dimension (``None``: taken from the first batch);
    - ``hessian`` / ``mean``: also accumulate ``X^T X`` / the sum of the inputs;
    - ``precision``: ``torch.float32`` accumulates ``X^T X`` in float32;
      ``torch.float64`` adds each batch's float32 product to float64 sums;
    - ``device``: where the sums live (default: the first batch's device).
    """

    def __init__(self, features: int | None = None, *, hessian: bool = False,
                 mean: bool = False, device: torch.device | str | None = None,
                 precision: torch.dtype = torch.float32) -> None:
        if precision not in (torch.float32, torch.float64):
            raise ConfigError(f"InputStats precision must be torch.float32 or torch.float64, "
                              f"got {precision}")
        self.count = 0
        self.token_mask: torch.Tensor | None = None
        self._hessian, self._mean, self._precision = hessian, mean, precision
        self._device = None if device is None else torch.device(device)
        self.sumsq = torch.zeros(0)
        self._xtx: torch.Tensor | None = None
        self._sum: torch.Tensor | None = None
        if features is not None:
            self._allocate(features, self._device or torch.device("cpu"))

    def _allocate(self, features: int, device: torch.device) -> None:
        self._device = device
        self.sumsq = torch.zeros(features, dtype=torch.float32, device=device)
        if self._hessian:
            self._xtx = torch.zeros(features, features, dtype=self._precision, device=device)
        if self._mean:
            self._sum = torch.zeros(features, dtype=self._precision, device=device)

    def add(self, x: torch.Tensor, dim: int = -1) -> None:
        """Add a batch of inputs whose dimension ``dim`` holds the features (``[..., F]``
        by default; ``[N, C, ...]`` with ``dim=1`` for a convolution). Rows where
        ``token_mask`` (shaped like ``x`` without its last dimension) is False are skipped."""
        x = x.detach()
        if self.token_mask is not None and x.shape[:-1] == self.token_mask.shape:
            x = x[self.token_mask.to(torch.bool)]
        dim = dim % x.dim()
        if self.sumsq.numel() == 0:
            self._allocate(int(x.shape[dim]), self._device or x.device)
        if dim == x.dim() - 1:
            rows = x.reshape(-1, x.shape[-1]).to(device=self._device, dtype=torch.float32)
            self.sumsq += (rows * rows).sum(dim=0)
        else:  # channels first ([N, C, ...]): norms over the other dimensions as laid out
            x = x.to(device=self._device, dtype=torch.float32)
            self.sumsq += x.pow(2).sum(dim=[d for d in range(x.dim()) if d != dim])
            rows = x.movedim(dim, -1).reshape(-1, x.shape[dim])
        self.count += rows.shape[0]
        if self._xtx is not None:
            if self._precision == torch.float32:
                self._xtx.addmm_(rows.t(), rows)
            else:
                self._xtx += (rows.t() @ rows).double()
        if self._sum is not None:
            self._sum += rows.sum(dim=0).to(self._precision)

    def attach(self, module: nn.Module, stop: type[BaseException] | None = None,
               dim: int = -1) -> RemovableHandle:
        """Feed ``module``'s first input to :meth:`add` (a forward pre-hook); raise ``stop``
        afterwards if given (to end the forward pass there)."""
        def hook(_mod: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            self.add(inputs[0], dim)
            if stop is not None:
                raise stop
        return module.register_forward_pre_hook(hook)

    @property
    def column_norms(self) -> torch.Tensor:
        """``||X_j||_2`` per input feature."""
        return self.sumsq.sqrt()

    @property
    def hessian(self) -> torch.Tensor:
        """``X^T X / count`` (only when created with ``hessian=True``)."""
        if self._xtx is None:
            raise ConfigError("InputStats was created without hessian=True")
        return self._xtx / max(self.count, 1)

    def moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(X^T X / n, mean of X)`` (created with ``hessian=True, mean=True``)."""
        if self._xtx is None or self._sum is None:
            raise ConfigError("InputStats.moments needs hessian=True and mean=True")
        if self.count == 0:
            raise ConfigError("no calibration tokens reached the layer (all padding?)")
        return self._xtx / self.count, self._sum / self.count


def _feature_dim(module: Any, x: torch.Tensor) -> int:
    """The dimension of ``x`` that indexes ``module``'s input features or channels."""
    if isinstance(module, (nn.Linear, nn.MultiheadAttention)):
        return x.dim() - 1
    weight_dims = module.weight.dim()
    return 1 if x.dim() == weight_dims else 0  # batched conv input: [N, C, ...]


class InputNormRecorder:
    """Record ``||X_j||_2`` per input feature (Linear) or channel (Conv) of each module.

    Use as a context manager around forward passes on calibration data::

        with InputNormRecorder(layers) as rec:
            for x in batches:
                model(x)
        norms = rec.norms()  # {name: tensor of shape [in_features or in_channels]}

    The norm is over every sample and position (batch, sequence, spatial) seen.
    """

    def __init__(self, modules: Mapping[str, nn.Module]) -> None:
        self.modules = dict(modules)
        self._stats: dict[str, InputStats] = {}
        self._handles: list[RemovableHandle] = []

    def _hook(self, name: str) -> Callable[[nn.Module, tuple[object, ...]], None]:
        def record(module: nn.Module, args: tuple[object, ...]) -> None:
            x = args[0] if args else None
            if isinstance(x, torch.Tensor):
                self._stats.setdefault(name, InputStats()).add(x, _feature_dim(module, x))
        return record

    def __enter__(self) -> InputNormRecorder:
        for name, module in self.modules.items():
            self._handles.append(module.register_forward_pre_hook(self._hook(name)))
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def norms(self) -> dict[str, torch.Tensor]:
        """``{module name: per-input L2 norm}`` for the modules that saw input."""
        return {name: stats.column_norms for name, stats in self._stats.items()}
