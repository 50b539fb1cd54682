"""Sensitivity of the model to each layer's factorization: one layer at a time, at several
fractions of its rank removed, the model's metric is measured (no fine-tuning).

The result is a :class:`prunekit.recover.SensitivityResult` (the same plain data, JSON and
plot as pruning sensitivities) keyed by layer name, with ``ratios`` the fraction of each
layer's full rank removed; :func:`prunekit.decompose` takes it as the loss of a global
target (``sensitivity=``), interpolated as pruning allocations interpolate theirs.

The metric is a task metric on a validation loader (``metric_fn`` on ``(inputs, targets)``
batches, as :func:`prunekit.train.evaluate` takes them), or by default the *output fidelity*
on batches of inputs: ``1 − ||y − y₀||² / ||y₀||²`` over the first output tensor, ``y₀`` the
undecomposed model's, so a drop is the relative squared output error the layer causes
(positions an ``attention_mask`` input masks out are left out).
Each layer is swapped for its factorized version and back, so the model is unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_flatten

from ..errors import ConfigError
from ..graph.trace import as_args
from ..measure.counts import ExampleInputs
from ..recover.reconstruct import batch_inputs
from ..allocate.sensitivity import SensitivityResult
from .._internal.runtime import eval_mode
from ..train.finetune import MetricFn, evaluate
from .candidates import build_candidates
from .config import DecomposeConfig
from .kinds import factorization
from .records import replace_module

__all__ = ["DEFAULT_RATIOS", "analyze_sensitivity", "output_fidelity"]

DEFAULT_RATIOS = (0.5, 0.75, 0.875, 0.9375)


def _first_output(out: Any) -> torch.Tensor:
    tensors = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
    if not tensors:
        raise ConfigError("the model returns no tensor, so its output fidelity cannot be "
                          "measured; pass a metric_fn and a validation loader")
    return tensors[0].detach().double()


def output_fidelity(model: nn.Module, batches: Sequence[Any]) -> Callable[[nn.Module], float]:
    """A metric of a changed ``model``: ``1 − Σ||y − y₀||² / Σ||y₀||²`` on ``batches``."""
    def outputs(m: nn.Module) -> list[torch.Tensor]:
        with eval_mode(m), torch.no_grad():
            ys = []
            for batch in batches:
                inputs = batch_inputs(batch)
                args, kwargs = as_args(inputs)
                y = _first_output(m(*args, **kwargs))
                mask = kwargs.get("attention_mask")
                if isinstance(mask, torch.Tensor) and y.shape[:mask.dim()] == mask.shape:
                    y = y[mask.bool()]  # padding positions carry no output
                ys.append(y)
            return ys

    reference = outputs(model)
    energy = sum(float(y.pow(2).sum()) for y in reference) or 1.0

    def metric(m: nn.Module) -> float:
        err = sum(float((y - y0).pow(2).sum()) for y, y0 in zip(outputs(m), reference))
        return 1.0 - err / energy
    return metric


def analyze_sensitivity(model: nn.Module, example_inputs: ExampleInputs,
                        calibration: Iterable[Any], *, config: DecomposeConfig | None = None,
                        ratios: Sequence[float] = DEFAULT_RATIOS,
                        val_loader: Iterable[Any] | None = None,
                        metric_fn: MetricFn | None = None,
                        fidelity_batches: Iterable[Any] | None = None,
                        on_point: Callable[[str, float, float], None] | None = None
                        ) -> SensitivityResult:
    """Factorize each layer ``config`` selects alone (its first applicable kind; Linear
    layers activation-aware when ``config.activation_aware``) at each ratio of its rank
    removed and measure the metric; ``model`` is left as it was.

    ``calibration`` feeds the factorizations and, without ``metric_fn``, the output
    fidelity (on ``fidelity_batches`` instead when given: fewer batches, a faster analysis).
    With ``metric_fn`` the metric is measured on ``val_loader``.
    """
    ratios = tuple(float(r) for r in ratios)
    if not ratios or list(ratios) != sorted(set(ratios)) or not all(0 < r < 1 for r in ratios):
        raise ConfigError(f"ratios must be strictly increasing fractions in (0, 1), got "
                          f"{ratios!r}")
    if (metric_fn is None) != (val_loader is None):
        raise ConfigError("give metric_fn and val_loader together (or neither, for the "
                          "output fidelity on the calibration batches)")
    config = config if config is not None else DecomposeConfig(rank_ratio=1.0)
    start = time.perf_counter()
    batches = list(calibration)
    cands, _ = build_candidates(model, example_inputs, config, batches)
    measure: Callable[[nn.Module], float]
    if metric_fn is not None and val_loader is not None:
        loader, fn = val_loader, metric_fn

        def measure(m: nn.Module) -> float:
            return evaluate(m, loader, fn)
    else:
        measure = output_fidelity(model, batches if fidelity_batches is None
                                  else list(fidelity_batches))
    baseline = measure(model)
    curves: dict[str, list[float]] = {}
    units: dict[str, int] = {}
    for cand in cands:
        kind = next(iter(cand.fitted))
        original = model.get_submodule(cand.name)
        units[cand.name] = factorization(kind).full_rank(cand.spec)[0]
        curve = []
        for ratio in ratios:
            rank = factorization(kind).at_ratio(cand.spec, 1.0 - ratio, config.round_to)
            replace_module(model, cand.name, cand.fitted[kind].layer(rank)[0])
            try:
                curve.append(measure(model))
            finally:
                replace_module(model, cand.name, original)
            if on_point is not None:
                on_point(cand.name, ratio, curve[-1])
        curves[cand.name] = curve
    return SensitivityResult(baseline, list(ratios), curves, units, "max",
                             time.perf_counter() - start)
