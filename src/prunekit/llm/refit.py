"""Least-squares re-fit of a projection whose input units (columns) are removed.

A projection ``y = x W^T + b`` (``W``: ``[out, in]``) loses a set ``R`` of its input
columns; the kept columns ``K`` are re-fitted on calibration inputs ``X`` (``[tokens, in]``)
so that its outputs change as little as possible:

    min_{W'_K, b'} ||X_K W'_K^T + b' - X W^T - b||^2 + lam ||W'_K - W_K||^2

With ``H`` the second moment ``X^T X / n`` (or the covariance when the bias absorbs the
mean, i.e. a least-squares fit with an intercept), the solution is

    W'_K = W_K + Delta,   Delta^T = (H_KK + lam I)^{-1} H_KR W_R^T
    b'   = b + W_R mu_R - Delta mu_K          (only with an intercept)

Damping is relative to the mean diagonal of ``H_KK`` (SparseGPT's ``damp``) and pulls the
solution towards the original weights, not towards zero: a removed unit whose activations
are always zero leaves ``W`` unchanged, exactly. Everything is solved in float64.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .._internal.linalg import damped_cholesky


def covariance(second_moment: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """``E[x x^T] - mu mu^T``: the second moment an intercept leaves to fit."""
    return second_moment - torch.outer(mean, mean)


def refit_weights(weight: torch.Tensor, second_moment: torch.Tensor, removed: torch.Tensor, *,
                  damp: float = 0.01, mean: torch.Tensor | None = None,
                  bias: torch.Tensor | None = None, refit: bool = True
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """New ``(weight, bias)`` of a projection after removing input ``removed`` columns.

    ``weight`` is ``[out, in]``; the returned weight has the same shape with the removed
    columns zero. ``mean`` given (and ``bias`` not None) fits an intercept: the bias absorbs
    the mean of the removed activations (and of the correction). ``refit=False`` only does
    that, without touching kept columns.
    """
    w = weight.to(torch.float64)
    n_in = w.shape[1]
    drop = torch.zeros(n_in, dtype=torch.bool, device=w.device)
    drop[removed.to(w.device)] = True
    keep = (~drop).nonzero().squeeze(1)
    dropped = drop.nonzero().squeeze(1)
    center = mean is not None and bias is not None
    h = second_moment.to(w)
    if center:
        assert mean is not None
        h = covariance(h, mean.to(w))
    new_w = w.clone()
    new_w[:, dropped] = 0.0
    delta = torch.zeros(w.shape[0], keep.numel(), dtype=w.dtype, device=w.device)
    if refit and dropped.numel() and keep.numel():
        chol = damped_cholesky(h[keep][:, keep], damp)
        rhs = h[keep][:, dropped] @ w[:, dropped].t()
        delta = torch.cholesky_solve(rhs, chol).t()
        new_w[:, keep] += delta
    new_b = None
    if bias is not None:
        new_b = bias.to(torch.float64).clone()
        if center:
            assert mean is not None
            mu = mean.to(w)
            new_b += w[:, dropped] @ mu[dropped] - delta @ mu[keep]
    return new_w, new_b


def relative_error(weight: torch.Tensor, new_weight: torch.Tensor, second_moment: torch.Tensor,
                   mean: torch.Tensor, bias_shift: torch.Tensor | None = None) -> float:
    """``E||x W'^T + b' - x W^T - b||^2 / E||x W^T||^2`` on the calibration tokens."""
    w = weight.to(torch.float64)
    d = new_weight.to(torch.float64) - w
    g, mu = second_moment.to(w), mean.to(w)
    err = float(torch.einsum("oi,ij,oj->", d, g, d))
    if bias_shift is not None:
        shift = bias_shift.to(w)
        err += float(2.0 * shift @ (d @ mu) + shift @ shift)
    energy = float(torch.einsum("oi,ij,oj->", w, g, w))
    return max(err, 0.0) / energy if energy > 0 else 0.0


# -- choosing units ---------------------------------------------------------------------

@dataclass(frozen=True)
class UnitProblem:
    """What a criterion sees: the projection, its input moments, the units' columns."""

    weight: torch.Tensor  # [out, in] float64
    moment: torch.Tensor  # [in, in] float64 (covariance when the bias absorbs the mean)
    columns: torch.Tensor  # [n_units, k] long: input columns owned by each unit
    damp: float
    rounds: int


def wanda_units(problem: UnitProblem, n_remove: int) -> torch.Tensor:
    """Lowest ``sum_j ||W[:, j]|| * ||X_j||`` over each unit's columns (Wanda, per unit)."""
    col = problem.weight.norm(dim=0) * torch.diagonal(problem.moment).clamp_min(0).sqrt()
    scores = col[problem.columns].sum(dim=1)
    return torch.argsort(scores, stable=True)[:n_remove]


def obs_units(problem: UnitProblem, n_remove: int) -> torch.Tensor:
    """Greedy Optimal Brain Surgeon on whole units: least error after re-fitting the rest.

    A unit owning columns ``S`` costs ``tr(W_S [H^-1]_SS^-1 W_S^T)`` when removed and
    compensated; units go in ``rounds`` batches, with ``W`` and ``H^-1`` updated after each.
    Units with all-zero (or, with an intercept, constant) activations cost nothing.
    """
    w = problem.weight.clone()
    h = problem.moment
    hinv = torch.cholesky_inverse(damped_cholesky(h, problem.damp))
    cols = problem.columns.to(w.device)
    n_units = cols.shape[0]
    dead = torch.diagonal(h)[cols].sum(dim=1) <= 0
    alive = torch.ones(n_units, dtype=torch.bool, device=w.device)
    chosen: list[torch.Tensor] = []
    step = max(1, math.ceil(n_remove / max(problem.rounds, 1)))
    done = 0
    while done < n_remove:
        idx = alive.nonzero().squeeze(1)
        c = cols[idx]
        blocks = hinv[c[:, :, None], c[:, None, :]]  # [a, k, k]
        ws = w[:, c].permute(1, 2, 0)  # [a, k, out]
        scores = (ws * torch.linalg.solve(blocks, ws)).sum(dim=(1, 2))
        scores = torch.where(dead[idx], torch.zeros_like(scores), scores)
        take = idx[torch.argsort(scores, stable=True)[:min(step, n_remove - done)]]
        r = cols[take].reshape(-1)
        update = torch.linalg.solve(hinv[r][:, r], hinv[r])  # [|r|, in]
        w -= w[:, r] @ update
        hinv -= hinv[:, r] @ update
        w[:, r] = 0.0
        hinv[r] = 0.0
        hinv[:, r] = 0.0
        alive[take] = False
        chosen.append(take)
        done += int(take.numel())
    if not chosen:
        return torch.zeros(0, dtype=torch.long)
    return torch.cat(chosen).cpu()


UnitCriterion = Callable[[UnitProblem, int], torch.Tensor]
UNIT_CRITERIA: dict[str, UnitCriterion] = {"wanda": wanda_units, "obs": obs_units}
