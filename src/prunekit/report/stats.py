"""Before/after figures of one model: parameters, MACs, FLOPs, size, latency, peak memory,
metric."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from torch import nn

from ..measure import (
    count_flops,
    count_parameters,
    measure_latency,
    measure_peak_memory,
    model_size_bytes,
)
from ..measure.counts import ExampleInputs
from ..measure.latency import LatencyResult
from ..measure.memory import PeakMemory

__all__ = ["ModelStats", "collect_stats", "latency_dict"]


def latency_dict(latency: LatencyResult, warmup: int) -> dict[str, Any]:
    """A latency result as the report's ``latency_ms`` object (conditions included)."""
    return {"median": latency.median_ms, "p10": latency.p10_ms, "p90": latency.p90_ms,
            "repeats": latency.repeats, "warmup": warmup, "threads": latency.threads,
            "batch_size": latency.batch_size, "device": latency.device, "dtype": latency.dtype,
            "cuda_graph": latency.cuda_graph}


@dataclass(frozen=True)
class ModelStats:
    """Measured figures of a model; ``metric``, ``file_bytes`` and ``peak_memory`` are
    optional."""

    params: int
    flops: int
    size_bytes: int
    latency: LatencyResult
    warmup: int
    metric: float | None = None
    file_bytes: int | None = None
    peak_memory: PeakMemory | None = None

    @property
    def macs(self) -> int:
        """Multiply-accumulates (FLOPs as PyTorch counts them, halved)."""
        return self.flops // 2

    def with_metric(self, metric: float | None) -> ModelStats:
        return replace(self, metric=metric)

    def with_file_bytes(self, file_bytes: int | None) -> ModelStats:
        return replace(self, file_bytes=file_bytes)

    def to_dict(self) -> dict[str, Any]:
        """The report's ``before`` / ``after`` object."""
        return {"params": self.params, "macs": self.macs, "flops": self.flops,
                "size_bytes": self.size_bytes, "file_bytes": self.file_bytes,
                "latency_ms": latency_dict(self.latency, self.warmup), "metric": self.metric,
                "peak_memory": None if self.peak_memory is None else self.peak_memory.to_dict()}


def collect_stats(model: nn.Module, example_inputs: ExampleInputs, *, threads: int | None = None,
                  warmup: int = 10, repeats: int = 50, metric: float | None = None,
                  latency_inputs: ExampleInputs | None = None,
                  memory: bool = True, cuda_graph: bool = False) -> ModelStats:
    """Count ``model`` on ``example_inputs`` and time it on ``latency_inputs`` (default: the
    same), on the model's device. Counts scale with the batch size of ``example_inputs``.
    ``memory``: also the peak-RSS growth of one forward pass on the timed inputs;
    ``cuda_graph``: time CUDA-graph replays (CUDA only, see :func:`measure_latency`)."""
    timed = example_inputs if latency_inputs is None else latency_inputs
    peak = measure_peak_memory(model, timed) if memory else None
    latency = measure_latency(model, timed, warmup=warmup, repeats=repeats, threads=threads,
                              cuda_graph=cuda_graph)
    return ModelStats(params=count_parameters(model), flops=count_flops(model, example_inputs),
                      size_bytes=model_size_bytes(model), latency=latency, warmup=warmup,
                      metric=metric, peak_memory=peak)
