"""Measured latency of each candidate layer, dense and factorized at a grid of ranks.

The machinery is the pruning latency table's (:mod:`prunekit.allocate.latency`): one forward
pass records every layer call with its real inputs
(:func:`~prunekit.allocate.latency.record_calls`), and each call is timed alone by a timer
that warms up and takes the median of repeats
(:func:`~prunekit.allocate.latency.median_timer`, or any injected one); each figure is the
fastest of a few sweeps, as in the pruning table. Factorized layers are built at each rank
with random weights (timing does not depend on the values). The model's latency with some
layers factorized is predicted the same way as for pruning: the dense model's time minus
``scale`` times the layers' savings, with ``scale = dense model time / Σ dense times of
every timed call``. The table is plain JSON: measure once per device.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from ..errors import ConfigError, PlanError
from ..files import JsonDocument
from ..measure.counts import ExampleInputs
from ..measure.latency import describe_run
from ..plan.document import architecture_fingerprint
from ..allocate.latency import Timer, median_timer, record_calls
from .kinds import factorization, thin
from .rank import Candidate

__all__ = ["LayerTimes", "rank_key", "timing_grid"]

FORMAT = "prunekit.decomposition_latency"


def rank_key(kind: str, rank: Sequence[int]) -> str:
    """How a (kind, rank) is keyed in the table: ``"svd:64"``, ``"tucker2:32,48"``."""
    return f"{kind}:{','.join(str(int(r)) for r in rank)}"


@dataclass
class LayerTimes(JsonDocument):
    """Dense model latency, the dense time of every timed call, and per candidate layer its
    dense time and the time of each measured (kind, rank), with the measuring conditions."""

    document: ClassVar[str] = "decomposition latency table"

    dense_ms: float
    layers_ms: float
    dense: dict[str, float]
    options: dict[str, dict[str, float]]
    device: str = "cpu"
    dtype: str = "float32"
    threads: int = 1
    batch_size: int | None = None
    torch_version: str = ""
    architecture: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def scale(self) -> float:
        """Factor on summed layer savings: dense model time / summed dense call times."""
        return self.dense_ms / self.layers_ms if self.layers_ms > 0 else 1.0

    def ms(self, layer: str, kind: str, rank: Sequence[int]) -> float | None:
        """Measured time of ``layer`` factorized as ``kind`` at ``rank`` (None: not measured)."""
        return self.options.get(layer, {}).get(rank_key(kind, rank))

    def check_model(self, model: nn.Module) -> None:
        """Refuse a model other than the one the table was measured on."""
        if self.architecture and self.architecture != architecture_fingerprint(model):
            raise ConfigError("this decomposition latency table was measured on a different "
                              "architecture; measure it on this model (LayerTimes.measure)")

    def describe(self) -> str:
        return (f"{self.device}, {self.dtype}, batch {self.batch_size}, {self.threads} "
                f"threads, torch {self.torch_version}")

    @classmethod
    def measure(cls, model: nn.Module, example_inputs: ExampleInputs,
                grid: Mapping[str, Mapping[str, Sequence[Sequence[int]]]],
                specs: Mapping[str, dict[str, Any]], *, warmup: int = 5, repeats: int = 20,
                rounds: int = 2, timer: Timer | None = None) -> LayerTimes:
        """Time ``model`` (unchanged), every layer call, and for each layer of ``grid``
        (name → kind → ranks; ``specs`` describes each) its factorized versions.

        Each layer's dense calls are timed again right after its options, and every figure
        is the fastest of ``rounds`` sweeps (the second in reverse order): a busy spell on
        a shared machine only adds time, so it should not decide between dense and
        factorized."""
        if not isinstance(rounds, int) or rounds < 1:
            raise ConfigError(f"rounds must be an integer >= 1, got {rounds!r}")
        start = time.perf_counter()
        timer_name = "median" if timer is None else getattr(timer, "__qualname__", "custom")
        timer = timer if timer is not None else median_timer(warmup, repeats)
        calls, _ = record_calls(model, example_inputs)
        samples: dict[str, list[float]] = {}
        dense_ms = math.inf
        for name in grid:
            if not any(c == name or c.startswith(f"{name}#") for c in calls):
                raise ConfigError(f"layer {name!r} did not run on the example inputs, so it "
                                  "cannot be timed")

        def time_calls(names: Sequence[str]) -> None:
            for c in names:
                samples.setdefault(c, []).append(float(timer(calls[c].module, calls[c].inputs)))

        options: dict[str, dict[str, float]] = {name: {} for name in grid}
        for r in range(rounds):
            dense_ms = min(dense_ms, float(timer(model, example_inputs)))
            time_calls(list(calls))
            names = list(grid) if r % 2 == 0 else list(reversed(list(grid)))
            for name in names:
                mine = [c for c in calls if c == name or c.startswith(f"{name}#")]
                weight = model.get_submodule(name).get_parameter("weight")
                for kind, ranks in grid[name].items():
                    for rank in ranks:
                        layer = _random_layer(kind, specs[name], tuple(rank), weight)
                        ms = sum(float(timer(layer, calls[c].inputs)) for c in mine)
                        key = rank_key(kind, rank)
                        options[name][key] = min(options[name].get(key, math.inf), ms)
                time_calls(mine)  # the dense layer again, next to its options
        base = {c: min(v) for c, v in samples.items()}
        dense = {name: sum(base[c] for c in calls if c == name or c.startswith(f"{name}#"))
                 for name in grid}
        device, dtype, batch = describe_run(model, example_inputs)
        return cls(dense_ms, sum(base.values()), dense, options, str(device), dtype,
                   torch.get_num_threads(), batch, torch.__version__,
                   architecture_fingerprint(model),
                   {"warmup": warmup, "repeats": repeats, "rounds": rounds,
                    "timer": timer_name}, time.perf_counter() - start)

    # -- JSON -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "dense_ms": self.dense_ms, "layers_ms": self.layers_ms,
                "dense": self.dense, "options": self.options, "device": self.device,
                "dtype": self.dtype, "threads": self.threads, "batch_size": self.batch_size,
                "torch_version": self.torch_version, "architecture": self.architecture,
                "settings": self.settings, "seconds": self.seconds}

    @classmethod
    def from_dict(cls, data: Any) -> LayerTimes:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise PlanError(f"not a prunekit decomposition latency table (missing format "
                            f"{FORMAT!r})")
        try:
            batch = data.get("batch_size")
            return cls(float(data["dense_ms"]), float(data["layers_ms"]),
                       {str(k): float(v) for k, v in data["dense"].items()},
                       {str(k): {str(o): float(ms) for o, ms in v.items()}
                        for k, v in data["options"].items()},
                       str(data.get("device", "cpu")), str(data.get("dtype", "float32")),
                       int(data.get("threads", 1)), None if batch is None else int(batch),
                       str(data.get("torch_version", "")), str(data.get("architecture", "")),
                       dict(data.get("settings", {})), float(data.get("seconds", 0.0)))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise PlanError(f"malformed decomposition latency table: {type(exc).__name__}: "
                            f"{exc}") from None



def timing_grid(cands: Sequence[Candidate], points: int
                ) -> dict[str, dict[str, list[tuple[int, ...]]]]:
    """What to time: per layer and kind, up to ``points`` ranks (evenly spread) of the
    options with fewer parameters than the dense layer."""
    grid: dict[str, dict[str, list[tuple[int, ...]]]] = {}
    for cand in cands:
        grid[cand.name] = {}
        for kind in cand.fitted:
            grid[cand.name][kind] = thin([o.rank for o in cand.options if o.kind == kind and
                                          o.params < cand.dense_params], points)
    return grid


@torch.no_grad()
def _random_layer(kind: str, spec: dict[str, Any], rank: tuple[int, ...],
                  like: torch.Tensor) -> nn.Module:
    """The factorized layer at ``rank`` with normal random weights, on ``like``'s device."""
    layer = factorization(kind).empty(spec, rank, device=like.device, dtype=like.dtype)
    for p in layer.parameters():
        p.normal_(0.0, 0.02)
    return layer.eval()
