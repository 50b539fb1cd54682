"""The factorizations themselves: truncated SVD (plain or whitened), spatial SVD, Tucker-2.

All work in float64 on a weight and return factors at any rank of one decomposition, with
the exact error of every rank:

- :class:`Spectrum` (a weight matrix ``W`` ``[out, in]``): ``W = Σ s_i u_i w_i^T`` with
  orthonormal ``u_i``. Plain SVD: ``w_i`` are the right singular vectors. Whitened
  (activation-aware, as in SVD-LLM): ``W L = U S V^T`` with ``L`` the Cholesky factor of the
  (damped) Gram matrix ``G`` of the layer's calibration inputs, and ``w_i = L^{-T} v_i``; the
  rank-``r`` truncation then minimises ``||(W - W_r) X||`` on those inputs, not ``||W - W_r||``.
  Because the ``u_i`` are orthonormal, the squared error of rank ``r`` on inputs with Gram
  ``G`` is ``Σ_{i>r} s_i² w_i^T G w_i`` (``G = I`` for the weight-space error), for every
  ``r`` at once.
- :func:`spatial_spectrum`: the SVD of a ``Conv2d`` weight rearranged to
  ``[(in, kh), (out, kw)]`` (a ``kh×1`` then a ``1×kw`` convolution; Jaderberg et al.'s
  scheme 2); its weight-space errors are the tails of the singular values.
- :func:`tucker2`: orthonormal factors of the output and input channel modes (HOSVD, then
  ``iterations`` sweeps of HOOI, each of which never increases the error) and the core.

:func:`gram_error2` gives the squared output error of any weight change on inputs with a
given Gram matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["Spectrum", "Tucker2", "gram_error2", "linear_spectrum", "spatial_factors",
           "spatial_spectrum", "spatial_weight", "tucker2", "tucker2_bases"]


@dataclass(frozen=True)
class Spectrum:
    """``W = Σ_i s_i u_i w_i^T`` (float64), ``u_i`` orthonormal, ``s`` decreasing."""

    u: torch.Tensor  # [out, R]
    s: torch.Tensor  # [R]
    rows: torch.Tensor  # [R, in]: w_i^T

    @property
    def full_rank(self) -> int:
        return int(self.s.numel())

    def factors(self, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(first [rank, in], second [out, rank])`` with ``second @ first = W_rank``; the
        singular values are split evenly between them."""
        root = self.s[:rank].sqrt()
        return root[:, None] * self.rows[:rank], self.u[:, :rank] * root[None, :]

    def weight(self, rank: int) -> torch.Tensor:
        first, second = self.factors(rank)
        return second @ first

    def tail_error2(self, gram: torch.Tensor | None = None) -> torch.Tensor:
        """Squared error of every rank ``r = 0 … R`` (``[R + 1]``): on inputs whose Gram
        matrix is ``gram``, or in weight space (``None``)."""
        if gram is None:
            q = self.rows.pow(2).sum(dim=1)
        else:
            q = ((self.rows @ gram.to(self.rows)) * self.rows).sum(dim=1)
        terms = self.s.pow(2) * q
        tail = torch.flip(torch.cumsum(torch.flip(terms, [0]), 0), [0])
        return torch.cat([tail, tail.new_zeros(1)]).clamp_min(0.0)

    def energy(self) -> torch.Tensor:
        """Fraction of ``Σ s_i²`` kept by every rank ``r = 0 … R`` (``[R + 1]``)."""
        total = float(self.s.pow(2).sum())
        kept = torch.cat([self.s.new_zeros(1), torch.cumsum(self.s.pow(2), 0)])
        return kept / total if total > 0 else torch.ones_like(kept)


def linear_spectrum(weight: torch.Tensor, whitening: torch.Tensor | None = None) -> Spectrum:
    """SVD of ``weight`` (``[out, in]``); with ``whitening`` (the lower Cholesky factor
    ``L`` of the damped input Gram matrix) the SVD of ``W L``, mapped back by ``L^{-1}``."""
    w = weight.detach().to(torch.float64)
    if whitening is None:
        u, s, vh = torch.linalg.svd(w, full_matrices=False)
        return Spectrum(u, s, vh)
    chol = whitening.to(w)
    u, s, vh = torch.linalg.svd(w @ chol, full_matrices=False)
    rows = torch.linalg.solve_triangular(chol, vh, upper=False, left=False)  # V^T L^{-1}
    return Spectrum(u, s, rows)


def gram_error2(delta: torch.Tensor, gram: torch.Tensor | None = None) -> float:
    """``Σ_x ||delta x||²`` over inputs with Gram matrix ``gram`` (``||delta||_F²`` if None);
    ``delta`` is flattened to ``[out, -1]`` in the order of the layer's input patches."""
    d = delta.reshape(delta.shape[0], -1).to(torch.float64)
    if gram is None:
        return float(d.pow(2).sum())
    return max(float(((d @ gram.to(d)) * d).sum()), 0.0)


def spatial_spectrum(weight: torch.Tensor) -> Spectrum:
    """SVD of a ``[out, in, kh, kw]`` weight as the matrix ``[(in, kh), (out, kw)]``.

    Here ``u`` spans the ``(in, kh)`` side (the first, vertical convolution) and ``rows``
    the ``(out, kw)`` side; :func:`spatial_weight` maps a rank back to a conv weight.
    """
    w = weight.detach().to(torch.float64)
    out, cin, kh, kw = w.shape
    matrix = w.permute(1, 2, 0, 3).reshape(cin * kh, out * kw)
    u, s, vh = torch.linalg.svd(matrix, full_matrices=False)
    return Spectrum(u, s, vh)


def spatial_factors(spectrum: Spectrum, rank: int, shape: torch.Size | tuple[int, ...]
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """The two conv weights of rank ``rank``: ``[rank, in, kh, 1]`` and ``[out, rank, 1, kw]``."""
    out, cin, kh, kw = shape
    root = spectrum.s[:rank].sqrt()
    vertical = (spectrum.u[:, :rank] * root).t().reshape(rank, cin, kh, 1)
    horizontal = (root[:, None] * spectrum.rows[:rank]).reshape(rank, out, kw)
    return vertical, horizontal.permute(1, 0, 2).reshape(out, rank, 1, kw)


def spatial_weight(spectrum: Spectrum, rank: int, shape: torch.Size | tuple[int, ...]
                   ) -> torch.Tensor:
    """The ``[out, in, kh, kw]`` weight a rank-``rank`` spatial factorization computes."""
    out, cin, kh, kw = shape
    matrix = spectrum.weight(rank)  # u s rows: [(in, kh), (out, kw)]
    return matrix.reshape(cin, kh, out, kw).permute(2, 0, 1, 3)


def _leading(matrix: torch.Tensor, rank: int) -> torch.Tensor:
    """The ``rank`` leading left singular vectors of ``matrix``."""
    u, _, _ = torch.linalg.svd(matrix, full_matrices=False)
    return u[:, :rank]


@dataclass(frozen=True)
class Tucker2:
    """``W[o, i] ≈ Σ out_factor[o, a] core[a, b] in_factor[i, b]`` (over the kernel window)."""

    out_factor: torch.Tensor  # [out, r_out], orthonormal columns
    core: torch.Tensor  # [r_out, r_in, kh, kw]
    in_factor: torch.Tensor  # [in, r_in], orthonormal columns

    def weight(self) -> torch.Tensor:
        return torch.einsum("oa,abhw,ib->oihw", self.out_factor, self.core, self.in_factor)


def tucker2(weight: torch.Tensor, ranks: tuple[int, int], iterations: int = 2,
            bases: tuple[torch.Tensor, torch.Tensor] | None = None) -> Tucker2:
    """Tucker-2 of a ``[out, in, kh, kw]`` weight at ``ranks = (r_in, r_out)``.

    ``bases`` (the full left singular vectors of the output and input unfoldings, as
    :func:`tucker2_bases` returns them) saves recomputing them for several ranks.
    """
    w = weight.detach().to(torch.float64)
    r_in, r_out = ranks
    u_out, u_in = bases if bases is not None else tucker2_bases(w)
    out_f, in_f = u_out[:, :r_out], u_in[:, :r_in]
    for _ in range(iterations):
        # input factor given the output one, then the output factor given the new input one
        proj = torch.einsum("oihw,oa->iahw", w, out_f)
        in_f = _leading(proj.reshape(w.shape[1], -1), r_in)
        proj = torch.einsum("oihw,ib->obhw", w, in_f)
        out_f = _leading(proj.reshape(w.shape[0], -1), r_out)
    core = torch.einsum("oihw,oa,ib->abhw", w, out_f, in_f)
    return Tucker2(out_f, core, in_f)


def tucker2_bases(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Left singular vectors of the output-channel and input-channel unfoldings (HOSVD)."""
    w = weight.detach().to(torch.float64)
    u_out, _, _ = torch.linalg.svd(w.reshape(w.shape[0], -1), full_matrices=False)
    u_in, _, _ = torch.linalg.svd(w.transpose(0, 1).reshape(w.shape[1], -1),
                                  full_matrices=False)
    return u_out, u_in
