"""Refine a prune-mask by swaps that lower the layer's reconstruction error; no weight update.

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


def _check(weight: torch.Tensor, hessian: torch.Tensor, pruned: torch.Tensor,
           nm: tuple[int, int] | None) -> None:
    cols = weight.shape[1]
    if hessian.shape != (cols, cols) or pruned.shape != weight.shape \
            or pruned.dtype != torch.bool:
        raise ConfigError(
            f"swap_refine: expected weight [out, in], hessian [in, in] and a bool mask like the "
            f"weight; got weight {tuple(weight.shape)}, hessian {tuple(hessian.shape)}, mask "
            f"{tuple(pruned.shape)} {pruned.dtype}"
        )
    if nm is not None and cols % nm[1]:
        raise ConfigError(f"swap_refine: {cols} input features are not divisible by M={nm[1]}")


def _row_errors(weight: torch.Tensor, hessian: torch.Tensor, pruned: torch.Tensor) -> torch.Tensor:
    d = weight * pruned
    return ((d @ hessian) * d).sum(dim=1)


def reconstruction_error(weight: torch.Tensor, hessian: torch.Tensor,
                         pruned: torch.Tensor) -> torch.Tensor:
    """Per-row ``d^T H d`` of the weights a mask removes (True = pruned), in float64."""
    return _row_errors(weight.double(), hessian.double(), pruned)


def _best_unstructured(w: torch.Tensor, r: torch.Tensor, pruned: torch.Tensor,
                       hessian: torch.Tensor, diag: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per row: (error change, index given back, index pruned instead)."""
    rows = torch.arange(w.shape[0], device=w.device)
    gain = (2 * w * r - w * w * diag).masked_fill(~pruned, float("-inf"))
    best_gain, grow = gain.max(dim=1)
    r_after = r - w[rows, grow, None] * hessian[grow]
    cost = (2 * w * r_after + w * w * diag).masked_fill(pruned, float("inf"))
    best_cost, cut = cost.min(dim=1)
    return best_cost - best_gain, grow, cut


def _best_nm(w: torch.Tensor, r: torch.Tensor, pruned: torch.Tensor, blocks: torch.Tensor,
             diag: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per row: the best (given back, pruned instead) pair inside one group of ``m``."""
    rows, cols = w.shape
    groups = cols // m
    wg, rg, pg = w.view(rows, groups, m), r.view(rows, groups, m), pruned.view(rows, groups, m)
    dg = diag.view(groups, m)
    give_back = -2 * wg * rg + wg * wg * dg
    prune = 2 * wg * rg + wg * wg * dg
    cross = -2 * wg[..., :, None] * wg[..., None, :] * blocks  # [rows, groups, back, cut]
    delta = give_back[..., :, None] + prune[..., None, :] + cross
    valid = pg[..., :, None] & ~pg[..., None, :]
    best, flat = delta.masked_fill(~valid, float("inf")).view(rows, -1).min(dim=1)
    group, pair = flat // (m * m), flat % (m * m)
    return best, group * m + pair // m, group * m + pair % m


def _refine_rows(w: torch.Tensor, hessian: torch.Tensor, pruned: torch.Tensor,
                 nm: tuple[int, int] | None, max_rounds: int) -> torch.Tensor:
    diag = hessian.diagonal()
    blocks = None
    if nm is not None:
        g, m = w.shape[1] // nm[1], nm[1]
        blocks = torch.diagonal(hessian.view(g, m, g, m), dim1=0, dim2=2).permute(2, 0, 1)
    active = torch.arange(w.shape[0], device=w.device)
    r = (w * pruned) @ hessian
    tol = 1e-7 * (w * w * diag).sum(dim=1)
    for round_ in range(max_rounds):
        if round_ and round_ % _REFRESH_EVERY == 0:
            r[active] = (w[active] * pruned[active]) @ hessian
        wa, ra, pa = w[active], r[active], pruned[active]
        if blocks is None:
            delta, grow, cut = _best_unstructured(wa, ra, pa, hessian, diag)
        else:
            delta, grow, cut = _best_nm(wa, ra, pa, blocks, diag, nm[1])
        improves = delta < -tol[active]
        if not bool(improves.any()):
            break
        rows, grow, cut = active[improves], grow[improves], cut[improves]
        pruned[rows, grow] = False
        pruned[rows, cut] = True
        r[rows] += w[rows, cut, None] * hessian[cut] - w[rows, grow, None] * hessian[grow]
        active = rows
    return pruned


@torch.no_grad()
def swap_refine(weight: torch.Tensor, hessian: torch.Tensor, pruned: torch.Tensor, *,
                nm: tuple[int, int] | None = None, max_rounds: int = 100,
                row_chunk: int = 2048) -> torch.Tensor:
    """A new prune-mask (True = pruned) with lower or equal error in every row; see module doc.

    ``weight`` is ``[out, in]``, ``hessian`` is ``X^T X / n`` of the layer's calibration
    inputs, ``nm=(N, M)`` keeps swaps inside groups of ``M``. At most ``max_rounds`` swaps per
    row; rows are processed ``row_chunk`` at a time to bound memory.
    """
    _check(weight, hessian, pruned, nm)
    dtype = torch.float64 if weight.dtype == torch.float64 else torch.float32
    h = hessian.to(device=weight.device, dtype=dtype)
    out = pruned.clone()
    for start in range(0, weight.shape[0], row_chunk):
        w = weight[start:start + row_chunk].to(dtype)
        out[start:start + row_chunk] = _refine_rows(w, h, out[start:start + row_chunk].clone(),
                                                    nm, max_rounds)
    return out
