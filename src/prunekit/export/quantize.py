"""int8 dynamic quantization of Linear layers (``torch.ao.quantization.quantize_dynamic``),
with size, latency and output difference against the float model.

``torch.ao.quantization`` still ships with torch but is deprecated upstream in favour of
torchao; the deprecation warning is recorded in :attr:`QuantizeResult.note`.
"""

from __future__ import annotations

import copy
import io
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..measure import measure_latency

__all__ = ["QuantizeResult", "quantize_int8"]


def _state_bytes(model: nn.Module) -> int:
    """Serialized size of the state dict (``torch.save`` into memory), same way for both."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.tell()


@dataclass(frozen=True)
class QuantizeResult:
    """The quantized copy and its figures next to the float model's."""

    model: nn.Module
    quantized_layers: int
    size_bytes_fp32: int
    size_bytes_int8: int
    latency_ms_fp32: float
    latency_ms_int8: float
    max_abs_diff: float
    threads: int
    repeats: int
    note: str

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON (without the model)."""
        return {"quantized_linear_layers": self.quantized_layers,
                "size_bytes": {"fp32": self.size_bytes_fp32, "int8": self.size_bytes_int8},
                "latency_ms_median": {"fp32": self.latency_ms_fp32, "int8": self.latency_ms_int8},
                "max_abs_diff_vs_fp32": self.max_abs_diff,
                "latency_conditions": {"device": "cpu", "threads": self.threads,
                                       "repeats": self.repeats, "dtype": "float32 input"},
                "method": "torch.ao.quantization.quantize_dynamic({nn.Linear}, qint8)",
                "note": self.note}


def quantize_int8(model: nn.Module, example: torch.Tensor, *, threads: int | None = None,
                  warmup: int = 3, repeats: int = 20) -> QuantizeResult:
    """Quantize a copy of ``model``'s Linear layers to int8 (dynamic activations)."""
    from torch.ao.quantization import quantize_dynamic

    float_model = copy.deepcopy(model).eval()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quantized = quantize_dynamic(float_model, {nn.Linear}, dtype=torch.qint8)
    deprecated = [str(w.message).splitlines()[0].strip() for w in caught
                  if issubclass(w.category, DeprecationWarning)]
    note = deprecated[0] if deprecated else ""
    count = sum(1 for m in quantized.modules() if hasattr(m, "_packed_params"))
    with torch.no_grad():
        diff = (quantized(example) - model.eval()(example)).abs().max().item()
    lat32 = measure_latency(model, example, warmup=warmup, repeats=repeats, threads=threads)
    lat8 = measure_latency(quantized, example, warmup=warmup, repeats=repeats, threads=threads)
    return QuantizeResult(quantized, count, _state_bytes(model), _state_bytes(quantized),
                          lat32.median_ms, lat8.median_ms, float(diff), lat8.threads, repeats,
                          note)
