"""``prune_depth``: find the removable blocks, score them, remove the least important."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from .._internal.validate import check_fraction
from .blocks import RemovableBlock, find_blocks
from .importance import MetricFn, get_depth_criterion, to_device
from .remove import NO_BLOCKS, emptied_lists, lookup_blocks, remove_checked

__all__ = ["DepthResult", "prune_depth"]


@dataclass
class DepthResult:
    """What :func:`prune_depth` did: blocks removed (least important first) and all scores."""

    removed: list[str]
    scores: dict[str, float]
    criterion: str
    blocks: list[RemovableBlock] = field(default_factory=list)  # every removable block found
    params_before: int = 0
    params_after: int = 0
    seconds: float = 0.0

    @property
    def exact(self) -> bool:
        """Whether every removed block is exactly the identity once its branches are zero."""
        by_name = {b.name: b for b in self.blocks}
        return all(by_name[n].exact for n in self.removed)

    def to_dict(self) -> dict[str, Any]:
        return {"format": "prunekit.depth", "removed": self.removed, "scores": self.scores,
                "criterion": self.criterion, "blocks": [b.to_dict() for b in self.blocks],
                "params_before": self.params_before, "params_after": self.params_after,
                "seconds": self.seconds}


def _batches(data: Any) -> Iterator[Any]:
    """Calibration batches: one tensor or kwargs dict is one batch; an object with
    ``input_ids`` and ``batches()`` (``prunekit.llm.CalibrationData``) gives dict batches."""
    if isinstance(data, (torch.Tensor, Mapping)):
        return iter([data])
    if hasattr(data, "input_ids") and callable(getattr(data, "batches", None)):
        return ({"input_ids": ids} if mask is None else {"input_ids": ids, "attention_mask": mask}
                for ids, mask in data.batches(8))
    if isinstance(data, Iterable):
        return iter(data)
    raise ConfigError(f"calibration data must be a tensor, a dict of model inputs or an "
                      f"iterable of batches, got {type(data).__name__}")


def _count(n_blocks: int | None, ratio: float | None, available: int) -> int:
    if (n_blocks is None) == (ratio is None):
        raise ConfigError("give exactly one of n_blocks (how many blocks to remove) or ratio "
                          "(the fraction of removable blocks to remove)")
    if n_blocks is not None:
        if isinstance(n_blocks, bool) or not isinstance(n_blocks, int) or n_blocks < 0:
            raise ConfigError(f"n_blocks must be a non-negative integer, got {n_blocks!r}")
        return n_blocks
    return int(check_fraction(ratio, "ratio") * available + 1e-9)


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def prune_depth(model: nn.Module, calibration_data: Any, *, n_blocks: int | None = None,
                ratio: float | None = None, importance: str | None = None,
                blocks: Sequence[str] | None = None, metric: MetricFn | None = None,
                higher_is_better: bool = True, criterion: str | None = None) -> DepthResult:
    """Remove the ``n_blocks`` (or ``floor(ratio * candidates)``) least important blocks.

    - ``calibration_data``: model inputs, e.g. a list of token-id tensors, dicts of kwargs or
      image batches (a labelled loader: pass ``(x for x, _ in loader)``). The first batch
      finds the blocks and checks the pruned model; ``"cosine"``/``"angular"`` read it all.
    - ``blocks``: names of the candidate blocks (default: every removable block found).
    - ``importance``: ``"cosine"`` (the default), ``"angular"``, ``"metric"`` (needs
      ``metric(model)``) or one you registered; ``criterion`` is its former name.

    The model is changed in place (Hugging Face layers deleted, other blocks replaced by
    ``nn.Identity``); it still runs and keeps its output shapes, else
    :class:`~prunekit.VerificationError`.
    """
    start = time.perf_counter()
    if importance is not None and criterion is not None and importance != criterion:
        raise ConfigError("give importance= (criterion= is its former name), not both")
    criterion = importance or criterion or "cosine"
    scorer = get_depth_criterion(criterion, metric=metric, higher_is_better=higher_is_better)
    batches = _batches(calibration_data)
    try:
        first = next(batches)
    except StopIteration:
        raise ConfigError("the calibration data yielded no batches") from None
    param = next(iter(model.parameters()), None)
    first = to_device(first, param.device if param is not None else torch.device("cpu"))
    found = find_blocks(model, first)
    if not found:
        raise ConfigError(NO_BLOCKS)
    if isinstance(blocks, str):
        blocks = [blocks]
    candidates = list(found) if blocks is None else lookup_blocks(found, list(blocks))
    count = _count(n_blocks, ratio, len(candidates))
    if count >= len(found):
        raise ConfigError(f"cannot remove {count} blocks: the model has {len(found)} removable "
                          f"blocks ({[b.name for b in found]}) and at least one must stay")
    if count > len(candidates):
        raise ConfigError(f"cannot remove {count} blocks: only {len(candidates)} candidate blocks "
                          f"were given ({[b.name for b in candidates]})")
    before = _params(model)
    scores = scorer.score(model, candidates, itertools.chain([first], batches)) if count else {}
    ranked = sorted(candidates, key=lambda b: scores.get(b.name, 0.0))  # stable: ties by order
    removed: list[RemovableBlock] = []
    for block in ranked:  # least important first, never emptying a Hugging Face layer list
        if len(removed) < count and not emptied_lists(found, [*removed, block]):
            removed.append(block)
    if len(removed) < count:
        raise ConfigError(f"cannot remove {count} blocks without emptying a layer list; at "
                          f"most {len(removed)} of the candidates can go")
    if removed:
        remove_checked(model, removed, first)
    return DepthResult([b.name for b in removed], scores, criterion, list(found), before,
                       _params(model), time.perf_counter() - start)
