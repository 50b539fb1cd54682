"""GradualPruner: masks follow the schedule and the weights; resume; rewind; errors."""

from __future__ import annotations

import io
from itertools import pairwise

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from prunekit.errors import ConfigError
from prunekit.mask import NM, Block, MaskConfig, Unstructured, get_mask, mask_sparsity
from prunekit.schedule import (
    CubicSchedule,
    GradualPruner,
    LinearSchedule,
    OneShotSchedule,
    StepSchedule,
)


def _model(hidden: int = 32) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, hidden), nn.ReLU(), nn.Linear(hidden, 4))


def _batches(n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(1)
    return [(torch.randn(8, 16, generator=gen), torch.randint(0, 4, (8,), generator=gen))
            for _ in range(n)]


def _train(model: nn.Module, opt: torch.optim.Optimizer, pruner: GradualPruner,
           batches: list[tuple[torch.Tensor, torch.Tensor]]) -> list[float | None]:
    applied = []
    for x, y in batches:
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        applied.append(pruner.step())
    return applied


def test_sparsity_follows_the_schedule_and_masks_follow_the_weights() -> None:
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    schedule = CubicSchedule(final_sparsity=0.8, start=2, end=12, frequency=2)
    pruner = GradualPruner(model, schedule)
    seen = []
    for x, y in _batches(16):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        applied = pruner.step()
        if applied is not None:
            assert applied == pytest.approx(schedule.sparsity_at(pruner.step_count))
            report = mask_sparsity(model)
            for layer in ("0.weight", "2.weight"):  # local scope: each layer at the target
                assert report[layer] == pytest.approx(applied, abs=1 / 64)
            # newly pruned weights are the smallest of those that were still kept
            w = model[0].parametrizations.weight.original.detach().abs()
            mask = get_mask(model[0])
            newly = (seen[-1][1] if seen else torch.ones_like(mask)) & ~mask
            if newly.any():
                assert w[newly].max() <= w[mask].min()
            seen.append((pruner.step_count, mask.clone()))
    assert [s for s, _ in seen] == [2, 4, 6, 8, 10, 12]
    for (_, before), (_, after) in pairwise(seen):
        assert not (after & ~before).any()  # pruned weights stay pruned (regrow=False)
    assert mask_sparsity(model)["total"] == pytest.approx(0.8, abs=0.01)
    assert pruner.done


def test_regrow_lets_pruned_weights_come_back() -> None:
    model = _model()
    pruner = GradualPruner(model, StepSchedule(milestones=((1, 0.5), (2, 0.5))),
                           MaskConfig(regrow=True, ignore=("2",)))
    pruner.step()
    first = get_mask(model[0]).clone()
    with torch.no_grad():  # make every pruned weight the largest
        original = model[0].parametrizations.weight.original
        original[~first] = 100.0
    pruner.step()
    assert torch.equal(get_mask(model[0]), ~first)


def test_one_shot_at_step_zero_prunes_at_construction() -> None:
    model = _model()
    GradualPruner(model, OneShotSchedule(sparsity=0.5), MaskConfig(pattern=NM(2, 4)))
    mask = get_mask(model[0])
    assert (mask.reshape(32, 4, 4).sum(-1) == 2).all()


def test_gradual_nm_grows_into_exact_two_four() -> None:
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    pruner = GradualPruner(model, LinearSchedule(final_sparsity=0.5, end=6, frequency=2),
                           MaskConfig(pattern=NM(2, 4)))
    batches = _batches(8)
    applied = _train(model, opt, pruner, batches[:2])
    assert applied[1] == pytest.approx(2 / 6 * 0.5)
    mid = get_mask(model[0])
    assert (mid.reshape(32, 4, 4).sum(-1) >= 2).all()  # never below n kept per run
    assert (~mid).float().mean().item() == pytest.approx(1 / 6, abs=1 / 512)
    _train(model, opt, pruner, batches[2:])
    for mod in (model[0], model[2]):
        mask = get_mask(mod)
        assert (mask.reshape(mask.shape[0], -1, 4).sum(-1) == 2).all()


def test_resume_equals_uninterrupted_run() -> None:
    schedule = CubicSchedule(final_sparsity=0.75, start=3, end=15, frequency=3)
    config = MaskConfig(pattern=Unstructured("global"))
    batches = _batches(20)

    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    _train(model, opt, GradualPruner(model, schedule, config, rewind=True), batches)
    reference = {k: v.clone() for k, v in model.state_dict().items()}

    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    pruner = GradualPruner(model, schedule, config, rewind=True)
    _train(model, opt, pruner, batches[:7])
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(),
                "pruner": pruner.state_dict()}, buffer)
    del model, opt, pruner

    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))  # other init
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    pruner = GradualPruner(model, schedule, config, rewind=True)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["opt"])
    pruner.load_state_dict(state["pruner"])
    assert pruner.step_count == 7
    _train(model, opt, pruner, batches[7:])
    resumed = model.state_dict()
    assert set(resumed) == set(reference)
    for key, value in reference.items():
        assert torch.equal(resumed[key], value), key
    for name in ("0", "2"):
        assert get_mask(model[int(name)]) is not None


def test_resume_with_mismatched_model_is_a_clear_error() -> None:
    schedule = LinearSchedule(final_sparsity=0.5, end=4)
    state = GradualPruner(_model(), schedule).state_dict()
    with pytest.raises(ConfigError, match=r"does not fit this model.*0.weight: saved "
                                          r"\(32, 16\), model \(64, 16\)"):
        GradualPruner(_model(hidden=64), schedule).load_state_dict(state)
    deeper = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4), nn.Linear(4, 4))
    with pytest.raises(ConfigError, match=r"only in the model \['3.weight'\]"):
        GradualPruner(deeper, schedule).load_state_dict(state)
    with pytest.raises(ConfigError, match="saved with schedule"):
        GradualPruner(_model(), LinearSchedule(final_sparsity=0.6, end=4)).load_state_dict(state)
    with pytest.raises(ConfigError, match="saved with pattern"):
        GradualPruner(_model(), schedule, MaskConfig(pattern=Block((4, 4)))) \
            .load_state_dict(state)


def test_rewind_restores_initial_weights_and_keeps_masks() -> None:
    model = _model()
    initial = model[0].weight.detach().clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    pruner = GradualPruner(model, LinearSchedule(final_sparsity=0.6, end=4), rewind=True)
    _train(model, opt, pruner, _batches(5))
    mask = get_mask(model[0]).clone()
    assert not torch.equal(model[0].parametrizations.weight.original, initial)
    pruner.rewind()
    assert torch.equal(model[0].parametrizations.weight.original, initial)
    assert torch.equal(get_mask(model[0]), mask)
    assert torch.equal(model[0].weight, torch.where(mask, initial, 0.0))
    with pytest.raises(ConfigError, match="rewind=True"):
        GradualPruner(_model(), LinearSchedule(final_sparsity=0.6, end=4)).rewind()


def test_finalize_bakes_and_stops_the_pruner() -> None:
    model = _model()
    pruner = GradualPruner(model, OneShotSchedule(sparsity=0.5))
    pruner.finalize()
    assert set(model.state_dict()) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    assert (model[0].weight == 0).float().mean().item() == 0.5
    with pytest.raises(ConfigError, match="finalised"):
        pruner.step()


def test_bad_configurations_fail_at_construction() -> None:
    model = nn.Sequential(nn.Linear(10, 8), nn.ReLU(), nn.Linear(8, 4))
    with pytest.raises(ConfigError, match=r"'0.weight'.*\(8, 10\).*not divisible by 4"):
        GradualPruner(model, LinearSchedule(final_sparsity=0.5, end=4),
                      MaskConfig(pattern=NM(2, 4)))
    with pytest.raises(ConfigError, match="reaches at most 0.5"):
        GradualPruner(_model(), LinearSchedule(final_sparsity=0.75, end=4),
                      MaskConfig(pattern=NM(2, 4)))
    with pytest.raises(ConfigError, match="no layer to mask"):
        GradualPruner(_model(), LinearSchedule(final_sparsity=0.5, end=4),
                      MaskConfig(ignore=("*",)))
    with pytest.raises(ConfigError, match="Schedule"):
        GradualPruner(_model(), 0.5)  # type: ignore[arg-type]
