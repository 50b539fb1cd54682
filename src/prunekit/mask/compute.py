"""Keep-masks from score tensors: the arithmetic behind the patterns.

Every function takes scores (higher = more important) and returns boolean masks where
``True`` means *kept*. Ties are broken by position (a stable sort), so results are
deterministic; the number of pruned units is ``round(sparsity * units)`` exactly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch


def pruned_count(units: int, sparsity: float) -> int:
    """How many of ``units`` are pruned at ``sparsity`` (rounded to nearest)."""
    return min(units, round(sparsity * units))


def _lowest(flat: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` lowest entries of a 1-D tensor (stable: lower index first)."""
    return torch.argsort(flat, stable=True)[:k]


def prune_lowest(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Keep-mask of ``scores``'s shape with the lowest ``sparsity`` fraction pruned."""
    flat = scores.reshape(-1)
    keep = torch.ones(flat.shape, dtype=torch.bool, device=flat.device)
    keep[_lowest(flat, pruned_count(flat.numel(), sparsity))] = False
    return keep.reshape(scores.shape)


def prune_lowest_per_row(scores: torch.Tensor, count: int) -> torch.Tensor:
    """Keep-mask of a 2-D ``scores`` with the ``count`` lowest entries of every row pruned."""
    keep = torch.ones_like(scores, dtype=torch.bool)
    if count > 0:
        keep.scatter_(1, torch.argsort(scores, dim=1, stable=True)[:, :count], False)
    return keep


def prune_lowest_rows(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Keep-mask of a 2-D ``scores`` with the lowest ``sparsity`` fraction of each row pruned."""
    return prune_lowest_per_row(scores, pruned_count(scores.shape[1], sparsity))


def prune_lowest_global(scores: Mapping[str, torch.Tensor],
                        sparsity: float) -> dict[str, torch.Tensor]:
    """Keep-masks pruning the lowest ``sparsity`` fraction of all entries of all tensors."""
    if not scores:
        return {}
    names = list(scores)
    device = scores[names[0]].device
    flat = torch.cat([scores[n].reshape(-1).to(device=device, dtype=torch.float64)
                      for n in names])
    keep = torch.ones(flat.shape, dtype=torch.bool, device=device)
    keep[_lowest(flat, pruned_count(flat.numel(), sparsity))] = False
    out: dict[str, torch.Tensor] = {}
    offset = 0
    for name in names:
        s = scores[name]
        out[name] = keep[offset:offset + s.numel()].reshape(s.shape).to(s.device)
        offset += s.numel()
    return out


def nm_mask(scores: torch.Tensor, n: int, m: int, sparsity: float | None = None) -> torch.Tensor:
    """N:M keep-mask along dim 1 (the input dimension) of ``scores``.

    In every run of ``m`` consecutive entries along dim 1 the ``m - n`` lowest are the
    candidates; the lowest ``sparsity * numel`` candidates are pruned, so at sparsity
    ``(m - n) / m`` (or ``None``) every run keeps exactly ``n``.
    """
    moved = scores.movedim(1, -1)
    groups = moved.reshape(-1, m)
    order = torch.argsort(groups, dim=1, stable=True)[:, : m - n]
    keep = torch.ones(groups.shape, dtype=torch.bool, device=scores.device)
    k = order.numel() if sparsity is None else pruned_count(scores.numel(), sparsity)
    if k >= order.numel():  # exact N:M: every candidate goes
        keep.scatter_(1, order, False)
    else:
        candidates = groups.gather(1, order).reshape(-1)
        chosen = torch.zeros(candidates.shape, dtype=torch.bool, device=scores.device)
        chosen[_lowest(candidates, k)] = True
        keep.scatter_(1, order, ~chosen.reshape(order.shape))
    return keep.reshape(moved.shape).movedim(-1, 1).contiguous()


def block_scores(scores: torch.Tensor, block: tuple[int, int]) -> torch.Tensor:
    """Mean score of each ``block`` tile of ``scores`` seen as 2-D ``[dim0, rest]``.

    Tiles at the right and bottom edges may be partial; their mean is over the entries
    they really cover. Returns a tensor of shape ``[ceil(rows / bh), ceil(cols / bw)]``.
    """
    flat = scores.reshape(scores.shape[0], -1).to(torch.float64)
    rows, cols = flat.shape
    bh, bw = block
    tr, tc = math.ceil(rows / bh), math.ceil(cols / bw)
    total = flat.new_zeros(tr * bh, tc * bw)
    count = flat.new_zeros(tr * bh, tc * bw)
    total[:rows, :cols] = flat
    count[:rows, :cols] = 1.0
    total = total.reshape(tr, bh, tc, bw).sum(dim=(1, 3))
    count = count.reshape(tr, bh, tc, bw).sum(dim=(1, 3))
    return total / count


def expand_blocks(keep_tiles: torch.Tensor, block: tuple[int, int],
                  shape: torch.Size) -> torch.Tensor:
    """Per-tile keep-mask expanded back to a weight of ``shape``."""
    rows = shape[0]
    cols = math.prod(shape[1:])
    full = keep_tiles.repeat_interleave(block[0], dim=0).repeat_interleave(block[1], dim=1)
    return full[:rows, :cols].reshape(shape).contiguous()
