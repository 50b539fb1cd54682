"""Reports: ``report.json`` (versioned schema, see docs/report.md) and ``report.html``.

Plots are drawn with matplotlib, imported only when a report is rendered.
"""

from .build import build_report, layer_rows
from .io import ReportFiles, load_report, write_report
from .schema import SCHEMA, VERSION, ReportError, validate_report
from .stats import ModelStats, collect_stats

__all__ = [
           "SCHEMA",
           "VERSION",
           "ModelStats",
           "ReportError",
           "ReportFiles",
           "build_report",
           "collect_stats",
           "layer_rows",
           "load_report",
           "validate_report",
           "write_report",
]
