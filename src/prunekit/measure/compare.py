"""Latency of two or more models compared fairly: interleaved A/B repetitions.

Timing the dense model for a while and then the pruned one lets machine load that comes
and goes land on one side only (a dense 200 ms against a pruned 0.13 ms once read as a
1,571x speed-up). Here every round runs each model once, in an order that alternates
round by round (A B, B A, ...), so load affects both alike; each model's figure is the
median of its own passes, and the speed-up is also given as the median of the per-round
ratios, which cancels load that drifts slowly.

:func:`launch_floor` says how much of a forward pass is fixed cost that pruning channels
cannot remove: the number of ATen ops and module calls in one pass, times the measured cost
of dispatching a trivial op and calling an empty module. Small models at batch 1 are
launch-bound: their latency does not follow their MACs.

Speed claims belong to benchmarks, not to unit tests; the clock is injectable so the logic
can be tested with a fake one.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from prunekit.errors import ConfigError
from prunekit.measure.counts import ExampleInputs, eval_mode, run_model
from prunekit.measure.latency import LatencyResult, _quantile, describe_run

__all__ = ["Comparison", "FixedCost", "LaunchFloor", "compare_latency", "count_calls",
           "fixed_cost", "launch_floor",
           "time_interleaved"]

Clock = Callable[[], float]


def time_interleaved(steps: Mapping[str, Callable[[], Any]], rounds: int, *, warmup: int = 0,
                     clock: Clock = time.perf_counter) -> dict[str, list[float]]:
    """Milliseconds of each step in ``rounds`` interleaved rounds (after ``warmup`` rounds).

    Round ``i`` runs the steps in their given order when ``i`` is even and in reverse when
    it is odd, so no step always runs first (cache state and load are shared alike).
    Returns, per step name, its times in round order.
    """
    if rounds < 1:
        raise ConfigError(f"rounds must be >= 1, got {rounds}")
    if warmup < 0:
        raise ConfigError(f"warmup must be >= 0, got {warmup}")
    if not steps:
        raise ConfigError("time_interleaved needs at least one step to time")
    names = list(steps)
    for i in range(warmup):
        for name in names if i % 2 == 0 else reversed(names):
            steps[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(rounds):
        for name in names if i % 2 == 0 else reversed(names):
            t0 = clock()
            steps[name]()
            times[name].append((clock() - t0) * 1e3)
    return times


@dataclass(frozen=True)
class Comparison:
    """Interleaved latencies of named models on the same inputs, and their ratios.

    ``results`` holds one :class:`LatencyResult` per model; ``paired`` the per-round times
    (ms, round order) they were taken from.
    """

    results: dict[str, LatencyResult]
    paired: dict[str, list[float]]

    def speedup(self, baseline: str, other: str) -> float:
        """Median over rounds of ``baseline`` time ÷ ``other`` time (same round)."""
        ratios = [a / b for a, b in zip(self.paired[baseline], self.paired[other]) if b > 0]
        return statistics.median(ratios) if ratios else float("nan")

    def throughput(self, name: str) -> float | None:
        """Samples per second of ``name`` at its batch size (median latency)."""
        result = self.results[name]
        if result.batch_size is None or result.median_ms <= 0:
            return None
        return result.batch_size * 1e3 / result.median_ms


def _result(times_ms: list[float], model: nn.Module, inputs: ExampleInputs,
            threads: int) -> LatencyResult:
    device, dtype, batch = describe_run(model, inputs)
    ordered = sorted(times_ms)
    return LatencyResult(median_ms=statistics.median(ordered), p10_ms=_quantile(ordered, 0.10),
                         p90_ms=_quantile(ordered, 0.90), repeats=len(ordered),
                         threads=threads, device=str(device), dtype=dtype, batch_size=batch)


def compare_latency(models: Mapping[str, nn.Module], example_inputs: ExampleInputs, *,
                    warmup: int = 10, rounds: int = 50, threads: int | None = None,
                    clock: Clock = time.perf_counter) -> Comparison:
    """Time each model on ``example_inputs`` in ``rounds`` interleaved rounds (CPU).

    Eval mode and no grad during timing; the models' training flags and torch's thread
    setting are restored afterwards. ``threads`` sets :func:`torch.set_num_threads` for the
    measurement. Models on CUDA are synchronized after each pass.
    """
    if threads is not None and threads < 1:
        raise ConfigError(f"threads must be >= 1 or None, got {threads}")
    if not models:
        raise ConfigError("compare_latency needs at least one model")
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        used = torch.get_num_threads()

        def step_of(model: nn.Module) -> Callable[[], None]:
            device, _, _ = describe_run(model, example_inputs)

            def step() -> None:
                run_model(model, example_inputs)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
            return step

        steps = {name: step_of(m) for name, m in models.items()}
        with torch.no_grad(), _all_eval(list(models.values())):
            times = time_interleaved(steps, rounds, warmup=warmup, clock=clock)
    finally:
        if threads is not None:
            torch.set_num_threads(previous)
    results = {name: _result(times[name], m, example_inputs, used)
               for name, m in models.items()}
    return Comparison(results=results, paired=times)


class _all_eval:
    """Eval mode on several models at once, each restored on exit."""

    def __init__(self, models: list[nn.Module]) -> None:
        self._contexts = [eval_mode(m) for m in models]

    def __enter__(self) -> None:
        for context in self._contexts:
            context.__enter__()

    def __exit__(self, *exc: object) -> None:
        for context in reversed(self._contexts):
            context.__exit__(None, None, None)


class _OpCounter(TorchDispatchMode):
    """Counts the ATen ops dispatched inside the block."""

    def __init__(self) -> None:
        super().__init__()
        self.ops = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (),
                           kwargs: Any = None) -> Any:
        self.ops += 1
        return func(*args, **(kwargs or {}))


def count_calls(model: nn.Module, example_inputs: ExampleInputs) -> tuple[int, int]:
    """ATen ops dispatched and submodule ``forward`` calls made by one forward pass."""
    calls = 0

    def pre_hook(_module: nn.Module, _args: Any) -> None:
        nonlocal calls
        calls += 1

    handles = [m.register_forward_pre_hook(pre_hook) for m in model.modules()]
    counter = _OpCounter()
    try:
        with torch.no_grad(), eval_mode(model), counter:
            run_model(model, example_inputs)
    finally:
        for handle in handles:
            handle.remove()
    return counter.ops, calls


@dataclass(frozen=True)
class LaunchFloor:
    """Fixed per-pass cost of a model: ops and module calls times their measured unit cost.

    ``floor_ms`` is a lower bound of the time a pass takes whatever the layer widths
    (pruning channels removes no ops and no calls).
    """

    ops: int
    module_calls: int
    op_us: float
    call_us: float

    @property
    def floor_ms(self) -> float:
        return (self.ops * self.op_us + self.module_calls * self.call_us) / 1e3

    def share(self, latency_ms: float) -> float:
        """Fraction of ``latency_ms`` the floor accounts for (capped at 1)."""
        return min(1.0, self.floor_ms / latency_ms) if latency_ms > 0 else float("nan")

    def to_dict(self) -> dict[str, float | int]:
        return {"ops": self.ops, "module_calls": self.module_calls, "op_us": self.op_us,
                "call_us": self.call_us, "floor_ms": self.floor_ms}


def _unit_cost_us(step: Callable[[], Any], repeats: int, clock: Clock) -> float:
    """Median microseconds of one ``step`` over 5 batches of ``repeats`` calls."""
    samples = []
    for _ in range(5):
        t0 = clock()
        for _ in range(repeats):
            step()
        samples.append((clock() - t0) * 1e6 / repeats)
    return statistics.median(samples)


def launch_floor(model: nn.Module, example_inputs: ExampleInputs, *, repeats: int = 2000,
                 threads: int | None = None, clock: Clock = time.perf_counter) -> LaunchFloor:
    """Count one pass's ATen ops and module calls; time a trivial op (``relu`` of a
    one-element tensor) and an empty module call on this machine; see :class:`LaunchFloor`.
    """
    ops, calls = count_calls(model, example_inputs)
    device, _, _ = describe_run(model, example_inputs)
    tiny = torch.zeros(1, device=device)
    empty = nn.Identity()
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            op_us = _unit_cost_us(lambda: torch.relu(tiny), repeats, clock)
            call_us = _unit_cost_us(lambda: empty(tiny), repeats, clock)
    finally:
        if threads is not None:
            torch.set_num_threads(previous)
    return LaunchFloor(ops=ops, module_calls=calls, op_us=op_us, call_us=call_us)


@dataclass(frozen=True)
class FixedCost:
    """A pass's time split as ``fixed + batch * per_sample`` from two batch sizes.

    ``fixed_ms`` is the part of a pass that does not grow with the batch (op dispatch,
    kernel launch and setup, module calls): pruning channels does not shrink it, so a model
    whose batch-1 time is mostly fixed is launch-bound there.
    """

    small_batch: int
    large_batch: int
    fixed_ms: float
    per_sample_ms: float

    def share(self, latency_ms: float) -> float:
        """Fraction of ``latency_ms`` that is fixed cost (clamped to [0, 1])."""
        if latency_ms <= 0:
            return float("nan")
        return min(1.0, max(0.0, self.fixed_ms / latency_ms))

    def to_dict(self) -> dict[str, float | int]:
        return {"small_batch": self.small_batch, "large_batch": self.large_batch,
                "fixed_ms": self.fixed_ms, "per_sample_ms": self.per_sample_ms}


def fixed_cost(small: LatencyResult, large: LatencyResult) -> FixedCost:
    """Fit ``t(b) = fixed + b * per_sample`` through two latencies of one model taken at
    different batch sizes; the fixed part is clamped at zero."""
    b1, b2 = small.batch_size, large.batch_size
    if b1 is None or b2 is None or b1 == b2:
        raise ConfigError(f"fixed_cost needs two different batch sizes, got {b1} and {b2}")
    if b1 > b2:
        small, large, b1, b2 = large, small, b2, b1
    per_sample = max(0.0, (large.median_ms - small.median_ms) / (b2 - b1))
    fixed = max(0.0, small.median_ms - b1 * per_sample)
    return FixedCost(small_batch=b1, large_batch=b2, fixed_ms=fixed, per_sample_ms=per_sample)
