"""Iterate until target: a run killed after a step and resumed ends exactly like an
uninterrupted one (same plan, same weights); a step that breaks the budget is rolled back;
checkpoints are plain files (JSON + safetensors) and settings mismatches are refused."""

from __future__ import annotations

import copy
import json

import pytest
import torch

import prunekit
from prunekit.errors import ConfigError
from prunekit.measure import count_macs
from prunekit.recover import IterativeConfig, iterative_prune
from prunekit.train import DistillConfig, FinetuneConfig, evaluate

CONFIG = IterativeConfig(target=6.0, budget=0.5, step_factor=2.0,
                         finetune=FinetuneConfig(epochs=1, lr=2e-3), distill=DistillConfig(),
                         seed=3)


class Killed(RuntimeError):
    pass


def _kill_after(step: int):
    def on_step(record) -> None:
        if record.step == step:
            raise Killed(f"simulated crash after step {step}")
    return on_step


@pytest.mark.numerics
def test_killed_run_resumes_to_the_same_result(trained, digits, val, train_at, tmp_path) -> None:
    x = digits.x_val[:1]
    whole = iterative_prune(trained, x, train_at, val, CONFIG, tmp_path / "whole")
    assert len([r for r in whole.history if r.accepted]) >= 2
    assert whole.reduction >= CONFIG.target * 0.999
    with pytest.raises(Killed):
        iterative_prune(trained, x, train_at, val, CONFIG, tmp_path / "killed",
                        on_step=_kill_after(0))
    state = json.loads((tmp_path / "killed" / "state.json").read_text())
    assert state["step"] == 1 and not state["done"]
    resumed = iterative_prune(trained, x, train_at, val, CONFIG, tmp_path / "killed")
    assert resumed.resumed_from == 1
    assert resumed.history == whole.history
    assert resumed.plan.to_dict() == whole.plan.to_dict()
    a, b = whole.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # the last checkpoint replays on a fresh dense copy: plan JSON + safetensors, no pickle
    last = tmp_path / "whole" / whole.history[-1].checkpoint
    fresh = prunekit.load_pruned(copy.deepcopy(trained), last)
    assert torch.equal(fresh(digits.x_val), whole.model(digits.x_val))
    assert count_macs(trained, x) / count_macs(fresh, x) == pytest.approx(whole.reduction)
    # a finished run returns its result again without training
    again = iterative_prune(trained, x, train_at, val, CONFIG, tmp_path / "whole")
    assert again.history == whole.history and again.reduction == whole.reduction


@pytest.mark.numerics
def test_step_over_budget_is_rolled_back(trained, digits, val, train_at, tmp_path) -> None:
    x = digits.x_val[:1]

    def step_config(model, factor):  # a too-large step destroys the model
        if factor > 3.0:
            return prunekit.PruneConfig(ratio=0.9)
        return prunekit.PruneConfig(flops_reduction=factor, scope="global")

    config = IterativeConfig(target=4.0, budget=0.1, step_factor=4.0,
                             finetune=FinetuneConfig(epochs=1, lr=2e-3))
    result = iterative_prune(trained, x, train_at, val, config, tmp_path / "run",
                             step_config=step_config)
    first = result.history[0]
    assert not first.accepted and first.checkpoint is None and first.drop > 0.1
    assert result.history[1].factor == pytest.approx(2.0)
    kept = [r for r in result.history if r.accepted]
    assert kept and result.metric == kept[-1].metric
    assert result.baseline - evaluate(result.model, val) <= 0.1 + 1e-9
    assert not (tmp_path / "run" / "step_000").exists()


def test_settings_are_checked(trained, digits, val, train_at, tmp_path) -> None:
    x = digits.x_val[:1]
    quick = IterativeConfig(target=1.5, budget=1.0, finetune=FinetuneConfig(epochs=0))
    iterative_prune(trained, x, train_at, val, quick, tmp_path)
    other = IterativeConfig(target=2.5, budget=1.0, finetune=FinetuneConfig(epochs=0))
    with pytest.raises(ConfigError, match="other settings"):
        iterative_prune(trained, x, train_at, val, other, tmp_path)
    with pytest.raises(ConfigError, match="budget"):
        IterativeConfig(target=2.0, budget=-1)
    with pytest.raises(ConfigError, match="step_factor"):
        IterativeConfig(target=2.0, budget=0.1, step_factor=1.01)


def test_no_budget_is_a_fixed_gradual_schedule(trained, digits, val, train_at, tmp_path) -> None:
    """budget=None keeps every step that shrinks the model, however much the metric drops:
    the validation loader never accepts or rolls back a step."""
    x = digits.x_val[:1]

    def ruinous(model, factor):  # each step removes far too much for any budget
        return prunekit.PruneConfig(flops_reduction=factor)

    config = IterativeConfig(target=16.0, budget=None, step_factor=4.0,
                             finetune=FinetuneConfig(epochs=0))
    result = iterative_prune(trained, x, train_at, val, config, tmp_path / "run",
                             step_config=ruinous)
    assert [r.accepted for r in result.history] == [True, True]
    assert result.history[0].factor == pytest.approx(4.0)
    assert result.reduction >= 16.0 * 0.999
    assert result.history[-1].drop > 0.005  # a budget of 0.5 points would have refused it
    assert json.loads((tmp_path / "run" / "state.json").read_text())["settings"]["budget"] is None
    with pytest.raises(ConfigError, match="budget"):
        IterativeConfig(target=2.0, budget=float("nan"))


@pytest.mark.numerics
def test_steps_can_be_reconstructed_before_recovery(trained, digits, val, train_at,
                                                     tmp_path) -> None:
    """reconstruct_batches > 0 re-fits each step to the model before it: without any
    fine-tuning, the first step (the same cut) ends better, and so does the run."""
    x = digits.x_val[:1]
    runs = {}
    for batches in (0, 4):
        config = IterativeConfig(target=8.0, budget=None, step_factor=2.0,
                                 finetune=FinetuneConfig(epochs=0),
                                 reconstruct_batches=batches)
        runs[batches] = iterative_prune(trained, x, train_at, val, config,
                                        tmp_path / f"run{batches}")
    plain, rebuilt = runs[0], runs[4]
    first_plain, first_rebuilt = plain.history[0], rebuilt.history[0]
    assert first_plain.reduction == first_rebuilt.reduction
    assert first_rebuilt.metric > first_plain.metric + 0.05, (plain.history, rebuilt.history)
    assert rebuilt.reduction >= 8.0 * 0.999 and plain.reduction >= 8.0 * 0.999
    assert rebuilt.metric > plain.metric + 0.05, (plain.history, rebuilt.history)
    with pytest.raises(ConfigError, match="reconstruct_batches must be an integer >= 0"):
        IterativeConfig(target=2.0, budget=None, reconstruct_batches=-1)
