"""Depth or width: one MACs target, several ways to spend it, the fastest measured one kept.

Channel pruning removes work but no calls. Where a pass is bound by per-call cost (mobile
networks at batch 1 on a CPU: depthwise and 1×1 convolutions on small maps, batch norms,
activations, squeeze-and-excitation), thinning every layer buys little time, while removing
a whole residual block removes all of its calls. Which returns more time per MAC depends on
the device, the batch size and the model, so :func:`choose_depth_width` measures it:

1. the removable blocks (:func:`prunekit.depth.find_blocks`) are ranked two ways: least
   important first (``cosine`` importance on the example inputs), and most measured time
   per MAC first (each block timed alone at the serving batch: blocks on large feature
   maps are memory-bound and cost more time per MAC than deep ones). An order you give
   replaces both;
2. for each ranking, candidates remove its first 0, k₁, k₂, ... blocks (never more than the
   MACs target allows, one block always stays) and then thin channels until the whole MACs
   target is met (hardware-aware by default, on top of ``base``);
3. every candidate is timed against the dense model in interleaved rounds at the batch size
   you serve (:func:`prunekit.measure.compare.compare_latency`), optionally evaluated, and
   the fastest acceptable one is kept. A candidate is acceptable when its metric is within
   ``budget`` of the dense model's (when ``metric`` is given).

Each candidate reaches about the same MACs, so the fastest has the best *latency return*
(speed-up ÷ MACs reduction). Removing a block usually costs more accuracy per MAC than
thinning channels: give ``metric`` and ``budget`` (after recovery, if you fine-tune) so
that the choice is the fastest model you can ship, not merely the fastest.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from torch import nn

from .._internal.runtime import eval_mode, torch_threads
from ..api import prune
from ..depth.blocks import find_blocks
from ..depth.importance import score_blocks
from ..depth.remove import recorded_blocks, remove_blocks
from ..errors import ConfigError
from ..measure import count_macs
from ..measure.compare import compare_latency
from ..plan.compose import compose_plans
from ..plan.config import PruneConfig
from ..plan.document import Plan, architecture_fingerprint
from .hardware import hardware_aware
from .latency import LatencyTable, Timer, median_timer, record_calls
from .ratios import CostModel

__all__ = ["DepthWidthCandidate", "DepthWidthChoice", "choose_depth_width"]


@dataclass(frozen=True)
class DepthWidthCandidate:
    """One way to meet the target: the blocks removed, then the width pruning's share."""

    blocks: list[str]
    ranking: str
    depth_reduction: float
    macs_reduction: float
    ms: float
    speedup: float
    metric: float | None = None
    acceptable: bool = True
    note: str = ""

    @property
    def latency_return(self) -> float:
        """Speed-up ÷ MACs reduction (1.0: every MAC removed is time saved)."""
        return self.speedup / self.macs_reduction if self.macs_reduction > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "latency_return": self.latency_return}


@dataclass
class DepthWidthChoice:
    """All candidates as measured, the chosen one and its pruned copy of the model."""

    target: float
    candidates: list[DepthWidthCandidate]
    chosen: DepthWidthCandidate | None
    model: nn.Module | None
    dense_ms: float
    batch_size: int | None
    threads: int
    rounds: int
    orders: dict[str, list[str]] = field(default_factory=dict)
    #: the chosen model's plan (blocks removed, then channels): replays on a fresh model,
    #: saves with :func:`prunekit.save_pruned` (``None`` when no candidate is acceptable)
    plan: Plan | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "dense_ms": self.dense_ms,
                "batch_size": self.batch_size, "threads": self.threads, "rounds": self.rounds,
                "orders": {k: list(v) for k, v in self.orders.items()},
                "chosen": self.chosen.to_dict() if self.chosen is not None else None,
                "candidates": [c.to_dict() for c in self.candidates]}


def _depth_counts(macs: Sequence[int], dense_macs: int, target: float, steps: int,
                  limit: int) -> list[int]:
    """Block counts to try: 0 and up to ``steps`` counts spread to the most the MACs target
    allows (blocks removed in order; cumulative MACs must not overshoot the target)."""
    allowed = dense_macs * (1.0 - 1.0 / target)
    most, removed = 0, 0
    for m in macs[:limit]:
        if removed + m > allowed:
            break
        removed += m
        most += 1
    if most == 0:
        return [0]
    return sorted({round(most * i / steps) for i in range(steps + 1)})


def choose_depth_width(model: nn.Module, example_inputs: Any, macs_reduction: float, *,
                       timing_inputs: Any = None, steps: int = 4,
                       max_blocks: int | None = None, order: Sequence[str] | None = None,
                       rank_by: Literal["importance", "time", "both"] = "both",
                       base: PruneConfig | None = None, rounds: int = 15, warmup: int = 3,
                       threads: int | None = None,
                       metric: Callable[[nn.Module], float] | None = None,
                       budget: float | None = None,
                       higher_is_better: bool = True,
                       width: Literal["hardware", "uniform"] = "hardware",
                       table_points: int = 8,
                       table_timer: Timer | None = None) -> DepthWidthChoice:
    """Meet ``macs_reduction`` (times fewer MACs) the fastest measured way, depth and width.

    - ``timing_inputs``: inputs at the batch size you serve (default ``example_inputs``).
    - ``steps``: how many block counts to try besides 0 (see the module notes).
    - ``max_blocks``: remove at most this many blocks; ``order``: block names, the first to
      go first (replaces the rankings).
    - ``rank_by``: the rankings candidates are drawn from: ``"importance"`` (least
      ``cosine`` importance on ``example_inputs`` first), ``"time"`` (most time per MAC
      first, each block timed alone on its input at the timing batch by ``table_timer``) or
      ``"both"`` (default; the union of their candidates).
    - ``width``: how channels take the rest of the target. ``"hardware"`` (default): a
      :class:`.latency.LatencyTable` of the candidate, measured at the timing batch
      (``table_points`` kept counts per group), and :func:`.hardware.hardware_aware` with
      ``reach`` to the remaining MACs (fast sizes, the best measured time return first,
      groups that do not pay left whole; ``table_timer`` times its layers, default
      :func:`.latency.median_timer`); where that cannot reach the target, the rest is
      thinned uniformly (the candidate's note says so). ``"uniform"``:
      ``flops_reduction`` of ``base``.
    - ``base``: the width pruning's config (``round_to``, ``ignore``, criterion, ...); its
      ratio and targets are replaced by the remaining MACs target.
    - ``metric(model) -> float`` with ``budget``: a candidate whose metric falls more than
      ``budget`` below the dense model's (above, with ``higher_is_better=False``) is not
      chosen. Without ``metric`` every candidate is acceptable.

    ``model`` is not changed; the chosen pruned copy is :attr:`DepthWidthChoice.model`
    and its plan :attr:`DepthWidthChoice.plan` (``None`` when no candidate is acceptable):
    ``prunekit.save_pruned(choice.model, choice.plan, folder)`` saves it, and
    ``prunekit.load_pruned(fresh_model, folder)`` rebuilds it.
    """
    if isinstance(macs_reduction, bool) or not isinstance(macs_reduction, (int, float)) or \
            not macs_reduction > 1.0:
        raise ConfigError(f"macs_reduction must be a number > 1 (times fewer MACs), got "
                          f"{macs_reduction!r}")
    if not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"steps must be an integer >= 1, got {steps!r}")
    if max_blocks is not None and (not isinstance(max_blocks, int) or max_blocks < 0):
        raise ConfigError(f"max_blocks must be a non-negative integer, got {max_blocks!r}")
    if rank_by not in ("importance", "time", "both"):
        raise ConfigError(f"rank_by must be 'importance', 'time' or 'both', got {rank_by!r}")
    if width not in ("hardware", "uniform"):
        raise ConfigError(f"width must be 'hardware' or 'uniform', got {width!r}")
    if (metric is None) != (budget is None):
        raise ConfigError("give metric and budget together (budget: the largest metric drop "
                          "a candidate may have, in metric units)")
    if budget is not None and not budget >= 0:
        raise ConfigError(f"budget must be >= 0 (metric units), got {budget!r}")
    base = base if base is not None else PruneConfig()
    timing_inputs = example_inputs if timing_inputs is None else timing_inputs
    target = float(macs_reduction)
    timer = table_timer if table_timer is not None else median_timer(2, 7)
    with eval_mode(model):
        found = find_blocks(model, example_inputs)
        names = [b.name for b in found]
        dense_macs = count_macs(model, example_inputs)
        macs = dict(zip(names, _block_macs(model, names, example_inputs, dense_macs)))
        orders = _orders(model, found, example_inputs, timing_inputs, order, rank_by, macs,
                         timer, threads)
        limit = max(0, len(found) - 1) if max_blocks is None else \
            min(max_blocks, max(0, len(found) - 1))
        models: dict[str, nn.Module] = {"dense": model}
        built: dict[tuple[str, ...], tuple[str, str, float, float]] = {}
        notes: dict[str, str] = {}
        plans: dict[str, Plan] = {}
        fingerprint = architecture_fingerprint(model)
        for ranking, ranked in orders.items():
            counts = _depth_counts([macs[n] for n in ranked], dense_macs, target, steps, limit)
            for k in counts:
                blocks = tuple(ranked[:k])
                if blocks in built or (not blocks and built):
                    continue
                key = f"{ranking}{k}"
                candidate = copy.deepcopy(model)
                removed = remove_blocks(candidate, list(blocks), example_inputs) \
                    if blocks else []
                depth_red = dense_macs / max(count_macs(candidate, example_inputs), 1)
                remaining = target / depth_red
                steps_done: list[Plan] = []
                if remaining > 1.0 + 1e-3:
                    notes[key], steps_done = _thin(candidate, example_inputs, timing_inputs,
                                                   remaining, base, width, table_points,
                                                   timer, threads)
                plan = compose_plans(*steps_done) if steps_done else Plan()
                plan.architecture, plan.blocks = fingerprint, recorded_blocks(removed)
                plans[key] = plan
                models[key] = candidate.eval()
                built[blocks] = (key, ranking, depth_red,
                                 dense_macs / max(count_macs(candidate, example_inputs), 1))
        timed = compare_latency(models, timing_inputs, warmup=warmup, rounds=rounds,
                                threads=threads)
        baseline = metric(model) if metric is not None else None
    candidates: list[DepthWidthCandidate] = []
    for blocks, (key, ranking, depth_red, red) in built.items():
        value = metric(models[key]) if metric is not None else None
        ok, note = True, notes.get(key, "")
        if value is not None and baseline is not None and budget is not None:
            drop = (baseline - value) if higher_is_better else (value - baseline)
            ok = drop <= budget
            verdict = f"metric drop {drop:.4g} {'within' if ok else 'over'} budget {budget:g}"
            note = "; ".join(filter(None, [note, verdict]))
        candidates.append(DepthWidthCandidate(
            list(blocks), ranking, depth_red, red, timed.results[key].median_ms,
            timed.speedup("dense", key), value, ok, note))
    acceptable = [c for c in candidates if c.acceptable]
    chosen = max(acceptable, key=lambda c: c.speedup) if acceptable else None
    chosen_key = built[tuple(chosen.blocks)][0] if chosen is not None else None
    dense = timed.results["dense"]
    return DepthWidthChoice(target, candidates, chosen,
                            models[chosen_key] if chosen_key else None, dense.median_ms,
                            dense.batch_size, dense.threads, rounds, orders,
                            plans[chosen_key] if chosen_key else None)


def _uniform(model: nn.Module, example_inputs: Any, base: PruneConfig, reduction: float) -> Plan:
    return prune(model, example_inputs, config=dataclasses.replace(
        base, ratio=0.0, flops_reduction=reduction, params_reduction=None)).plan


def _thin(model: nn.Module, example_inputs: Any, timing_inputs: Any, remaining: float,
          base: PruneConfig, width: str, points: int, timer: Timer,
          threads: int | None) -> tuple[str, list[Plan]]:
    """Prune channels of ``model`` in place until it has ``remaining`` times fewer MACs;
    returns a note when the hardware-aware ratios fell short and uniform ones finished, and
    the plans applied, in order."""
    if width == "uniform":
        return "", [_uniform(model, example_inputs, base, remaining)]
    with torch_threads(threads):
        table = LatencyTable.measure(model, timing_inputs, points=points, ignore=base.ignore,
                                     timer=timer)
    costs = CostModel(model, example_inputs, base, "macs")
    start = min(0.9, 1.0 - remaining ** -0.5)  # the uniform ratio a conv chain needs
    # fast sizes are coarse: of a few starting ratios, keep the one that overshoots least
    tries = [hardware_aware(table, r, base, reach=True, goal=remaining, macs=costs, step=0.02)
             for r in (start, start / 2, start / 4)]
    reduction = {id(c): costs.reduction(c.ratios) for c in tries}
    enough = [c for c in tries if reduction[id(c)] >= remaining * 0.99]
    choice = min(enough, key=lambda c: reduction[id(c)]) if enough else \
        max(tries, key=lambda c: reduction[id(c)])
    reached = reduction[id(choice)]
    before = count_macs(model, example_inputs)
    done = [prune(model, example_inputs, config=choice.config).plan] if choice.ratios else []
    if reached >= remaining * 0.99:
        return "", done
    rest = remaining * count_macs(model, example_inputs) / before
    done.append(_uniform(model, example_inputs, base, rest))
    return (f"the measured returns reached {reached:.2f}x of the {remaining:.2f}x width "
            f"target; uniform ratios did the remaining {rest:.2f}x"), done


def _orders(model: nn.Module, found: Sequence[Any], example_inputs: Any, timing_inputs: Any,
            order: Sequence[str] | None, rank_by: str, macs: dict[str, int], timer: Timer,
            threads: int | None) -> dict[str, list[str]]:
    """Block names per ranking, first to remove first: ``order`` checked (``"given"``), else
    least cosine importance (``"importance"``) and/or most time per MAC (``"time"``)."""
    names = [b.name for b in found]
    if order is not None:
        unknown = [n for n in order if n not in names]
        if unknown:
            raise ConfigError(f"order names blocks that are not removable: {unknown[:3]}; "
                              f"the removable blocks are {names[:6]}"
                              f"{' ...' if len(names) > 6 else ''}")
        return {"given": list(dict.fromkeys(order))}
    if not found:
        return {"importance": []}
    orders: dict[str, list[str]] = {}
    if rank_by in ("importance", "both"):
        scores = score_blocks(model, found, [example_inputs])
        orders["importance"] = sorted(names, key=lambda n: scores[n])
    if rank_by in ("time", "both"):
        with torch_threads(threads):
            ms = _block_ms(model, names, timing_inputs, timer)
        orders["time"] = sorted(names, key=lambda n: -ms[n] / max(macs[n], 1))
    return orders


def _block_ms(model: nn.Module, names: Sequence[str], timing_inputs: Any,
              timer: Timer) -> dict[str, float]:
    """Each block's time alone, on the input it gets from ``timing_inputs``."""
    calls, _ = record_calls(model, timing_inputs, modules=names)
    return {name: timer(calls[name].module, calls[name].inputs) for name in names}


def _block_macs(model: nn.Module, ranked: Sequence[str], example_inputs: Any,
                dense_macs: int) -> list[int]:
    """MACs each block of ``ranked`` costs (dense MACs minus those of a copy without it)."""
    out = []
    for name in ranked:
        without = copy.deepcopy(model)
        remove_blocks(without, [name], example_inputs)
        out.append(dense_macs - count_macs(without, example_inputs))
        del without
    return out

