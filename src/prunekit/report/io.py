"""Write ``report.json`` and ``report.html`` atomically; read a report back."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..files import atomic_write_text, read_json
from .schema import ReportError, validate_report

__all__ = ["REPORT_HTML", "REPORT_JSON", "ReportFiles", "load_report", "write_report"]

REPORT_JSON = "report.json"
REPORT_HTML = "report.html"


@dataclass(frozen=True)
class ReportFiles:
    """Where a report was written (``html`` is ``None`` when not rendered)."""

    json: Path
    html: Path | None


def write_report(report: dict[str, Any], out_dir: str | os.PathLike[str], *,
                 html: bool = True) -> ReportFiles:
    """Validate ``report`` and write ``report.json`` (and ``report.html``) into ``out_dir``.

    Each file goes through a temporary file in the same folder and a rename, so a crash
    never leaves a partial report. The HTML is rendered before anything is written.
    """
    validate_report(report)
    folder = Path(out_dir)
    text = json.dumps(report, indent=1, allow_nan=False)
    page = None
    if html:
        from .html import render_html  # lazy: rendering imports matplotlib
        page = render_html(report)
    atomic_write_text(folder / REPORT_JSON, text + "\n")
    html_path = None
    if page is not None:
        html_path = folder / REPORT_HTML
        atomic_write_text(html_path, page)
    return ReportFiles(folder / REPORT_JSON, html_path)


def load_report(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a ``report.json`` (a file, or a folder that holds one)."""
    target = Path(path)
    if target.is_dir():
        target = target / REPORT_JSON
    data = read_json(target, "report file", ReportError)
    return validate_report(data, source=f"report file {str(target)!r}")
