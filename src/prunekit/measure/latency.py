"""Latency of a forward pass: warm up, repeat, report the median and the spread.

Every result carries the batch size, dtype, device and thread count it was measured with.
Speed claims belong to benchmarks, not to unit tests.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from prunekit.errors import ConfigError
from prunekit.measure.counts import ExampleInputs, eval_mode, run_model

__all__ = ["LatencyResult", "measure_latency"]


@dataclass(frozen=True)
class LatencyResult:
    """Forward-pass latency in milliseconds, with the conditions it was measured under."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    repeats: int
    threads: int
    device: str
    dtype: str
    batch_size: int | None

    def __str__(self) -> str:
        return (
            f"{self.median_ms:.3f} ms median (p10 {self.p10_ms:.3f}, p90 {self.p90_ms:.3f}; "
            f"n={self.repeats}, batch {self.batch_size}, {self.dtype}, {self.device}, "
            f"{self.threads} threads)"
        )


def _tensors(example_inputs: ExampleInputs) -> list[torch.Tensor]:
    if isinstance(example_inputs, torch.Tensor):
        return [example_inputs]
    if isinstance(example_inputs, Mapping):
        values: list[Any] = list(example_inputs.values())
    else:
        values = list(example_inputs)
    return [v for v in values if isinstance(v, torch.Tensor)]


def _quantile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolation quantile of an already sorted list."""
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def _describe(model: nn.Module, example_inputs: ExampleInputs) -> tuple[torch.device, str, int | None]:
    tensors = _tensors(example_inputs)
    param = next(iter(model.parameters()), None)
    if param is not None:
        device, dtype = param.device, param.dtype
    elif tensors:
        device, dtype = tensors[0].device, tensors[0].dtype
    else:
        device, dtype = torch.device("cpu"), torch.get_default_dtype()
    batch = tensors[0].shape[0] if tensors and tensors[0].dim() > 0 else None
    return device, str(dtype).removeprefix("torch."), batch


def measure_latency(
    model: nn.Module,
    example_inputs: ExampleInputs,
    *,
    warmup: int = 10,
    repeats: int = 50,
    threads: int | None = None,
) -> LatencyResult:
    """Time ``repeats`` forward passes after ``warmup`` untimed ones, in eval mode, no grad.

    On CPU each pass is timed with :func:`time.perf_counter`; on CUDA with CUDA events after
    a synchronize. ``threads`` sets :func:`torch.set_num_threads` for the measurement only;
    the previous setting and the model's training flags are restored afterwards.
    """
    if warmup < 0:
        raise ConfigError(f"warmup must be >= 0, got {warmup}")
    if repeats < 1:
        raise ConfigError(f"repeats must be >= 1, got {repeats}")
    if threads is not None and threads < 1:
        raise ConfigError(f"threads must be >= 1 or None, got {threads}")

    device, dtype, batch = _describe(model, example_inputs)
    on_cuda = device.type == "cuda"
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        used_threads = torch.get_num_threads()
        times_ms: list[float] = []
        with eval_mode(model), torch.no_grad():
            for _ in range(warmup):
                run_model(model, example_inputs)
            if on_cuda:
                with torch.cuda.device(device):
                    torch.cuda.synchronize()
                    for _ in range(repeats):
                        start = torch.cuda.Event(enable_timing=True)
                        end = torch.cuda.Event(enable_timing=True)
                        start.record()
                        run_model(model, example_inputs)
                        end.record()
                        end.synchronize()
                        times_ms.append(float(start.elapsed_time(end)))
            else:
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    run_model(model, example_inputs)
                    times_ms.append((time.perf_counter() - t0) * 1e3)
    finally:
        if threads is not None:
            torch.set_num_threads(previous_threads)

    times_ms.sort()
    return LatencyResult(
        median_ms=statistics.median(times_ms),
        p10_ms=_quantile(times_ms, 0.10),
        p90_ms=_quantile(times_ms, 0.90),
        repeats=repeats,
        threads=used_threads,
        device=str(device),
        dtype=dtype,
        batch_size=batch,
    )
