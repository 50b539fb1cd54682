"""Report plots as PNG bytes, drawn with matplotlib's Agg canvas (imported lazily).

The object-oriented API (``Figure`` + ``FigureCanvasAgg``) is used so that drawing never
touches pyplot's global state or the user's backend choice.
"""

from __future__ import annotations

import io
from typing import Any

__all__ = ["kept_units_png", "metric_vs_macs_png", "sensitivity_curves_png"]


def _figure(width: float, height: float) -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        return None
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def kept_units_png(layers: list[dict[str, Any]]) -> bytes | None:
    """Bar chart of units before and after pruning, one pair of bars per group."""
    if not layers:
        return None
    fig = _figure(max(6.0, 0.5 * len(layers) + 2.0), 3.6)
    if fig is None:
        return None
    ax = fig.add_subplot()
    xs = range(len(layers))
    before = [row["units_before"] for row in layers]
    after = [row["units_after"] for row in layers]
    ax.bar([x - 0.2 for x in xs], before, width=0.4, label="before", color="#b0b7c3")
    ax.bar([x + 0.2 for x in xs], after, width=0.4, label="kept", color="#2f6db5")
    ax.set_xticks(list(xs))
    ax.set_xticklabels([str(row["group"]) for row in layers], rotation=45, ha="right",
                       fontsize=8)
    ax.set_ylabel("units (channels / neurons)")
    ax.set_title("Kept units per coupled group")
    ax.legend()
    return _png(fig)


def metric_vs_macs_png(points: list[dict[str, Any]], metric_name: str, *,
                       fraction: bool = True) -> bytes | None:
    """The metric against MACs for the dense model and each fine-tuned variant
    (``fraction``: values in [0, 1], drawn as percentages).

    Points measured right after pruning (before recovery) are left out of the plot, where
    they would flatten the scale; the report lists them in its table.
    """
    usable = sorted((p for p in points if p.get("macs") and p.get("metric") is not None
                     and p.get("stage") in ("dense", "fine-tuned")), key=lambda p: p["macs"])
    if not usable:
        return None
    fig = _figure(6.0, 3.8)
    if fig is None:
        return None
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax = fig.add_subplot()
    xs = [p["macs"] / 1e6 for p in usable]
    scale = 100 if fraction else 1
    ys = [scale * p["metric"] for p in usable]
    ax.plot(xs, ys, color="#2f6db5", marker="o", linewidth=1)
    for p, x, y in zip(usable, xs, ys):
        ax.annotate(str(p["label"]), (x, y), fontsize=8, textcoords="offset points",
                    xytext=(0, 7), ha="center")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:.3g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks(xs)
    low, high = min(ys), max(ys)
    if fraction:
        pad = max(0.5, (high - low) * 0.25)
        ax.set_ylim(low - pad, min(100.3, high + pad))
    else:
        pad = max(abs(high) * 0.01, (high - low) * 0.25, 1e-6)
        ax.set_ylim(low - pad, high + pad)
    ax.set_xlabel("MACs (millions, log scale)")
    ax.set_ylabel(f"{metric_name} (%)" if fraction else metric_name)
    ax.set_title(f"{metric_name} vs MACs (dense and fine-tuned)")
    ax.grid(True, alpha=0.3)
    return _png(fig)


def sensitivity_curves_png(section: dict[str, Any], *,
                           title: str = "Sensitivity") -> bytes | None:
    """Metric drop against the fraction removed, one line per group (a sensitivity section:
    ``baseline``, ``ratios``, ``curves``, optional ``units`` and ``mode``)."""
    curves: dict[str, list[float]] = section.get("curves") or {}
    if not curves:
        return None
    fig = _figure(7.0, 4.2)
    if fig is None:
        return None
    baseline = float(section["baseline"])
    sign = 1.0 if section.get("mode", "max") == "max" else -1.0
    ratios = [0.0] + [float(r) for r in section["ratios"]]
    units = section.get("units") or {}
    ax = fig.add_subplot()
    for key, values in curves.items():
        drops = [0.0] + [sign * (baseline - float(v)) for v in values]
        ax.plot(ratios, drops, marker="o", markersize=3, label=f"{key} ({units.get(key, '?')})")
    ax.set_xlabel("fraction of the group's units removed (alone, no fine-tuning)")
    ax.set_ylabel("metric drop")
    ax.set_title(f"{title} (baseline {baseline:.4g})")
    ax.grid(True, alpha=0.3)
    if len(curves) <= 20:
        ax.legend(fontsize=7)
    return _png(fig)
