"""What an importance criterion sees, and the registry criteria live in.

A criterion scores the units of one *group*: a set of coupled slices that are removed
together. It reads the slices the dependency graph exposes (:class:`MemberSlice`) and,
when it asks for them, gradients and calibration activation statistics. It never branches
on layer types and never changes the model.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar, Literal
from collections.abc import Callable

import numpy as np
import torch

from .._internal.registry import Registry

Reduction = Literal["sum", "mean", "max"]
Normalization = Literal["none", "mean", "max", "sum", "standard"]


class PositionNorms:
    """Per-position norms of whole tensors, computed once per (tensor, dim, ord, dtype).

    A tensor often belongs to many groups along the same dimension (a convolution fed by
    a concatenation has one input-channel group per concatenated tensor; an attention
    projection one per head), and each group's units read the same per-position norms.
    One scoring pass shares one instance across its groups; it holds nothing else.
    """

    def __init__(self) -> None:
        self._values: dict[tuple[str, int, float, torch.dtype], torch.Tensor] = {}

    def get(self, name: str, tensor: torch.Tensor, dim: int, ord: float,
            dtype: torch.dtype) -> torch.Tensor:
        key = (name, dim, float(ord), dtype)
        value = self._values.get(key)
        if value is None:
            value = _position_norms(tensor, dim, ord, dtype)
            self._values[key] = value
        return value


def _position_norms(tensor: torch.Tensor, dim: int, ord: float,
                    dtype: torch.dtype) -> torch.Tensor:
    """The ``ord``-norm over every dimension of ``tensor`` but ``dim``."""
    other = [d for d in range(tensor.dim()) if d != dim]
    if not other:
        return tensor.to(dtype).abs()
    fast = (_column_norms(tensor, dim, ord, dtype)
            if dim > 0 and math.prod(tensor.shape[dim + 1:]) == 1 else None)
    if fast is not None:
        return fast
    return torch.linalg.vector_norm(tensor, ord=ord, dim=other, dtype=dtype)


#: reductions this long are split across threads by PyTorch (``at::internal::GRAIN_SIZE``)
_SERIAL_REDUCTION = 32768


def _column_norms(tensor: torch.Tensor, dim: int, ord: float,
                  dtype: torch.dtype) -> torch.Tensor | None:
    """The 1- or 2-norm of each position of the last non-trivial dimension ``dim``, the
    same values as :func:`torch.linalg.vector_norm` but 5-10 times faster.

    On CPU, PyTorch reduces over leading (strided) dimensions one element at a time, in
    memory order, with an accumulator of the tensor's dtype. NumPy's reduction over axis 0
    of a ``[rows, positions]`` array adds the rows in that same order, so the result is the
    same, bit for bit (and so are the units chosen on it), at vectorised speed. ``None``
    where that does not hold (other devices, dtypes or norms; reductions PyTorch splits
    across threads).
    """
    rows = math.prod(tensor.shape) // max(tensor.shape[dim], 1)
    if (tensor.device.type != "cpu" or tensor.dtype != dtype
            or dtype not in (torch.float32, torch.float64) or ord not in (1, 2)
            or not tensor.is_contiguous() or tensor.requires_grad
            or (rows >= _SERIAL_REDUCTION and torch.get_num_threads() > 1)):
        return None
    values = tensor.numpy().reshape(rows, tensor.shape[dim])
    values = np.abs(values) if ord == 1 else np.square(values)
    total = np.add.reduce(values, axis=0)
    return torch.from_numpy(total if ord == 1 else np.sqrt(total))


@dataclass(frozen=True)
class MemberSlice:
    """One parameter (or buffer) of a group, seen along the dimension the units index.

    ``index`` has shape ``[n_units, k]``: unit ``u`` owns positions ``index[u]`` of
    ``tensor`` along ``dim`` (``k > 1`` when one unit spans a block, e.g. a channel
    flattened into ``k`` features of a following Linear layer).
    """

    name: str
    tensor: torch.Tensor
    dim: int
    index: torch.Tensor
    is_buffer: bool = False
    grad: torch.Tensor | None = None
    norms: PositionNorms | None = field(default=None, compare=False, repr=False)

    @property
    def n_units(self) -> int:
        return int(self.index.shape[0])

    def unit_values(self, source: torch.Tensor | None = None) -> torch.Tensor:
        """Values of ``source`` (default: the tensor) per unit, shape ``[n_units, k * rest]``."""
        src = self.tensor if source is None else source
        moved = src.detach().movedim(self.dim, 0)
        picked = moved[self.index.reshape(-1)]
        return picked.reshape(self.n_units, -1)

    def unit_norms(self, ord: float, source: torch.Tensor | None = None) -> torch.Tensor:
        """The ``ord``-norm of each unit's values, shape ``[n_units]`` (float32 or float64).

        Same as ``vector_norm(unit_values(source), ord, dim=1)`` but without gathering a copy
        of the tensor: norms are taken per position along ``dim`` first, then combined.
        """
        src = (self.tensor if source is None else source).detach()
        dtype = src.dtype if src.dtype in (torch.float32, torch.float64) else torch.float32
        if source is None and self.norms is not None:  # shared across the scoring pass
            per_position = self.norms.get(self.name, src, self.dim, ord, dtype)
        else:
            per_position = _position_norms(src, self.dim, ord, dtype)
        return torch.linalg.vector_norm(per_position[self.index], ord=ord, dim=1)


@dataclass(frozen=True)
class ActivationStats:
    """Per-unit statistics of activations gathered on calibration batches."""

    mean_abs: torch.Tensor
    zero_fraction: torch.Tensor


@dataclass(frozen=True)
class GroupSlices:
    """Everything a criterion may read about one group of coupled units."""

    name: str
    n_units: int
    members: tuple[MemberSlice, ...]
    activations: ActivationStats | None = None
    extras: dict[str, torch.Tensor] = field(default_factory=dict)

    def weight_members(self) -> tuple[MemberSlice, ...]:
        """Members that are parameters (not running statistics or other buffers)."""
        return tuple(m for m in self.members if not m.is_buffer)


class Importance(ABC):
    """Scores units; higher means more important (kept longer)."""

    name: ClassVar[str] = ""
    needs_gradients: ClassVar[bool] = False
    needs_activations: ClassVar[bool] = False

    @abstractmethod
    def __call__(self, group: GroupSlices) -> torch.Tensor:
        """Return a float tensor of shape ``[group.n_units]``."""


_REGISTRY: Registry[type[Importance]] = Registry(
    "importance criterion", "prunekit.importance.register_importance")


def register_importance(name: str) -> Callable[[type[Importance]], type[Importance]]:
    """Class decorator: make a criterion available by ``name``."""
    return _REGISTRY.register(name)


def available_importances() -> list[str]:
    """Names of the registered criteria, sorted."""
    return _REGISTRY.names()


def get_importance(spec: str | Importance, **options: object) -> Importance:
    """Resolve a criterion from its registered name (with options) or pass one through."""
    if isinstance(spec, Importance):
        return spec
    factory = _REGISTRY.get(spec)
    return factory(**options)
