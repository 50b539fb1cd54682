"""2:4 acceleration on GPU, used only where a timing on the device shows it is faster.

:func:`accelerate_semi_structured` records the real input of every ``nn.Linear`` on example
inputs, times the dense layer against its ``torch.sparse.to_sparse_semi_structured``
version on those inputs, converts only the layers that are at least ``min_speedup`` times
faster, and returns a per-layer :class:`AccelerationReport`. On CPU nothing is converted and
the report says that no acceleration applies. :func:`plan_semi_structured` is the same
decision without converting, with an injectable timing function (for tests and dry runs).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import parametrize

from ..errors import ConfigError

Measure = Callable[[str, nn.Linear, torch.Tensor], "tuple[float, float]"]
"""``measure(name, layer, x) -> (dense seconds, sparse seconds)`` for one call on ``x``."""

SUPPORTED_DTYPES = (torch.float16, torch.bfloat16)
MIN_ROWS, MIN_COLS = 32, 64  # the stricter (CUTLASS) fp16/bf16 shape constraints


@dataclass(frozen=True)
class LayerDecision:
    """What happened to one Linear layer, and why."""

    name: str
    out_features: int
    in_features: int
    input_shape: tuple[int, ...] | None
    converted: bool
    reason: str
    dense_ms: float | None = None
    sparse_ms: float | None = None

    @property
    def speedup(self) -> float | None:
        """Dense time over sparse time (above 1 = sparse is faster), if measured."""
        if self.dense_ms is None or not self.sparse_ms:
            return None
        return self.dense_ms / self.sparse_ms


@dataclass(frozen=True)
class AccelerationReport:
    """Per-layer decisions of a 2:4 conversion."""

    device: str
    applies: bool
    message: str
    layers: tuple[LayerDecision, ...]

    @property
    def converted(self) -> list[str]:
        """Names of the converted layers."""
        return [d.name for d in self.layers if d.converted]

    def table(self) -> str:
        """A Markdown table of the decisions."""
        rows = [f"device: {self.device}; {self.message}", "",
                "| layer | out×in | input | dense ms | 2:4 ms | speed-up | converted | reason |",
                "|---|---|---|---:|---:|---:|---|---|"]
        def fmt(v: float | None) -> str:
            return "" if v is None else f"{v:.4f}"

        for d in self.layers:
            sp = "" if d.speedup is None else f"{d.speedup:.2f}×"
            rows.append(f"| {d.name} | {d.out_features}×{d.in_features} | "
                        f"{'' if d.input_shape is None else list(d.input_shape)} | "
                        f"{fmt(d.dense_ms)} | {fmt(d.sparse_ms)} | {sp} | "
                        f"{'yes' if d.converted else 'no'} | {d.reason} |")
        return "\n".join(rows)


def is_two_four(weight: torch.Tensor) -> bool:
    """Whether every run of 4 weights along the input dimension has at most 2 non-zeros."""
    if weight.dim() != 2 or weight.shape[1] % 4:
        return False
    return bool(((weight != 0).reshape(weight.shape[0], -1, 4).sum(-1) <= 2).all())


def ineligible_reason(layer: nn.Linear) -> str | None:
    """Why ``layer`` cannot be converted, or ``None`` if it can."""
    if parametrize.is_parametrized(layer):
        return "still masked: call prunekit.mask.finalize(model) first"
    w = layer.weight
    if w.dtype not in SUPPORTED_DTYPES:
        return f"dtype {str(w.dtype).removeprefix('torch.')} (needs float16 or bfloat16)"
    rows, cols = w.shape
    if rows % MIN_ROWS or cols % MIN_COLS:
        return f"shape {rows}×{cols} is not a multiple of {MIN_ROWS}×{MIN_COLS}"
    if not is_two_four(w.detach()):
        return "weight is not 2:4 sparse along the input dimension"
    return None


def record_linear_inputs(model: nn.Module, example_inputs: Sequence[object]
                         ) -> dict[str, tuple[nn.Linear, torch.Tensor]]:
    """Run ``model`` once and keep the first input each ``nn.Linear`` receives."""
    seen: dict[str, tuple[nn.Linear, torch.Tensor]] = {}
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            def hook(mod: nn.Module, args: tuple[object, ...], name: str = name) -> None:
                if name not in seen and isinstance(args[0], torch.Tensor):
                    seen[name] = (mod, args[0].detach().clone())  # type: ignore[assignment]
            handles.append(module.register_forward_pre_hook(hook))
    try:
        with torch.no_grad():
            model(*example_inputs)
    finally:
        for h in handles:
            h.remove()
    return seen


def plan_semi_structured(model: nn.Module, example_inputs: Sequence[object], measure: Measure,
                         min_speedup: float = 1.05) -> list[LayerDecision]:
    """Decide per Linear layer whether 2:4 is worth it, timing with ``measure``."""
    if not min_speedup > 0:
        raise ConfigError(f"min_speedup must be positive, got {min_speedup!r}")
    inputs = record_linear_inputs(model, example_inputs)
    decisions = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear):
            continue
        shape = tuple(inputs[name][1].shape) if name in inputs else None
        base = dict(name=name, out_features=module.out_features,
                    in_features=module.in_features, input_shape=shape)
        reason = ineligible_reason(module)
        if reason is None and name not in inputs:
            reason = "not run by the example inputs"
        if reason is not None:
            decisions.append(LayerDecision(converted=False, reason=reason, **base))
            continue
        dense_s, sparse_s = measure(name, module, inputs[name][1])
        faster = sparse_s > 0 and dense_s / sparse_s >= min_speedup
        why = (f"2:4 is {dense_s / sparse_s:.2f}× dense" if sparse_s > 0 else "no timing")
        why += " ≥ " if faster else " < "
        decisions.append(LayerDecision(converted=faster, reason=f"{why}{min_speedup:g}× needed",
                                       dense_ms=dense_s * 1e3, sparse_ms=sparse_s * 1e3, **base))
    return decisions


def cuda_measure(repeats: int = 20, warmup: int = 5) -> Measure:
    """A :data:`Measure` timing one call with CUDA events; the median of ``repeats``."""

    def time_call(fn: Callable[[], object]) -> float:
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(repeats):
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        return statistics.median(times)

    def measure(name: str, layer: nn.Linear, x: torch.Tensor) -> tuple[float, float]:
        from torch.sparse import to_sparse_semi_structured

        with torch.no_grad():
            w = layer.weight.detach()
            sw = to_sparse_semi_structured(w)
            dense = time_call(lambda: F.linear(x, w, layer.bias))
            sparse = time_call(lambda: F.linear(x, sw, layer.bias))
        return dense, sparse

    return measure


def accelerate_semi_structured(model: nn.Module, example_inputs: Sequence[object],
                               measure: Measure | None = None,
                               min_speedup: float = 1.05) -> AccelerationReport:
    """Convert 2:4-sparse Linear layers to semi-structured tensors where measured faster.

    The model must be finalised, in float16/bfloat16, on a CUDA device. Anywhere else the
    model is left unchanged and the report says that no acceleration applies.
    """
    params = list(model.parameters())
    device = params[0].device if params else torch.device("cpu")
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if device.type != "cuda" or not torch.cuda.is_available():
        message = (f"no acceleration applies on {device.type}: 2:4 semi-structured kernels "
                   "need a CUDA GPU (compute capability 8.0 or newer); nothing was changed")
        layers = tuple(LayerDecision(n, m.out_features, m.in_features, None, False,
                                     f"no semi-structured kernels on {device.type}")
                       for n, m in linears)
        return AccelerationReport(str(device), False, message, layers)
    from torch.sparse import to_sparse_semi_structured

    decisions = plan_semi_structured(model, example_inputs, measure or cuda_measure(),
                                     min_speedup)
    modules = dict(model.named_modules())
    for d in decisions:
        if d.converted:
            layer = modules[d.name]
            layer.weight = nn.Parameter(to_sparse_semi_structured(layer.weight.detach()),
                                        requires_grad=False)
    n = sum(d.converted for d in decisions)
    name = torch.cuda.get_device_name(device)
    return AccelerationReport(f"{device} ({name})", True,
                              f"{n} of {len(decisions)} Linear layers converted", tuple(decisions))
