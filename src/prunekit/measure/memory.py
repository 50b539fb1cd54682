"""Peak memory of one forward pass: how far the process's peak resident set size (RSS) rises
above its RSS just before the pass (and, on CUDA, the peak of allocated device memory).

On Linux the peak (``VmHWM`` in ``/proc/self/status``) is first reset to the current RSS by
writing ``5`` to ``/proc/self/clear_refs``, so the figure belongs to this pass alone. Where
that reset is not allowed, the growth of ``VmHWM`` is reported (a lower bound: 0 when an
earlier peak was higher), and without ``/proc`` the growth of ``resource.getrusage``'s
``ru_maxrss``. The method used travels with the figure.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .counts import ExampleInputs, eval_mode, run_model

__all__ = ["PeakMemory", "measure_peak_memory"]

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


@dataclass(frozen=True)
class PeakMemory:
    """Bytes the peak RSS rose during the pass, how it was measured, and CUDA's peak."""

    rss_growth_bytes: int
    method: str
    baseline_rss_bytes: int | None = None
    cuda_peak_allocated_bytes: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The report's ``peak_memory`` object."""
        return {"rss_growth_bytes": self.rss_growth_bytes, "method": self.method,
                "baseline_rss_bytes": self.baseline_rss_bytes,
                "cuda_peak_allocated_bytes": self.cuda_peak_allocated_bytes}


def _status_kib(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _reset_peak() -> bool:
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def _maxrss_bytes() -> int | None:
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Windows
        return None
    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(value) if sys.platform == "darwin" else int(value) * 1024  # bytes vs KiB


def _device(model: nn.Module) -> torch.device:
    for tensor in [*model.parameters(), *model.buffers()]:
        return tensor.device
    return torch.device("cpu")


def measure_peak_memory(model: nn.Module, example_inputs: ExampleInputs) -> PeakMemory:
    """Run ``model`` once (eval mode, no grad) and report how much the peak RSS rose."""
    cuda = _device(model).type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    if _status_kib("VmHWM") is not None:
        reset = _reset_peak()
        before_rss = _status_kib("VmRSS")
        before_peak = _status_kib("VmHWM")
    else:
        reset, before_rss, before_peak = False, None, _maxrss_bytes()
    with torch.no_grad(), eval_mode(model):
        run_model(model, example_inputs)
    cuda_peak = None
    if cuda:
        torch.cuda.synchronize()
        cuda_peak = int(torch.cuda.max_memory_allocated())
    if before_rss is not None:
        after_peak = _status_kib("VmHWM") or 0
        base = before_rss if reset else (before_peak or 0)
        method = ("VmHWM after resetting it via /proc/self/clear_refs" if reset
                  else "VmHWM growth (lower bound: the peak could not be reset)")
        return PeakMemory(max(0, after_peak - base) * 1024, method, before_rss * 1024,
                          cuda_peak)
    after = _maxrss_bytes()
    growth = 0 if after is None or before_peak is None else max(0, after - before_peak)
    return PeakMemory(growth, "getrusage ru_maxrss growth (lower bound)", None, cuda_peak)
