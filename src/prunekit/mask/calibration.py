"""Input statistics for activation-weighted scores, collected with forward hooks."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType

import torch
import torch.nn as nn
from torch.utils.hooks import RemovableHandle


def _feature_dim(module: nn.Module, x: torch.Tensor) -> int:
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
        self._sumsq: dict[str, torch.Tensor] = {}
        self._handles: list[RemovableHandle] = []

    def _hook(self, name: str):  # type: ignore[no-untyped-def]
        def record(module: nn.Module, args: tuple[object, ...]) -> None:
            x = args[0] if args else None
            if not isinstance(x, torch.Tensor):
                return
            x = x.detach().to(torch.float32)
            dim = _feature_dim(module, x)
            other = [d for d in range(x.dim()) if d != dim]
            sq = x.pow(2).sum(dim=other) if other else x.pow(2)
            if name in self._sumsq:
                self._sumsq[name] += sq
            else:
                self._sumsq[name] = sq
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
        return {name: sq.sqrt() for name, sq in self._sumsq.items()}
