"""Every registered schedule: a sparsity path within [0, final] that never falls, a dict
that rebuilds it, a structured gradual run whose masked units are removed exactly, and
clear errors for bad settings."""

from __future__ import annotations

import json

import pytest
import torch

from helpers.conformance import SCHEDULES, Classifier
from prunekit.errors import ConfigError
from prunekit.schedule import (StructuredGradualPruner, available_schedules, get_schedule,
                               schedule_from_dict)
from prunekit.testing import randomize_weights

NAMES = available_schedules()
X = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def test_every_registered_schedule_has_an_example():
    missing = sorted(set(NAMES) - set(SCHEDULES))
    assert not missing, f"add settings to tests/helpers/conformance.py SCHEDULES for {missing}"


@pytest.mark.parametrize("name", NAMES)
def test_sparsity_grows_to_its_final_value(name: str):
    schedule = get_schedule(name, **SCHEDULES[name])
    levels = [schedule.sparsity_at(t) for t in range(schedule.end + 3)]
    assert levels[0] == 0.0 or schedule.start == 0
    assert all(0.0 <= a <= b <= schedule.final_sparsity for a, b in zip(levels, levels[1:]))
    assert levels[-1] == pytest.approx(schedule.final_sparsity)
    assert any(schedule.is_update_step(t) for t in range(schedule.end + 1))


@pytest.mark.parametrize("name", NAMES)
def test_its_dict_rebuilds_it(name: str):
    schedule = get_schedule(name, **SCHEDULES[name])
    assert schedule_from_dict(json.loads(json.dumps(schedule.to_dict()))) == schedule


@pytest.mark.parametrize("name", NAMES)
def test_masked_units_are_removed_exactly(name: str):
    model = randomize_weights(Classifier())
    schedule = get_schedule(name, **SCHEDULES[name])
    pruner = StructuredGradualPruner(model, X, schedule)
    for _ in range(schedule.end + 1):
        pruner.step()
    result = pruner.finalize(atol=1e-9)
    assert result.plan.removed_units > 0
    assert pruner.max_output_change is not None and pruner.max_output_change <= 1e-9


@pytest.mark.parametrize("name", NAMES)
def test_bad_settings_are_config_errors(name: str):
    with pytest.raises(ConfigError):
        get_schedule(name, **{**SCHEDULES[name], "not_a_field": 1})
    first = next(iter(SCHEDULES[name]))
    with pytest.raises(ConfigError):
        get_schedule(name, **{**SCHEDULES[name], first: -1})
