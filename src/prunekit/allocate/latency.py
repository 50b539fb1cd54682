"""Latency lookup table: measured latency of each prunable group against its kept units.

For every group key (the group name up to ``#``, as in :mod:`.sensitivity` and
:mod:`.ratios`) the model is pruned on a copy with only that group shrunk, at a grid of
kept-unit counts, and each *layer call* whose shapes changed is timed alone on its real
inputs (captured by a hook during one forward pass), on the model's device, by a timer that
warms up and takes the median of repeats (:func:`median_timer`, built on
:func:`prunekit.measure.measure_latency`). Any other timer can be injected. With several
``rounds`` (sweeps over all groups) each entry is the fastest sweep.

Timed layers are leaf modules, plus non-leaf modules that own a ``*weight`` parameter
(e.g. ``nn.MultiheadAttention``), timed whole. Work outside them (functional ops in a
parent's ``forward``, such as a residual add) is not timed.

Prediction (:meth:`LatencyTable.predict_ms`) assumes savings are additive across layers:
``dense latency − scale · Σ_layers (dense layer time − predicted layer time)``. A layer
touched by one group takes that group's measured time (linear interpolation between grid
points, clamped at the smallest measured count); a layer touched by several groups (a conv
whose input and output channels belong to different groups) scales by the *product* of
their time ratios, as its MACs do. ``scale = dense latency / Σ dense layer times`` credits
layer savings to the model in proportion: the whole model is assumed to shrink by the same
fraction as its layers timed alone (so untimed ops shrink with them, and layers timed alone,
without the model's cache state or a busy machine's stalls, still predict the model's
speed-up). The prediction never goes below zero.

*Fast sizes* (:meth:`LatencyTable.fast_sizes`) are the measured kept counts that are
faster than every larger measured count; rounding a kept count up to the next fast size
keeps more units at no more latency. The table is plain JSON: measure once per device and
reuse it with :meth:`LatencyTable.load`.
"""

from __future__ import annotations

import copy
import glob
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.utils._pytree import tree_flatten

from ..plan.config import PruneConfig
from ..errors import ConfigError, PlanError
from ..files import JsonDocument
from ..graph.dependency import DependencyGraph
from ..measure.counts import ExampleInputs, run_model
from ..measure.latency import describe_run, measure_latency
from ..plan.document import architecture_fingerprint
from ..plan.selection import kept_count, build_plan, select_local
from .._internal.runtime import eval_mode
from ..surgery.apply import apply_plan
from .sensitivity import group_keys

__all__ = ["GroupLatency", "LatencyTable", "Timer", "median_timer", "record_calls"]

FORMAT = "prunekit.latency_table"

#: ``timer(module, inputs) -> milliseconds`` for one call; ``inputs`` as ``run_model`` takes.
Timer = Callable[[nn.Module, ExampleInputs], float]


def median_timer(warmup: int = 5, repeats: int = 20) -> Timer:
    """A timer: median of ``repeats`` calls after ``warmup`` (CUDA events on GPU)."""
    if warmup < 0 or repeats < 1:
        raise ConfigError(f"median_timer needs warmup >= 0 and repeats >= 1, got "
                          f"warmup={warmup!r}, repeats={repeats!r}")

    def timer(module: nn.Module, inputs: ExampleInputs) -> float:
        return measure_latency(module, inputs, warmup=warmup, repeats=repeats).median_ms

    return timer


@dataclass
class GroupLatency:
    """One group key: its graph groups' unit counts, the measured kept counts (increasing,
    the last one is every unit) and, per affected layer call, milliseconds at each count."""

    sizes: list[int]
    kept: list[int]
    calls: dict[str, list[float]]

    @property
    def units(self) -> int:
        return sum(self.sizes)

    def curve(self) -> list[float]:
        """Summed time of the affected layer calls at each measured kept count."""
        if not self.calls:
            return [0.0] * len(self.kept)
        return [float(v) for v in np.sum(np.asarray(list(self.calls.values())), axis=0)]


@dataclass
class LatencyTable(JsonDocument):
    """Dense model latency, dense time of every timed layer call, and the per-group curves,
    with the conditions they were measured under."""

    document: ClassVar[str] = "latency table"

    dense_ms: float
    base_ms: dict[str, float]
    groups: dict[str, GroupLatency]
    device: str = "cpu"
    dtype: str = "float32"
    threads: int = 1
    batch_size: int | None = None
    torch_version: str = ""
    architecture: str = ""
    skipped: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    layers_ms: float | None = None  # dense time of every timed layer call, summed

    @property
    def scale(self) -> float:
        """Factor on summed layer savings: ``dense_ms / layers_ms`` (1 when unknown)."""
        if not self.layers_ms or self.layers_ms <= 0:
            return 1.0
        return self.dense_ms / self.layers_ms

    def __post_init__(self) -> None:
        self._index: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        names = sorted({c for g in self.groups.values() for c in g.calls})
        missing = [c for c in names if c not in self.base_ms]
        if missing:
            raise PlanError(f"latency table has no dense time for layer calls {missing[:3]}")
        slot = {c: i for i, c in enumerate(names)}
        self._base = np.asarray([self.base_ms[c] for c in names], dtype=float)
        for key, g in self.groups.items():
            if len(g.kept) < 1 or list(g.kept) != sorted(set(g.kept)) or g.kept[-1] != g.units:
                raise PlanError(f"latency table group {key!r}: kept counts must increase and "
                                f"end at its {g.units} units, got {g.kept!r}")
            if any(len(v) != len(g.kept) for v in g.calls.values()):
                raise PlanError(f"latency table group {key!r}: every call needs one time per "
                                f"kept count ({len(g.kept)})")
            rows = np.asarray([g.calls[c] for c in g.calls], dtype=float).reshape(
                len(g.calls), len(g.kept))
            self._index[key] = (np.asarray(g.kept, dtype=float), rows,
                                np.asarray([slot[c] for c in g.calls], dtype=np.int64))

    # -- measurement ------------------------------------------------------------
    @classmethod
    def measure(cls, model: nn.Module, example_inputs: ExampleInputs, *,
                groups: Iterable[str] = (), ignore: Sequence[str] = (), points: int = 16,
                multiple: int = 8, warmup: int = 5, repeats: int = 20, rounds: int = 1,
                timer: Timer | None = None,
                on_group: Callable[[str, int], None] | None = None) -> LatencyTable:
        """Measure the table for ``model`` (unchanged) on its own device.

        - ``groups``: glob patterns of group keys (empty: every prunable group).
        - ``points``, ``multiple``: the kept counts measured per group are the multiples
          of ``multiple`` up to its unit count, and the unit count itself, thinned evenly to
          at most ``points`` (the full count is always kept).
        - ``timer``: ``timer(module, inputs) -> ms``; default :func:`median_timer` with
          ``warmup`` and ``repeats``. It also times the whole model (``dense_ms``).
        - ``rounds``: sweeps over every group; each time is the fastest of its sweeps (a
          busy spell on a shared machine only adds time, and touches one sweep).
        - ``on_group(key, round)`` is called after each group of each sweep.
        """
        if not isinstance(points, int) or points < 2:
            raise ConfigError(f"points must be an integer >= 2, got {points!r}")
        if not isinstance(multiple, int) or multiple < 1:
            raise ConfigError(f"multiple must be a positive integer, got {multiple!r}")
        if not isinstance(rounds, int) or rounds < 1:
            raise ConfigError(f"rounds must be an integer >= 1, got {rounds!r}")
        timer_name = "median" if timer is None else getattr(timer, "__qualname__", "custom")
        timer = timer if timer is not None else median_timer(warmup, repeats)
        start = time.perf_counter()
        sweep = _Sweep(model, example_inputs, tuple(ignore), timer)
        keys = group_keys(sweep.graph, groups)
        sizes = {k: [g.n_units for g in sweep.graph.groups if g.name.split("#", 1)[0] == k]
                 for k in keys}
        grids = {k: _points(sizes[k], points, multiple) for k in keys}
        samples: dict[str, list[dict[str, list[float]]]] = {
            k: [{} for _ in grids[k]] for k in keys}
        dense: list[float] = []
        skipped: dict[str, str] = {}
        for r in range(rounds):
            dense.append(float(timer(model, example_inputs)))
            sweep.dense_calls()
            for key in keys:
                if key in skipped:
                    continue
                try:
                    sweep.group(key, grids[key], samples[key], reverse=r % 2 == 1)
                except Exception as exc:  # noqa: BLE001 - one broken group must not cost the table
                    first = (str(exc).splitlines() or [""])[0][:200]
                    skipped[key] = f"{type(exc).__name__}: {first}"
                    warnings.warn(f"latency table: group {key!r} left out ({skipped[key]}); "
                                  "ignore it (ignore=[...]) or check that it prunes with "
                                  "prunekit.prune", RuntimeWarning, stacklevel=2)
                    continue
                if on_group is not None:
                    on_group(key, r)
        base_ms = {c: min(v) for c, v in sweep.base.items()}
        layers_ms = sum(base_ms.values())
        measured: dict[str, GroupLatency] = {}
        for key, total in keys.items():
            if key in skipped:
                continue
            names = sorted({c for point in samples[key] for c in point})
            measured[key] = GroupLatency(sizes[key], [k for k, _ in grids[key]] + [total], {
                c: [min(p[c]) if c in p else base_ms[c]
                    for p in samples[key]] + [base_ms[c]] for c in names})
        device, dtype, batch = describe_run(model, example_inputs)
        return cls(min(dense), base_ms, measured, str(device), dtype,
                   torch.get_num_threads(), batch, torch.__version__,
                   architecture_fingerprint(model), skipped,
                   {"points": points, "multiple": multiple, "warmup": warmup,
                    "repeats": repeats, "rounds": rounds, "timer": timer_name},
                   time.perf_counter() - start, layers_ms)

    # -- prediction -------------------------------------------------------------
    def _entry(self, key: str) -> GroupLatency:
        if key not in self.groups:
            known = sorted(self.groups)
            raise ConfigError(f"unknown group key {key!r} in the latency table; it has "
                              f"{len(known)} groups, e.g. {known[:4]!r}"
                              + (f" (left out when measured: {self.skipped[key]})"
                                 if key in self.skipped else ""))
        return self.groups[key]

    def kept(self, key: str, ratio: float, config: PruneConfig | None = None) -> int:
        """Units kept in group ``key`` at ``ratio``, as the planner counts them."""
        entry = self._entry(key)
        _check_ratio(ratio, key)
        config = config if config is not None else PruneConfig()
        return sum(kept_count(n, float(ratio), config) for n in entry.sizes)

    def predict_ms(self, ratios: Mapping[str, float], config: PruneConfig | None = None) -> float:
        """Predicted model latency (ms) with each group key pruned at its ratio (see the
        module notes for the additive assumption); ``config`` supplies ``round_to`` and
        ``min_units``."""
        pred = self._base.copy()
        for key, ratio in ratios.items():
            k = float(self.kept(key, ratio, config))  # checks the key and the ratio
            kept_at, rows, slots = self._index[key]
            if k >= kept_at[-1] or rows.shape[0] == 0:
                continue
            now = np.asarray([np.interp(k, kept_at, row) for row in rows])
            base = self._base[slots]
            scaled = np.where(base > 0, pred[slots] * now / np.where(base > 0, base, 1.0),
                              pred[slots] + now - base)
            pred[slots] = scaled
        return float(self.dense_ms - self.scale * np.sum(self._base - pred))

    def speedup(self, ratios: Mapping[str, float], config: PruneConfig | None = None) -> float:
        """Predicted dense / pruned latency."""
        return self.dense_ms / max(self.predict_ms(ratios, config), 1e-12)

    def fast_sizes(self, key: str, tolerance: float = 0.0) -> list[int]:
        """Measured kept counts faster than every larger measured count (by more than the
        relative ``tolerance``, which must stay below the step between grid points)."""
        entry = self._entry(key)
        if not 0.0 <= tolerance < 1.0:
            raise ConfigError(f"tolerance must be in [0, 1), got {tolerance!r}")
        curve = np.asarray(entry.curve())
        later = np.r_[np.minimum.accumulate(curve[::-1])[::-1][1:], np.inf]
        return [int(k) for k, c, m in zip(entry.kept, curve, later, strict=True) if c < m * (1 - tolerance)]

    def round_kept(self, key: str, kept: int, tolerance: float = 0.0) -> int:
        """The smallest fast size >= ``kept``."""
        entry = self._entry(key)
        if not isinstance(kept, (int, np.integer)) or not 1 <= kept <= entry.units:
            raise ConfigError(f"kept for group {key!r} must be an integer in [1, "
                              f"{entry.units}], got {kept!r}")
        return next(k for k in self.fast_sizes(key, tolerance) if k >= kept)

    def round_ratio(self, key: str, ratio: float, config: PruneConfig | None = None,
                    tolerance: float = 0.0) -> float:
        """``ratio`` lowered so that the kept count is rounded up to a fast size."""
        kept = self.kept(key, ratio, config)
        fast = self.round_kept(key, kept, tolerance)
        if fast == kept:
            return float(ratio)
        units = self.groups[key].units
        return (units - fast) / units

    def check_model(self, model: nn.Module) -> None:
        """Refuse a model other than the one the table was measured on."""
        if self.architecture and self.architecture != architecture_fingerprint(model):
            raise ConfigError("this latency table was measured on a different architecture "
                              "(parameter names or shapes differ); measure it on this model "
                              "with LatencyTable.measure(model, example_inputs)")

    def describe(self) -> str:
        return (f"{self.device}, {self.dtype}, batch {self.batch_size}, {self.threads} "
                f"threads, torch {self.torch_version}")

    # -- JSON -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "dense_ms": self.dense_ms, "base_ms": self.base_ms,
                "groups": {k: {"sizes": g.sizes, "kept": g.kept, "calls": g.calls}
                           for k, g in self.groups.items()},
                "device": self.device, "dtype": self.dtype, "threads": self.threads,
                "batch_size": self.batch_size, "torch_version": self.torch_version,
                "architecture": self.architecture, "skipped": self.skipped,
                "settings": self.settings, "seconds": self.seconds,
                "layers_ms": self.layers_ms}

    @classmethod
    def from_dict(cls, data: Any) -> LatencyTable:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise PlanError(f"not a prunekit latency table (missing format {FORMAT!r})")
        try:
            groups = {str(k): GroupLatency([int(n) for n in g["sizes"]],
                                           [int(n) for n in g["kept"]],
                                           {str(c): [float(v) for v in vs]
                                            for c, vs in g["calls"].items()})
                      for k, g in data["groups"].items()}
            batch, layers = data.get("batch_size"), data.get("layers_ms")
            return cls(float(data["dense_ms"]),
                       {str(k): float(v) for k, v in data["base_ms"].items()}, groups,
                       str(data.get("device", "cpu")), str(data.get("dtype", "float32")),
                       int(data.get("threads", 1)), None if batch is None else int(batch),
                       str(data.get("torch_version", "")), str(data.get("architecture", "")),
                       {str(k): str(v) for k, v in data.get("skipped", {}).items()},
                       dict(data.get("settings", {})), float(data.get("seconds", 0.0)),
                       None if layers is None else float(layers))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise PlanError(f"malformed prunekit latency table: {type(exc).__name__}: {exc}") \
                from exc



# -- helpers --------------------------------------------------------------------------
def _check_ratio(ratio: Any, key: str) -> None:
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or \
            not 0.0 <= float(ratio) < 1.0:
        raise ConfigError(f"ratio for group {key!r} must be a number in [0, 1), got {ratio!r}")


def _grid(units: int, points: int, multiple: int) -> list[int]:
    """Kept counts to measure: multiples of ``multiple`` and ``units``, at most ``points``."""
    counts = sorted({*range(multiple, units + 1, multiple), units})
    if len(counts) > points:
        picks = np.unique(np.round(np.linspace(0, len(counts) - 1, points)).astype(int))
        counts = [counts[i] for i in picks]
    return counts


def _points(sizes: list[int], points: int, multiple: int) -> list[tuple[int, float]]:
    """(kept total, ratio) for each grid count below the full count of a group key."""
    total = sum(sizes)
    out: list[tuple[int, float]] = []
    config = PruneConfig(ratio=0.0)
    for target in _grid(total, points, multiple)[:-1]:
        ratio = (total - target) / total
        kept = sum(kept_count(n, ratio, config) for n in sizes)
        if kept < total and (not out or kept > out[-1][0]):  # keys of several groups
            out.append((kept, ratio))
    return out


class _Sweep:
    """The dense model's calls, and one group's pruned copies timed call by call."""

    def __init__(self, model: nn.Module, example_inputs: ExampleInputs,
                 ignore: tuple[str, ...], timer: Timer) -> None:
        self.model, self.inputs, self.ignore, self.timer = model, example_inputs, ignore, timer
        self.graph = DependencyGraph.build(model, example_inputs, ignore=ignore)
        self.scores = {g.name: torch.zeros(g.n_units) for g in self.graph.groups}
        self.calls, self.out = record_calls(model, example_inputs)
        self.base: dict[str, list[float]] = {}  # dense samples per call

    def dense_calls(self) -> None:
        """Time every call of the dense model once."""
        for c, call in self.calls.items():
            self.base.setdefault(c, []).append(float(self.timer(call.module, call.inputs)))

    def group(self, key: str, grid: list[tuple[int, float]],
              samples: list[dict[str, list[float]]], reverse: bool = False) -> None:
        """Time the changed calls at each grid point (appended to ``samples``), then the
        same calls of the dense model."""
        touched: set[str] = set()
        order = list(range(len(grid)))
        for j in reversed(order) if reverse else order:
            config = PruneConfig(ratio=0.0, ignore=self.ignore, verify=False,
                                 overrides={glob.escape(key): grid[j][1]})
            selection = select_local(self.graph.groups, self.scores, config, 0.0)
            plan = build_plan(self.model, self.graph, selection, config.settings())
            pruned = apply_plan(copy.deepcopy(self.model), plan, check=False)
            calls, out = record_calls(pruned, self.inputs)
            if out != self.out or calls.keys() != self.calls.keys():
                raise PlanError("pruning it changes the model's output shapes or its calls")
            for c, call in calls.items():
                if call.signature != self.calls[c].signature:
                    touched.add(c)
                    samples[j].setdefault(c, []).append(float(self.timer(call.module,
                                                                         call.inputs)))
        for c in sorted(touched):
            call = self.calls[c]
            self.base.setdefault(c, []).append(float(self.timer(call.module, call.inputs)))


@dataclass
class _Call:
    module: nn.Module
    inputs: ExampleInputs
    signature: tuple[Any, ...]


class _Bound(nn.Module):
    """A call with keyword arguments, as a module the timer can call positionally."""

    def __init__(self, module: nn.Module, kwargs: dict[str, Any]) -> None:
        super().__init__()
        self.inner, self.kwargs = module, kwargs

    def forward(self, *args: Any) -> Any:
        return self.inner(*args, **self.kwargs)


def _timed_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Leaf modules, and non-root modules owning a ``*weight`` parameter (timed whole)."""
    chosen: dict[str, nn.Module] = {}
    inside: str | None = None
    for name, module in model.named_modules():
        if inside is not None and name.startswith(inside):
            continue
        leaf = next(module.children(), None) is None
        owns = bool(name) and any(n.endswith("weight")
                                  for n, _ in module.named_parameters(recurse=False))
        if leaf or owns:
            chosen[name] = module
            inside = f"{name}." if not leaf else inside
    return chosen


def _shapes(tree: Any) -> tuple[Any, ...]:
    leaves, _ = tree_flatten(tree)
    return tuple(tuple(v.shape) if isinstance(v, torch.Tensor) else
                 (v if isinstance(v, (int, float, bool, str, type(None))) else type(v).__name__)
                 for v in leaves)


def record_calls(model: nn.Module, example_inputs: ExampleInputs,
                 modules: Sequence[str] | None = None
                 ) -> tuple[dict[str, _Call], tuple[Any, ...]]:
    """Run once and keep every timed call (leaf modules, and modules owning a ``*weight``
    parameter, or the ``modules`` named; the n-th repeat of a call is named ``NAME#n``):
    module, inputs, and a shape signature; also the shapes of the model's outputs."""
    calls: dict[str, _Call] = {}
    seen: dict[str, int] = {}

    def hook_for(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any],
                 output: Any) -> None:
            i = seen.get(name, 0)
            seen[name] = i + 1
            inputs: ExampleInputs = tuple(args)
            if kwargs and not args:
                inputs = dict(kwargs)
            elif kwargs:
                module = _Bound(module, dict(kwargs))
            params = tuple(tuple(t.shape) for t in (*module.parameters(), *module.buffers()))
            calls[name if i == 0 else f"{name}#{i}"] = _Call(
                module, inputs, (params, _shapes((args, kwargs)), _shapes(output)))
        return hook

    timed = _timed_modules(model) if modules is None else \
        {n: model.get_submodule(n) for n in modules}
    handles = [m.register_forward_hook(hook_for(n), with_kwargs=True) for n, m in timed.items()]
    try:
        with eval_mode(model), torch.no_grad():
            out = run_model(model, example_inputs)
    finally:
        for h in handles:
            h.remove()
    return calls, _shapes(out)
