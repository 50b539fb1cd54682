"""The layers a decomposition considers and, for each, its options: every kind that applies,
fitted once, with the parameters, MACs, error and energy of each rank of its grid."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from ..errors import ConfigError, UnsupportedOpError
from ..measure.counts import ExampleInputs
from .calibration import collect_moments, record_shapes
from .config import DecomposeConfig
from .kinds import (Factorization, InputMoments, LayerShapes, dense_macs, dense_params, describe,
                    factorization)
from .modules import FACTORIZED
from .rank import Candidate, Option

__all__ = ["candidate_layers", "applicable_kinds", "build_candidate", "build_candidates",
           "matches"]

_LAYERS = (nn.Linear, nn.Conv2d)


def matches(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def candidate_layers(model: nn.Module, config: DecomposeConfig
                     ) -> tuple[list[str], dict[str, str]]:
    """Names of the Linear / Conv2d layers ``config`` selects, and the selected modules
    left alone with the reason (already factorized, grouped, …)."""
    inside: list[str] = []
    names: list[str] = []
    skipped: dict[str, str] = {}
    modules = dict(model.named_modules())
    for pattern in (*config.layers, *config.ranks):
        hits = [n for n in modules if n and fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            raise ConfigError(f"layer pattern {pattern!r} matches no module of "
                              f"{type(model).__name__}; module names look like "
                              f"{[n for n in modules if n][:4]!r}")
        if not any(isinstance(modules[n], _LAYERS) for n in hits):
            kind = type(modules[hits[0]]).__name__
            raise UnsupportedOpError(
                f"{pattern!r} names {hits[0]!r}, a {kind}, which is not a Linear or Conv2d "
                "layer: decompose factorizes nn.Linear (SVD) and nn.Conv2d (spatial SVD, "
                "Tucker-2); name those layers instead")
    for name, module in modules.items():
        if any(name.startswith(p) for p in inside):
            continue
        if isinstance(module, FACTORIZED):
            inside.append(f"{name}.")
            if not config.layers or matches(name, config.layers):
                skipped[name] = "already factorized"
            continue
        if not isinstance(module, _LAYERS) or not name:
            continue
        if config.layers and not matches(name, config.layers) and \
                not matches(name, tuple(config.ranks)):
            continue
        if matches(name, config.ignore):
            continue
        names.append(name)
    return names, skipped


def applicable_kinds(module: nn.Module, config: DecomposeConfig) -> tuple[list[str], str | None]:
    """The factorizations that apply to ``module``, or why none does."""
    wanted = ["svd"] if isinstance(module, nn.Linear) else list(config.conv)
    if not wanted:
        return [], "convolutions are left alone (conv=())"
    reasons = {k: factorization(k).why_not(module) for k in wanted}
    kinds = [k for k, r in reasons.items() if r is None]
    return kinds, None if kinds else "; ".join(f"{k}: {r}" for k, r in reasons.items())


def _cost_of(fact: Factorization, spec: dict[str, Any],
             calls: list[LayerShapes]) -> Callable[[tuple[int, ...]], tuple[int, int]]:
    """The (parameters, MACs over every call) of one kind's layer at a given rank."""
    def cost(rank: tuple[int, ...]) -> tuple[int, int]:
        return fact.params(spec, rank), sum(fact.macs(spec, rank, c) for c in calls)
    return cost


def build_candidate(name: str, module: nn.Module, calls: list[LayerShapes],
               moments: InputMoments | None, kinds: list[str],
               config: DecomposeConfig) -> Candidate:
    spec = describe(module)
    fitted, options, costs = {}, [], {}
    for kind in kinds:
        fact = factorization(kind)
        fitted[kind] = fact.fit(module, moments, activation_aware=config.activation_aware,
                                damp=config.damp, iterations=config.tucker_iterations)

        cost = _cost_of(fact, spec, calls)
        costs[kind] = cost
        cheap = kind == "svd" or (kind == "spatial_svd" and moments is None)
        for rank in fact.grid(spec, None if cheap else config.points, config.round_to):
            params, macs = cost(rank)
            options.append(Option(kind, rank, params, macs, *fitted[kind].figures(rank)))
    return Candidate(name, spec, dense_params(spec), sum(dense_macs(spec, c) for c in calls),
                     fitted, options, error_on="weights" if moments is None else "calibration",
                     costs=costs)




def build_candidates(model: nn.Module, example_inputs: ExampleInputs, config: DecomposeConfig,
                     batches: Sequence[Any]) -> tuple[list[Candidate], dict[str, str]]:
    """Every selected layer as a :class:`Candidate` (shapes recorded on the example inputs,
    moments gathered on ``batches`` when there are any), and the layers left alone with the
    reason. A layer that ``config.ranks`` names but that cannot be factorized is an error."""
    names, skipped = candidate_layers(model, config)
    calls = record_shapes(model, example_inputs, names)
    if config.activation_aware and not batches:
        raise ConfigError("activation_aware=True needs calibration batches (a few batches "
                          "of real inputs): pass calibration=[...]")
    kinds = {n: applicable_kinds(model.get_submodule(n), config) for n in names}
    usable = [n for n in names if kinds[n][0] and calls[n]]
    moments = collect_moments(model, usable, batches) if batches else {}
    cands: list[Candidate] = []
    for name in names:
        applicable, reason = kinds[name]
        if reason is None and not calls[name]:
            reason = "did not run on the example inputs"
        elif reason is None and batches and name not in moments:
            reason = "did not run on the calibration batches"
        if reason is not None:
            if matches(name, tuple(config.ranks)):
                raise UnsupportedOpError(f"cannot factorize {name!r} as ranks= asks: {reason}")
            skipped[name] = reason
            continue
        cands.append(build_candidate(name, model.get_submodule(name), calls[name],
                                     moments.get(name), applicable, config))
    return cands, skipped
