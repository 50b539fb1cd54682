"""choose_depth_width: one MACs target met by blocks removed then channels thinned, each
candidate measured. Timing here is real but tiny; the tests check what does not depend on it."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from prunekit import load_pruned, save_pruned
from prunekit.allocate.depth import choose_depth_width
from prunekit.errors import ConfigError
from prunekit.measure import count_macs


class Residual(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(),
                                  nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResNetLike(nn.Module):
    def __init__(self, c: int = 16, blocks: int = 5) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU())
        self.blocks = nn.Sequential(*[Residual(c) for _ in range(blocks)])
        self.head = nn.Linear(c, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)).mean((2, 3)))


def _model() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    return ResNetLike().eval(), torch.randn(1, 3, 12, 12)


def test_every_candidate_meets_the_target_and_the_fastest_is_chosen() -> None:
    model, x = _model()
    before = copy.deepcopy(model.state_dict())
    choice = choose_depth_width(model, x, 2.0, steps=2, rounds=3, warmup=1, width="uniform")
    assert set(choice.orders) == {"importance", "time"}
    assert choice.candidates[0].blocks == []
    assert len({tuple(c.blocks) for c in choice.candidates}) == len(choice.candidates)
    for ranking in choice.orders:
        counts = [len(c.blocks) for c in choice.candidates if c.ranking == ranking]
        assert counts == sorted(set(counts))
    # each block is a fifth of the residual MACs: at most 2 go before 2x is overshot
    assert 0 < max(len(c.blocks) for c in choice.candidates) <= 2
    for cand in choice.candidates:
        assert 1.95 <= cand.macs_reduction <= 2.3
        assert cand.latency_return == pytest.approx(cand.speedup / cand.macs_reduction)
        assert cand.blocks == choice.orders[cand.ranking][:len(cand.blocks)]
    assert choice.chosen is not None and choice.model is not None
    assert choice.chosen.speedup == max(c.speedup for c in choice.candidates)
    dense = count_macs(model, x)
    assert dense / count_macs(choice.model, x) == pytest.approx(choice.chosen.macs_reduction)
    assert choice.model(x).shape == (1, 4)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert choice.batch_size == 1 and choice.to_dict()["chosen"]["blocks"] == choice.chosen.blocks


def test_the_chosen_plan_rebuilds_the_chosen_model(tmp_path) -> None:
    model, x = _model()
    choice = choose_depth_width(model, x, 2.0, steps=1, rounds=2, warmup=0, width="uniform",
                                order=["blocks.1", "blocks.3"])
    assert choice.chosen is not None and choice.model is not None and choice.plan is not None
    assert [b["name"] for b in choice.plan.blocks] == choice.chosen.blocks
    save_pruned(choice.model, choice.plan, tmp_path / "pruned")
    fresh, _ = _model()
    loaded = load_pruned(fresh, tmp_path / "pruned")
    assert torch.equal(loaded(x), choice.model(x))


def test_a_metric_budget_rules_out_candidates() -> None:
    model, x = _model()

    def depth_kept(m: nn.Module) -> float:  # stands in for accuracy: blocks cost points
        return -float(sum(isinstance(b, nn.Identity) for b in m.modules()))

    choice = choose_depth_width(model, x, 1.5, steps=2, rounds=2, warmup=0, width="uniform",
                                metric=depth_kept, budget=0.0)
    assert choice.chosen is not None and choice.chosen.blocks == []
    assert [c.acceptable for c in choice.candidates] == [len(c.blocks) == 0
                                                         for c in choice.candidates]
    assert "over budget" in choice.candidates[-1].note


def _by_channels(module: nn.Module, inputs: object) -> float:
    """A made-up device on which a convolution's time follows its channels exactly."""
    return sum(1e-3 * m.in_channels * m.out_channels
               for m in module.modules() if isinstance(m, nn.Conv2d))


def _flat(module: nn.Module, inputs: object) -> float:
    """A made-up device on which thinning channels saves no time at all."""
    return float(sum(isinstance(m, nn.Conv2d) for m in module.modules()))


def test_width_falls_back_to_uniform_where_no_group_pays() -> None:
    model, x = _model()
    choice = choose_depth_width(model, x, 1.6, steps=1, rounds=1, warmup=0, max_blocks=0,
                                table_points=3, table_timer=_flat)
    (only,) = choice.candidates
    assert only.blocks == [] and only.macs_reduction >= 1.6 * 0.97
    assert "uniform ratios did the remaining" in only.note


def test_hardware_width_and_an_explicit_order() -> None:
    model, x = _model()
    choice = choose_depth_width(model, x, 1.6, steps=1, rounds=2, warmup=0,
                                order=["blocks.4", "blocks.0"], table_points=3,
                                timing_inputs=torch.randn(2, 3, 12, 12), table_timer=_by_channels)
    assert [c.blocks for c in choice.candidates] == [[], ["blocks.4"]]
    assert all(c.macs_reduction >= 1.6 * 0.97 and c.note == "" for c in choice.candidates)
    assert choice.batch_size == 2


def test_the_time_ranking_removes_the_slowest_block_per_mac_first() -> None:
    model, x = _model()
    slow = model.blocks[3]

    def one_slow_block(module: nn.Module, inputs: object) -> float:  # a made-up device
        return 50.0 if module is slow else 1.0

    choice = choose_depth_width(model, x, 1.3, steps=1, rounds=1, warmup=0, width="uniform",
                                rank_by="time", table_timer=one_slow_block)
    assert list(choice.orders) == ["time"] and choice.orders["time"][0] == "blocks.3"
    assert [c.blocks for c in choice.candidates] == [[], ["blocks.3"]]
    assert {c.ranking for c in choice.candidates} == {"time"}


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"macs_reduction": 2.0, "rank_by": "speed"}, "rank_by"),
    ({"macs_reduction": 1.0}, "macs_reduction"),
    ({"macs_reduction": 2.0, "steps": 0}, "steps"),
    ({"macs_reduction": 2.0, "width": "wide"}, "width"),
    ({"macs_reduction": 2.0, "budget": 0.1}, "metric and budget"),
    ({"macs_reduction": 2.0, "metric": lambda m: 0.0, "budget": -0.1}, "budget must be >= 0"),
    ({"macs_reduction": 2.0, "order": ["stem"]}, "not removable"),
    ({"macs_reduction": 2.0, "max_blocks": -1}, "max_blocks"),
])
def test_bad_settings_are_config_errors(kwargs: dict, match: str) -> None:
    model, x = _model()
    with pytest.raises(ConfigError, match=match):
        choose_depth_width(model, x, rounds=1, **kwargs)
