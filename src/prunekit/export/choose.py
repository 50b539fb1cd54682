"""The product rule for formats: one is chosen only where it measures faster on the target.

:func:`choose_format` is the decision alone, from measured figures (tests inject them): the
fastest candidate that keeps the task metric within ``budget`` of the baseline (or, without a
metric, keeps the outputs close: cosine ≥ ``min_cosine``) and is at least ``min_speedup``
times faster than the baseline; otherwise the baseline stays, and the choice says why.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

__all__ = ["Candidate", "Choice", "choose_format"]


@dataclass(frozen=True)
class Candidate:
    """One format's measured figures at one batch size.

    ``latency_ms``: median, ``None`` when it could not be timed (``status`` says why);
    ``metric``: the task metric (higher is better unless the choice says otherwise);
    ``cosine``: cosine similarity of its outputs with the baseline's.
    """

    format: str
    latency_ms: float | None
    metric: float | None = None
    cosine: float | None = None
    status: str = "ok"


@dataclass(frozen=True)
class Choice:
    """The chosen format, its speed-up over the baseline, and one verdict per candidate."""

    format: str
    baseline: str
    speedup: float
    faster: bool
    reason: str
    verdicts: tuple[tuple[str, str], ...]

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "baseline": self.baseline, "speedup": self.speedup,
                "faster_than_baseline": self.faster, "reason": self.reason,
                "verdicts": {name: verdict for name, verdict in self.verdicts}}


def _positive(value: float | None) -> bool:
    return value is not None and math.isfinite(value) and value > 0


def choose_format(candidates: Sequence[Candidate], *, baseline: str = "fp32",
                  min_speedup: float = 1.05, budget: float | None = 0.005,
                  min_cosine: float = 0.99, higher_is_better: bool = True) -> Choice:
    """Pick the fastest acceptable format; keep ``baseline`` unless another one is at
    least ``min_speedup`` times faster.

    A candidate is acceptable when it was timed and, with metrics, its metric is at most
    ``budget`` worse than the baseline's (``None``: metric not checked); without a metric,
    when its outputs' cosine with the baseline's is at least ``min_cosine``.
    """
    if not min_speedup >= 1.0:
        raise ConfigError(f"min_speedup must be >= 1 (1.05 = 5% faster), got {min_speedup!r}")
    if budget is not None and not budget >= 0:
        raise ConfigError(f"budget must be >= 0 or None, got {budget!r}")
    by_name = {c.format: c for c in candidates}
    base = by_name.get(baseline)
    if base is None or not _positive(base.latency_ms):
        raise ConfigError(f"the baseline {baseline!r} has no timing: "
                          f"{base.status if base is not None else 'not among the candidates'}")
    assert base.latency_ms is not None
    verdicts: list[tuple[str, str]] = [(baseline, f"baseline, {base.latency_ms:.3f} ms")]
    accepted: list[tuple[float, Candidate]] = []
    for c in candidates:
        if c.format == baseline:
            continue
        if c.status != "ok" or not _positive(c.latency_ms):
            verdicts.append((c.format, f"not timed: {c.status}"))
            continue
        assert c.latency_ms is not None
        speedup = base.latency_ms / c.latency_ms
        quality = _quality(c, base, budget, min_cosine, higher_is_better)
        if quality is not None:
            verdicts.append((c.format, f"{speedup:.2f}× but {quality}"))
            continue
        if speedup < min_speedup:
            slower = "slower" if speedup < 1 else "not enough faster"
            verdicts.append((c.format, f"{speedup:.2f}× {baseline} ({slower}; "
                                       f"{min_speedup:g}× needed)"))
            continue
        verdicts.append((c.format, f"{speedup:.2f}× {baseline}"))
        accepted.append((speedup, c))
    if not accepted:
        timed = [(base.latency_ms / c.latency_ms, c.format) for c in candidates
                 if c.format != baseline and c.status == "ok" and c.latency_ms is not None
                 and _positive(c.latency_ms)]
        best = max(timed, default=None)
        detail = f" (fastest other: {best[1]} at {best[0]:.2f}×)" if best else ""
        return Choice(baseline, baseline, 1.0, False,
                      f"no format measured at least {min_speedup:g}× faster than {baseline} "
                      f"and acceptable{detail}; {baseline} kept", tuple(verdicts))
    speedup, winner = max(accepted, key=lambda pair: pair[0])
    return Choice(winner.format, baseline, speedup, True,
                  f"{winner.format} measured {speedup:.2f}× faster than {baseline}",
                  tuple(verdicts))


def _quality(c: Candidate, base: Candidate, budget: float | None, min_cosine: float,
             higher_is_better: bool) -> str | None:
    """Why ``c`` is not accurate enough, or ``None`` if it is."""
    if base.metric is not None and c.metric is not None:
        drop = (base.metric - c.metric) if higher_is_better else (c.metric - base.metric)
        if budget is not None and drop > budget:
            return f"metric {c.metric:.4g} is {drop:.4g} worse than {base.metric:.4g} " \
                   f"(budget {budget:g})"
        return None
    if c.cosine is not None and c.cosine < min_cosine:
        return f"outputs' cosine with {base.format} is {c.cosine:.4f} < {min_cosine:g}"
    return None
