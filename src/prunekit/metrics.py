"""Task metrics chosen by name: ``accuracy``, top-k accuracy (``top5`` or ``topk:5``), or a
user function ``path/to/file.py:function``.

A metric is called as ``metric(outputs, targets) -> float`` on every validation batch and
averaged over the batches weighted by their size, so a user function should return the
mean over its batch. Higher must be better (accuracy budgets and early stopping read it so).
A user file is imported like a model factory file (its code runs): only pass files you trust.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from .errors import ConfigError, MetricError, PrunekitError
from .train.outputs import logits_of

__all__ = ["METRIC_HELP", "MetricFn", "MetricSpec", "format_metric", "load_metric", "parse_metric",
           "top_k_accuracy"]

#: ``metric(outputs, targets) -> float``
MetricFn = Callable[[Any, Any], float]

METRIC_HELP = ("accuracy, top-k accuracy (top5 or topk:5), or path/to/file.py:function "
               "(called with (outputs, targets), returns a float, higher is better)")


@dataclass(frozen=True)
class MetricSpec:
    """A parsed metric: ``kind`` ``accuracy``, ``topk`` (with ``k``) or ``file`` (``path``
    and ``function``); ``text`` is the spec as given."""

    text: str
    kind: Literal["accuracy", "topk", "file"]
    k: int = 1
    path: str = ""
    function: str = ""

    @property
    def name(self) -> str:
        """The metric's name in reports: ``accuracy``, ``top-5 accuracy`` or the spec."""
        if self.kind == "accuracy":
            return "accuracy"
        if self.kind == "topk":
            return f"top-{self.k} accuracy"
        return f"{Path(self.path).name}:{self.function}"

    @property
    def fraction(self) -> bool:
        """Whether values are fractions in [0, 1] (shown as percentages)."""
        return self.kind != "file"


def parse_metric(text: str) -> MetricSpec:
    """Parse a metric spec; raise :class:`ConfigError` naming the accepted forms."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"metric must be a non-empty string: {METRIC_HELP}; got {text!r}")
    spec = text.strip()
    lowered = spec.lower()
    if lowered in ("accuracy", "acc", "top1"):
        return MetricSpec(spec, "accuracy")
    number = None
    if lowered.startswith("topk:"):
        number = lowered[5:]
    elif lowered.startswith("top") and lowered[3:].isdigit():
        number = lowered[3:]
    if number is not None:
        if not number.isdigit() or int(number) < 1:
            raise ConfigError(f"metric {text!r}: k must be a positive integer, e.g. top5 or "
                              "topk:5")
        k = int(number)
        return MetricSpec(spec, "accuracy") if k == 1 else MetricSpec(spec, "topk", k=k)
    path, sep, function = spec.rpartition(":")
    if sep and path.endswith(".py") and function.isidentifier():
        return MetricSpec(spec, "file", path=path, function=function)
    raise ConfigError(f"unknown metric {text!r}: use {METRIC_HELP}")


def top_k_accuracy(outputs: torch.Tensor, targets: torch.Tensor, k: int) -> float:
    """Fraction of samples whose label is among the ``k`` largest logits of ``(N, C)``."""
    outputs = logits_of(outputs)
    if not isinstance(outputs, torch.Tensor) or outputs.ndim < 1:
        raise MetricError(f"top-{k} accuracy needs logits (batch, classes), got "
                          f"{type(outputs).__name__}")
    classes = outputs.shape[-1]
    if classes < k:
        raise ConfigError(f"top-{k} accuracy needs at least {k} classes but the model outputs "
                          f"{classes} logits: choose a smaller k (e.g. --metric top{classes})")
    top = outputs.topk(k, dim=-1).indices
    correct = int((top == targets.unsqueeze(-1)).any(dim=-1).sum())
    return correct / max(int(targets.numel()), 1)


@dataclass(frozen=True)
class _TopK:
    k: int

    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor) -> float:
        return top_k_accuracy(outputs, targets, self.k)


@dataclass(frozen=True)
class _UserMetric:
    """A user function, its failures and non-numbers turned into one-line errors."""

    fn: Callable[..., Any]
    label: str

    def __call__(self, outputs: Any, targets: Any) -> float:
        try:
            value = self.fn(outputs, targets)
        except PrunekitError:
            raise
        except Exception as exc:  # noqa: BLE001 - user code may raise anything
            first = str(exc).splitlines()[0] if str(exc) else ""
            raise MetricError(f"metric {self.label}(outputs, targets) failed: "
                              f"{type(exc).__name__}: {first}") from None
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise MetricError(f"metric {self.label} returned {type(value).__name__}, not a "
                              "number (it must return a float)")
        if not math.isfinite(float(value)):
            raise MetricError(f"metric {self.label} returned {value!r}, not a finite number")
        return float(value)


def load_metric(spec: str | MetricSpec) -> MetricFn:
    """The metric function a spec names (a user file is imported now)."""
    parsed = parse_metric(spec) if isinstance(spec, str) else spec
    if parsed.kind == "accuracy":
        from .train.finetune import accuracy

        return accuracy
    if parsed.kind == "topk":
        return _TopK(parsed.k)
    from .models.spec import load_file_function

    fn = load_file_function(parsed.path, parsed.function, what="metric")
    return _UserMetric(fn, f"{parsed.path}:{parsed.function}")


def format_metric(value: float | None, fraction: bool = True) -> str:
    """``95.12%`` for a fraction, ``0.9512`` (4 significant digits) otherwise; ``-`` for None."""
    if value is None:
        return "-"
    return f"{100 * value:.2f}%" if fraction else f"{value:.4g}"
