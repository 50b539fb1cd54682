"""Rank selection: every criterion does what it says, a budget is never exceeded (a
property over generated layers), global targets are reached, latency never gets worse."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import prunekit
from prunekit.decompose import DecomposeConfig, LowRankLinear
from prunekit.decompose.candidates import build_candidates
from prunekit.decompose.latency import LayerTimes, timing_grid
from prunekit.decompose.sensitivity import analyze_sensitivity
from prunekit.errors import ConfigError, UnsupportedOpError
from prunekit.measure import count_macs, count_parameters


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(24, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(),
                         nn.Linear(32, 10)).eval()


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(16, 24, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(24, 24, 3, groups=24, padding=1), nn.Flatten(),
                         nn.Linear(24 * 36, 10)).eval()


def _relative_output_error(dense: nn.Module, approx: nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        y, y_hat = dense(x), approx(x)
        bias = dense.bias if dense.bias is not None else torch.zeros(1)
        shape = (1, -1, 1, 1) if y.dim() == 4 else (1, -1)
        return float((y - y_hat).norm() / (y - bias.reshape(shape)).norm())


@st.composite
def layers(draw: st.DrawFn) -> tuple[nn.Module, torch.Tensor, bool]:
    seed = draw(st.integers(0, 10_000))
    torch.manual_seed(seed)
    if draw(st.booleans()):
        cin, cout = draw(st.integers(2, 20)), draw(st.integers(2, 20))
        layer: nn.Module = nn.Linear(cin, cout, bias=draw(st.booleans()))
        x = torch.randn(draw(st.integers(8, 60)), cin) * torch.rand(cin) * 3 + torch.randn(cin)
        aware = draw(st.booleans())
    else:
        cin, cout = draw(st.integers(1, 6)), draw(st.integers(1, 8))
        k = draw(st.sampled_from([1, 2, 3]))
        layer = nn.Conv2d(cin, cout, k, padding=draw(st.integers(0, 1)),
                          stride=draw(st.integers(1, 2)), bias=draw(st.booleans()))
        x = torch.randn(draw(st.integers(1, 3)), cin, 6, 7)
        aware = False
    return layer.eval(), x, aware


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=layers(), budget=st.floats(0.0, 0.9))
def test_the_error_budget_is_never_exceeded(case: tuple[nn.Module, torch.Tensor, bool],
                                            budget: float) -> None:
    layer, x, aware = case
    model = nn.Sequential(layer)
    dense = copy.deepcopy(model)
    result = prunekit.decompose(model, x, error=budget, calibration=[x],
                                activation_aware=aware)
    (decision,) = result.layers
    if decision.factorized:
        assert decision.error <= budget
        assert _relative_output_error(dense[0], model[0], x) <= budget + 1e-5
        assert decision.params_after < decision.params_before
    else:
        assert decision.reason
        torch.testing.assert_close(model(x), dense(x), rtol=0, atol=0)


def test_energy_picks_the_smallest_rank_that_keeps_it() -> None:
    model = _mlp()
    weight = model[2].weight.detach().double()
    s = torch.linalg.svdvals(weight)
    kept = torch.cumsum(s ** 2, 0) / (s ** 2).sum()
    expected = int((kept < 0.8).sum()) + 1
    result = prunekit.decompose(model, torch.randn(2, 24), energy=0.8, layers=["2"])
    (decision,) = result.layers
    assert decision.rank == (expected,) and decision.energy >= 0.8
    assert isinstance(model[2], LowRankLinear) and model[2].rank == expected


def test_rank_ratio_rounds_up_to_the_multiple() -> None:
    model = _mlp()
    result = prunekit.decompose(model, torch.randn(2, 24), rank_ratio=0.2, round_to=4)
    ranks = {d.name: d.rank for d in result.factorized}
    assert ranks == {"0": (8,), "2": (8,), "4": (4,)}


def test_a_layer_whose_factorization_is_not_smaller_stays_dense_with_the_reason() -> None:
    model = _mlp()
    result = prunekit.decompose(model, torch.randn(2, 24), energy=1.0)
    assert not result.factorized
    assert all("no fewer than the dense layer" in d.reason for d in result.layers)
    assert all(isinstance(m, nn.Linear) for m in (model[0], model[2], model[4]))


@pytest.mark.parametrize("metric", ["params", "macs"])
def test_a_global_target_is_reached(metric: str) -> None:
    model = _cnn()
    x = torch.randn(1, 3, 6, 6)
    count = count_parameters if metric == "params" else (lambda m: count_macs(m, x))
    before = count(model)
    result = prunekit.decompose(model, x, **{f"{metric}_reduction": 1.5},
                                calibration=[torch.randn(4, 3, 6, 6)])
    assert before / count(model) >= 1.5
    assert result.target["reached"] == pytest.approx(before / count(model))
    assert result.skipped["4"].startswith("spatial_svd: depthwise")


def test_an_unreachable_target_warns_and_goes_as_far_as_it_can() -> None:
    model = _mlp()
    with pytest.warns(UserWarning, match="out of reach"):
        result = prunekit.decompose(model, torch.randn(2, 24), params_reduction=50.0)
    assert result.factorized


def _fake_timer(slow: str):
    """Milliseconds proportional to MACs per sample; factorizations of ``slow`` cost 10x."""
    def timer(module: nn.Module, inputs) -> float:
        x = inputs[0] if isinstance(inputs, tuple) else inputs
        ms = float(count_macs(module, x)) / 1000
        if isinstance(module, LowRankLinear) and module.in_features == 32 and \
                module.out_features == 32 and slow == "2":
            ms *= 10
        return ms
    return timer


def test_latency_target_never_takes_a_factorization_that_measured_slower() -> None:
    x = torch.randn(8, 24)
    with warnings.catch_warnings():  # on this machine the target may be out of reach
        warnings.simplefilter("ignore", UserWarning)
        real = prunekit.decompose(_mlp(), x, latency_reduction=1.3, calibration=[x])
    assert all(d.ms < d.ms_dense for d in real.factorized)  # whatever this CPU measured
    model = _mlp()
    cands, _ = build_candidates(model, x, DecomposeConfig(latency_reduction=1.3), [])
    times = LayerTimes.measure(model, x, timing_grid(cands, 6),
                               {c.name: c.spec for c in cands}, timer=_fake_timer("2"))
    result = prunekit.decompose(model, x, latency_reduction=1.3, latency=times)
    by_name = {d.name: d for d in result.layers}
    assert not by_name["2"].factorized
    for d in result.factorized:
        assert d.ms is not None and d.ms < d.ms_dense
        assert times.ms(d.name, d.kind, d.rank) == d.ms  # only measured ranks are taken
    assert result.target["reached"] >= 1.3


def test_latency_table_round_trips_through_json(tmp_path) -> None:
    model = _mlp()
    x = torch.randn(4, 24)
    cands, _ = build_candidates(model, x, DecomposeConfig(latency_reduction=1.3), [])
    times = LayerTimes.measure(model, x, timing_grid(cands, 3),
                               {c.name: c.spec for c in cands}, timer=_fake_timer(""))
    loaded = LayerTimes.load(times.save(tmp_path / "t.json"))
    assert loaded.to_dict() == times.to_dict()
    other = nn.Sequential(nn.Linear(24, 8))
    with pytest.raises(ConfigError, match="different architecture"):
        loaded.check_model(other)


def test_explicit_ranks_win_over_the_criterion_and_are_checked() -> None:
    model = _cnn()
    x = torch.randn(1, 3, 6, 6)
    result = prunekit.decompose(model, x, energy=0.99, ranks={"0": 3, "2": (4, 5)})
    by_name = {d.name: d for d in result.layers}
    assert by_name["0"].kind == "spatial_svd" and by_name["0"].rank == (3,)
    assert by_name["2"].kind == "tucker2" and by_name["2"].rank == (4, 5)
    with pytest.raises(ConfigError, match="above the full rank"):
        prunekit.decompose(_cnn(), x, ranks={"6": 1000})
    with pytest.raises(ConfigError, match="at least 1"):
        prunekit.decompose(_cnn(), x, ranks={"6": 0})


def test_naming_a_layer_that_is_not_linear_or_conv_is_a_clear_error() -> None:
    with pytest.raises(UnsupportedOpError, match=r"'1'.*ReLU.*not a Linear or Conv2d"):
        prunekit.decompose(_mlp(), torch.randn(2, 24), energy=0.9, layers=["1"])
    with pytest.raises(UnsupportedOpError, match="depthwise"):
        prunekit.decompose(_cnn(), torch.randn(1, 3, 6, 6), ranks={"4": 2})
    with pytest.raises(ConfigError, match="matches no module"):
        prunekit.decompose(_mlp(), torch.randn(2, 24), energy=0.9, layers=["fc*"])


@pytest.mark.parametrize("options, match", [
    ({}, "say how to choose ranks"),
    ({"energy": 0.9, "error": 0.1}, "one way"),
    ({"energy": 1.5}, r"energy must be a number in \(0, 1\]"),
    ({"error": -0.1}, "error must be"),
    ({"params_reduction": 1.0}, "> 1"),
    ({"energy": 0.9, "conv": ("cp",)}, "unknown conv factorization"),
    ({"energy": 0.9, "ranks": {"fc": 0}}, "at least 1"),
    ({"energy": 0.9, "ranks": {"fc": "8"}}, "must be an integer"),
])
def test_bad_settings_are_refused(options: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        DecomposeConfig(**options)


def test_activation_aware_without_calibration_is_refused() -> None:
    with pytest.raises(ConfigError, match="calibration"):
        prunekit.decompose(_mlp(), torch.randn(2, 24), energy=0.9, activation_aware=True)


def test_factorized_layers_are_not_factorized_again() -> None:
    model = _mlp()
    x = torch.randn(2, 24)
    prunekit.decompose(model, x, rank_ratio=0.25)
    again = prunekit.decompose(model, x, rank_ratio=0.25)
    assert not again.layers and set(again.skipped) == {"0", "2", "4"}


def test_sensitivity_measures_each_layer_and_steers_the_target() -> None:
    model = _mlp()
    x = torch.randn(32, 24)
    sens = analyze_sensitivity(model, x, [x], ratios=(0.5, 0.75))
    assert set(sens.curves) == {"0", "2", "4"} and sens.baseline == pytest.approx(1.0)
    assert all(len(c) == 2 and c[0] >= c[1] - 1e-9 for c in sens.curves.values())
    before = [p.detach().clone() for p in model.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    # a layer made to look very sensitive is the last one the target touches
    sens.curves["2"] = [sens.baseline - 100.0, sens.baseline - 200.0]
    result = prunekit.decompose(model, x, params_reduction=1.3, sensitivity=sens)
    assert "2" not in {d.name for d in result.factorized}
