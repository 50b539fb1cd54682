"""Hardware-aware ratios from a measured latency table: a uniform ratio made to pay off.

A uniform ratio removes the same fraction of units from every group, but on real kernels
the time of a layer does not follow its MACs: depthwise convolutions and small layers are
dominated by fixed per-call cost, and some kept counts fall off fast kernel paths. With a
:class:`.latency.LatencyTable` measured on the target device, :func:`hardware_aware`

1. rounds every group's kept count up to the next *fast size* of the table (a measured
   count faster than every larger one: more units kept, no more time);
2. leaves whole every group whose layers, in the table, save less than ``min_return`` of
   the time a MACs-proportional saving would give (time saved fraction ÷ units removed
   fraction): pruning it costs accuracy and buys (almost) no speed;
3. optionally (``reach=True``) raises ratios where they pay off, in steps,
   until the table predicts the speed-up the uniform ratio's MACs reduction promised.

It returns a :class:`PruneConfig` to pass to ``prunekit.prune(model, x, config=...)``, with
the reason for every group left whole. Pure logic over the table: no model, no timing.
"""

from __future__ import annotations

import dataclasses
import glob
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..plan.config import PruneConfig
from ..errors import ConfigError
from .latency import LatencyTable
from .ratios import CostModel

__all__ = ["HardwareAware", "group_return", "hardware_aware"]


def group_return(table: LatencyTable, key: str, kept: int) -> float:
    """Time return of keeping ``kept`` units of group ``key``: the fraction of its layers'
    measured time saved, divided by the fraction of its units removed (1.0: time falls in
    proportion to units; 0: no time saved). Full groups return 1.0."""
    entry = table.groups[key]
    if kept >= entry.units:
        return 1.0
    curve = np.asarray(entry.curve(), dtype=float)
    dense = float(curve[-1])
    if dense <= 0:
        return 0.0
    now = float(np.interp(kept, entry.kept, curve))
    saved = max(0.0, (dense - now) / dense)
    removed = 1.0 - kept / entry.units
    return saved / removed


@dataclass(frozen=True)
class HardwareAware:
    """Per-group ratios chosen from the table, the config that prunes them, the groups left
    whole (with why) and the table's predicted latency."""

    ratios: dict[str, float]
    config: PruneConfig
    left_whole: dict[str, str] = field(default_factory=dict)
    predicted_ms: float = 0.0
    dense_ms: float = 0.0

    @property
    def predicted_speedup(self) -> float:
        return self.dense_ms / self.predicted_ms if self.predicted_ms > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {"ratios": dict(self.ratios), "left_whole": dict(self.left_whole),
                "predicted_ms": self.predicted_ms, "dense_ms": self.dense_ms}


def _config(base: PruneConfig, ratios: dict[str, float]) -> PruneConfig:
    overrides = {glob.escape(k): float(r) for k, r in ratios.items()}
    return dataclasses.replace(base, ratio=0.0, scope="local", overrides=overrides,
                               flops_reduction=None, params_reduction=None)


def hardware_aware(table: LatencyTable, ratio: float, base: PruneConfig | None = None, *,
                   min_return: float = 0.25, reach: bool = False, goal: float | None = None,
                   step: float = 0.05, max_ratio: float = 0.9,
                   tolerance: float = 0.0, macs: CostModel | None = None) -> HardwareAware:
    """Ratios for every group of ``table`` from a uniform ``ratio``: rounded to fast sizes,
    groups that cannot pay off left whole (see the module notes).

    ``reach=True`` then raises the paying groups' ratios by ``step`` (up to ``max_ratio``),
    the group with the best return first, until the predicted speed-up reaches ``goal``
    (default: ``1 / (1 - ratio) ** 2``, the MACs reduction a uniform ratio gives a chain of
    convolutions). With ``macs`` (a MACs :class:`.ratios.CostModel` of the table's model),
    ``goal`` is a MACs reduction instead: ratios rise, the best measured time return first,
    until the graph predicts that many times fewer MACs. ``base`` supplies ``round_to``,
    ``min_units``, ``ignore``... of the returned config.
    """
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or \
            not 0.0 <= ratio < 1.0:
        raise ConfigError(f"ratio must be a number in [0, 1), got {ratio!r}")
    if not 0.0 <= min_return <= 1.0:
        raise ConfigError(f"min_return must be in [0, 1], got {min_return!r}")
    if not 0.0 < step <= 0.5:
        raise ConfigError(f"step must be in (0, 0.5], got {step!r}")
    if not ratio <= max_ratio < 1.0:
        raise ConfigError(f"max_ratio must be in [ratio, 1), got {max_ratio!r}")
    if goal is not None and not goal >= 1.0:
        raise ConfigError(f"goal must be a speed-up (or MACs reduction) >= 1, got {goal!r}")
    if macs is not None and macs.metric != "macs":
        raise ConfigError(f"macs must be a CostModel of metric 'macs', got {macs.metric!r}")
    base = base if base is not None else PruneConfig()
    ratios: dict[str, float] = {}
    left: dict[str, str] = {}
    for key in table.groups:
        if ratio <= 0:
            continue
        units = table.groups[key].units
        asked = table.kept(key, float(ratio), base)
        r = table.round_ratio(key, float(ratio), base, tolerance)
        kept = table.kept(key, r, base)
        if kept >= units:
            left[key] = (f"no measured count from {asked} to {units} kept is faster than "
                         f"keeping all {units}")
            continue
        got = group_return(table, key, kept)
        if got < min_return:
            left[key] = (f"its layers' measured time falls {got:.2f}x as fast as its units "
                         f"(at {kept} of {units} kept; below min_return {min_return:g})")
            continue
        ratios[key] = r
    if reach and ratio > 0:
        target = goal if goal is not None else 1.0 / (1.0 - ratio) ** 2
        progress = (macs.reduction if macs is not None
                    else lambda rs: table.speedup(rs, base))
        ratios = _raise_until(table, base, ratios, target, step, max_ratio, min_return,
                              tolerance, progress)
        left = {k: why for k, why in left.items() if k not in ratios}
    return HardwareAware(ratios, _config(base, ratios), left,
                         table.predict_ms(ratios, base), table.dense_ms)


def _raise_until(table: LatencyTable, base: PruneConfig, ratios: dict[str, float],
                 goal: float, step: float, max_ratio: float, min_return: float,
                 tolerance: float,
                 progress: Callable[[dict[str, float]], float],
                 overshoot: float = 0.05) -> dict[str, float]:
    """Raise group ratios, the best time saved per unit removed first (a move only where
    the group pays off at its new count), until ``progress(ratios)`` (predicted speed-up or
    MACs reduction) reaches ``goal`` or no group can go further. A move that would pass
    ``goal`` by more than ``overshoot`` (a coarse fast size of a wide group) gives way to
    the best move that does not; failing that, to the one that passes it least."""
    ratios = dict(ratios)
    while progress(ratios) < goal:
        now = table.predict_ms(ratios, base)
        moves: list[tuple[float, str, float]] = []
        for key in table.groups:
            r = ratios.get(key, 0.0)
            nxt = _next_ratio(table, base, key, r, step, max_ratio, tolerance)
            if nxt is None:
                continue
            kept = table.kept(key, nxt, base)
            if group_return(table, key, kept) < min_return:
                continue
            removed = table.kept(key, r, base) - kept
            saved = now - table.predict_ms(dict(ratios, **{key: nxt}), base)
            if removed <= 0 or saved <= 0:
                continue
            moves.append((saved / removed, key, nxt))
        if not moves:
            break
        moves.sort(key=lambda m: -m[0])
        after = {}
        chosen = None
        for move in moves:
            after[move[1]] = progress(dict(ratios, **{move[1]: move[2]}))
            if after[move[1]] <= goal * (1.0 + overshoot):
                chosen = move
                break
        if chosen is None:
            chosen = min(moves, key=lambda m: after[m[1]])
        ratios[chosen[1]] = chosen[2]
    return ratios


def _next_ratio(table: LatencyTable, base: PruneConfig, key: str, ratio: float, step: float,
                max_ratio: float, tolerance: float) -> float | None:
    """The first ratio ``ratio + k * step`` (k >= 1, at most ``max_ratio``) whose kept count,
    rounded up to a fast size, is below the current one; None if there is none."""
    now = table.kept(key, ratio, base)
    k = 1
    while ratio + k * step <= max_ratio + 1e-9:
        nxt = table.round_ratio(key, min(max_ratio, ratio + k * step), base, tolerance)
        if table.kept(key, nxt, base) < now:
            return nxt
        k += 1
    return None
