"""``prunekit report DIR``: re-render ``report.html`` from ``report.json``."""

from __future__ import annotations

from pathlib import Path

import click

from .common import Printer, emit_json, json_option, quiet_option

__all__ = ["report"]


@click.command("report")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--html-out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the page here [default: DIR/report.html].")
@json_option
@quiet_option
def report(directory: Path, html_out: Path | None, as_json: bool, quiet: bool) -> None:
    """Validate DIR/report.json (or a report.json file) and re-render report.html (with the
    sensitivity curves of DIR/sensitivity.json, when present)."""
    from ..files import atomic_write_text
    from ..report.html import render_html
    from ..report.io import REPORT_HTML, load_report
    from ..report.sensitivity import attach_sensitivity

    document = load_report(directory)
    folder = directory if directory.is_dir() else directory.parent
    attach_sensitivity(document, folder)  # curves from prunekit analyze, when present
    target = html_out if html_out is not None else folder / REPORT_HTML
    atomic_write_text(target, render_html(document))
    if as_json:
        emit_json({"html": str(target)})
        return
    Printer(quiet=quiet).result(f"report: {target}")
