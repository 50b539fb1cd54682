"""The public API: plans on disk, saved pruned models, ratio semantics, and bad input."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torchvision

import prunekit
from prunekit.measure import count_flops, count_parameters

X = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
SMALL = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))


def resnet18() -> nn.Module:
    torch.manual_seed(0)
    return torchvision.models.resnet18().eval()


def shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def pruned18() -> prunekit.PruneResult:
    """ResNet-18 pruned once (ratio 0.5, channel counts rounded to multiples of 8)."""
    return prunekit.prune(resnet18(), X, ratio=0.5, round_to=8)


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Linear(10, 32)
        self.hidden = nn.Linear(32, 32)
        self.head = nn.Linear(32, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.hidden(torch.relu(self.encoder(x)))))


class Convs(nn.Module):
    """Three independent conv groups of different widths and weight scales."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Conv2d(3, 16, 3, padding=1)
        self.b = nn.Conv2d(16, 32, 3, padding=1)
        self.c = nn.Conv2d(32, 16, 3, padding=1)
        self.fc = nn.Linear(16, 4)
        with torch.no_grad():
            self.b.weight.mul_(torch.linspace(0.01, 3.0, 32)[:, None, None, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.c(torch.relu(self.b(torch.relu(self.a(x))))))
        return self.fc(h.mean((2, 3)))


# -- plans and saved models -----------------------------------------------------------------


def test_plan_json_round_trip_onto_a_fresh_resnet18(pruned18, tmp_path: Path):
    path = pruned18.plan.save(tmp_path / "plan.json")
    data = json.loads(path.read_text())
    assert data["format"] == "prunekit.plan" and data["tensors"]
    plan = prunekit.Plan.load(path)
    assert plan.tensors == pruned18.plan.tensors
    assert plan.attributes == json.loads(json.dumps(pruned18.plan.attributes))
    fresh = prunekit.apply_plan(resnet18(), plan)
    assert shapes(fresh) == shapes(pruned18.model)
    assert count_parameters(fresh) < count_parameters(resnet18())
    assert fresh.layer1[0].conv1.out_channels == pruned18.model.layer1[0].conv1.out_channels
    with torch.no_grad():
        assert fresh(X).shape == (1, 1000)


def test_save_pruned_then_load_pruned_gives_identical_outputs(pruned18, tmp_path: Path):
    target = prunekit.save_pruned(pruned18.model, pruned18.plan, tmp_path / "pruned")
    assert {p.name for p in target.iterdir()} == {"model.safetensors", "plan.json"}
    loaded = prunekit.load_pruned(resnet18(), target).eval()
    model = pruned18.model.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_classifier_output_shape_never_changes(pruned18):
    model = pruned18.model
    assert model.fc.out_features == 1000 and model.fc.in_features < 512
    with torch.no_grad():
        assert model(torch.randn(3, 3, 32, 32)).shape == (3, 1000)


# -- ratio semantics ------------------------------------------------------------------------------


def test_round_to_keeps_multiples_of_8(pruned18):
    convs = [m for m in pruned18.model.modules() if isinstance(m, nn.Conv2d)]
    assert all(m.out_channels % 8 == 0 for m in convs)
    original = {n: m.out_channels for n, m in resnet18().named_modules() if isinstance(m, nn.Conv2d)}
    pruned = {n: m.out_channels for n, m in pruned18.model.named_modules() if isinstance(m, nn.Conv2d)}
    assert all(pruned[n] < original[n] for n in original)
    for g in pruned18.plan.groups:
        assert (g.units - len(g.removed)) % 8 == 0, g.name
    assert pruned18.model.layer1[0].conv1.out_channels == 32  # 64 * (1 - 0.5)


def test_round_to_rounds_up_the_kept_count():
    model = prunekit.prune(Convs(), X, ratio=0.3, round_to=8).model
    assert model.a.out_channels == 16  # 16 - floor(4.8) = 12 kept -> rounded up to 16
    assert model.b.out_channels == 24  # 32 - 9 = 23 -> 24
    assert model.c.out_channels == 16


def test_min_units():
    model = prunekit.prune(Convs(), X, ratio=0.9, min_units=5).model
    assert model.a.out_channels == 5 and model.c.out_channels == 5
    assert model.b.out_channels == 5  # 32 - floor(28.8) = 4 kept -> at least 5


def test_override_one_module_by_name():
    # the override names module b: b's output channels get it, not the channels b reads
    model = prunekit.prune(Convs(), X, ratio=0.5, overrides={"b": 0.25}).model
    assert model.a.out_channels == 8 and model.c.out_channels == 8
    assert model.b.out_channels == 24
    model = prunekit.prune(Convs(), X, ratio=0.5, overrides={"a": 0.0}).model
    assert model.a.out_channels == 16 and model.b.out_channels == 16


def test_global_scope_ranks_units_across_groups():
    result = prunekit.prune(Convs(), X, ratio=0.5, scope="global")
    model = result.model
    total = 16 + 32 + 16
    kept = model.a.out_channels + model.b.out_channels + model.c.out_channels
    assert kept == total - total // 2
    widths = {model.a.out_channels / 16, model.b.out_channels / 32, model.c.out_channels / 16}
    assert len(widths) > 1  # not the same fraction everywhere
    assert all(g.units - len(g.removed) >= 1 for g in result.plan.groups)


def test_flops_reduction_target():
    model = resnet18()
    before = count_flops(model, SMALL)
    prunekit.prune(model, SMALL, flops_reduction=2.0)
    after = count_flops(model, SMALL)
    assert before / after >= 1.9
    assert before / after < 3.0  # the smallest ratio that reaches the target, not far beyond


def test_unreachable_flops_target_warns_and_prunes_as_far_as_it_can():
    model = Tiny()  # the input and output widths stay: at most the hidden layers shrink
    before = count_flops(model, torch.randn(1, 10))
    with pytest.warns(UserWarning, match="flops_reduction=100.0 is out of reach"):
        prunekit.prune(model, torch.randn(1, 10), flops_reduction=100.0)
    assert 1.5 < before / count_flops(model, torch.randn(1, 10)) < 100


def test_params_reduction_target():
    model = Convs()
    before = count_parameters(model)
    prunekit.prune(model, X, params_reduction=2.0)
    assert 1.9 <= before / count_parameters(model) < 3.0
    assert model(X).shape == (1, 4)


# -- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize("ratio", [1.0, -0.1])
def test_ratio_out_of_range(ratio: float):
    with pytest.raises(prunekit.ConfigError, match="ratio"):
        prunekit.prune(Tiny(), torch.randn(2, 10), ratio=ratio)


def test_unknown_criterion():
    with pytest.raises(prunekit.ConfigError, match="unknown importance criterion 'nope'"):
        prunekit.prune(Tiny(), torch.randn(2, 10), importance="nope")


def test_example_inputs_none():
    with pytest.raises(prunekit.ConfigError, match="example_inputs"):
        prunekit.prune(Tiny(), None)


def test_wrongly_shaped_example_inputs_name_the_module():
    model = Tiny()
    before = shapes(model)
    with pytest.raises(prunekit.TraceError, match="'encoder'") as err:
        prunekit.prune(model, torch.randn(2, 7))
    assert "example_inputs" in str(err.value)
    assert shapes(model) == before  # nothing was touched


def test_wrong_dtype_example_inputs_raise_before_pruning():
    model = Tiny()
    before = shapes(model)
    with pytest.raises(prunekit.TraceError, match="dtype"):
        prunekit.prune(model, torch.randn(2, 10, dtype=torch.float64))
    assert shapes(model) == before  # a failed call leaves the model as it was


def test_plan_of_a_larger_architecture_does_not_fit_a_smaller_one():
    plan = prunekit.prune(torchvision.models.resnet34(), SMALL).plan
    with pytest.raises(prunekit.PlanError, match="another architecture"):
        prunekit.apply_plan(resnet18(), plan)


def test_plan_of_resnet18_is_refused_by_resnet34(pruned18):
    model = torchvision.models.resnet34()
    before = shapes(model)
    with pytest.raises(prunekit.PlanError, match="architecture"):
        prunekit.apply_plan(model, pruned18.plan)
    assert shapes(model) == before


def test_ignore_that_matches_nothing():
    with pytest.raises(prunekit.ConfigError, match="matches no module"):
        prunekit.prune(Tiny(), torch.randn(2, 10), ignore=["decoder*"])


def test_ignore_keeps_a_module_whole():
    model = prunekit.prune(Tiny(), torch.randn(2, 10), ignore=["hidden"]).model
    assert model.hidden.weight.shape == (32, 32) and model.encoder.out_features == 32


def test_corrupt_plan_json(tmp_path: Path):
    path = tmp_path / "plan.json"
    path.write_text('{"format": "prunekit.plan", "version": 1, "tensors": ')
    with pytest.raises(prunekit.PlanError, match="not valid JSON"):
        prunekit.Plan.load(path)
    path.write_text(json.dumps({"format": "prunekit.plan", "version": 1, "tensors": {"a": 3}}))
    with pytest.raises(prunekit.PlanError, match="malformed"):
        prunekit.Plan.load(path)
    path.write_text(json.dumps({"hello": "world"}))
    with pytest.raises(prunekit.PlanError, match="not a prunekit plan"):
        prunekit.Plan.load(path)


def test_corrupt_safetensors_file(tmp_path: Path):
    model = Tiny()
    result = prunekit.prune(model, torch.randn(2, 10))
    target = prunekit.save_pruned(model, result.plan, tmp_path / "saved")
    (target / "model.safetensors").write_bytes(b"\x00garbage" * 16)
    with pytest.raises(prunekit.PlanError, match="safetensors"):
        prunekit.load_pruned(Tiny(), target)


def test_saved_weights_of_another_model_do_not_fit(tmp_path: Path):
    model = Tiny()
    result = prunekit.prune(model, torch.randn(2, 10))
    target = prunekit.save_pruned(model, result.plan, tmp_path / "saved")
    other = copy.deepcopy(result.plan)
    other.tensors = {}
    other.attributes = {}
    other.original_shapes = {}
    other.save(target / "plan.json")  # an empty plan: the saved weights are too small
    with pytest.raises(prunekit.PlanError, match="do not fit"):
        prunekit.load_pruned(Tiny(), target)


# -- where the model runs ------------------------------------------------------------------

class Log:
    """Shared by the model and every structural copy the engine makes of it."""

    def __init__(self) -> None:
        self.devices: list[str] = []


class DeviceLog(nn.Module):
    """Records the device of every input it sees, in a log its copies share."""

    def __init__(self, branch_on_data: bool = False) -> None:
        super().__init__()
        self.body = Tiny()
        self.branch_on_data = branch_on_data
        self.log = Log()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.log.devices.append(x.device.type)
        if self.branch_on_data and bool(x.sum() > 1e9):  # needs real values
            return torch.zeros(x.shape[0], 3)
        return self.body(x)


def test_prune_runs_the_model_on_meta_tensors_only():
    """Shapes are all the engine needs: no real forward, no activation memory."""
    model = DeviceLog().eval()
    result = prunekit.prune(model, torch.randn(2, 10), ratio=0.5)
    assert result.model.body.hidden.out_features == 16
    assert model.log.devices and set(model.log.devices) == {"meta"}


def test_a_model_that_refuses_meta_tensors_is_traced_on_real_ones():
    model = DeviceLog(branch_on_data=True).eval()
    x = torch.randn(2, 10)
    result = prunekit.prune(model, x, ratio=0.5)
    assert "cpu" in model.log.devices
    assert result.model.body.hidden.out_features == 16
    assert result.model(x).shape == (2, 3)


def test_without_verification_the_pruned_model_is_still_checked():
    model = DeviceLog().eval()
    result = prunekit.prune(model, torch.randn(2, 10), ratio=0.5, verify=False)
    assert result.model.body.hidden.out_features == 16
    assert model.log.devices.count("meta") >= 2  # the trace, then the pruned model


def test_a_plan_with_out_of_range_indices_is_refused(pruned18):
    data = pruned18.plan.to_dict()
    name = next(iter(data["tensors"]))
    dim = next(iter(data["tensors"][name]))
    for bad in (10_000, -1):
        data["tensors"][name][dim] = [bad]
        with pytest.raises(prunekit.PlanError, match="removes indices"):
            prunekit.apply_plan(resnet18(), prunekit.Plan.from_dict(data))
