"""Options that ``export`` and ``measure`` share for deployment measurements (int8 and the
other formats, runtimes, batch sizes), and the table they print."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

import click

if TYPE_CHECKING:
    from ..export.config import QuantizeConfig
    from ..export.deploy import Deployment

__all__ = ["deploy_options", "deployment_lines", "quantize_config"]

F = TypeVar("F", bound=Callable[..., Any])


def deploy_options(runtimes_default: str | None) -> Callable[[F], F]:
    """``--int8``, ``--formats``, ``--runtimes`` (default ``runtimes_default``),
    ``--batch-sizes``, calibration and choice settings."""
    options = [
        click.option("--int8", "int8", type=click.Choice(["static", "dynamic", "auto"]),
                     default=None, is_flag=False, flag_value="auto",
                     help="Also make int8 ONNX files and time every format: static "
                          "(calibrated; QDQ and QOperator, per-channel weights), dynamic, or "
                          "auto (both, and fp16; the bare flag). The fastest acceptable "
                          "format is chosen per batch size, by measurement."),
        click.option("--formats", default=None,
                     help="ONNX formats to make and time instead, comma-separated, from "
                          "fp32, fp16, int8-qdq, int8-qoperator, int8-dynamic."),
        click.option("--runtimes", default=runtimes_default,
                     show_default=runtimes_default is not None,
                     help="Where to time: eager, compile (torch.compile), onnxruntime, "
                          "comma-separated" + ("." if runtimes_default is not None else
                                               " [default: all three with --int8]; given "
                                               "alone, times fp32 in each.")),
        click.option("--batch-sizes", default="1,8", show_default=True,
                     help="Batch sizes to time every runtime and format at."),
        click.option("--calibration-samples", type=click.IntRange(min=1), default=256,
                     show_default=True,
                     help="Training samples that static int8 is calibrated on."),
        click.option("--per-tensor", is_flag=True,
                     help="One weight scale per tensor instead of per output channel."),
        click.option("--op-types", default=None,
                     help="ONNX op types to quantize, comma-separated [default: Conv, "
                          "MatMul, Gemm, Gather for static; MatMul, Gather for dynamic]."),
        click.option("--exclude", "exclude_modules", default=None,
                     help="Modules to keep in float, comma-separated names."),
        click.option("--budget", type=float, default=0.005, show_default=True,
                     help="Largest metric drop from fp32 a chosen format may have."),
        click.option("--min-speedup", type=float, default=1.05, show_default=True,
                     help="How much faster than ONNX Runtime fp32 a format must measure to "
                          "be chosen."),
        click.option("--qat-epochs", type=click.IntRange(min=0), default=0, show_default=True,
                     help="When the fastest int8 format loses more than --budget, fine-tune "
                          "this many epochs with fake quantization and quantize again."),
    ]

    def decorate(fn: F) -> F:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


def _list(text: str | None) -> list[str] | None:
    return None if text is None else [t.strip() for t in text.split(",") if t.strip()]


def quantize_config(*, int8: str | None, formats: str | None, runtimes: str | None,
                    batch_sizes: str, calibration_samples: int, per_tensor: bool,
                    op_types: str | None, exclude_modules: str | None, budget: float,
                    min_speedup: float, qat_epochs: int, threads: int | None, warmup: int,
                    repeats: int) -> QuantizeConfig:
    """The options as a :class:`QuantizeConfig`; a bad value is a usage error."""
    from ..errors import ConfigError
    from ..export.config import QuantizeConfig

    try:
        sizes = tuple(int(b) for b in batch_sizes.split(",") if b.strip())
    except ValueError:
        raise click.BadParameter(f"{batch_sizes!r} is not a list of batch sizes like 1,8",
                                 param_hint="--batch-sizes") from None
    listed = _list(formats)
    try:
        return QuantizeConfig(
            int8=cast(Literal["static", "dynamic", "auto"], int8 or "auto"),
            formats=tuple(listed) if listed is not None else None,
            per_channel=not per_tensor, op_types=tuple(_list(op_types) or ()) or None,
            exclude=tuple(_list(exclude_modules) or ()),
            calibration_samples=calibration_samples,
            runtimes=tuple(_list(runtimes) or ("onnxruntime",)), batch_sizes=sizes,
            threads=threads, warmup=warmup, repeats=repeats, budget=budget,
            min_speedup=min_speedup, qat_epochs=qat_epochs)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None


def deployment_lines(deployment: Deployment) -> list[str]:
    """The rows as a table, then the choice per batch size and the diagnosed rows."""
    from .common import format_table

    base = {(r.runtime, r.batch_size): r.latency.median_ms for r in deployment.rows
            if r.variant == "dense" and r.format == "fp32" and r.latency is not None}
    rows = []
    for r in deployment.rows:
        if r.latency is None:
            rows.append([r.variant, r.runtime, r.format, str(r.batch_size), r.status, "", "",
                         ""])
            continue
        ref = base.get((r.runtime, r.batch_size))
        rows.append([r.variant, r.runtime, r.format, str(r.batch_size),
                     f"{r.latency.median_ms:.3f}",
                     f"{ref / r.latency.median_ms:.2f}x" if ref else "",
                     "" if r.file_bytes is None else f"{r.file_bytes:,}",
                     "" if r.metric is None else f"{r.metric:.4f}"])
    cond = deployment.conditions
    lines = [format_table(["variant", "runtime", "format", "batch", "median ms",
                           "vs dense", "file bytes", "metric"], rows),
             f"timed on {cond['cpu']} ({', '.join(cond['cpu_flags'] or [])}), "
             f"{cond['threads']} thread(s), median of {cond['repeats']} runs after "
             f"{cond['warmup']} warm-up; onnxruntime {cond['onnxruntime']}"]
    lines += [f"chosen at {line}" for line in deployment.summary()]
    channels = deployment.diagnosis.get("channels")
    if channels:
        lines.append(f"why not faster: {channels['detail']}")
    for entry in deployment.diagnosis.get("rows", []):
        for finding in entry["findings"]:
            lines.append(f"why not faster ({entry['variant']} {entry['runtime']} "
                         f"{entry['format']}): {finding['detail']}")
    if deployment.qat:
        lines.append(f"quantization-aware recovery: "
                     f"{'ran' if deployment.qat.get('triggered') else 'not run'} "
                     f"({deployment.qat.get('reason', '')})")
    return lines
