"""Factorizations are exact at full rank, report the error they really make, count their
parameters and MACs as PyTorch does, and refuse bad ranks and layers clearly."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from prunekit.decompose import InputMoments, describe, factorization
from prunekit.decompose.calibration import collect_moments, record_shapes
from prunekit.errors import ConfigError
from prunekit.measure import count_macs, count_parameters

CONVS = [
    dict(in_channels=4, out_channels=6, kernel_size=3, padding=1),
    dict(in_channels=3, out_channels=5, kernel_size=(3, 2), stride=(2, 1), padding=(1, 1),
         dilation=(1, 2), bias=False),
    dict(in_channels=5, out_channels=4, kernel_size=3, padding=2, padding_mode="reflect"),
    dict(in_channels=4, out_channels=4, kernel_size=(1, 3), padding="same",
         padding_mode="circular"),
    dict(in_channels=6, out_channels=3, kernel_size=1),
]


def _moments(layer: nn.Module, x: torch.Tensor) -> InputMoments:
    return collect_moments(layer, [""], [x])[""]


def _relative(dense: nn.Module, approx: nn.Module, x: torch.Tensor) -> float:
    """``||Δy|| / ||y - bias||`` on ``x``: the error the kinds report."""
    with torch.no_grad():
        y, y_hat = dense(x), approx(x)
        bias = dense.bias if dense.bias is not None else torch.zeros(y.shape[1 if y.dim() == 4
                                                                            else -1])
        shape = (1, -1, 1, 1) if y.dim() == 4 else (1, -1)
        return float((y - y_hat).norm() / (y - bias.reshape(shape)).norm())


@pytest.mark.parametrize("aware", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_full_rank_reproduces_the_layer(aware: bool, bias: bool) -> None:
    torch.manual_seed(0)
    layer = nn.Linear(12, 9, bias=bias)
    x = torch.randn(64, 12) + 0.5
    kind = factorization("svd")
    fitted = kind.fit(layer, _moments(layer, x) if aware else None, activation_aware=aware)
    full = kind.full_rank(describe(layer))
    assert full == (9,)
    built, error, energy = fitted.layer(full)
    torch.testing.assert_close(built(x), layer(x), rtol=0, atol=1e-5)
    assert error < 1e-6 and energy == pytest.approx(1.0)


@pytest.mark.parametrize("settings", CONVS)
@pytest.mark.parametrize("name", ["spatial_svd", "tucker2"])
def test_conv_full_rank_reproduces_the_layer(name: str, settings: dict) -> None:
    torch.manual_seed(1)
    layer = nn.Conv2d(**settings)
    kind = factorization(name)
    reason = kind.why_not(layer)
    if reason is not None:
        assert name == "tucker2" and layer.kernel_size == (1, 1) and "spatial_svd" in reason
        return
    x = torch.randn(2, layer.in_channels, 9, 11)
    built, error, _ = kind.fit(layer, None).layer(kind.full_rank(describe(layer)))
    torch.testing.assert_close(built(x), layer(x), rtol=0, atol=1e-5)
    assert error < 1e-6
    assert (built.in_channels, built.out_channels) == (layer.in_channels, layer.out_channels)


@pytest.mark.parametrize("aware", [False, True])
def test_linear_error_is_the_measured_output_error(aware: bool) -> None:
    torch.manual_seed(2)
    layer = nn.Linear(16, 10).double()
    x = torch.randn(200, 16, dtype=torch.float64) * torch.linspace(0.1, 3, 16) + 1.0
    fitted = factorization("svd").fit(layer, _moments(layer, x), activation_aware=aware,
                                      damp=0.01)
    for rank in (1, 4, 7):
        built, error, _ = fitted.layer((rank,))
        assert error == pytest.approx(_relative(layer, built, x), rel=1e-6, abs=1e-9)


def test_activation_aware_svd_fits_the_calibration_inputs_better() -> None:
    torch.manual_seed(3)
    layer = nn.Linear(16, 16)
    x = torch.randn(300, 16) * torch.logspace(-2, 1, 16)  # a few directions dominate
    moments = _moments(layer, x)
    kind = factorization("svd")
    plain = kind.fit(layer, moments).figures((4,))[0]
    aware = kind.fit(layer, moments, activation_aware=True, damp=0.0).figures((4,))[0]
    assert aware < 0.5 * plain


@pytest.mark.parametrize("settings", CONVS[:3])
@pytest.mark.parametrize("name", ["spatial_svd", "tucker2"])
def test_conv_error_on_calibration_inputs_is_the_measured_one(name: str,
                                                               settings: dict) -> None:
    torch.manual_seed(4)
    layer = nn.Conv2d(**settings).double()
    x = torch.randn(3, layer.in_channels, 8, 9, dtype=torch.float64)
    kind = factorization(name)
    fitted = kind.fit(layer, _moments(layer, x))
    for rank in kind.grid(describe(layer), 3):
        built, error, _ = fitted.layer(rank)
        assert error == pytest.approx(_relative(layer, built, x), rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("settings", CONVS)
@pytest.mark.parametrize("name", ["svd", "spatial_svd", "tucker2"])
def test_parameter_and_mac_counts_match_pytorch(name: str, settings: dict) -> None:
    torch.manual_seed(5)
    layer = nn.Linear(7, 5) if name == "svd" else nn.Conv2d(**settings)
    kind = factorization(name)
    if kind.why_not(layer) is not None:
        return
    x = torch.randn(2, 3, 7) if name == "svd" else torch.randn(2, layer.in_channels, 8, 10)
    shapes = record_shapes(layer, x, [""])[""][0]
    spec = describe(layer)
    for rank in kind.grid(spec, 4):
        built = kind.fit(layer, None).layer(rank)[0]
        assert kind.params(spec, rank) == count_parameters(built)
        assert kind.macs(spec, rank, shapes) == count_macs(built, x)


@pytest.mark.parametrize("rank", [0, -1])
def test_rank_below_one_is_refused(rank: int) -> None:
    spec = describe(nn.Linear(6, 4))
    with pytest.raises(ConfigError, match="at least 1"):
        factorization("svd").check_rank(spec, rank, "layer 'fc'")


def test_rank_above_full_names_the_layer_and_the_full_rank() -> None:
    spec = describe(nn.Conv2d(4, 6, 3))
    with pytest.raises(ConfigError, match=r"layer 'conv'.*above the full rank 4"):
        factorization("tucker2").check_rank(spec, (5, 2), "layer 'conv'")
    with pytest.raises(ConfigError, match="2 integers"):
        factorization("tucker2").check_rank(spec, 3, "layer 'conv'")


def test_grouped_and_depthwise_convolutions_are_refused_with_a_reason() -> None:
    kind = factorization("spatial_svd")
    assert "depthwise" in kind.why_not(nn.Conv2d(8, 8, 3, groups=8))
    assert "grouped" in kind.why_not(nn.Conv2d(8, 4, 3, groups=2))
    assert "not a Conv2d" in kind.why_not(nn.Conv1d(4, 4, 3))
    assert "not a Linear" in factorization("svd").why_not(nn.ReLU())


def test_activation_aware_needs_moments() -> None:
    with pytest.raises(ConfigError, match="calibration"):
        factorization("svd").fit(nn.Linear(4, 4), None, activation_aware=True)
