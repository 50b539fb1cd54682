"""Refine a keep-mask by swaps that lower the layer's reconstruction error; no weight update.

For output row ``i`` let ``d_i = W_i * mask_i`` be the part of the row that pruning removes.
On the calibration inputs ``X`` the row's output error is ``||X d_i||^2 / n = d_i^T H d_i``
with ``H = X^T X / n``. Magnitude and Wanda choose masks from per-weight scores, which is
the same as minimising this error with only the diagonal of ``H``; the swaps below use all of it.

Each round, every row still improving exchanges one pruned weight (given back) for one kept
weight (pruned instead) when that lowers its error: unstructured rows take the pruned weight
whose return lowers the error most, then the kept weight that raises it least; N:M rows take
the best such pair inside one group of ``M``. A row stops when its best swap would not lower
its error, so no row's error ever grows. The number of pruned weights per row (or per N:M
group) never changes, and kept weights keep their values.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError

_REFRESH_EVERY = 16  # rounds between exact recomputations of H @ d (bounds rounding drift)


def _check(weight: torch.Tensor, hessian: torch.Tensor, keep: torch.Tensor,
           nm: tuple[int, int] | None) -> None:
    cols = weight.shape[1]
    if hessian.shape != (cols, cols) or keep.shape != weight.shape \
            or keep.dtype != torch.bool:
        raise ConfigError(
            f"swap_refine: expected weight [out, in], hessian [in, in] and a bool mask like the "
            f"weight; got weight {tuple(weight.shape)}, hessian {tuple(hessian.shape)}, mask "
            f"{tuple(keep.shape)} {keep.dtype}"
        )
    if nm is not None and cols % nm[1]:
        raise ConfigError(f"swap_refine: {cols} input features are not divisible by M={nm[1]}")


def _row_errors(weight: torch.Tensor, hessian: torch.Tensor, pruned: torch.Tensor) -> torch.Tensor:
    d = weight * pruned
    return ((d @ hessian) * d).sum(dim=1)


def reconstruction_error(weight: torch.Tensor, hessian: torch.Tensor,
                         keep: torch.Tensor) -> torch.Tensor:
    """Per-row ``d^T H d`` of the weights a keep-mask removes (False = pruned), in float64."""
    return _row_errors(weight.double(), hessian.double(), ~keep)


def _best_unstructured(w: torch.Tensor, r: torch.Tensor, pruned: torch.Tensor,
                       hessian: torch.Tensor, wwd: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per row: (error change, index given back, index pruned instead).

    ``wwd`` is ``w * w * diag(H)``: the error of pruning a weight alone.
    """
    rows = torch.arange(w.shape[0], device=w.device)
    gain = torch.addcmul(-wwd, w, r, value=2.0).masked_fill_(~pruned, float("-inf"))
    best_gain, grow = gain.max(dim=1)
    r_after = torch.addcmul(r, w[rows, grow, None], hessian[grow], value=-1.0)
    cost = torch.addcmul(wwd, w, r_after, value=2.0).masked_fill_(pruned, float("inf"))
    best_cost, cut = cost.min(dim=1)
    return best_cost - best_gain, grow, cut


def _pair_terms(w: torch.Tensor, blocks: torch.Tensor, m: int) -> torch.Tensor:
    """``-2 w_j w_k H_jk`` for every ordered pair inside each group of ``m``: constant."""
    wg = w.view(w.shape[0], -1, m)
    return -2.0 * wg[..., :, None] * wg[..., None, :] * blocks


def _best_nm(w: torch.Tensor, r: torch.Tensor, pruned: torch.Tensor, pairs: torch.Tensor,
             wwd: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per row: the best (given back, pruned instead) pair inside one group of ``m``."""
    rows = w.shape[0]
    twr = (2.0 * w * r).view(rows, -1, m)
    wwd_g = wwd.view(rows, -1, m)
    pg = pruned.view(rows, -1, m)
    delta = (wwd_g - twr)[..., :, None] + (wwd_g + twr)[..., None, :] + pairs
    valid = pg[..., :, None] & ~pg[..., None, :]
    best, flat = delta.masked_fill_(~valid, float("inf")).view(rows, -1).min(dim=1)
    group, pair = flat // (m * m), flat % (m * m)
    return best, group * m + pair // m, group * m + pair % m


def _refine_rows(w: torch.Tensor, hessian: torch.Tensor, pruned: torch.Tensor,
                 nm: tuple[int, int] | None, max_rounds: int) -> torch.Tensor:
    """Swap until no row improves; rows that stop are stored and dropped from the work."""
    out = pruned
    pruned = pruned.clone()
    wwd = w * w * hessian.diagonal()
    tol = 1e-7 * wwd.sum(dim=1)
    pairs = None
    m = 0 if nm is None else nm[1]
    if nm is not None:
        g = w.shape[1] // m
        blocks = torch.diagonal(hessian.view(g, m, g, m), dim1=0, dim2=2).permute(2, 0, 1)
        pairs = _pair_terms(w, blocks, m)
    ids = torch.arange(w.shape[0], device=w.device)
    r = (w * pruned) @ hessian
    for round_ in range(max_rounds):
        if round_ and round_ % _REFRESH_EVERY == 0:
            r = (w * pruned) @ hessian
        if pairs is None:
            delta, grow, cut = _best_unstructured(w, r, pruned, hessian, wwd)
        else:
            delta, grow, cut = _best_nm(w, r, pruned, pairs, wwd, m)
        improves = delta < -tol
        if not bool(improves.any()):
            break
        if not bool(improves.all()):  # rows without a helpful swap are final
            out[ids[~improves]] = pruned[~improves]
            ids, w, r, pruned, wwd, tol, grow, cut = (
                t[improves] for t in (ids, w, r, pruned, wwd, tol, grow, cut))
            pairs = None if pairs is None else pairs[improves]
        rows = torch.arange(w.shape[0], device=w.device)
        pruned[rows, grow] = False
        pruned[rows, cut] = True
        r.addcmul_(w[rows, cut, None], hessian[cut]).addcmul_(w[rows, grow, None],
                                                               hessian[grow], value=-1.0)
    out[ids] = pruned
    return out


@torch.no_grad()
def swap_refine(weight: torch.Tensor, hessian: torch.Tensor, keep: torch.Tensor, *,
                nm: tuple[int, int] | None = None, max_rounds: int = 100,
                row_chunk: int = 2048) -> torch.Tensor:
    """A new keep-mask (True = kept) with lower or equal error in every row; see module doc.

    ``weight`` is ``[out, in]``, ``hessian`` is ``X^T X / n`` of the layer's calibration
    inputs, ``nm=(N, M)`` keeps swaps inside groups of ``M``. At most ``max_rounds`` swaps per
    row; rows are processed ``row_chunk`` at a time to bound memory.
    """
    _check(weight, hessian, keep, nm)
    dtype = torch.float64 if weight.dtype == torch.float64 else torch.float32
    h = hessian.to(device=weight.device, dtype=dtype)
    out = ~keep
    for start in range(0, weight.shape[0], row_chunk):
        w = weight[start:start + row_chunk].to(dtype)
        out[start:start + row_chunk] = _refine_rows(w, h, out[start:start + row_chunk],
                                                    nm, max_rounds)
    return ~out
