"""The report's optional ``sensitivity`` section: per-group sensitivity curves as written by
``prunekit analyze`` (``sensitivity.json``, format ``prunekit.sensitivity``).

Plain data only (no import of :mod:`prunekit.recover`): the section is checked here, read
from a folder when a report is written or re-rendered there, and drawn by :mod:`.plots`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .schema import ReportError, check_sensitivity

__all__ = ["SENSITIVITY_FORMAT", "SENSITIVITY_JSON", "attach_sensitivity",
           "read_sensitivity"]

SENSITIVITY_JSON = "sensitivity.json"
SENSITIVITY_FORMAT = "prunekit.sensitivity"


def read_sensitivity(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """``folder/sensitivity.json`` checked as a report section, or ``None`` if absent."""
    path = Path(folder) / SENSITIVITY_JSON
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ReportError(f"{str(path)!r} is not readable JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != SENSITIVITY_FORMAT:
        raise ReportError(f"{str(path)!r} is not a prunekit sensitivity file "
                          f"(format {SENSITIVITY_FORMAT!r})")
    section = {k: data[k] for k in ("baseline", "ratios", "curves", "units", "mode",
                                    "seconds", "metric", "dataset") if k in data}
    return check_sensitivity(section, f"{str(path)!r}")


def attach_sensitivity(report: dict[str, Any], folder: str | os.PathLike[str]) -> bool:
    """Copy ``folder/sensitivity.json`` into ``report["sensitivity"]``; ``True`` if found."""
    section = read_sensitivity(folder)
    if section is None:
        return False
    report["sensitivity"] = section
    return True
