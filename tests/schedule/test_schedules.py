"""Schedules: values at known steps, update steps, registry, validation."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from prunekit.errors import ConfigError
from prunekit.schedule import (
    CubicSchedule,
    ExponentialSchedule,
    LinearSchedule,
    OneShotSchedule,
    Schedule,
    StepSchedule,
    available_schedules,
    get_schedule,
    register_schedule,
    schedule_from_dict,
)


def test_cubic_matches_zhu_and_gupta_at_known_steps() -> None:
    s = CubicSchedule(initial_sparsity=0.1, final_sparsity=0.9, start=100, end=500, frequency=100)
    # s_t = s_f + (s_i - s_f)(1 - (t - t0)/(n dt))^3, n dt = 400
    assert s.sparsity_at(99) == 0.0
    assert s.sparsity_at(100) == pytest.approx(0.1)
    assert s.sparsity_at(200) == pytest.approx(0.9 - 0.8 * 0.75 ** 3)
    assert s.sparsity_at(300) == pytest.approx(0.9 - 0.8 * 0.125)
    assert s.sparsity_at(500) == pytest.approx(0.9)
    assert s.sparsity_at(10_000) == pytest.approx(0.9)
    assert [t for t in range(700) if s.is_update_step(t)] == [100, 200, 300, 400, 500]


def test_end_is_always_an_update_step() -> None:
    s = LinearSchedule(final_sparsity=0.5, start=0, end=25, frequency=10)
    assert [t for t in range(40) if s.is_update_step(t)] == [0, 10, 20, 25]


def test_linear_and_exponential_values() -> None:
    lin = LinearSchedule(final_sparsity=0.8, start=10, end=20)
    assert lin.sparsity_at(15) == pytest.approx(0.4)
    exp = ExponentialSchedule(final_sparsity=0.96, start=0, end=100)
    # the kept fraction decays geometrically: 1 -> 0.2 -> 0.04
    assert exp.sparsity_at(50) == pytest.approx(0.8)
    assert exp.sparsity_at(100) == pytest.approx(0.96)
    values = [exp.sparsity_at(t) for t in range(0, 101, 10)]
    assert values == sorted(values)


def test_one_shot_and_steps() -> None:
    one = OneShotSchedule(sparsity=0.7, step=3)
    assert [one.is_update_step(t) for t in range(5)] == [False, False, False, True, False]
    assert one.sparsity_at(2) == 0.0 and one.sparsity_at(3) == 0.7 and one.end == 3
    steps = StepSchedule(milestones=((10, 0.5), (20, 0.75), (30, 0.875)))
    assert [t for t in range(40) if steps.is_update_step(t)] == [10, 20, 30]
    assert [steps.sparsity_at(t) for t in (9, 10, 19, 20, 35)] == [0.0, 0.5, 0.5, 0.75, 0.875]
    assert steps.start == 10 and steps.end == 30 and steps.final_sparsity == 0.875


def test_registry_builds_by_name_and_round_trips() -> None:
    assert {"one_shot", "cubic", "linear", "exponential", "steps"} <= set(available_schedules())
    s = get_schedule("cubic", final_sparsity=0.9, start=5, end=50, frequency=5)
    assert s == CubicSchedule(final_sparsity=0.9, start=5, end=50, frequency=5)
    assert schedule_from_dict(s.to_dict()) == s
    steps = StepSchedule(milestones=((1, 0.1), (2, 0.2)))
    assert schedule_from_dict(steps.to_dict()) == steps
    with pytest.raises(ConfigError, match="unknown schedule 'cosine'"):
        get_schedule("cosine", final_sparsity=0.5, end=10)
    with pytest.raises(ConfigError, match=r"no option\(s\) \['finl_sparsity'\]"):
        get_schedule("cubic", finl_sparsity=0.5, end=10)


def test_users_can_register_their_own_schedule() -> None:
    @register_schedule("test_constant_after_ten")
    @dataclass(frozen=True)
    class Constant(Schedule):
        final_sparsity: float = 0.5
        start: int = 10
        end: int = 10

        def is_update_step(self, step: int) -> bool:
            return step == 10

        def sparsity_at(self, step: int) -> float:
            return self.final_sparsity if step >= 10 else 0.0

    assert get_schedule("test_constant_after_ten").sparsity_at(11) == 0.5
    with pytest.raises(ConfigError, match="already registered"):
        register_schedule("cubic")(Constant)


@pytest.mark.parametrize("kwargs,match", [
    (dict(final_sparsity=0.9, start=100, end=50), r"end \(50\) is not after start \(100\)"),
    (dict(final_sparsity=0.9, start=10, end=10), "use the 'one_shot' schedule"),
    (dict(final_sparsity=1.0, end=10), r"final_sparsity must be a number in \[0, 1\)"),
    (dict(final_sparsity=-0.1, end=10), r"\[0, 1\)"),
    (dict(final_sparsity=0.5, initial_sparsity=0.6, end=10), "may only grow"),
    (dict(final_sparsity=0.5, end=10, frequency=0), "frequency must be an integer >= 1"),
    (dict(final_sparsity=0.5, start=-1, end=10), "start must be an integer >= 0"),
    (dict(final_sparsity=0.5, end=10.5), "end must be an integer"),
])
def test_bad_gradual_schedules(kwargs: dict, match: str) -> None:
    for cls in (CubicSchedule, LinearSchedule, ExponentialSchedule):
        with pytest.raises(ConfigError, match=match):
            cls(**kwargs)


@pytest.mark.parametrize("milestones,match", [
    ((), "at least one"),
    (((10, 0.5), (5, 0.6)), "increasing step order"),
    (((10, 0.5), (20, 0.4)), "may only grow"),
    (((10, 1.2),), r"\[0, 1\)"),
    ((10, 0.5), "pairs"),
])
def test_bad_step_schedules(milestones: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        StepSchedule(milestones=milestones)  # type: ignore[arg-type]


def test_bad_one_shot() -> None:
    with pytest.raises(ConfigError, match=r"\[0, 1\)"):
        OneShotSchedule(sparsity=1.0)
