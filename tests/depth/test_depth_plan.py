"""Plans that remove whole blocks first: JSON round trip, replay on a fresh model, save and
load, and clear errors for a plan that does not fit."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from torch import nn

import prunekit
from prunekit.depth import find_blocks, remove_blocks
from prunekit.depth.remove import recorded_blocks, remove_recorded_blocks
from prunekit.errors import PlanError
from prunekit.plan.compose import compose_plans
from prunekit.plan.document import BLOCKS_VERSION, Plan, architecture_fingerprint


class Residual(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, 2 * c, 1), nn.ReLU(), nn.Conv2d(2 * c, c, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), *[Residual(8) for _ in range(3)],
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4)).eval()


def _depth_and_width(model: nn.Module, x: torch.Tensor) -> Plan:
    """Remove block 2, then thin channels: the plan of both, as choose_depth_width makes it."""
    fingerprint = architecture_fingerprint(model)
    removed = remove_blocks(model, ["2"], x)
    plan = compose_plans(prunekit.prune(model, x, ratio=0.5).plan)
    plan.architecture, plan.blocks = fingerprint, recorded_blocks(removed)
    return plan


def test_a_plan_with_blocks_replays_saves_and_loads(tmp_path) -> None:
    x = torch.randn(2, 3, 6, 6)
    model = _net()
    plan = _depth_and_width(model, x)
    assert plan.blocks == [{"name": "2", "removal": "identity"}]
    data = json.loads(json.dumps(plan.to_dict()))
    assert data["version"] == BLOCKS_VERSION
    again = Plan.from_dict(data)
    assert again.blocks == plan.blocks and again.tensors == plan.tensors

    replayed = prunekit.apply_plan(_net(seed=1), again)
    assert isinstance(replayed[2], nn.Identity)
    assert {k: v.shape for k, v in replayed.state_dict().items()} == \
        {k: v.shape for k, v in model.state_dict().items()}

    prunekit.save_pruned(model, plan, tmp_path / "pruned")
    loaded = prunekit.load_pruned(_net(seed=2), tmp_path / "pruned")
    assert torch.equal(loaded(x), model(x))


def test_a_plan_with_blocks_refuses_another_architecture_before_any_change() -> None:
    x = torch.randn(1, 3, 6, 6)
    plan = _depth_and_width(_net(), x)
    other = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), *[Residual(8) for _ in range(2)])
    before = copy.deepcopy(other.state_dict())
    with pytest.raises(PlanError, match="another architecture"):
        prunekit.apply_plan(other, plan)
    assert not isinstance(other[2], nn.Identity)
    assert all(torch.equal(before[k], v) for k, v in other.state_dict().items())
    with pytest.raises(PlanError, match="does not have"):
        remove_recorded_blocks(other, [{"name": "7", "removal": "identity"}])


@pytest.mark.parametrize("blocks", [{"name": "2"}, [{"name": "2", "removal": "drop"}],
                                    [{"removal": "identity"}], ["2"]])
def test_malformed_block_records_are_plan_errors(blocks: object) -> None:
    data = _depth_and_width(_net(), torch.randn(1, 3, 6, 6)).to_dict()
    data["blocks"] = blocks
    with pytest.raises(PlanError, match="blocks must be a list"):
        Plan.from_dict(data)


def test_plans_without_blocks_keep_their_version() -> None:
    model, x = _net(), torch.randn(1, 3, 6, 6)
    assert find_blocks(model, x)
    data = prunekit.prune(model, x, ratio=0.5).plan.to_dict()
    assert data["version"] == 1 and "blocks" not in data
