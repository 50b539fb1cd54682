"""Small float64 linear-algebra helpers shared by least-squares re-fits and factorizations."""

from __future__ import annotations

import torch

from ..errors import NumericalError

__all__ = ["damped_cholesky"]


def damped_cholesky(h: torch.Tensor, damp: float, retries: int = 6) -> torch.Tensor:
    """Lower Cholesky factor of ``H + damp * mean(diag H) I`` (float64).

    When ``H`` is singular and ``damp`` is 0 (or too small), damping grows tenfold per retry
    from ``max(damp, 1e-10)``.
    """
    h = h.to(torch.float64)
    mean_diag = float(torch.diagonal(h).mean()) if h.numel() else 1.0
    mean_diag = mean_diag if mean_diag > 0 else 1.0
    eye = torch.eye(h.shape[0], dtype=h.dtype, device=h.device)
    lam = damp
    for _ in range(retries + 1):
        chol, info = torch.linalg.cholesky_ex(h + lam * mean_diag * eye if lam else h)
        if int(info) == 0:
            return chol
        lam = max(lam * 10.0, 1e-10) if lam else 1e-10
    raise NumericalError(
        f"the damped input Gram matrix ({h.shape[0]} x {h.shape[0]}) is not positive "
        f"definite even with damping {lam:g}; raise damp (StructuredConfig(damp=...), "
        "DecomposeConfig(damp=...)) or use more calibration data"
    )
