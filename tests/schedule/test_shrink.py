"""ShrinkingPruner: real surgery during training, optimizer state sliced exactly, stops,
rollback, EMA copies, bad optimizers, and resume from a checkpoint."""

from __future__ import annotations

import copy
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel

from prunekit.errors import ConfigError
from prunekit.schedule import (
    LinearSchedule,
    OneShotSchedule,
    ShrinkConfig,
    ShrinkingPruner,
    StepSchedule,
    load_training_checkpoint,
    save_training_checkpoint,
)
from prunekit.schedule.optim_state import check_sliceable

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "helpers"))


class ResNetLet(nn.Module):
    """stem conv-bn → residual block (its output coupled to the stem) → conv-bn → head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(8)
        self.conv1 = nn.Conv2d(8, 12, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(12)
        self.conv2 = nn.Conv2d(12, 8, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        self.conv3 = nn.Conv2d(8, 16, 3, padding=1)
        self.bn3 = nn.BatchNorm2d(16)
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn0(self.stem(x)))
        x = F.relu(x + self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
        x = F.relu(self.bn3(self.conv3(x)))
        return self.head(x.mean((2, 3)))


def _net(seed: int = 0) -> ResNetLet:
    torch.manual_seed(seed)
    return ResNetLet()


def _batches(n: int, seed: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(8, 1, 6, 6, generator=gen), torch.randint(0, 3, (8,), generator=gen))
            for _ in range(n)]


EXAMPLE = torch.randn(2, 1, 6, 6, generator=torch.Generator().manual_seed(2))


def _train(model: nn.Module, opt: torch.optim.Optimizer, pruner: ShrinkingPruner,
           batches: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    for x, y in batches:
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        pruner.step()


def _keep(size: int, removed: list[int]) -> torch.Tensor:
    mask = np.ones(size, dtype=bool)
    mask[removed] = False
    return torch.from_numpy(np.flatnonzero(mask))


def _sliced(old: torch.Tensor, dims: dict[int, list[int]]) -> torch.Tensor:
    for dim, removed in sorted(dims.items()):
        old = old.index_select(dim, _keep(old.shape[dim], removed))
    return old


OPTIMIZERS = {
    "sgd_momentum": lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=1e-4),
    "adam_amsgrad": lambda ps: torch.optim.Adam(ps, lr=1e-2, amsgrad=True),
    "adamw": lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.05),
}


@pytest.mark.parametrize("kind", sorted(OPTIMIZERS))
def test_optimizer_state_is_the_sliced_old_state(kind: str) -> None:
    model = _net()
    opt = OPTIMIZERS[kind](model.parameters())
    hyper = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
    pruner = ShrinkingPruner(model, EXAMPLE, OneShotSchedule(sparsity=0.5, step=3),
                             optimizers=[opt])
    batches = _batches(4)
    _train(model, opt, pruner, batches[:2])
    x, y = batches[2]
    opt.zero_grad()
    F.cross_entropy(model(x), y).backward()
    opt.step()
    names = {id(p): n for n, p in model.named_parameters()}
    old_state = {names[id(p)]: {k: v.clone() for k, v in s.items()} for p, s in opt.state.items()}
    old_params = {n: p.detach().clone() for n, p in model.named_parameters()}
    assert pruner.step() == 0.5  # the shrink
    plan = pruner.plans[-1]
    assert plan.removed_units > 0
    # the optimizer holds exactly the model's (surviving) parameter objects
    held = [p for g in opt.param_groups for p in g["params"]]
    assert {id(p) for p in held} == {id(p) for p in model.parameters()}
    assert len(held) == len(list(model.parameters()))
    assert [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups] == hyper
    sliced_any = False
    for name, p in model.named_parameters():
        dims = plan.tensors.get(name, {})
        assert torch.equal(p.detach(), _sliced(old_params[name], dims))
        for key, old in old_state[name].items():
            new = opt.state[p][key]
            if key == "step":
                assert torch.equal(new, old)
            else:
                assert new.shape == p.shape
                assert torch.equal(new, _sliced(old, dims))
                sliced_any |= any(bool(r) for r in dims.values())
    assert sliced_any
    # and training goes on, on the small model, as a fresh optimizer with that state would
    twin = copy.deepcopy(model)
    twin_opt = OPTIMIZERS[kind](twin.parameters())
    twin_opt.load_state_dict(copy.deepcopy(opt.state_dict()))  # no shared tensors
    for m, o in ((model, opt), (twin, twin_opt)):
        x, y = batches[3]
        o.zero_grad()
        F.cross_entropy(m(x), y).backward()
        o.step()
    for a, b in zip(model.parameters(), twin.parameters()):
        assert torch.equal(a, b)


@torch.no_grad()
def _zero_channels(model: ResNetLet, bn: nn.BatchNorm2d, channels: list[int]) -> None:
    bn.weight[channels] = 0.0
    bn.bias[channels] = 0.0


def test_removing_all_zero_units_is_exact() -> None:
    model = _net()
    _zero_channels(model, model.bn1, [0, 3, 5, 7, 9, 11])
    _zero_channels(model, model.bn3, list(range(0, 16, 2)))
    model.eval()
    x = torch.randn(4, 1, 6, 6, generator=torch.Generator().manual_seed(5))
    before = model(x)
    pruner = ShrinkingPruner(model, EXAMPLE, OneShotSchedule(sparsity=0.5, step=1),
                             ShrinkConfig(importance="bn_scale", ignore=("stem", "bn0")))
    pruner.step()
    assert model.conv1.out_channels == 6 and model.conv3.out_channels == 8
    assert model.stem.out_channels == 8
    torch.testing.assert_close(model(x), before, rtol=0, atol=1e-6)


def test_sparsity_is_counted_against_the_original_size() -> None:
    model = _net()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    schedule = StepSchedule(milestones=((1, 0.25), (2, 0.5), (3, 0.75)))
    pruner = ShrinkingPruner(model, EXAMPLE, schedule, optimizers=[opt])
    _train(model, opt, pruner, _batches(3))
    assert model.conv1.out_channels == 3 and model.conv3.out_channels == 4
    assert pruner.channel_sparsity() == pytest.approx(0.75)
    macs = [e.macs for e in pruner.history]
    assert macs == sorted(macs, reverse=True) and macs[-1] < pruner.dense_macs / 8
    assert len(pruner.plans) == 3


def test_global_scope_meets_the_overall_fraction() -> None:
    model = _net()
    pruner = ShrinkingPruner(model, EXAMPLE, StepSchedule(milestones=((1, 0.3), (2, 0.5))),
                             ShrinkConfig(scope="global", max_ratio=0.8))
    pruner.step()
    pruner.step()
    assert pruner.channel_sparsity() == pytest.approx(0.5, abs=1 / 36)
    for name, n0 in pruner.original_units.items():
        assert len(pruner.origin[name]) >= n0 - int(0.8 * n0)


def test_early_bird_stops_when_the_structure_settles() -> None:
    model = _net()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # weights never move: same structure
    schedule = LinearSchedule(final_sparsity=0.5, start=1, end=5, frequency=1)
    pruner = ShrinkingPruner(model, EXAMPLE, schedule, ShrinkConfig(stable_after=0.0),
                             optimizers=[opt])
    _train(model, opt, pruner, _batches(5))
    assert pruner.stopped and "structure" in pruner.stop_reason
    assert [e.change for e in pruner.history] == [None, 0.0]
    assert pruner.sparsity == 0.5 and pruner.channel_sparsity() == pytest.approx(0.5, abs=0.05)
    assert len(pruner.history) == 2  # steps 3..5 did nothing


def test_macs_target_stops_shrinking() -> None:
    model = _net()
    schedule = LinearSchedule(final_sparsity=0.8, start=1, end=8, frequency=1)
    pruner = ShrinkingPruner(model, EXAMPLE, schedule, ShrinkConfig(target_macs=0.5))
    for _ in range(8):
        pruner.step()
    assert pruner.stopped and "MACs" in pruner.stop_reason
    assert pruner.history[-1].macs <= 0.5 * pruner.dense_macs
    assert pruner.history[-2].macs > 0.5 * pruner.dense_macs
    assert pruner.sparsity < 0.8


def test_a_shrink_over_the_budget_is_rolled_back() -> None:
    model = _net()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    _train(model, opt, ShrinkingPruner(_net(), EXAMPLE, OneShotSchedule(sparsity=0.1, step=99)),
           _batches(2))
    x = torch.randn(4, 1, 6, 6, generator=torch.Generator().manual_seed(5))
    model.eval()
    before = model(x).detach()
    state = {k: v.clone() for k, v in opt.state[model.stem.weight].items()}
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    widths = [model.conv1.out_channels, model.bn1.num_features, model.conv3.out_channels]

    dense = sum(p.numel() for p in model.parameters())

    def evaluate(m: nn.Module) -> float:  # any shrink costs 1.0
        return -float(sum(p.numel() for p in m.parameters()) < dense)

    pruner = ShrinkingPruner(model, EXAMPLE, OneShotSchedule(sparsity=0.5, step=1),
                             ShrinkConfig(max_drop=0.5), optimizers=[opt], evaluate=evaluate)
    pruner.step()
    assert pruner.stopped and pruner.history[-1].rolled_back and not pruner.plans
    assert [n for n, _ in model.named_parameters()] == names
    assert [p.shape for p in model.parameters()] == shapes
    assert [model.conv1.out_channels, model.bn1.num_features, model.conv3.out_channels] == widths
    torch.testing.assert_close(model(x), before, rtol=0, atol=0)
    for k, v in state.items():
        assert torch.equal(opt.state[model.stem.weight][k], v)


def test_ema_copies_shrink_with_the_model() -> None:
    model = _net()
    ema = AveragedModel(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    pruner = ShrinkingPruner(model, EXAMPLE, OneShotSchedule(sparsity=0.5, step=2),
                             optimizers=[opt], ema=[ema.module])
    for x, y in _batches(4):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        pruner.step()
        ema.update_parameters(model)
    assert [p.shape for p in ema.module.parameters()] == [p.shape for p in model.parameters()]
    assert ema.module.conv1.out_channels == model.conv1.out_channels == 6


class FlatCopySGD(torch.optim.SGD):
    """Keeps a flattened master copy of the parameters outside optimizer.state."""

    def __init__(self, params: object, lr: float) -> None:
        super().__init__(params, lr=lr)  # type: ignore[arg-type]
        self.master = torch.cat([p.detach().reshape(-1) for g in self.param_groups
                                 for p in g["params"]])


class OddStateSGD(torch.optim.SGD):
    """Stores a per-parameter tensor that is not shaped like its parameter."""

    @torch.no_grad()
    def step(self, closure: object = None) -> None:  # type: ignore[override]
        super().step()
        for g in self.param_groups:
            for p in g["params"]:
                self.state[p]["row_norms"] = p.reshape(p.shape[0], -1).norm(dim=1)[:1].repeat(2)


def _bad_optimizer(kind: str, model: nn.Module) -> torch.optim.Optimizer:
    if kind == "flat":
        return FlatCopySGD(model.parameters(), lr=0.1)
    if kind == "odd":
        return OddStateSGD(model.parameters(), lr=0.1)
    if kind == "elsewhere":
        return torch.optim.SGD([nn.Parameter(torch.zeros(3))], lr=0.1)
    return torch.optim.LBFGS(model.parameters(), lr=0.1)


@pytest.mark.parametrize("kind,words", [
    ("flat", ["FlatCopySGD", "'master'"]),
    ("odd", ["OddStateSGD", "'row_norms'", "stem.weight"]),
    ("elsewhere", ["SGD", "none of the model's parameters"]),
    ("lbfgs", ["LBFGS", "of parameter 'stem.weight'", "cannot slice"]),
])
def test_unsliceable_optimizers_are_refused_before_any_change(kind: str,
                                                              words: list[str]) -> None:
    model = _net()
    opt = _bad_optimizer(kind, model)
    x, y = _batches(1)[0]

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss

    if kind in ("odd", "lbfgs"):
        opt.step(closure)  # type: ignore[arg-type]
        opt.step(closure)  # type: ignore[arg-type]
    shapes = [p.shape for p in model.parameters()]
    with pytest.raises(ConfigError) as info:
        ShrinkingPruner(model, EXAMPLE, OneShotSchedule(sparsity=0.5, step=0), optimizers=[opt])
    for word in words:
        assert word in str(info.value)
    assert [p.shape for p in model.parameters()] == shapes


def test_state_growing_unsliceable_later_is_refused_at_the_shrink() -> None:
    model = _net()
    opt = OddStateSGD(model.parameters(), lr=0.1)
    pruner = ShrinkingPruner(model, EXAMPLE, OneShotSchedule(sparsity=0.5, step=1),
                             optimizers=[opt])
    x, y = _batches(1)[0]
    opt.zero_grad()
    F.cross_entropy(model(x), y).backward()
    opt.step()
    shapes = [p.shape for p in model.parameters()]
    with pytest.raises(ConfigError, match="row_norms"):
        pruner.step()
    assert [p.shape for p in model.parameters()] == shapes
    check_sliceable([], model)  # no optimizer: nothing to refuse


def _run(tmp_path: object, stop_at: int | None, total: int = 9) -> ShrinkingPruner:
    """Train ``total`` steps; with ``stop_at`` save there, drop everything and resume."""
    batches = _batches(total, seed=3)
    schedule = StepSchedule(milestones=((2, 0.25), (5, 0.5), (7, 0.6)))
    config = ShrinkConfig(importance="bn_scale")

    def fresh() -> tuple[ResNetLet, torch.optim.Optimizer, ShrinkingPruner]:
        model = _net(seed=4)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        return model, opt, ShrinkingPruner(model, EXAMPLE, schedule, config, optimizers=[opt])

    model, opt, pruner = fresh()
    start = 0
    if stop_at is not None:
        _train(model, opt, pruner, batches[:stop_at])
        save_training_checkpoint(tmp_path / "ckpt", pruner)  # type: ignore[operator]
        del model, opt, pruner
        torch.manual_seed(123)  # the RNG state comes back with the checkpoint
        model, opt, pruner = fresh()
        load_training_checkpoint(tmp_path / "ckpt", pruner)  # type: ignore[operator]
        start = stop_at
    _train(model, opt, pruner, batches[start:])
    return pruner


@pytest.mark.parametrize("stop_at", [3, 6])
def test_resume_after_a_shrink_equals_an_uninterrupted_run(tmp_path: object,
                                                           stop_at: int) -> None:
    reference = _run(tmp_path, None)
    resumed = _run(tmp_path, stop_at)
    assert len(resumed.plans) == len(reference.plans) == 3
    ref, res = reference.model.state_dict(), resumed.model.state_dict()
    assert list(ref) == list(res)
    for key in ref:
        assert torch.equal(ref[key], res[key]), key
    ref_opt, res_opt = reference.optimizers[0].state_dict(), resumed.optimizers[0].state_dict()
    for index, entry in ref_opt["state"].items():
        for key, value in entry.items():
            assert torch.equal(value, res_opt["state"][index][key])


def test_resume_refuses_another_schedule(tmp_path: object) -> None:
    model = _net()
    pruner = ShrinkingPruner(model, EXAMPLE, OneShotSchedule(sparsity=0.5, step=1))
    pruner.step()
    save_training_checkpoint(tmp_path / "c", pruner)  # type: ignore[operator]
    other = ShrinkingPruner(_net(), EXAMPLE, OneShotSchedule(sparsity=0.4, step=1))
    with pytest.raises(ConfigError, match="schedule"):
        load_training_checkpoint(tmp_path / "c", other)  # type: ignore[operator]


def test_one_shot_at_epoch() -> None:
    schedule = OneShotSchedule.at_epoch(2, steps_per_epoch=10, sparsity=0.5)
    assert schedule.step == 20 and schedule.is_update_step(20)
    with pytest.raises(ConfigError):
        OneShotSchedule.at_epoch(1, steps_per_epoch=0, sparsity=0.5)


def test_bad_config() -> None:
    with pytest.raises(ConfigError):
        ShrinkConfig(target_macs=1.5)
    with pytest.raises(ConfigError, match="evaluate"):
        ShrinkingPruner(_net(), EXAMPLE, OneShotSchedule(sparsity=0.5, step=1),
                        ShrinkConfig(max_drop=0.1))


def test_kill_9_between_shrinks_then_resume_equals_an_uninterrupted_run(
        tmp_path: Path) -> None:
    import shrink_run

    done = subprocess.run([sys.executable, shrink_run.__file__, str(tmp_path), "5"],
                          timeout=120, capture_output=True)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()[-2000:]
    resumed = shrink_run.train(tmp_path, resume=True)
    reference = shrink_run.train(None)
    assert len(resumed.plans) == len(reference.plans) == 2
    ref, res = reference.model.state_dict(), resumed.model.state_dict()
    assert list(ref) == list(res)
    for key in ref:
        assert torch.equal(ref[key], res[key]), key


def test_composed_plan_replays_the_chain_on_a_fresh_model(tmp_path: Path) -> None:
    from prunekit import load_pruned, save_pruned
    from prunekit.plan import compose_plans

    model = _net()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    pruner = ShrinkingPruner(model, EXAMPLE, StepSchedule(milestones=((1, 0.25), (3, 0.5))),
                             ShrinkConfig(importance="bn_scale"), optimizers=[opt])
    _train(model, opt, pruner, _batches(4))
    plan = compose_plans(*pruner.plans)
    assert plan.architecture == pruner.architecture
    assert sum(len(g.removed) for g in plan.groups) == sum(p.removed_units for p in pruner.plans)
    save_pruned(model, plan, tmp_path / "pruned")
    fresh = load_pruned(_net(seed=9), tmp_path / "pruned")
    model.eval()
    fresh.eval()
    torch.testing.assert_close(fresh(EXAMPLE), model(EXAMPLE), rtol=0, atol=0)
    # the composed removal is the chain's removal: same kept original channels
    for name, removed in ((g.name, g.removed) for g in plan.groups):
        kept = sorted(set(range(pruner.original_units[name])) - set(removed))
        assert kept == pruner.origin[name].tolist()
