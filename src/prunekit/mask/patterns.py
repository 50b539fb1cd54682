"""Sparsity patterns: which weights may be zeroed together, as frozen, validated configs.

A pattern turns score tensors (one per weight, same shape, higher = more important) into
boolean keep-masks at a requested sparsity:

- :class:`Unstructured`: any element, ranked within each layer (``scope="local"``),
  across all layers together (``scope="global"``) or within each output row of a 2-D
  weight (``scope="row"``: the same count in every row, as one-shot LLM pruning does);
- :class:`NM`: at most ``m - n`` zeros in every run of ``m`` consecutive weights along the
  input dimension (dim 1, so for a conv the run is over input channels at one kernel
  position); at sparsity ``(m - n) / m`` it is exact N:M, below that only the lowest
  N:M candidates are pruned, which lets gradual schedules grow into the pattern;
- :class:`Block`: ``(rows, cols)`` tiles of the weight seen as 2-D ``[out, rest]``,
  ranked by their mean score (edge tiles are partial).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import torch

from ..errors import ConfigError
from .._internal.validate import check_fraction, check_int
from .compute import (
    block_scores,
    expand_blocks,
    nm_mask,
    prune_lowest,
    prune_lowest_global,
    prune_lowest_rows,
)

Scope = Literal["local", "global", "row"]


def check_sparsity(value: float, where: str) -> float:
    """Return ``value`` as a float if it lies in ``[0, 1)``, else raise :class:`ConfigError`."""
    return check_fraction(value, f"{where}: sparsity",
                          hint="0.9 means 90% of the weights are zero")


def _check_scope(scope: str, what: str, allowed: tuple[str, ...] = ("local", "global")) -> None:
    if scope not in allowed:
        raise ConfigError(f"{what}: scope must be {' or '.join(map(repr, allowed))}, "
                          f"got {scope!r}")


class Pattern(ABC):
    """Base of the sparsity patterns."""

    @property
    def max_sparsity(self) -> float:
        """The highest sparsity this pattern can express (below 1)."""
        return 1.0

    def check_shape(self, name: str, shape: torch.Size) -> None:
        """Raise :class:`ConfigError` if a weight of ``shape`` cannot take this pattern."""

    @abstractmethod
    def masks(self, scores: Mapping[str, torch.Tensor], sparsity: float) -> dict[str, torch.Tensor]:
        """Boolean keep-masks (True = kept), one per score tensor, at ``sparsity``."""

    def _check_target(self, sparsity: float) -> float:
        sparsity = check_sparsity(sparsity, type(self).__name__)
        if sparsity > self.max_sparsity + 1e-9:
            raise ConfigError(
                f"{self!r} cannot reach sparsity {sparsity}: its maximum is "
                f"{self.max_sparsity:g}; lower the target or choose another pattern"
            )
        return sparsity


@dataclass(frozen=True)
class Unstructured(Pattern):
    """Individual weights, ranked per layer, globally, or per output row."""

    scope: Scope = "local"

    def __post_init__(self) -> None:
        _check_scope(self.scope, "Unstructured", ("local", "global", "row"))

    def check_shape(self, name: str, shape: torch.Size) -> None:
        if self.scope == "row" and len(shape) != 2:
            raise ConfigError(f"row-wise sparsity needs a 2-D weight [out, in], but {name!r} "
                              f"has shape {tuple(shape)}; ignore this layer")

    def masks(self, scores: Mapping[str, torch.Tensor], sparsity: float) -> dict[str, torch.Tensor]:
        sparsity = self._check_target(sparsity)
        if self.scope == "global":
            return prune_lowest_global(scores, sparsity)
        if self.scope == "row":
            for name, s in scores.items():
                self.check_shape(name, s.shape)
            return {name: prune_lowest_rows(s, sparsity) for name, s in scores.items()}
        return {name: prune_lowest(s, sparsity) for name, s in scores.items()}


@dataclass(frozen=True)
class NM(Pattern):
    """N:M semi-structured sparsity: ``n`` of every ``m`` weights along the input dim kept."""

    n: int = 2
    m: int = 4

    def __post_init__(self) -> None:
        for field_name, value in (("n", self.n), ("m", self.m)):
            check_int(value, f"NM: {field_name}", minimum=1)
        if self.n >= self.m:
            raise ConfigError(
                f"NM: n ({self.n}) must be smaller than m ({self.m}); n weights of every m "
                "are kept, e.g. NM(2, 4)"
            )

    @property
    def max_sparsity(self) -> float:
        return (self.m - self.n) / self.m

    def check_shape(self, name: str, shape: torch.Size) -> None:
        if len(shape) < 2:
            raise ConfigError(
                f"{self.n}:{self.m} sparsity needs a weight with an input dimension, but "
                f"{name!r} has shape {tuple(shape)}; ignore this layer"
            )
        if shape[1] % self.m:
            raise ConfigError(
                f"{self.n}:{self.m} sparsity runs along the input dimension (dim 1), but "
                f"{name!r} has {shape[1]} input features (shape {tuple(shape)}), not divisible "
                f"by {self.m}; ignore this layer (ignore=[...]) or pick an m that divides "
                f"{shape[1]}"
            )

    @property
    def text(self) -> str:
        """The pattern as command lines and recipes write it (``"2:4"``)."""
        return f"{self.n}:{self.m}"

    def masks(self, scores: Mapping[str, torch.Tensor], sparsity: float) -> dict[str, torch.Tensor]:
        sparsity = self._check_target(sparsity)
        out = {}
        for name, s in scores.items():
            self.check_shape(name, s.shape)
            out[name] = nm_mask(s, self.n, self.m, sparsity)
        return out


@dataclass(frozen=True)
class Block(Pattern):
    """Tiles of ``shape = (rows, cols)`` of the weight seen as 2-D ``[out, in * kernel]``."""

    shape: tuple[int, int] = (4, 4)
    scope: Scope = "local"

    def __post_init__(self) -> None:
        _check_scope(self.scope, "Block")
        if (not isinstance(self.shape, tuple) or len(self.shape) != 2
                or any(isinstance(v, bool) or not isinstance(v, int) or v < 1
                       for v in self.shape)):
            raise ConfigError(f"Block: shape must be a pair of positive integers, got "
                              f"{self.shape!r}, e.g. (4, 4)")

    def check_shape(self, name: str, shape: torch.Size) -> None:
        if len(shape) < 2:
            raise ConfigError(f"block sparsity needs a weight of at least 2 dimensions, "
                              f"but {name!r} has shape {tuple(shape)}; ignore this layer")

    def masks(self, scores: Mapping[str, torch.Tensor], sparsity: float) -> dict[str, torch.Tensor]:
        sparsity = self._check_target(sparsity)
        tiles = {}
        for name, s in scores.items():
            self.check_shape(name, s.shape)
            tiles[name] = block_scores(s, self.shape)
        if self.scope == "global":
            kept = prune_lowest_global(tiles, sparsity)
        else:
            kept = {name: prune_lowest(t, sparsity) for name, t in tiles.items()}
        return {name: expand_blocks(kept[name], self.shape, s.shape)
                for name, s in scores.items()}


def pattern_from_text(text: str, where: str = "pattern",
                      unstructured: Pattern | None = None) -> Pattern:
    """``"unstructured"`` -> ``unstructured`` (default :class:`Unstructured`), ``"N:M"`` ->
    :class:`NM`; anything else is a :class:`ConfigError` that names ``where``."""
    if text == "unstructured":
        return unstructured if unstructured is not None else Unstructured()
    parts = text.split(":") if isinstance(text, str) else []
    if len(parts) == 2 and all(p.strip().isdigit() for p in parts):
        n, m = int(parts[0]), int(parts[1])
        if 1 <= n < m:
            return NM(n, m)
    raise ConfigError(f"{where}: pattern must be 'unstructured' or 'N:M' with 1 <= N < M "
                      f"(e.g. '2:4', '4:8'), got {text!r}")
