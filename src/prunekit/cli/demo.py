"""``prunekit demo``: train (or reuse) a digits CNN, prune, reconstruct, fine-tune with
distillation, measure before/after and write ``report.json`` / ``report.html``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .common import (
    Printer,
    emit_json,
    format_table,
    json_option,
    out_option,
    quiet_option,
)

__all__ = ["demo", "summary_table"]


def _ratios(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of ratios") from None


def _x(before: float | None, after: float | None) -> str:
    return f"{before / after:.2f}x" if before and after else "-"


def summary_table(report: dict[str, Any]) -> str:
    """The before/after table of a report, as plain text."""
    from ..metrics import format_metric

    b, a = report["before"], report["after"]
    lb, la = b["latency_ms"], a["latency_ms"]
    fraction = bool(report["task"].get("metric_fraction", True))

    def pct(v: float | None) -> str:
        return format_metric(v, fraction)

    rows = [
        ["parameters", f"{b['params']:,}", f"{a['params']:,}", _x(b["params"], a["params"])],
        ["MACs", f"{b['macs']:,}", f"{a['macs']:,}", _x(b["macs"], a["macs"])],
        ["size (bytes)", f"{b['size_bytes']:,}", f"{a['size_bytes']:,}",
         _x(b["size_bytes"], a["size_bytes"])],
        ["latency median (ms)", f"{lb['median']:.3f}", f"{la['median']:.3f}",
         _x(lb["median"], la["median"])],
        [f"{report['task'].get('metric', 'metric')} ({report['task'].get('split', '')})",
         pct(b["metric"]), pct(a["metric"]), ""],
    ]
    note = (f"latency: {la['device']}, batch {la['batch_size']}, {la['dtype']}, "
            f"{la['threads']} thread(s), median of {la['repeats']} runs after {la['warmup']} "
            "warm-up" + (", CUDA-graph replay" if la.get("cuda_graph") else ""))
    table = format_table(["", "before", "after", "before/after"], rows) + "\n" + note
    if report.get("speed"):
        from ..report.speed import speed_lines

        table = "\n".join(speed_lines(report["speed"])) + "\n" + table
    return table


@click.command("demo")
@out_option("prunekit-demo", "Folder for report.json, report.html and the pruned model.")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Cache for the trained dense model [default: ~/.cache/prunekit, or "
                   "$PRUNEKIT_CACHE_DIR].")
@click.option("--no-cache", is_flag=True, help="Always train the dense model from scratch.")
@click.option("--ratio", type=float, default=0.5, show_default=True,
              help="Fraction of channels removed from every conv.")
@click.option("--sweep", default="0.25,0.75", show_default=True,
              help="More ratios for the accuracy-vs-MACs plot ('' for none).")
@click.option("--epochs", "finetune_epochs", type=click.IntRange(min=0), default=20,
              show_default=True, help="Fine-tuning epochs after pruning (with distillation).")
@click.option("--no-reconstruct", is_flag=True,
              help="Skip the layer-wise reconstruction between pruning and fine-tuning.")
@click.option("--train-epochs", type=click.IntRange(min=0), default=30, show_default=True,
              help="Epochs to train the dense model (when not cached).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads for latency [default: torch's setting].")
@click.option("--train-threads", type=click.IntRange(min=1), default=1, show_default=True,
              help="CPU threads for training and fine-tuning (tiny batches: 1 is fastest).")
@click.option("--repeats", type=click.IntRange(min=1), default=50, show_default=True,
              help="Timed forward passes per latency figure.")
@click.option("--latency-batch", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Batch size of the latency measurement.")
@click.option("--serving-batch", type=click.IntRange(1, 256), default=64, show_default=True,
              help="Batch size the model serves: throughput (the headline) is timed there.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--no-html", is_flag=True, help="Write report.json only.")
@json_option
@quiet_option
def demo(out: Path, cache_dir: Path | None, no_cache: bool, ratio: float, sweep: str,
         finetune_epochs: int, no_reconstruct: bool, train_epochs: int, threads: int | None,
         train_threads: int,
         repeats: int, latency_batch: int, serving_batch: int, seed: int,
         no_html: bool, as_json: bool, quiet: bool) -> None:
    """Prune a small CNN on the built-in digits data and write a before/after report."""
    from ..workflow.demo import DemoConfig, run_demo  # heavy imports only when the command runs

    config = DemoConfig(ratio=ratio, sweep=_ratios(sweep), train_epochs=train_epochs,
                        finetune_epochs=finetune_epochs, reconstruct=not no_reconstruct,
                        threads=threads,
                        latency_repeats=repeats, latency_warmup=min(10, repeats),
                        latency_batch=latency_batch, serving_batch=serving_batch,
                        train_threads=train_threads, seed=seed,
                        use_cache=not no_cache)
    printer = Printer(quiet=quiet or as_json)
    result = run_demo(config, out, cache_dir=cache_dir, log=printer.info, html=not no_html)
    if as_json:
        emit_json(result.report)
        return
    report = result.report
    if not quiet:
        rebuilt = "" if no_reconstruct else "layers reconstructed, "
        printer.result(f"digits CNN: {ratio:g} of the channels of every conv removed, {rebuilt}"
                       f"then {finetune_epochs} epochs of fine-tuning with distillation "
                       f"({report['timings_s']['total']:.1f} s in all)")
    printer.result(summary_table(report))
    printer.result(f"report: {result.files.json}"
                   + (f", {result.files.html}" if result.files.html else ""))
