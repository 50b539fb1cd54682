"""Hardware-aware ratios from a latency table: logic on hand-made tables (no timing)."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
import torch
from torch import nn

import prunekit
from prunekit.errors import ConfigError
from prunekit.models.digits_cnn import DigitsCNN
from prunekit.recover import GroupLatency, LatencyTable
from prunekit.allocate.hardware import group_return, hardware_aware


def _table() -> LatencyTable:
    """Three 16-unit groups measured at 4, 8, 12, 16 kept: ``wide`` scales with its units,
    ``flat`` does not shrink at all (fixed per-call cost), ``step`` is slower at 12 kept
    than at 16 (a count that falls off a fast kernel), ``weak`` saves a little."""
    groups = {
        "wide": GroupLatency([16], [4, 8, 12, 16], {"a": [2.5, 5.0, 7.5, 10.0]}),
        "flat": GroupLatency([16], [4, 8, 12, 16], {"b": [5.0, 5.0, 5.0, 5.0]}),
        "step": GroupLatency([16], [4, 8, 12, 16], {"c": [3.0, 4.0, 11.0, 10.0]}),
        "weak": GroupLatency([16], [4, 8, 12, 16], {"d": [9.0, 9.5, 9.8, 10.0]}),
    }
    return LatencyTable(dense_ms=35.0, base_ms={"a": 10.0, "b": 5.0, "c": 10.0, "d": 10.0},
                        groups=groups, layers_ms=35.0)


def test_group_return_is_time_saved_over_units_removed() -> None:
    table = _table()
    assert group_return(table, "wide", 8) == pytest.approx(1.0)
    assert group_return(table, "flat", 8) == pytest.approx(0.0)
    assert group_return(table, "step", 8) == pytest.approx(0.6 / 0.5)
    assert group_return(table, "step", 16) == 1.0


def test_groups_that_cannot_pay_off_are_left_whole_and_counts_rounded_to_fast_sizes() -> None:
    table = _table()
    half = hardware_aware(table, 0.5)
    assert half.ratios == {"wide": 0.5, "step": 0.5}
    assert set(half.left_whole) == {"flat", "weak"}
    assert "faster than keeping all 16" in half.left_whole["flat"]
    assert "0.10x" in half.left_whole["weak"] and "min_return" in half.left_whole["weak"]
    assert dict(half.config.overrides) == {"wide": 0.5, "step": 0.5}
    assert half.config.ratio == 0.0 and half.config.scope == "local"
    assert half.predicted_ms == pytest.approx(table.predict_ms(half.ratios))
    assert half.predicted_speedup == pytest.approx(35.0 / (5.0 + 5.0 + 4.0 + 10.0))
    # at 0.3, step would keep 12 units, slower than keeping all 16: it keeps 16
    light = hardware_aware(table, 0.3)
    assert light.ratios == {"wide": 0.3}
    assert "faster than keeping all 16" in light.left_whole["step"]
    # with min_return 0 only groups with no faster count stay whole
    assert set(hardware_aware(table, 0.5, min_return=0.0).left_whole) == {"flat"}


def test_reach_raises_paying_groups_until_the_goal() -> None:
    table = _table()
    plain = hardware_aware(table, 0.25)
    reached = hardware_aware(table, 0.25, reach=True, goal=1.6)
    assert plain.predicted_speedup < 1.6 <= reached.predicted_speedup
    assert "flat" not in reached.ratios and "flat" in reached.left_whole
    assert "step" in reached.ratios and "step" not in reached.left_whole
    assert all(reached.ratios[k] >= plain.ratios.get(k, 0.0) for k in reached.ratios)
    # an unreachable goal stops when no paying group can go further, at max_ratio
    capped = hardware_aware(table, 0.25, reach=True, goal=100.0, max_ratio=0.75)
    assert max(capped.ratios.values()) <= 0.75
    assert capped.predicted_speedup < 100.0


def test_bad_settings_are_config_errors() -> None:
    table = _table()
    for kwargs, match in (({"ratio": 1.0}, "ratio"), ({"ratio": 0.5, "min_return": 2.0},
                                                       "min_return"),
                          ({"ratio": 0.5, "step": 0.0}, "step"),
                          ({"ratio": 0.5, "goal": 0.5}, "goal"),
                          ({"ratio": 0.5, "max_ratio": 0.4}, "max_ratio")):
        with pytest.raises(ConfigError, match=match):
            hardware_aware(table, **kwargs)


def _fake_timer(module: nn.Module, inputs: Any) -> float:
    """Convs cost by 8-channel blocks (a kernel that works on blocks of 8)."""
    return sum(0.1 * math.ceil(m.in_channels / 8) * math.ceil(m.out_channels / 8)
               for m in module.modules() if isinstance(m, nn.Conv2d))


def test_the_config_prunes_a_real_model_to_fast_sizes() -> None:
    torch.manual_seed(0)
    model, x = DigitsCNN((16, 24, 32)).eval(), torch.randn(1, 1, 8, 8)
    table = LatencyTable.measure(model, x, multiple=1, points=64, timer=_fake_timer)
    choice = hardware_aware(table, 0.3)
    pruned = copy.deepcopy(model)
    prunekit.prune(pruned, x, config=choice.config)
    convs = [m for m in pruned.modules() if isinstance(m, nn.Conv2d)]
    # every kept count is a multiple of 8: in-between counts cost as much as the next block
    assert all(c.out_channels % 8 == 0 for c in convs[:-1])
    assert [c.out_channels for c in convs[:3]] == [16, 24, 24]


def test_reach_to_a_macs_goal_with_a_cost_model() -> None:
    torch.manual_seed(0)
    model, x = DigitsCNN((16, 24, 32)).eval(), torch.randn(1, 1, 8, 8)
    table = LatencyTable.measure(model, x, multiple=1, points=64, timer=_fake_timer)
    costs = prunekit.recover.CostModel(model, x, prunekit.PruneConfig(), "macs")
    choice = hardware_aware(table, 0.1, reach=True, goal=2.0, macs=costs)
    assert costs.reduction(choice.ratios) >= 2.0
    assert costs.reduction(hardware_aware(table, 0.1).ratios) < 2.0
    pruned = copy.deepcopy(model)
    prunekit.prune(pruned, x, config=choice.config)
    got = prunekit.measure.count_macs(model, x) / prunekit.measure.count_macs(pruned, x)
    assert got == pytest.approx(costs.reduction(choice.ratios), rel=1e-6)
    with pytest.raises(ConfigError, match="metric 'macs'"):
        hardware_aware(table, 0.1, reach=True, goal=2.0,
                       macs=prunekit.recover.CostModel(model, x, prunekit.PruneConfig(),
                                                       "params"))


def test_reach_does_not_jump_far_past_the_goal_on_a_coarse_group() -> None:
    # ``coarse`` saves most per unit but only by going from 16 to 4 units kept (1.8x at once);
    # ``fine`` reaches the goal in small steps
    groups = {"coarse": GroupLatency([16], [4, 16], {"a": [1.0, 10.0]}),
              "fine": GroupLatency([16], [12, 13, 14, 15, 16],
                                   {"b": [7.5, 8.125, 8.75, 9.375, 10.0]})}
    table = LatencyTable(dense_ms=20.0, base_ms={"a": 10.0, "b": 10.0}, groups=groups,
                         layers_ms=20.0)
    reached = hardware_aware(table, 0.01, reach=True, goal=1.1, min_return=0.0)
    assert 1.1 <= reached.predicted_speedup <= 1.1 * 1.05
    assert "coarse" not in reached.ratios and reached.ratios["fine"] > 0
    # past what the fine group can give, the coarse move is taken
    far = hardware_aware(table, 0.01, reach=True, goal=1.5, min_return=0.0)
    assert far.ratios.get("coarse", 0.0) > 0 and far.predicted_speedup >= 1.5
