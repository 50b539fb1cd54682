"""Latency of a forward pass: warm up, repeat, report the median and the spread.

Every result carries the batch size, dtype, device and thread count it was measured with.
On CUDA, passes are timed with CUDA events; optionally one pass is captured in a CUDA graph
and its replays are timed, so kernel-launch overhead does not hide the model's cost.
Speed claims belong to benchmarks, not to unit tests.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from prunekit.errors import ConfigError
from prunekit.measure.counts import ExampleInputs, eval_mode, run_model

__all__ = ["LatencyResult", "capture_cuda_graph", "measure_latency", "resolve_device",
           "time_with_events"]


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
    cuda_graph: bool = False

    def __str__(self) -> str:
        graph = ", CUDA-graph replay" if self.cuda_graph else ""
        return (
            f"{self.median_ms:.3f} ms median (p10 {self.p10_ms:.3f}, p90 {self.p90_ms:.3f}; "
            f"n={self.repeats}, batch {self.batch_size}, {self.dtype}, {self.device}, "
            f"{self.threads} threads{graph})"
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


def describe_run(model: nn.Module,
                 example_inputs: ExampleInputs) -> tuple[torch.device, str, int | None]:
    """The device, dtype name and batch size a timing of ``model`` on these inputs runs with."""
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


class _Event(Protocol):
    """What the timing loop needs of an event (``torch.cuda.Event`` in practice)."""

    def record(self) -> None: ...

    def synchronize(self) -> None: ...

    def elapsed_time(self, end: Any) -> float: ...


def time_with_events(step: Callable[[], Any], repeats: int,
                     new_event: Callable[[], _Event]) -> list[float]:
    """Milliseconds of ``repeats`` calls of ``step``, each between two recorded events.

    On CUDA ``new_event`` makes timing ``torch.cuda.Event`` objects and ``step`` runs the
    model or replays a captured graph; any object with the same three methods works.
    """
    times_ms: list[float] = []
    for _ in range(repeats):
        start, end = new_event(), new_event()
        start.record()
        step()
        end.record()
        end.synchronize()
        times_ms.append(float(start.elapsed_time(end)))
    return times_ms


def capture_cuda_graph(step: Callable[[], Any], *, warmup: int = 3,
                       cuda: Any = None) -> Callable[[], None]:
    """Capture ``step`` (one forward pass on static inputs) in a CUDA graph; return its
    replay.

    ``warmup`` (at least 3) runs go on a side stream first, as capture requires; the graph
    is replayed once before it is returned. ``cuda`` is the ``torch.cuda`` module (tests
    pass a stand-in).
    """
    cuda = torch.cuda if cuda is None else cuda
    side = cuda.Stream()
    side.wait_stream(cuda.current_stream())
    with cuda.stream(side):
        for _ in range(max(3, warmup)):
            step()
    cuda.current_stream().wait_stream(side)
    graph = cuda.CUDAGraph()
    with cuda.graph(graph):
        step()
    graph.replay()
    cuda.synchronize()
    return graph.replay


def resolve_device(text: str | torch.device) -> torch.device:
    """``"cpu"``, ``"cuda"`` or ``"cuda:N"`` as a device that exists here; raise
    :class:`ConfigError` otherwise."""
    try:
        device = torch.device(text)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"unknown device {text!r}: use cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device {text!r} is not supported for measurements: use cpu, cuda "
                          "or cuda:N")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {text!r}: CUDA is not available here (torch "
                              f"{torch.__version__}, no usable GPU): measure on cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device {text!r}: only {torch.cuda.device_count()} CUDA "
                              "device(s) here")
    return device


def measure_latency(
    model: nn.Module,
    example_inputs: ExampleInputs,
    *,
    warmup: int = 10,
    repeats: int = 50,
    threads: int | None = None,
    cuda_graph: bool = False,
) -> LatencyResult:
    """Time ``repeats`` forward passes after ``warmup`` untimed ones, in eval mode, no grad.

    On CPU each pass is timed with :func:`time.perf_counter`; on CUDA with CUDA events after
    a synchronize. ``cuda_graph=True`` (CUDA only; :class:`ConfigError` elsewhere) captures
    one forward pass in a ``torch.cuda.CUDAGraph`` and times its replays, so kernel-launch
    overhead does not hide the model's cost; inputs must then be tensors on the model's
    device. ``threads`` sets :func:`torch.set_num_threads` for the measurement only; the
    previous setting and the model's training flags are restored afterwards.
    """
    if warmup < 0:
        raise ConfigError(f"warmup must be >= 0, got {warmup}")
    if repeats < 1:
        raise ConfigError(f"repeats must be >= 1, got {repeats}")
    if threads is not None and threads < 1:
        raise ConfigError(f"threads must be >= 1 or None, got {threads}")

    device, dtype, batch = describe_run(model, example_inputs)
    on_cuda = device.type == "cuda"
    if cuda_graph and not on_cuda:
        raise ConfigError(f"CUDA-graph timing needs a model on a CUDA device; this one is on "
                          f"{device}: move it to cuda, or time without cuda_graph")
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        used_threads = torch.get_num_threads()
        times_ms: list[float] = []

        def step() -> None:
            run_model(model, example_inputs)

        with eval_mode(model), torch.no_grad():
            if on_cuda:
                with torch.cuda.device(device):
                    timed: Callable[[], Any] = step
                    if cuda_graph:
                        timed = capture_cuda_graph(step, warmup=warmup)
                    else:
                        for _ in range(warmup):
                            step()
                    torch.cuda.synchronize()
                    times_ms = time_with_events(
                        timed, repeats, lambda: torch.cuda.Event(enable_timing=True))
            else:
                for _ in range(warmup):
                    step()
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    step()
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
        cuda_graph=cuda_graph,
    )
