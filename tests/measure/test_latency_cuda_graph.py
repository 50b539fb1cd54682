"""CUDA-graph timing: refused off CUDA with a clear error; the capture and the event-timed
replay loop are exercised on CPU through stand-ins for ``torch.cuda`` and its events."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
import torch
from torch import nn

from prunekit.errors import ConfigError
from prunekit.measure import measure_latency, resolve_device
from prunekit.measure.latency import capture_cuda_graph, time_with_events
from prunekit.report.stats import latency_dict
from prunekit.workflow.config import OutputConfig


class FakeEvent:
    """A CPU stand-in for ``torch.cuda.Event(enable_timing=True)``."""

    log: ClassVar[list[str]] = []

    def __init__(self) -> None:
        self.t: float | None = None

    def record(self) -> None:
        self.t = time.perf_counter()
        FakeEvent.log.append("record")

    def synchronize(self) -> None:
        FakeEvent.log.append("sync")

    def elapsed_time(self, end: FakeEvent) -> float:
        assert self.t is not None and end.t is not None
        return (end.t - self.t) * 1e3


class FakeCuda:
    """Records what :func:`capture_cuda_graph` asks of ``torch.cuda``."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.capturing = False
        self.on_side_stream = False
        cuda = self

        class Stream:
            def wait_stream(self, _other: Any) -> None:
                cuda.log.append("wait")

        class CUDAGraph:
            def replay(self) -> None:
                cuda.log.append("replay")

        self.Stream, self.CUDAGraph = Stream, CUDAGraph

    def current_stream(self) -> Any:
        return self.Stream()

    @contextlib.contextmanager
    def stream(self, _stream: Any) -> Iterator[None]:
        self.on_side_stream = True
        yield
        self.on_side_stream = False

    @contextlib.contextmanager
    def graph(self, _graph: Any) -> Iterator[None]:
        self.capturing = True
        yield
        self.capturing = False

    def synchronize(self) -> None:
        self.log.append("synchronize")


def test_cuda_graph_on_cpu_is_a_clear_error() -> None:
    model = nn.Linear(4, 2)
    with pytest.raises(ConfigError, match="CUDA-graph timing needs a model on a CUDA device; "
                                          "this one is on cpu"):
        measure_latency(model, torch.randn(1, 4), warmup=0, repeats=1, cuda_graph=True)
    result = measure_latency(model, torch.randn(1, 4), warmup=0, repeats=2)
    assert result.cuda_graph is False and latency_dict(result, 0)["cuda_graph"] is False


def test_event_timing_loop_runs_the_step_between_events() -> None:
    FakeEvent.log = []
    calls: list[int] = []

    def step() -> None:
        FakeEvent.log.append("step")
        calls.append(1)

    times = time_with_events(step, 3, FakeEvent)
    assert len(times) == 3 and all(t >= 0 for t in times) and len(calls) == 3
    assert FakeEvent.log[:4] == ["record", "step", "record", "sync"]


def test_capture_warms_up_on_a_side_stream_then_replays() -> None:
    cuda = FakeCuda()
    seen: list[str] = []

    def step() -> None:
        seen.append("capture" if cuda.capturing else
                    "side warm-up" if cuda.on_side_stream else "other")

    replay = capture_cuda_graph(step, warmup=1, cuda=cuda)
    assert seen == ["side warm-up"] * 3 + ["capture"]  # at least 3 warm-up runs
    assert cuda.log == ["wait", "wait", "replay", "synchronize"]
    times = time_with_events(replay, 4, FakeEvent)
    assert len(times) == 4 and cuda.log.count("replay") == 5
    assert seen.count("capture") == 1  # replays do not run the Python step again


def test_devices_are_checked() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    for bad, message in (("meta", "not supported"), ("gpu0", "unknown device")):
        with pytest.raises(ConfigError, match=message):
            resolve_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available here"):
            resolve_device("cuda")
    with pytest.raises(ConfigError, match="needs a CUDA device"):
        OutputConfig(cuda_graph=True)
    with pytest.raises(ConfigError, match="device must be cpu, cuda or cuda:N"):
        OutputConfig(device="metal")
    assert OutputConfig(device="cuda:0", cuda_graph=True).cuda_graph
