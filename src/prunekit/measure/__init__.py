"""Measurement: parameters, FLOPs, model size and latency."""

from prunekit.measure.counts import (
    count_flops,
    count_macs,
    count_parameters,
    model_size_bytes,
)
from prunekit.measure.latency import LatencyResult, measure_latency

__all__ = [
    "LatencyResult",
    "count_flops",
    "count_macs",
    "count_parameters",
    "model_size_bytes",
    "measure_latency",
]
