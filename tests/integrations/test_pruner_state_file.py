"""Pruner state as one safetensors file: exact round trip, no pickle, clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from prunekit.errors import ConfigError, PlanError
from prunekit.integrations import STATE_FILE, load_pruner_state, save_pruner_state
from prunekit.integrations._state import check_pruner
from prunekit.mask import get_mask
from prunekit.schedule import GradualPruner, StepSchedule


def _model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))


def test_round_trip_restores_masks_step_and_schedule(tmp_path: Path) -> None:
    schedule = StepSchedule(milestones=((1, 0.5), (3, 0.75)))
    pruner = GradualPruner(_model(), schedule, rewind=True)
    pruner.step()
    path = save_pruner_state(pruner, tmp_path)
    assert path == tmp_path / STATE_FILE
    state = load_pruner_state(tmp_path)
    assert state["masks"]["0.weight"].dtype == torch.bool
    fresh_model = _model()
    fresh = GradualPruner(fresh_model, schedule, rewind=True)
    fresh.load_state_dict(state)
    assert fresh.step_count == 1 and fresh.sparsity == 0.5
    assert torch.equal(get_mask(fresh_model[0]), get_mask(pruner.model[0]))
    fresh.step(), pruner.step(), fresh.step(), pruner.step()
    assert torch.equal(get_mask(fresh_model[2]), get_mask(pruner.model[2]))


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="no pruner state"):
        load_pruner_state(tmp_path)
    (tmp_path / STATE_FILE).write_bytes(b"not safetensors")
    with pytest.raises(PlanError, match="not a valid safetensors"):
        load_pruner_state(tmp_path)
    with pytest.raises(ConfigError, match="step_count"):
        check_pruner(object())


def test_importing_prunekit_never_imports_a_framework() -> None:
    code = ("import sys, prunekit, prunekit.integrations, prunekit.schedule; "
            "print(sorted(m for m in ('lightning', 'pytorch_lightning', 'transformers', "
            "'accelerate') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
