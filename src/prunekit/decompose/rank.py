"""Rank selection: per layer (rank ratio, energy, error budget) or for the whole model
(parameters, MACs or measured latency).

Each layer that can be factorized is a :class:`Candidate`: its dense cost and its
:class:`Option` s, one per (kind, rank) with parameters, MACs, relative error, energy kept and,
when timed, milliseconds. Per-layer criteria pick, for each kind, the smallest rank that
meets them, then the kind with the fewest parameters. A global target is met by a greedy
walk over the lower convex hull of each layer's (cost, loss) points: the step with the least
loss per unit of cost saved goes first, until the model's cost reaches the target; then, while
the target still holds, layers move back to costlier options that lose less (the last step
may have overshot). The loss
of an option is its squared relative error (the fraction of the layer's output energy lost),
or a measured metric drop (:mod:`.sensitivity`) when one is given. An option is never taken
unless it costs less than the dense layer; with latency as the cost, only timed options that
measured faster than the dense layer are considered.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .kinds import Factorization, Fitted, factorization

__all__ = ["Candidate", "Option", "Choice", "choose_per_layer", "choose_for_target"]

Rank = tuple[int, ...]
#: loss of an option of a layer (for the global walk)
LossFn = Callable[["Candidate", "Option"], float]


@dataclass(frozen=True)
class Option:
    """One factorization of a layer at one rank, with its figures."""

    kind: str
    rank: Rank
    params: int
    macs: int
    error: float
    energy: float
    ms: float | None = None


@dataclass
class Candidate:
    """A layer that can be factorized: its description, dense cost and options."""

    name: str
    spec: dict[str, Any]
    dense_params: int
    dense_macs: int
    fitted: dict[str, Fitted]
    options: list[Option]
    dense_ms: float | None = None
    error_on: str = "weights"
    costs: dict[str, Callable[[Rank], tuple[int, int]]] = field(default_factory=dict)

    def option(self, kind: str, rank: Rank) -> Option:
        """The option of ``kind`` at ``rank`` (computed when it is not in the grid)."""
        for opt in self.options:
            if opt.kind == kind and opt.rank == rank:
                return opt
        params, macs = self.costs[kind](rank)
        error, energy = self.fitted[kind].figures(rank)
        return Option(kind, rank, params, macs, error, energy)

    def kinds(self) -> list[Factorization]:
        return [factorization(k) for k in self.fitted]


@dataclass(frozen=True)
class Choice:
    """What a layer gets: an option, or ``None`` (stays dense) with the reason."""

    option: Option | None
    reason: str | None = None


def _cheapest(options: Sequence[Option]) -> Option | None:
    return min(options, key=lambda o: (o.params, o.macs, o.error)) if options else None


def _dense_reason(cand: Candidate, opt: Option, what: str) -> str:
    return (f"{what} needs {opt.kind} rank {list(opt.rank)} ({opt.params:,} parameters), no "
            f"fewer than the dense layer's {cand.dense_params:,}")


def choose_per_layer(cand: Candidate, criterion: str, value: float,
                     round_to: int = 1) -> Choice:
    """The option of ``cand`` for ``rank_ratio``, ``energy`` or ``error`` = ``value``."""
    picks: list[Option] = []
    for kind in cand.fitted:
        if criterion == "rank_ratio":
            rank = factorization(kind).at_ratio(cand.spec, value, round_to)
            picks.append(cand.option(kind, rank))
            continue
        grid = [o for o in cand.options if o.kind == kind]
        for opt in grid:  # increasing rank
            if (opt.energy >= value - 1e-12) if criterion == "energy" else opt.error <= value:
                picks.append(opt)
                break
    what = {"rank_ratio": f"rank ratio {value:g}", "energy": f"energy {value:g}",
            "error": f"error budget {value:g}"}[criterion]
    best = _cheapest(picks)
    if best is None:
        return Choice(None, f"no rank meets the {what}")
    if best.params >= cand.dense_params:
        return Choice(None, _dense_reason(cand, best, what))
    return Choice(best)


def _hull(points: list[tuple[float, float, int]]) -> list[tuple[float, float, int]]:
    """Lower convex hull of (cost, loss, index) walking from the most costly point (dense)
    towards cheaper ones: each next point has the least loss added per cost saved."""
    points = sorted(points, key=lambda p: (-p[0], p[1]))
    hull = [points[0]]
    rest = points[1:]
    while rest:
        cost, loss, _ = hull[-1]
        cheaper = [p for p in rest if p[0] < cost]
        if not cheaper:
            break
        best = min(cheaper, key=lambda p: ((max(p[1] - loss, 0.0)) / (cost - p[0]), p[0]))
        hull.append(best)
        rest = [p for p in cheaper if p[0] < best[0]]
    return hull


def choose_for_target(cands: Sequence[Candidate], cost_of: Callable[[Option], float],
                      dense_cost_of: Callable[[Candidate], float], saved_needed: float,
                      loss: LossFn, scale: float = 1.0) -> tuple[dict[str, Option], float]:
    """Options to save at least ``saved_needed`` of the model's cost (``scale`` times the
    layers' savings), losing the least; returns the choice and the saving reached."""
    hulls: dict[str, list[tuple[float, float, int]]] = {}
    for cand in cands:
        dense = float(dense_cost_of(cand))
        pts = [(dense, 0.0, -1)]
        for i, opt in enumerate(cand.options):
            cost = cost_of(opt)
            if cost < dense and opt.params < cand.dense_params:
                pts.append((float(cost), float(loss(cand, opt)), i))
        hulls[cand.name] = _hull(pts)
    step = {name: 0 for name in hulls}
    heap: list[tuple[float, float, str]] = []

    def push(name: str) -> None:
        hull, at = hulls[name], step[name]
        if at + 1 < len(hull):
            (c0, l0, _), (c1, l1, _) = hull[at], hull[at + 1]
            heapq.heappush(heap, (max(l1 - l0, 0.0) / (c0 - c1), c1 - c0, name))

    for name in hulls:
        push(name)
    saved = 0.0
    while saved < saved_needed * (1 - 1e-12) and heap:
        _, _, name = heapq.heappop(heap)
        hull = hulls[name]
        saved += scale * (hull[step[name]][0] - hull[step[name] + 1][0])
        step[name] += 1
        push(name)
    by_name = {c.name: c for c in cands}
    current = {name: hulls[name][at] for name, at in step.items()}
    saved = _give_back(cands, current, saved, saved_needed, cost_of, dense_cost_of, loss,
                       scale)
    chosen = {name: by_name[name].options[point[2]] for name, point in current.items()
              if point[2] >= 0}
    return chosen, saved


def _give_back(cands: Sequence[Candidate], current: dict[str, tuple[float, float, int]],
               saved: float, saved_needed: float, cost_of: Callable[[Option], float],
               dense_cost_of: Callable[[Candidate], float], loss: LossFn,
               scale: float) -> float:
    """The walk's last step may overshoot the target: while it is still met, move a layer
    to any costlier option (between hull points too, or back to dense) that loses less,
    the largest loss reduction first. ``current`` is updated in place."""
    if saved < saved_needed * (1 - 1e-12):
        return saved
    points = {c.name: [(float(dense_cost_of(c)), 0.0, -1)] + [
        (float(cost_of(o)), float(loss(c, o)), i) for i, o in enumerate(c.options)
        if cost_of(o) < dense_cost_of(c) and o.params < c.dense_params] for c in cands}
    while True:
        best: tuple[float, str, tuple[float, float, int]] | None = None
        for name, (cost, lost, _) in current.items():
            for point in points[name]:
                spare = saved - scale * (point[0] - cost)
                if point[0] > cost and point[1] < lost and \
                        spare >= saved_needed * (1 - 1e-12):
                    gain = lost - point[1]
                    if best is None or gain > best[0]:
                        best = (gain, name, point)
        if best is None:
            return saved
        _, name, point = best
        saved -= scale * (point[0] - current[name][0])
        current[name] = point
