"""What ``prune`` and ``run`` share: run a :class:`RunConfig` and print its results."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from .common import Printer, emit_json
from .progress import epoch_progress

if TYPE_CHECKING:
    from ..workflow.config import RunConfig

__all__ = ["execute"]


def execute(config: RunConfig, *, as_json: bool, quiet: bool, resume: bool = False) -> None:
    """Run ``config`` (one shot, or iterative when ``config.iterative`` is set; ``resume``
    continues an interrupted iterative run); print a table (or JSON) and the files written."""
    from ..measure.latency import resolve_device
    from .demo import summary_table

    resolve_device(config.out.device)  # an unusable latency device fails before any work
    printer = Printer(quiet=quiet or as_json)
    if config.iterative is not None:
        from ..workflow.iterative import run_iterative
        result = run_iterative(config, resume=resume, log=printer.info)
    elif config.shrink is not None:
        if resume:
            raise click.UsageError("--resume continues an iterative run; a shrink run "
                                   "resumes from prunekit.schedule training checkpoints")
        from ..workflow.shrink import run_shrinking
        result = run_shrinking(config, log=printer.info)
    else:
        if resume:
            raise click.UsageError("--resume continues an iterative run: add --iterative (or "
                                   "an iterative section to the recipe)")
        from ..workflow.pipeline import run_pruning
        with epoch_progress(config.finetune.epochs,
                            enabled=not (quiet or as_json)) as on_epoch:
            result = run_pruning(config, log=printer.info, on_epoch=on_epoch)
    if as_json:
        payload: dict[str, Any] = {"report": result.report,
                                   "files": {"report_json": str(result.files.json),
                                             "report_html": (str(result.files.html)
                                                             if result.files.html else None),
                                             "pruned": str(result.model_dir)},
                                   "input_features": result.features}
        emit_json(payload)
        return
    printer.result(summary_table(result.report))
    if result.features is not None:
        printer.result(f"input features kept ({len(result.features['kept'])}): "
                       f"{', '.join(result.features['kept'])}")
        printer.result(f"input features dropped ({len(result.features['dropped'])}): "
                       f"{', '.join(result.features['dropped']) or '-'}")
    printer.result(f"pruned model: {result.model_dir}; report: {result.files.json}"
                   + (f", {result.files.html}" if result.files.html else ""))
