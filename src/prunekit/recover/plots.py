"""Plot sensitivity curves as PNG (matplotlib's Agg canvas, imported only when drawing)."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConfigError
from ..files import atomic_write_bytes
from ..allocate.sensitivity import SensitivityResult

__all__ = ["save_sensitivity_plot", "sensitivity_png"]


def sensitivity_png(result: SensitivityResult, *, title: str = "Sensitivity") -> bytes:
    """Metric drop against pruning ratio, one line per group, as PNG bytes."""
    from ..report.plots import sensitivity_curves_png

    png = sensitivity_curves_png(result.to_dict(), title=title)
    if png is None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:  # pragma: no cover - matplotlib is a dependency
            raise ConfigError("plotting needs matplotlib: pip install matplotlib") from None
        raise ConfigError("the sensitivity result has no curves to plot")
    return png


def save_sensitivity_plot(result: SensitivityResult, path: str | os.PathLike[str]) -> Path:
    """Draw :func:`sensitivity_png` and write it to ``path`` atomically."""
    atomic_write_bytes(path, sensitivity_png(result))
    return Path(path)
