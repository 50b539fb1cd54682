"""Measurement: parameters, FLOPs, model size, latency and peak memory."""

from prunekit.measure.counts import (
    count_flops,
    count_macs,
    count_parameters,
    model_size_bytes,
)
from prunekit.measure.latency import LatencyResult, measure_latency, resolve_device
from prunekit.measure.memory import PeakMemory, measure_peak_memory

__all__ = [
    "LatencyResult",
    "PeakMemory",
    "count_flops",
    "count_macs",
    "count_parameters",
    "measure_latency",
    "measure_peak_memory",
    "model_size_bytes",
    "resolve_device",
]
