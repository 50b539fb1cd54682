"""Plot sensitivity curves as PNG (matplotlib's Agg canvas, imported only when drawing)."""

from __future__ import annotations

import io
import os
from pathlib import Path

from ..errors import ConfigError
from ..files import atomic_write_bytes
from .sensitivity import SensitivityResult

__all__ = ["save_sensitivity_plot", "sensitivity_png"]


def sensitivity_png(result: SensitivityResult, *, title: str = "Sensitivity") -> bytes:
    """Metric drop against pruning ratio, one line per group, as PNG bytes."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        raise ConfigError("plotting needs matplotlib: pip install matplotlib") from None
    fig = Figure(figsize=(7.0, 4.2), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for key in result.curves:
        ax.plot([0.0] + result.ratios, [0.0] + result.drops(key), marker="o", markersize=3,
                label=f"{key} ({result.units.get(key, '?')})")
    ax.set_xlabel("fraction of the group's units removed (alone, no fine-tuning)")
    ax.set_ylabel("metric drop")
    ax.set_title(f"{title} (baseline {result.baseline:.4g})")
    ax.grid(True, alpha=0.3)
    if len(result.curves) <= 20:
        ax.legend(fontsize=7)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def save_sensitivity_plot(result: SensitivityResult, path: str | os.PathLike[str]) -> Path:
    """Draw :func:`sensitivity_png` and write it to ``path`` atomically."""
    atomic_write_bytes(path, sensitivity_png(result))
    return Path(path)
