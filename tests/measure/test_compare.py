"""Interleaved A/B timing and the fixed-cost split: logic tested with a fake clock (no
timing assertions)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from prunekit.errors import ConfigError
from prunekit.measure.compare import (
    compare_latency,
    count_calls,
    fixed_cost,
    launch_floor,
    time_interleaved,
)
from prunekit.measure.latency import LatencyResult


class FakeClock:
    """A clock that only moves when a step advances it."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_rounds_alternate_order_and_time_each_step() -> None:
    clock = FakeClock()
    order: list[str] = []

    def step(name: str, seconds: float):  # type: ignore[no-untyped-def]
        def run() -> None:
            order.append(name)
            clock.advance(seconds)
        return run

    times = time_interleaved({"a": step("a", 0.002), "b": step("b", 0.001)}, rounds=4,
                             warmup=1, clock=clock)
    assert order == ["a", "b", "a", "b", "b", "a", "a", "b", "b", "a"]  # warm-up, then 4
    assert times["a"] == pytest.approx([2.0] * 4) and times["b"] == pytest.approx([1.0] * 4)


def test_load_burst_hits_both_sides_and_paired_ratio_cancels_it() -> None:
    """A slow phase of the machine (10x) during rounds 2-3 slows both models alike: the
    per-round ratio stays 2, where sequential timing would read it as 20x or 0.2x."""
    clock = FakeClock()
    round_of = {"n": 0}

    def make(seconds: float, name: str):  # type: ignore[no-untyped-def]
        def run() -> None:
            slow = 10.0 if round_of["n"] in (2, 3) else 1.0
            clock.advance(seconds * slow)
            if name == "pruned" and round_of["n"] % 2 == 0 or \
               name == "dense" and round_of["n"] % 2 == 1:
                round_of["n"] += 1  # the second step of a round ends it
        return run

    steps = {"dense": make(0.004, "dense"), "pruned": make(0.002, "pruned")}
    times = time_interleaved(steps, rounds=6, clock=clock)
    ratios = [a / b for a, b in zip(times["dense"], times["pruned"])]
    assert ratios == pytest.approx([2.0] * 6)
    assert max(times["dense"]) == pytest.approx(40.0)  # the burst is in the raw times


def test_compare_latency_reports_conditions_and_restores_state() -> None:
    dense, pruned = nn.Linear(4, 8), nn.Linear(4, 2)
    dense.train()
    threads = torch.get_num_threads()
    ticks = iter(range(10_000))  # every clock read is 1 ms later than the last
    result = compare_latency({"dense": dense, "pruned": pruned}, torch.randn(3, 4),
                             warmup=2, rounds=5, threads=1,
                             clock=lambda: next(ticks) * 1e-3)
    assert set(result.results) == {"dense", "pruned"}
    r = result.results["dense"]
    assert (r.repeats, r.threads, r.batch_size, r.device, r.dtype) == (5, 1, 3, "cpu",
                                                                      "float32")
    assert len(result.paired["pruned"]) == 5
    assert dense.training and torch.get_num_threads() == threads
    assert r.median_ms == pytest.approx(1.0)
    assert result.throughput("dense") == pytest.approx(3e3)
    assert result.speedup("dense", "pruned") == pytest.approx(1.0)


def test_compare_latency_rejects_bad_settings() -> None:
    with pytest.raises(ConfigError, match="at least one model"):
        compare_latency({}, torch.randn(1, 2))
    with pytest.raises(ConfigError, match="threads"):
        compare_latency({"a": nn.Linear(2, 2)}, torch.randn(1, 2), threads=0)
    with pytest.raises(ConfigError, match="rounds"):
        time_interleaved({"a": lambda: None}, rounds=0)


def _latency(ms: float, batch: int) -> LatencyResult:
    return LatencyResult(median_ms=ms, p10_ms=ms, p90_ms=ms, repeats=1, threads=1,
                         device="cpu", dtype="float32", batch_size=batch)


def test_fixed_cost_fits_two_batch_sizes() -> None:
    # t(b) = 0.5 + 0.1 b
    cost = fixed_cost(_latency(0.6, 1), _latency(6.9, 64))
    assert cost.fixed_ms == pytest.approx(0.5) and cost.per_sample_ms == pytest.approx(0.1)
    assert cost.share(0.6) == pytest.approx(0.5 / 0.6)
    swapped = fixed_cost(_latency(6.9, 64), _latency(0.6, 1))
    assert swapped == cost
    # a larger batch that is faster per pass (noise) gives no negative per-sample cost
    assert fixed_cost(_latency(1.0, 1), _latency(0.9, 8)).per_sample_ms == 0.0
    with pytest.raises(ConfigError, match="two different batch sizes"):
        fixed_cost(_latency(1.0, 4), _latency(2.0, 4))


def test_op_and_call_counts_do_not_change_with_width() -> None:
    def net(width: int) -> nn.Module:
        return nn.Sequential(nn.Conv2d(3, width, 3), nn.ReLU(), nn.Conv2d(width, 4, 3))

    x = torch.randn(1, 3, 8, 8)
    wide, narrow = count_calls(net(32), x), count_calls(net(4), x)
    assert wide == narrow
    ops, calls = wide
    assert calls == 4  # the Sequential and its three children
    assert ops >= 3
    floor = launch_floor(net(8), x, repeats=10)
    assert floor.ops == ops and floor.module_calls == calls
    assert floor.floor_ms == pytest.approx((ops * floor.op_us + calls * floor.call_us) / 1e3)
