"""Exact counts and sane latency results; no timing thresholds."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from prunekit.measure import (
    LatencyResult,
    count_flops,
    count_macs,
    count_parameters,
    model_size_bytes,
    measure_latency,
)


def test_linear_flops_exact() -> None:
    model = nn.Linear(10, 20)
    assert count_flops(model, torch.randn(3, 10)) == 2 * 3 * 10 * 20
    assert count_macs(model, torch.randn(3, 10)) == 3 * 10 * 20


def test_conv_flops_exact() -> None:
    # 3x3 conv, 4 -> 8 channels, padding 1 keeps 16x16; batch 2.
    model = nn.Conv2d(4, 8, kernel_size=3, padding=1, bias=False)
    x = torch.randn(2, 4, 16, 16)
    expected = 2 * (2 * 8 * 16 * 16) * (4 * 3 * 3)
    assert count_flops(model, x) == expected


def test_grouped_conv_flops_exact() -> None:
    model = nn.Conv2d(8, 8, kernel_size=3, padding=1, groups=4, bias=False)
    x = torch.randn(1, 8, 10, 10)
    expected = 2 * (8 * 10 * 10) * (8 // 4 * 3 * 3)
    assert count_flops(model, x) == expected


def test_tuple_and_dict_inputs() -> None:
    class Two(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(5, 7)
            self.b = nn.Linear(6, 7)

        def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return self.a(x) + self.b(y)

    model = Two()
    x, y = torch.randn(2, 5), torch.randn(2, 6)
    expected = 2 * 2 * 7 * (5 + 6)
    assert count_flops(model, (x, y)) == expected
    assert count_flops(model, {"x": x, "y": y}) == expected


def test_parameters_exact() -> None:
    model = nn.Sequential(nn.Conv2d(3, 16, 3), nn.BatchNorm2d(16), nn.Flatten(), nn.Linear(16, 4))
    expected = (16 * 3 * 3 * 3 + 16) + (16 + 16) + (16 * 4 + 4)
    assert count_parameters(model) == expected
    model[0].weight.requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == expected - 16 * 3 * 3 * 3


def test_shared_parameters_counted_once() -> None:
    lin = nn.Linear(4, 4)
    model = nn.Sequential(lin, nn.ReLU(), lin)
    assert count_parameters(model) == 4 * 4 + 4


def test_model_size_bytes() -> None:
    model = nn.Sequential(nn.Linear(10, 20), nn.BatchNorm1d(20))
    params = 10 * 20 + 20 + 20 + 20
    buffers_f32 = 20 + 20  # running_mean, running_var
    buffers_i64 = 1  # num_batches_tracked
    assert model_size_bytes(model) == 4 * (params + buffers_f32) + 8 * buffers_i64
    model.half()
    assert model_size_bytes(model) == 2 * (params + buffers_f32) + 8 * buffers_i64


def _mixed_mode_model() -> nn.Module:
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5), nn.BatchNorm1d(4))
    model.train()
    model[1].eval()  # a deliberately mixed state must survive
    return model


def test_training_flags_restored_by_count_flops() -> None:
    model = _mixed_mode_model()
    before = [m.training for m in model.modules()]
    stats_before = model[2].running_mean.clone()
    count_flops(model, torch.randn(8, 4))
    assert [m.training for m in model.modules()] == before
    # eval mode: BatchNorm statistics were not updated
    assert torch.equal(model[2].running_mean, stats_before)


def test_count_flops_no_grad() -> None:
    seen: list[bool] = []

    class Probe(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(torch.is_grad_enabled())
            return x

    count_flops(Probe(), torch.randn(1))
    assert seen == [False]
    assert torch.is_grad_enabled()


def test_bad_inputs_raise() -> None:
    from prunekit.errors import PrunekitError

    with pytest.raises(PrunekitError, match="example_inputs"):
        count_flops(nn.Linear(2, 2), 3)  # type: ignore[arg-type]


def test_latency_result_sane() -> None:
    model = _mixed_mode_model()
    before = [m.training for m in model.modules()]
    threads_before = torch.get_num_threads()
    result = measure_latency(model, torch.randn(8, 4), warmup=2, repeats=9, threads=1)
    assert isinstance(result, LatencyResult)
    assert 0 < result.p10_ms <= result.median_ms <= result.p90_ms
    assert result.repeats == 9
    assert result.threads == 1
    assert result.device == "cpu"
    assert result.dtype == "float32"
    assert result.batch_size == 8
    assert torch.get_num_threads() == threads_before
    assert [m.training for m in model.modules()] == before
    assert "ms" in str(result)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.median_ms = 0.0  # type: ignore[misc]


def test_latency_default_threads_and_single_repeat() -> None:
    result = measure_latency(nn.Linear(3, 3), torch.randn(1, 3), warmup=0, repeats=1)
    assert result.threads == torch.get_num_threads()
    assert result.p10_ms == result.median_ms == result.p90_ms > 0


@pytest.mark.parametrize("kwargs", [{"repeats": 0}, {"warmup": -1}, {"threads": 0}])
def test_latency_rejects_bad_settings(kwargs: dict[str, int]) -> None:
    from prunekit.errors import ConfigError

    with pytest.raises(ConfigError):
        measure_latency(nn.Linear(3, 3), torch.randn(1, 3), **kwargs)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_latency_cuda() -> None:
    model = nn.Linear(16, 16).cuda()
    result = measure_latency(model, torch.randn(4, 16, device="cuda"), warmup=2, repeats=5)
    assert result.device.startswith("cuda")
    assert 0 < result.p10_ms <= result.median_ms <= result.p90_ms


class SelfAttention(torch.nn.Module):
    def __init__(self, heads: int) -> None:
        super().__init__()
        self.attn = torch.nn.MultiheadAttention(16 * heads, heads, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(x, x, x, need_weights=False)[0]


@pytest.mark.parametrize("heads", [2, 3])
def test_attention_is_counted_whether_or_not_its_fast_path_would_run(heads: int):
    """The fused inference path of nn.MultiheadAttention is invisible to the FLOP counter."""
    model = SelfAttention(heads).eval()
    embed, tokens = 16 * heads, 4
    projections = tokens * embed * 3 * embed + tokens * embed * embed
    attention = 2 * tokens * tokens * embed  # q·kᵀ and weights·v
    assert count_macs(model, torch.randn(1, tokens, embed)) == projections + attention
    assert torch.backends.mha.get_fastpath_enabled()  # restored afterwards
