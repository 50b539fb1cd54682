"""2:4 acceleration: the CPU path changes nothing; decisions follow injected timings."""

from __future__ import annotations

import torch
import torch.nn as nn

from prunekit.mask import (
    NM,
    MaskConfig,
    accelerate_semi_structured,
    finalize,
    is_two_four,
    plan_semi_structured,
    sparsify,
)


def _two_four_mlp() -> nn.Sequential:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(128, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                          nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))
    sparsify(model, 0.5, MaskConfig(pattern=NM(2, 4), ignore=("4",)))
    return finalize(model)


def test_cpu_reports_no_acceleration_and_changes_nothing() -> None:
    model = _two_four_mlp()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = accelerate_semi_structured(model, (torch.randn(8, 128),))
    assert not report.applies and report.converted == []
    assert "no acceleration applies on cpu" in report.message
    assert [d.name for d in report.layers] == ["0", "2", "4", "6"]
    assert all(not d.converted for d in report.layers)
    after = model.state_dict()
    assert all(torch.equal(after[k], v) and after[k].layout == torch.strided
               for k, v in before.items())
    assert "no acceleration applies" in report.table()


def test_decisions_follow_the_injected_timing_per_layer() -> None:
    model = _two_four_mlp().half()
    timings = {"0": (2.0e-3, 1.0e-3), "2": (1.0e-3, 2.0e-3)}  # 0: 2x faster, 2: 2x slower
    calls: list[tuple[str, tuple[int, ...]]] = []

    def measure(name: str, layer: nn.Linear, x: torch.Tensor) -> tuple[float, float]:
        calls.append((name, tuple(x.shape)))
        return timings[name]

    decisions = {d.name: d for d in plan_semi_structured(
        model, (torch.randn(8, 128).half(),), measure, min_speedup=1.1)}
    # only eligible layers are timed, on the real input shapes they see
    assert calls == [("0", (8, 128)), ("2", (8, 256))]
    assert decisions["0"].converted and decisions["0"].speedup == 2.0
    assert not decisions["2"].converted and decisions["2"].speedup == 0.5
    assert "not 2:4" in decisions["4"].reason  # ignored when masking: dense
    assert "multiple of 32×64" in decisions["6"].reason  # 10×64 too small for the kernels


def test_min_speedup_threshold_and_dtype_rule() -> None:
    model = _two_four_mlp()
    fp32 = plan_semi_structured(model, (torch.randn(4, 128),),
                                lambda n, layer, x: (1.0, 0.5))
    assert all(not d.converted and "float32" in d.reason for d in fp32[:2])
    model = model.half()
    close = plan_semi_structured(model, (torch.randn(4, 128).half(),),
                                 lambda n, layer, x: (1.04e-3, 1.0e-3), min_speedup=1.05)
    assert not any(d.converted for d in close)  # 4% faster is inside the noise margin


def test_is_two_four() -> None:
    w = torch.tensor([[1.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 3.0]])
    assert is_two_four(w)
    w[0, 1] = 5.0
    assert not is_two_four(w)
    assert not is_two_four(torch.zeros(2, 6))
