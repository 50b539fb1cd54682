"""SparseGPT: prune a linear layer and re-fit its remaining weights (OBS, block-wise).

Given ``W`` (``[rows, cols]``) and the Hessian ``H = X^T X`` of the layer-wise loss
``||W X - W' X||^2``, columns are processed left to right. With ``U`` the upper Cholesky
factor of ``H^{-1}`` (``H^{-1} = U^T U``), removing column ``j``'s pruned weights and
compensating with the columns to its right is ``W[:, j:] -= e_j U[j, j:]`` where
``e_j = (w_j - q_j) / U[j, j]``; ``U``'s rows are exactly the inverse Hessians of the
remaining columns after eliminating earlier ones, so no re-inversion is needed. Updates
are applied lazily per block of ``blocksize`` columns. Masks are chosen adaptively per
block (unstructured: the same count per row, by ``w^2 / U[j, j]^2``) or per group of
``M`` columns (N:M), on the already-updated weights.
"""

from __future__ import annotations

import torch

from ..errors import NumericalError
from ..mask.compute import nm_mask, prune_lowest_per_row, pruned_count


def inverse_hessian_cholesky(hessian: torch.Tensor, damp: float,
                             retries: int = 4) -> torch.Tensor:
    """Upper Cholesky factor of ``(H + damp * mean(diag H) I)^{-1}``; raises if never PD."""
    h = hessian.to(torch.float64 if hessian.device.type == "cpu" else torch.float32)
    mean_diag = float(torch.diag(h).mean()) or 1.0
    for attempt in range(retries):  # at most three [cols, cols] matrices alive at a time
        damped = h.clone()
        damped.diagonal().add_(damp * mean_diag * (10.0 ** attempt))
        chol, info = torch.linalg.cholesky_ex(damped)
        del damped
        if int(info) == 0:
            hinv = torch.cholesky_inverse(chol)
            del chol
            upper, info = torch.linalg.cholesky_ex(hinv, upper=True)
            del hinv
            if int(info) == 0:
                return upper.to(torch.float32)
    raise NumericalError(
        f"SparseGPT: the damped Hessian ({h.shape[0]} x {h.shape[0]}) is not positive "
        f"definite even with damping {damp * 10 ** (retries - 1):g}; raise "
        "OneShotConfig(damp=...) or use more calibration data"
    )


@torch.no_grad()
def sparsegpt_prune(weight: torch.Tensor, hessian: torch.Tensor, sparsity: float, *,
                    nm: tuple[int, int] | None = None, blocksize: int = 128,
                    damp: float = 0.01) -> torch.Tensor:
    """Return the pruned and re-fitted ``[rows, cols]`` weight (float32); inputs untouched."""
    w = weight.to(torch.float32).clone()
    h = hessian.to(torch.float32).clone()
    _rows, cols = w.shape
    dead = torch.diag(h) == 0
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    u = inverse_hessian_cholesky(h, damp)
    for start in range(0, cols, blocksize):
        end = min(start + blocksize, cols)
        w1 = w[:, start:end].clone()
        err1 = torch.zeros_like(w1)
        u1 = u[start:end, start:end]
        d1 = torch.diag(u1)
        keep1 = torch.ones_like(w1, dtype=torch.bool)
        if nm is None:
            count = pruned_count(end, sparsity) - pruned_count(start, sparsity)
            keep1 = prune_lowest_per_row(w1 ** 2 / d1[None, :] ** 2, count)
        for i in range(end - start):
            if nm is not None and i % nm[1] == 0:
                g = slice(i, i + nm[1])
                keep1[:, g] = nm_mask(w1[:, g] ** 2 / d1[None, g] ** 2, *nm)
            col = w1[:, i]
            q = torch.where(keep1[:, i], col, torch.zeros_like(col))
            e = (col - q) / d1[i]
            w1[:, i:] -= e[:, None] * u1[i, i:][None, :]
            w1[:, i] = q
            err1[:, i] = e
        w[:, start:end] = w1
        w[:, end:] -= err1 @ u[start:end, end:]
    if not torch.isfinite(w).all():
        raise NumericalError(
            "SparseGPT produced non-finite weights; raise OneShotConfig(damp=...) or check "
            "the calibration data for inf/nan activations"
        )
    return w
