"""ONNX Runtime sessions: run, time and profile an ``.onnx`` file on the CPU execution
provider, with the conditions (threads, batch size, provider) stated with every figure.

``onnxruntime`` (extra ``prunekit[export]``) is imported only when a session is made.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from .latency import LatencyResult, _quantile

__all__ = ["OnnxModule", "OnnxProfile", "OpTime", "measure_onnx_latency", "onnx_session",
           "profile_onnx", "run_onnx"]

PROVIDER = "CPUExecutionProvider"
OnnxInputs = torch.Tensor | np.ndarray | Mapping[str, Any]


def _require_ort() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError("ONNX Runtime is needed: pip install 'prunekit[export]'") from None
    return onnxruntime


def onnx_session(path: str | os.PathLike[str], *, threads: int | None = None,
                 profile_dir: str | None = None) -> Any:
    """An ``InferenceSession`` of ``path`` on the CPU, all graph optimisations on;
    ``threads`` intra-op threads (default: torch's setting), one inter-op thread;
    ``profile_dir``: write an ORT profile there when the session ends."""
    ort = _require_ort()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if profile_dir is not None:
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(profile_dir) / "ort_profile")
    return ort.InferenceSession(str(path), options, providers=[PROVIDER])


def _feed(session: Any, inputs: OnnxInputs) -> dict[str, np.ndarray]:
    """Session inputs by name: one tensor/array for a one-input model, or a mapping."""
    names = [i.name for i in session.get_inputs()]
    if isinstance(inputs, Mapping):
        missing = [n for n in names if n not in inputs]
        if missing:
            raise ConfigError(f"the ONNX model needs inputs {names}; missing {missing}")
        return {n: _array(inputs[n]) for n in names}
    if len(names) != 1:
        raise ConfigError(f"the ONNX model has {len(names)} inputs {names}: pass a mapping")
    return {names[0]: _array(inputs)}


def _array(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def run_onnx(session: Any, inputs: OnnxInputs) -> np.ndarray:
    """The first output of one run."""
    return session.run(None, _feed(session, inputs))[0]


class OnnxModule(nn.Module):
    """An ONNX Runtime session behind a module's call (one tensor in, the first output out
    as a tensor), so that code written for models (evaluation loops) runs it unchanged."""

    def __init__(self, path: str | os.PathLike[str], *, threads: int | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        self.session = onnx_session(path, threads=threads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(run_onnx(self.session, x))


def _batch(feed: Mapping[str, np.ndarray]) -> int | None:
    first = next(iter(feed.values()), None)
    return int(first.shape[0]) if first is not None and first.ndim else None


def measure_onnx_latency(path: str | os.PathLike[str], inputs: OnnxInputs, *,
                         warmup: int = 5, repeats: int = 20,
                         threads: int | None = None) -> LatencyResult:
    """Median and spread of ``repeats`` session runs after ``warmup`` untimed ones."""
    if warmup < 0 or repeats < 1:
        raise ConfigError(f"warmup must be >= 0 and repeats >= 1, got {warmup}, {repeats}")
    session = onnx_session(path, threads=threads)
    feed = _feed(session, inputs)
    for _ in range(warmup):
        session.run(None, feed)
    times_ms = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        session.run(None, feed)
        times_ms.append((time.perf_counter() - t0) * 1e3)
    times_ms.sort()
    dtype = str(next(iter(feed.values())).dtype)
    return LatencyResult(median_ms=statistics.median(times_ms), p10_ms=_quantile(times_ms, 0.1),
                         p90_ms=_quantile(times_ms, 0.9), repeats=repeats,
                         threads=session.get_session_options().intra_op_num_threads,
                         device=f"cpu (onnxruntime {PROVIDER})", dtype=f"{dtype} input",
                         batch_size=_batch(feed))


@dataclass(frozen=True)
class OpTime:
    """Time of one op type in a profiled run, summed over its nodes."""

    op_type: str
    ms: float
    nodes: int
    share: float


@dataclass(frozen=True)
class OnnxProfile:
    """Where one session run spends its time, by op type (ORT's own profiler), and the
    nodes that did the most work: ``(node name, op type, ms)``."""

    runs: int
    total_ms: float
    ops: tuple[OpTime, ...]
    top_nodes: tuple[tuple[str, str, float], ...]

    def share(self, op_types: Sequence[str]) -> float:
        """Fraction of the node time spent in ``op_types``."""
        wanted = set(op_types)
        return sum(o.share for o in self.ops if o.op_type in wanted)

    def to_dict(self, ops: int = 8, nodes: int = 5) -> dict[str, Any]:
        """The ``ops`` op types and ``nodes`` nodes that took the most time."""
        return {"runs": self.runs, "total_ms": self.total_ms,
                "ops": [{"op_type": o.op_type, "ms": o.ms, "nodes": o.nodes, "share": o.share}
                        for o in self.ops[:ops]],
                "top_nodes": [list(n) for n in self.top_nodes[:nodes]]}


def profile_onnx(path: str | os.PathLike[str], inputs: OnnxInputs, *, runs: int = 5,
                 threads: int | None = None) -> OnnxProfile:
    """Profile ``runs`` session runs (after one warm-up) with ORT's profiler: node time by
    op type (the op types after ORT's graph optimisation, e.g. ``QLinearConv``, fused
    ``Conv``), per run."""
    with tempfile.TemporaryDirectory(prefix="prunekit-ort-") as folder:
        session = onnx_session(path, threads=threads, profile_dir=folder)
        feed = _feed(session, inputs)
        for _ in range(runs + 1):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    return summarize_profile(events, runs)


def summarize_profile(events: Sequence[Mapping[str, Any]], runs: int) -> OnnxProfile:
    """Sum ORT profile events (``cat == "Node"``, ``*_kernel_time``) by op type; the first
    run of the profile (warm-up) is skipped."""
    runs_seen: list[int] = []
    kernels = []
    for event in events:
        if event.get("cat") == "Session" and event.get("name") == "model_run":
            runs_seen.append(int(event.get("ts", 0)))
        if event.get("cat") == "Node" and str(event.get("name", "")).endswith("_kernel_time"):
            kernels.append(event)
    start = sorted(runs_seen)[1] if len(runs_seen) > 1 else 0  # skip the warm-up run
    by_op: dict[str, list[float]] = {}
    by_node: dict[tuple[str, str], float] = {}
    for event in kernels:
        if int(event.get("ts", 0)) < start:
            continue
        args = event.get("args", {})
        op = str(args.get("op_name", "?"))
        ms = float(event.get("dur", 0)) / 1e3
        by_op.setdefault(op, []).append(ms)
        node = str(event["name"]).removesuffix("_kernel_time")
        by_node[(node, op)] = by_node.get((node, op), 0.0) + ms
    counted = max(runs, 1)
    total = sum(sum(v) for v in by_op.values()) / counted
    ops = sorted((OpTime(op, sum(v) / counted, len(v) // counted or 1,
                         (sum(v) / counted) / total if total else 0.0)
                  for op, v in by_op.items()), key=lambda o: -o.ms)
    top = sorted(((n, op, ms / counted) for (n, op), ms in by_node.items()),
                 key=lambda t: -t[2])[:10]
    return OnnxProfile(runs, total, tuple(ops), tuple(top))
