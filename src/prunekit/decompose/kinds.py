"""Factorization kinds, registered by name: ``svd`` (Linear), ``spatial_svd`` and ``tucker2``
(Conv2d).

A kind knows which layers it applies to (and why not), its ranks, the parameters and MACs
of a factorized layer, and how to fit one: :meth:`Factorization.fit` decomposes a layer once
and then gives, for any rank, the relative output error, the energy kept and the layer
itself. Errors are measured on the layer's calibration inputs when their moments are given
(``||ΔW X|| / ||W X||``), else in weight space (``||ΔW|| / ||W||``). A layer is described by
plain data (:func:`describe`), which is also what plans record.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ..errors import ConfigError
from .._internal.linalg import damped_cholesky
from .._internal.registry import Registry
from .factorize import (Spectrum, gram_error2, linear_spectrum, spatial_factors,
                        spatial_spectrum, spatial_weight, tucker2, tucker2_bases)
from .modules import LowRankLinear, SpatialConv2d, Tucker2Conv2d

__all__ = ["FACTORIZATIONS", "ChannelTucker2", "Factorization", "Fitted", "InputMoments",
           "LayerShapes", "LinearSVD", "SpatialSVD", "dense_macs", "dense_params", "describe",
           "factorization", "register_factorization", "thin"]

Rank = tuple[int, ...]


@dataclass(frozen=True)
class InputMoments:
    """Calibration statistics of a layer's input rows (Linear inputs, conv patches):
    ``second = E[x x^T]``, ``mean = E[x]`` (float64) over ``count`` rows."""

    second: torch.Tensor
    mean: torch.Tensor
    count: int

    @property
    def covariance(self) -> torch.Tensor:
        return self.second - torch.outer(self.mean, self.mean)


@dataclass(frozen=True)
class LayerShapes:
    """Input and output shapes of one call of the layer on the example inputs."""

    input: tuple[int, ...]
    output: tuple[int, ...]


def describe(module: nn.Module) -> dict[str, Any]:
    """Plain data that rebuilds a layer's shape: type, sizes, convolution settings, bias."""
    if isinstance(module, nn.Linear):
        return {"type": "Linear", "in_features": module.in_features,
                "out_features": module.out_features, "bias": module.bias is not None}
    if isinstance(module, nn.Conv2d):
        padding = module.padding
        return {"type": "Conv2d", "in_channels": module.in_channels,
                "out_channels": module.out_channels, "kernel_size": list(module.kernel_size),
                "stride": list(module.stride),
                "padding": padding if isinstance(padding, str) else list(padding),
                "dilation": list(module.dilation), "groups": module.groups,
                "padding_mode": module.padding_mode, "bias": module.bias is not None}
    raise ConfigError(f"{type(module).__name__} is not a Linear or Conv2d layer")


class Fitted:
    """A layer decomposed once: error, energy and the factorized layer at any rank."""

    def figures(self, rank: Rank) -> tuple[float, float]:
        """``(relative error, energy kept)`` of ``rank``."""
        raise NotImplementedError

    def layer(self, rank: Rank) -> tuple[nn.Module, float, float]:
        """The factorized layer at ``rank`` with its weights, and its real figures."""
        raise NotImplementedError


class Factorization:
    """One kind of factorization (subclass and register with :func:`register_factorization`)."""

    name: ClassVar[str] = ""
    layer_type: ClassVar[type[nn.Module]] = nn.Module

    def why_not(self, module: nn.Module) -> str | None:
        """Why this kind does not apply to ``module`` (``None``: it applies)."""
        if not isinstance(module, self.layer_type):
            return f"{type(module).__name__} is not a {self.layer_type.__name__}"
        if not isinstance(getattr(module, "weight", None), nn.Parameter):
            return "its weight is not a plain parameter (masked or parametrized)"
        return None

    def full_rank(self, spec: dict[str, Any]) -> Rank:
        raise NotImplementedError

    def params(self, spec: dict[str, Any], rank: Rank) -> int:
        raise NotImplementedError

    def macs(self, spec: dict[str, Any], rank: Rank, shapes: LayerShapes) -> int:
        raise NotImplementedError

    def grid(self, spec: dict[str, Any], points: int | None, round_to: int = 1) -> list[Rank]:
        """Ranks to consider, increasing: multiples of ``round_to`` and the full rank,
        thinned evenly to ``points`` (``None``: all)."""
        (full,) = self.full_rank(spec)
        ranks = sorted({*range(round_to, full + 1, round_to), full})
        return [(r,) for r in thin(ranks, points)]

    def at_ratio(self, spec: dict[str, Any], ratio: float, round_to: int = 1) -> Rank:
        """The rank keeping ``ratio`` of the full rank (rounded up, to ``round_to``)."""
        return tuple(min(f, _round_up(max(1, math.ceil(ratio * f - 1e-9)), round_to))
                     for f in self.full_rank(spec))

    def check_rank(self, spec: dict[str, Any], rank: Any, where: str) -> Rank:
        """``rank`` as a tuple of this kind's length, each in ``[1, full]``."""
        full = self.full_rank(spec)
        values = (rank,) if isinstance(rank, int) and not isinstance(rank, bool) else rank
        try:
            values = tuple(values)
        except TypeError:
            values = ()
        if len(values) != len(full) or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in values):
            what = "an integer" if len(full) == 1 else f"{len(full)} integers (in, out)"
            raise ConfigError(f"{where}: a {self.name} rank is {what}, got {rank!r}")
        for value, top in zip(values, full):
            if value <= 0:
                raise ConfigError(f"{where}: rank {value} must be at least 1")
            if value > top:
                raise ConfigError(f"{where}: rank {value} is above the full rank {top} of this "
                                  f"layer ({self.name}, full rank {full}); use at most {top}")
        return values

    def fit(self, module: nn.Module, moments: InputMoments | None, *,
            activation_aware: bool = False, damp: float = 0.01,
            iterations: int = 2) -> Fitted:
        raise NotImplementedError

    def empty(self, spec: dict[str, Any], rank: Rank, device: Any = None,
              dtype: torch.dtype | None = None) -> nn.Module:
        """The factorized layer with uninitialised weights (to load saved ones into)."""
        raise NotImplementedError


FACTORIZATIONS: Registry[type[Factorization]] = Registry(
    "factorization", "prunekit.decompose.register_factorization")


def register_factorization(name: str) -> Any:
    """Class decorator: make a :class:`Factorization` subclass available by ``name``."""
    return FACTORIZATIONS.register(name)


def factorization(name: str) -> Factorization:
    """An instance of the factorization registered as ``name``."""
    return FACTORIZATIONS.get(name)()


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def thin(values: list[Any], points: int | None) -> list[Any]:
    """At most ``points`` of ``values``, evenly spread, first and last kept (None: all)."""
    if points is None or len(values) <= points:
        return values
    picks = sorted({round(i * (len(values) - 1) / (points - 1)) for i in range(points)})
    return [values[i] for i in picks]


def _energy_denominator(weight: torch.Tensor, moments: InputMoments | None) -> float:
    """``||W X||²`` per row on the calibration inputs, or ``||W||²``."""
    w = weight.detach().reshape(weight.shape[0], -1).to(torch.float64)
    return gram_error2(w, None if moments is None else moments.second) or 1.0


def _load_factors(chain: nn.Sequential, weights: list[torch.Tensor],
                  bias: torch.Tensor | None) -> None:
    """Copy ``weights`` into the chain's layers in order, and ``bias`` into the last one."""
    with torch.no_grad():
        for layer, weight in zip(chain, weights, strict=True):
            layer.get_parameter("weight").copy_(weight)
        if bias is not None:
            last = chain[-1].get_parameter("bias")
            last.copy_(bias.to(last))


def _check_moments(module: nn.Module, moments: InputMoments | None, width: int) -> None:
    if moments is not None and tuple(moments.second.shape) != (width, width):
        raise ConfigError(f"input moments of size {tuple(moments.second.shape)} do not fit "
                          f"{type(module).__name__} with {width} input features per row")


# -- Linear ---------------------------------------------------------------------------------

class _FittedSVD(Fitted):
    def __init__(self, module: nn.Linear, spectrum: Spectrum, error2: torch.Tensor,
                 shift_mean: torch.Tensor | None) -> None:
        self.module, self.spectrum, self.shift_mean = module, spectrum, shift_mean
        self.error2 = error2.tolist()
        self.energies = spectrum.energy().tolist()

    def figures(self, rank: Rank) -> tuple[float, float]:
        return math.sqrt(max(self.error2[rank[0]], 0.0)), self.energies[rank[0]]

    def layer(self, rank: Rank) -> tuple[nn.Module, float, float]:
        m, (r,) = self.module, rank
        first, second = self.spectrum.factors(r)
        w = m.weight
        out = LowRankLinear(m.in_features, m.out_features, r, bias=m.bias is not None,
                            device=w.device, dtype=w.dtype)
        bias = None
        if m.bias is not None:
            bias = m.bias.detach().to(torch.float64)
            if self.shift_mean is not None:  # the bias absorbs the mean of the error
                delta = w.detach().to(torch.float64) - second @ first
                bias = bias + delta @ self.shift_mean
        _load_factors(out, [first.to(w), second.to(w)], bias)
        return (out, *self.figures(rank))


@register_factorization("svd")
class LinearSVD(Factorization):
    """``Linear`` → two Linears by truncated SVD; ``activation_aware`` whitens by the
    calibration inputs (centred, with the bias absorbing the mean, when there is a bias)."""

    layer_type = nn.Linear

    def full_rank(self, spec: dict[str, Any]) -> Rank:
        return (min(spec["in_features"], spec["out_features"]),)

    def params(self, spec: dict[str, Any], rank: Rank) -> int:
        return rank[0] * (spec["in_features"] + spec["out_features"]) + \
            (spec["out_features"] if spec["bias"] else 0)

    def macs(self, spec: dict[str, Any], rank: Rank, shapes: LayerShapes) -> int:
        positions = math.prod(shapes.output[:-1])
        return positions * rank[0] * (spec["in_features"] + spec["out_features"])

    def fit(self, module: nn.Module, moments: InputMoments | None, *,
            activation_aware: bool = False, damp: float = 0.01,
            iterations: int = 2) -> Fitted:
        assert isinstance(module, nn.Linear)
        _check_moments(module, moments, module.in_features)
        if activation_aware and moments is None:
            raise ConfigError("activation-aware SVD needs calibration inputs (pass calibration "
                              "batches)")
        centred = activation_aware and module.bias is not None
        gram = None
        if moments is not None:
            gram = moments.covariance if centred else moments.second
        whitening = damped_cholesky(gram, damp) if activation_aware and gram is not None else None
        spectrum = linear_spectrum(module.weight, whitening)
        error2 = spectrum.tail_error2(gram) / _energy_denominator(module.weight, moments)
        return _FittedSVD(module, spectrum, error2,
                          moments.mean if centred and moments is not None else None)

    def empty(self, spec: dict[str, Any], rank: Rank, device: Any = None,
              dtype: torch.dtype | None = None) -> nn.Module:
        return LowRankLinear(spec["in_features"], spec["out_features"], rank[0],
                             bias=spec["bias"], device=device, dtype=dtype)


# -- Conv2d ---------------------------------------------------------------------------------

class _Conv(Factorization):
    layer_type = nn.Conv2d

    def why_not(self, module: nn.Module) -> str | None:
        reason = super().why_not(module)
        if reason is not None or not isinstance(module, nn.Conv2d):
            return reason
        if module.groups != 1:
            if module.groups == module.in_channels:
                return (f"depthwise convolution (groups={module.groups}): each output channel "
                        "sees one input channel; there is nothing to factorize across channels")
            return (f"grouped convolution (groups={module.groups}): a factorization would mix "
                    "the groups' channels")
        return None

    @staticmethod
    def _positions(shapes: LayerShapes) -> tuple[int, int, int]:
        """(batch, input positions, output positions) of one call."""
        out, inp = shapes.output, shapes.input
        batch = out[0] if len(out) == 4 else 1
        return batch, inp[-2] * inp[-1], out[-2] * out[-1]


class _FittedSpatial(Fitted):
    def __init__(self, module: nn.Conv2d, spectrum: Spectrum, moments: InputMoments | None,
                 ) -> None:
        self.module, self.spectrum, self.moments = module, spectrum, moments
        self.denominator = _energy_denominator(module.weight, moments)
        self.weight_error2 = (spectrum.tail_error2() / self.denominator).tolist()
        self.energies = spectrum.energy().tolist()
        self._cache: dict[int, float] = {}

    def figures(self, rank: Rank) -> tuple[float, float]:
        r = rank[0]
        if self.moments is None:
            return math.sqrt(max(self.weight_error2[r], 0.0)), self.energies[r]
        if r not in self._cache:
            w = self.module.weight.detach().to(torch.float64)
            delta = w - spatial_weight(self.spectrum, r, w.shape)
            self._cache[r] = gram_error2(delta, self.moments.second) / self.denominator
        return math.sqrt(self._cache[r]), self.energies[r]

    def layer(self, rank: Rank) -> tuple[nn.Module, float, float]:
        m, w = self.module, self.module.weight
        vertical, horizontal = spatial_factors(self.spectrum, rank[0], w.shape)
        out = SpatialConv2d(describe(m), rank[0], device=w.device, dtype=w.dtype)
        _load_factors(out, [vertical.to(w), horizontal.to(w)], m.bias)
        return (out, *self.figures(rank))


@register_factorization("spatial_svd")
class SpatialSVD(_Conv):
    """``Conv2d`` (k_h×k_w) → ``k_h×1`` then ``1×k_w`` by SVD of the rearranged kernel; on a
    1×1 convolution this is a channel SVD (``in → r → out``)."""

    def full_rank(self, spec: dict[str, Any]) -> Rank:
        kh, kw = spec["kernel_size"]
        return (min(spec["in_channels"] * kh, spec["out_channels"] * kw),)

    def params(self, spec: dict[str, Any], rank: Rank) -> int:
        kh, kw = spec["kernel_size"]
        return rank[0] * (spec["in_channels"] * kh + spec["out_channels"] * kw) + \
            (spec["out_channels"] if spec["bias"] else 0)

    def macs(self, spec: dict[str, Any], rank: Rank, shapes: LayerShapes) -> int:
        kh, kw = spec["kernel_size"]
        batch, _, out_pos = self._positions(shapes)
        mid = shapes.output[-2] * shapes.input[-1]  # output rows × input columns
        return batch * rank[0] * (mid * spec["in_channels"] * kh +
                                  out_pos * spec["out_channels"] * kw)

    def fit(self, module: nn.Module, moments: InputMoments | None, *,
            activation_aware: bool = False, damp: float = 0.01,
            iterations: int = 2) -> Fitted:
        assert isinstance(module, nn.Conv2d)
        _check_moments(module, moments, module.weight[0].numel())
        return _FittedSpatial(module, spatial_spectrum(module.weight), moments)

    def empty(self, spec: dict[str, Any], rank: Rank, device: Any = None,
              dtype: torch.dtype | None = None) -> nn.Module:
        return SpatialConv2d(spec, rank[0], device=device, dtype=dtype)


class _FittedTucker(Fitted):
    def __init__(self, module: nn.Conv2d, moments: InputMoments | None,
                 iterations: int) -> None:
        self.module, self.moments, self.iterations = module, moments, iterations
        self.weight = module.weight.detach().to(torch.float64)
        self.bases = tucker2_bases(self.weight)
        self.norm2 = float(self.weight.pow(2).sum()) or 1.0
        self.denominator = _energy_denominator(module.weight, moments)
        self._cache: dict[tuple[Rank, int], tuple[Any, float, float]] = {}

    def _solve(self, rank: Rank, iterations: int) -> tuple[Any, float, float]:
        key = (rank, iterations)
        if key not in self._cache:
            dec = tucker2(self.weight, (rank[0], rank[1]), iterations, self.bases)
            delta = self.weight - dec.weight()
            energy = 1.0 - gram_error2(delta) / self.norm2
            error2 = gram_error2(delta, None if self.moments is None else self.moments.second)
            self._cache[key] = (dec, math.sqrt(error2 / self.denominator), energy)
        return self._cache[key]

    def figures(self, rank: Rank) -> tuple[float, float]:
        _, error, energy = self._solve(rank, 0)
        return error, energy

    def layer(self, rank: Rank) -> tuple[nn.Module, float, float]:
        # HOOI sweeps lower the weight-space error; keep them only if the measured one drops
        dec, error, energy = min((self._solve(rank, 0), self._solve(rank, self.iterations)),
                                 key=lambda t: t[1])
        m, w = self.module, self.module.weight
        out = Tucker2Conv2d(describe(m), (rank[0], rank[1]), device=w.device, dtype=w.dtype)
        _load_factors(out, [dec.in_factor.t()[:, :, None, None].to(w), dec.core.to(w),
                            dec.out_factor[:, :, None, None].to(w)], m.bias)
        return out, error, energy


@register_factorization("tucker2")
class ChannelTucker2(_Conv):
    """``Conv2d`` → ``1×1`` (in → r_in) → ``k×k`` core (r_in → r_out) → ``1×1`` (r_out → out);
    ranks are ``(r_in, r_out)``."""

    def why_not(self, module: nn.Module) -> str | None:
        reason = super().why_not(module)
        if reason is None and isinstance(module, nn.Conv2d) and \
                tuple(module.kernel_size) == (1, 1):
            return "1x1 kernel: its channels are factorized by spatial_svd (a channel SVD)"
        return reason

    def full_rank(self, spec: dict[str, Any]) -> Rank:
        kh, kw = spec["kernel_size"]
        cin, cout = spec["in_channels"], spec["out_channels"]
        return (min(cin, cout * kh * kw), min(cout, cin * kh * kw))

    def grid(self, spec: dict[str, Any], points: int | None, round_to: int = 1) -> list[Rank]:
        """The same fraction of both full ranks, ``k / points`` for ``k = 1 … points``
        (every distinct pair when ``points`` is None: one step per output channel)."""
        full_in, full_out = self.full_rank(spec)
        steps = points if points is not None else max(full_in, full_out)
        pairs = {self.at_ratio(spec, k / steps, round_to) for k in range(1, steps + 1)}
        return sorted(pairs | {(full_in, full_out)})

    def params(self, spec: dict[str, Any], rank: Rank) -> int:
        kh, kw = spec["kernel_size"]
        r_in, r_out = rank
        return (spec["in_channels"] * r_in + r_in * r_out * kh * kw +
                r_out * spec["out_channels"] + (spec["out_channels"] if spec["bias"] else 0))

    def macs(self, spec: dict[str, Any], rank: Rank, shapes: LayerShapes) -> int:
        kh, kw = spec["kernel_size"]
        r_in, r_out = rank
        batch, in_pos, out_pos = self._positions(shapes)
        return batch * (in_pos * spec["in_channels"] * r_in +
                        out_pos * (r_in * r_out * kh * kw + r_out * spec["out_channels"]))

    def fit(self, module: nn.Module, moments: InputMoments | None, *,
            activation_aware: bool = False, damp: float = 0.01,
            iterations: int = 2) -> Fitted:
        assert isinstance(module, nn.Conv2d)
        _check_moments(module, moments, module.weight[0].numel())
        return _FittedTucker(module, moments, iterations)

    def empty(self, spec: dict[str, Any], rank: Rank, device: Any = None,
              dtype: torch.dtype | None = None) -> nn.Module:
        return Tucker2Conv2d(spec, (rank[0], rank[1]), device=device, dtype=dtype)


def dense_params(spec: dict[str, Any]) -> int:
    """Parameters of the dense layer ``spec`` describes."""
    if spec["type"] == "Linear":
        return spec["in_features"] * spec["out_features"] + \
            (spec["out_features"] if spec["bias"] else 0)
    kh, kw = spec["kernel_size"]
    return spec["out_channels"] * spec["in_channels"] // spec["groups"] * kh * kw + \
        (spec["out_channels"] if spec["bias"] else 0)


def dense_macs(spec: dict[str, Any], shapes: LayerShapes) -> int:
    """MACs of one call of the dense layer (as ``FlopCounterMode`` counts them, halved)."""
    if spec["type"] == "Linear":
        return math.prod(shapes.output[:-1]) * spec["in_features"] * spec["out_features"]
    kh, kw = spec["kernel_size"]
    out = shapes.output
    return math.prod(out[:-3] or (1,)) * out[-3] * out[-2] * out[-1] * \
        spec["in_channels"] // spec["groups"] * kh * kw
