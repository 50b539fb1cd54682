"""Latency lookup tables and latency targets.

Timing is noisy, so the logic runs on an injected fake timer whose layer cost steps every
4 channels and multiplies over input and output channels, and whose model cost is the sum
of its layers: the predictor is then exact at measured counts. One smoke test uses real
timing and checks only the table's structure.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
import torch
from torch import nn

import prunekit
from prunekit.errors import ConfigError, PlanError
from prunekit.models.digits_cnn import DigitsCNN
from prunekit.recover import LatencyTable, allocate, uniform_sensitivity

STEP = 4


def _leaf_cost(m: nn.Module) -> float:
    if isinstance(m, nn.Conv2d):
        return 0.1 * math.ceil(m.in_channels / STEP) * math.ceil(m.out_channels / STEP)
    if isinstance(m, nn.BatchNorm2d):
        return 0.01 * math.ceil(m.num_features / STEP)
    if isinstance(m, nn.Linear):
        return 0.02 * math.ceil(m.in_features / STEP)
    return 0.0


def fake_timer(module: nn.Module, inputs: Any) -> float:
    """Layer cost by shape; a whole model costs the sum of its layers."""
    return sum(_leaf_cost(m) for m in module.modules())


@pytest.fixture(scope="module")
def cnn() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    return DigitsCNN((16, 24, 32)).eval(), torch.randn(1, 1, 8, 8)


@pytest.fixture(scope="module")
def table(cnn) -> LatencyTable:
    model, x = cnn
    return LatencyTable.measure(model, x, multiple=1, points=64, timer=fake_timer)


def _pruned(model: nn.Module, x: torch.Tensor, config: prunekit.PruneConfig) -> nn.Module:
    out = copy.deepcopy(model)
    prunekit.prune(out, x, config=config)
    return out


def test_table_structure(cnn, table) -> None:
    model, x = cnn
    assert set(table.groups) == {"features.0.0", "features.1.0", "features.3.0"}
    assert table.dense_ms == pytest.approx(fake_timer(model, x))
    first = table.groups["features.0.0"]
    assert first.kept == list(range(1, 17)) and first.units == 16
    # the producer, its BN and ReLU, and the consumer conv change shape; nothing else
    assert set(first.calls) == {"features.0.0", "features.0.1", "features.0.2", "features.1.0"}
    assert table.predict_ms({}) == pytest.approx(table.dense_ms)
    assert table.scale == pytest.approx(1.0)  # the layers add up to the model
    assert len(table.base_ms) == 12  # every layer call of the dense model is timed


@pytest.mark.parametrize("ratios", [
    {"features.0.0": 0.5},
    {"features.0.0": 0.25, "features.1.0": 0.5},  # both touch conv features.1.0: product
    {"features.0.0": 0.75, "features.1.0": 0.25, "features.3.0": 0.875},
])
def test_predictor_matches_the_pruned_model(cnn, table, ratios) -> None:
    model, x = cnn
    pruned = _pruned(model, x, prunekit.PruneConfig(ratio=0.0, overrides=ratios))
    assert table.predict_ms(ratios) == pytest.approx(fake_timer(pruned, x), rel=1e-9)
    assert table.speedup(ratios) == pytest.approx(table.dense_ms / fake_timer(pruned, x))


def test_fast_sizes_and_rounding(table) -> None:
    assert table.fast_sizes("features.0.0") == [4, 8, 12, 16]
    assert table.fast_sizes("features.3.0") == list(range(4, 33, 4))
    assert table.round_kept("features.0.0", 5) == 8
    assert table.round_kept("features.0.0", 8) == 8
    assert table.round_kept("features.0.0", 1) == 4
    # ratio 0.6 of 16 keeps 7 channels: rounded up to 8, i.e. ratio 0.5
    assert table.kept("features.0.0", 0.6) == 7
    assert table.round_ratio("features.0.0", 0.6) == pytest.approx(0.5)
    assert table.round_ratio("features.0.0", 0.5) == 0.5
    # round_to is applied as the planner applies it
    assert table.kept("features.0.0", 0.6, prunekit.PruneConfig(round_to=8)) == 8


def test_fast_sizes_of_a_non_monotone_curve() -> None:
    data = {"format": "prunekit.latency_table", "dense_ms": 10.0, "base_ms": {"a": 4.0},
            "groups": {"g": {"sizes": [4], "kept": [1, 2, 3, 4],
                             "calls": {"a": [1.0, 3.0, 2.0, 4.0]}}}}
    t = LatencyTable.from_dict(data)
    assert t.fast_sizes("g") == [1, 3, 4]
    assert t.round_kept("g", 2) == 3
    assert t.fast_sizes("g", tolerance=0.6) == [4]
    # interpolation between measured counts, clamped below the smallest
    assert t.predict_ms({"g": 0.5}) == pytest.approx(10.0 - (4.0 - 3.0))
    assert t.predict_ms({"g": 0.9}) == pytest.approx(10.0 - (4.0 - 1.0))
    # layer savings are credited to the model in proportion to its summed layer time
    scaled = LatencyTable.from_dict({**data, "layers_ms": 20.0})
    assert scaled.scale == 0.5
    assert scaled.predict_ms({"g": 0.5}) == pytest.approx(10.0 - 0.5 * (4.0 - 3.0))
    slow = LatencyTable.from_dict({**data, "layers_ms": 5.0})  # e.g. a busy machine
    assert slow.predict_ms({"g": 0.9}) == pytest.approx(10.0 * (1 - 3.0 / 5.0))


@pytest.mark.parametrize("target", [1.5, 2.0, 3.0])
def test_allocation_reaches_a_latency_target_exactly(cnn, table, target) -> None:
    model, x = cnn
    sens = uniform_sensitivity(table.groups)
    alloc = allocate(model, x, sens, latency_reduction=target, latency_table=table,
                     round_fast=True)
    assert alloc.metric == "latency" and alloc.reduction >= target
    pruned = _pruned(model, x, alloc.config)
    measured = fake_timer(pruned, x)
    assert alloc.predicted_ms == pytest.approx(measured, rel=1e-9)
    assert table.dense_ms / measured >= target
    widths = [pruned.features[0][0].out_channels, pruned.features[1][0].out_channels,
              pruned.features[3][0].out_channels]
    assert all(w % STEP == 0 for w in widths), widths  # fast sizes
    assert alloc.to_dict()["predicted_ms"] == alloc.predicted_ms


def test_latency_ms_target_and_macs_with_fast_sizes(cnn, table) -> None:
    model, x = cnn
    sens = uniform_sensitivity(table.groups)
    goal = table.dense_ms / 1.8
    alloc = allocate(model, x, sens, latency_ms=goal, latency_table=table, round_fast=True)
    assert alloc.predicted_ms <= goal * (1 + 1e-9)
    assert alloc.target == pytest.approx(1.8)
    loose = allocate(model, x, sens, latency_ms=table.dense_ms * 2, latency_table=table)
    assert loose.ratios == {} and loose.target == 1.0
    macs = allocate(model, x, sens, macs_reduction=2.0, latency_table=table, round_fast=True)
    assert macs.reduction >= 2.0 and macs.predicted_ms is not None
    for key, ratio in macs.ratios.items():
        assert table.kept(key, ratio) in table.fast_sizes(key)


def test_json_round_trip(tmp_path, cnn, table) -> None:
    path = table.save(tmp_path / "lat.json")
    back = LatencyTable.load(path)
    assert back.to_dict() == table.to_dict()
    ratios = {"features.0.0": 0.3, "features.3.0": 0.6}
    assert back.predict_ms(ratios) == table.predict_ms(ratios)
    assert back.fast_sizes("features.1.0") == table.fast_sizes("features.1.0")
    with pytest.raises(PlanError, match="not a prunekit latency table"):
        LatencyTable.from_dict({"format": "something else"})
    broken = table.to_dict()
    del broken["groups"]["features.0.0"]["kept"]
    with pytest.raises(PlanError, match="malformed"):
        LatencyTable.from_dict(broken)
    broken = table.to_dict()
    broken["groups"]["features.0.0"]["kept"] = [3, 2, 16]
    with pytest.raises(PlanError, match="kept counts"):
        LatencyTable.from_dict(broken)


def test_errors(cnn, table) -> None:
    model, x = cnn
    sens = uniform_sensitivity(table.groups)
    with pytest.raises(ConfigError, match="unknown group key 'nope'"):
        table.predict_ms({"nope": 0.5})
    with pytest.raises(ConfigError, match=r"\[0, 1\)"):
        table.predict_ms({"features.0.0": 1.0})
    with pytest.raises(ConfigError, match="must be an integer"):
        table.round_kept("features.0.0", 17)
    with pytest.raises(ConfigError, match="needs latency_table"):
        allocate(model, x, sens, latency_reduction=2.0)
    with pytest.raises(ConfigError, match="round_fast=True needs"):
        allocate(model, x, sens, macs_reduction=2.0, round_fast=True)
    with pytest.raises(ConfigError, match="exactly one target"):
        allocate(model, x, sens, macs_reduction=2.0, latency_reduction=2.0, latency_table=table)
    with pytest.raises(ConfigError, match="exactly one target"):
        allocate(model, x, sens, latency_ms=1.0, latency_reduction=2.0, latency_table=table)
    with pytest.raises(ConfigError, match=">= 1"):
        allocate(model, x, sens, latency_reduction=0.5, latency_table=table)
    for bad in (0.0, -1.0, float("nan"), float("inf"), True):
        with pytest.raises(ConfigError, match="latency_ms"):
            allocate(model, x, sens, latency_ms=bad, latency_table=table)
    with pytest.raises(ConfigError, match="points"):
        LatencyTable.measure(model, x, points=1, timer=fake_timer)
    with pytest.raises(ConfigError, match="match no prunable group"):
        LatencyTable.measure(model, x, groups=["nothing*"], timer=fake_timer)
    other = DigitsCNN((8, 8, 8)).eval()
    with pytest.raises(ConfigError, match="different architecture"):
        allocate(other, x, uniform_sensitivity(["features.0.0"]), latency_reduction=2.0,
                 latency_table=table)


def test_unreachable_latency_target_warns(cnn, table) -> None:
    model, x = cnn
    sens = uniform_sensitivity(table.groups, ratios=(0.1, 0.2))
    with pytest.warns(RuntimeWarning, match="out of reach"):
        alloc = allocate(model, x, sens, latency_reduction=50.0, latency_table=table)
    assert alloc.reduction < 50.0
    # every group as far as the curves allow (a smaller ratio where it is as fast)
    assert alloc.reduction == pytest.approx(table.speedup({k: 0.2 for k in table.groups}))


class _Residual(nn.Module):
    """A conv stack with a residual add and one ReLU module called twice."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.a = nn.Conv2d(16, 16, 3, padding=1)
        self.b = nn.Conv2d(16, 16, 3, padding=1)
        self.relu = nn.ReLU()
        self.head = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.stem(x))
        y = self.relu(self.b(self.a(y)) + y)
        return self.head(y.mean((2, 3)))


def test_real_timing_smoke() -> None:
    torch.manual_seed(0)
    model, x = _Residual().eval(), torch.randn(1, 3, 16, 16)
    t = LatencyTable.measure(model, x, points=3, multiple=4, warmup=1, repeats=3)
    assert t.dense_ms > 0 and all(v > 0 for v in t.base_ms.values())
    assert {"relu", "relu#1"} <= set(t.base_ms)  # each call of a shared module is timed
    assert t.device == "cpu" and t.dtype == "float32" and t.batch_size == 1
    for key, g in t.groups.items():
        assert g.kept[-1] == g.units and len(g.kept) <= 3
        assert all(v > 0 for vs in g.calls.values() for v in vs)
        assert t.fast_sizes(key)[-1] == g.units
    assert t.predict_ms({}) == pytest.approx(t.dense_ms)
    assert math.isfinite(t.predict_ms({k: 0.5 for k in t.groups}))
