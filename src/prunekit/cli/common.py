"""Helpers shared by the subcommands: common options, messages, tables, JSON output."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from ..models.spec import ModelSpec

__all__ = [
    "Printer",
    "emit_json",
    "format_table",
    "json_option",
    "model_arg_option",
    "out_option",
    "parse_shape",
    "quiet_option",
]

F = TypeVar("F", bound=Callable[..., Any])


def json_option(fn: F) -> F:
    """``--json``: print machine-readable results on stdout."""
    return click.option("--json", "as_json", is_flag=True,
                        help="Print machine-readable JSON on stdout.")(fn)


def quiet_option(fn: F) -> F:
    """``--quiet``: no progress messages on stderr."""
    return click.option("--quiet", "-q", is_flag=True, help="No progress messages.")(fn)


def out_option(default: str | None, help_text: str) -> Callable[[F], F]:
    """``--out DIR``: where files are written."""
    return click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path),
                        default=default, show_default=default is not None, help=help_text)


@dataclass(frozen=True)
class Printer:
    """Progress goes to stderr (unless quiet); results go to stdout."""

    quiet: bool = False

    def info(self, message: str) -> None:
        if not self.quiet:
            click.echo(message, err=True)

    def result(self, text: str) -> None:
        click.echo(text)


def _check_metric(_ctx: click.Context, _param: click.Parameter,
                  value: str | None) -> str | None:
    """Reject an unknown ``--metric`` as a usage error before any work starts."""
    from ..errors import ConfigError
    from ..metrics import parse_metric

    if value is None:
        return None
    try:
        parse_metric(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


def make_data_options(default: str | None, flag: str = "--data",
                      none_note: str = " Default: none (random input, no metric).",
                      ) -> Callable[[F], F]:
    """``--data`` (or ``flag``; default ``default``; ``None``: no data, ``none_note`` says
    what then), ``--label-column``, ``--image-size``, ``--split``, ``--feature-column`` and
    ``--metric``."""
    from ..metrics import METRIC_HELP

    note = none_note if default is None else ""
    options = [
        click.option(flag, "data_spec", default=default, show_default=default is not None,
                     help="digits (built in), path/to/data.npz (arrays x, y), "
                          "path/to/table.csv, a Hugging Face dataset folder (save_to_disk) "
                          "or an image folder (class subfolders)." + note),
        click.option("--label-column", default="label", show_default=True,
                     help="CSV or Hugging Face data: the column that holds the class "
                          "(Hugging Face: labels, target or y are tried when label is "
                          "absent)."),
        click.option("--image-size", type=click.IntRange(min=1), default=224,
                     show_default=True,
                     help="Image-folder data: images are resized to this square size "
                          "(Hugging Face images: only when the model's input size is "
                          "unknown and their sizes differ)."),
        click.option("--split", default=None,
                     help="Hugging Face DatasetDict: the split to use, divided into "
                          "train/validation (NAME), or TRAIN,VAL [default: train, and "
                          "validation/test when present]."),
        click.option("--feature-column", default=None,
                     help="Hugging Face data: the input column (image or array), or numeric "
                          "columns A,B,C [default: the image column, else a column named "
                          "image/pixel_values/x/features, else the only other column]."),
        click.option("--metric", default="accuracy" if default is not None else None,
                     show_default=default is not None, callback=_check_metric,
                     help=f"Metric on the validation split: {METRIC_HELP}."
                          + (f" Needs {flag}." if default is None else "")),
    ]

    def decorate(fn: F) -> F:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


def data_options(fn: F) -> F:
    """The data options of ``prune`` and ``analyze`` (``--data`` defaults to digits)."""
    return make_data_options("digits")(fn)


def parse_assignments(option: str) -> Callable[[click.Context, click.Parameter,
                                                 tuple[str, ...]], dict[str, Any]]:
    """A click callback: ``OPTION KEY=VALUE`` (repeatable) → ``{KEY: value}``; malformed: a
    usage error."""
    def parse(_ctx: click.Context, _param: click.Parameter,
              values: tuple[str, ...]) -> dict[str, Any]:
        from ..errors import ConfigError
        from ..models.args import merge_args, parse_assignment

        try:
            pairs = [parse_assignment(text, where=option) for text in values]
            return dict(merge_args((), pairs, where=option))
        except ConfigError as exc:
            raise click.BadParameter(str(exc)) from None
    return parse


def model_arg_option(fn: F) -> F:
    """``--model-arg KEY=VALUE``: a constructor argument of the model (repeatable)."""
    return click.option(
        "--model-arg", "model_args", multiple=True, metavar="KEY=VALUE",
        callback=parse_assignments("--model-arg"),
        help="Constructor argument of the model, e.g. num_classes=10 (num_labels=10 for a "
             "Hugging Face folder); values are integers, floats, true/false or text; "
             "repeatable. The same as 'SPEC?num_classes=10' (comma-separated).")(fn)


def model_and_pruning_options(fn: F) -> F:
    """Options ``prune`` and ``analyze`` share: what to leave whole and how to load the model."""
    options = [
        model_arg_option,
        click.option("--ignore", multiple=True,
                     help="Module name (glob) to leave unpruned; repeatable."),
        click.option("--round-to", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Round kept units per group up to a multiple of this."),
        click.option("--input-shape", default=None,
                     help="Example input shape, batch first (e.g. 1,64): data samples are "
                          "reshaped to it."),
        click.option("--weights", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help="Weights to load (.safetensors, or a .pt state dict read "
                          "weights-only); a head for another class count sets "
                          "num_classes (num_labels) unless given, and says so."),
        click.option("--trust-pickle", is_flag=True,
                     help="Allow unpickling a model or weights file (runs code stored in it: "
                          "only for files you trust)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def check_model_spec(model_spec: str, args: dict[str, Any] | None = None,
                     hint: str = "MODEL_SPEC") -> ModelSpec:
    """``model_spec`` with ``--model-arg`` values ``args``, parsed; malformed: a usage error
    (exit 2) before any work starts."""
    from ..errors import ConfigError
    from ..models.spec import parse_model_spec

    try:
        return parse_model_spec(model_spec, args or {})
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint=hint) from None


def emit_json(data: Any) -> None:
    """Write ``data`` as indented JSON to stdout."""
    sys.stdout.write(json.dumps(data, indent=1, allow_nan=False) + "\n")
    sys.stdout.flush()


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table: first column left-aligned, the others right-aligned."""
    table = [list(headers), *[list(r) for r in rows]]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(table):
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def parse_shape(text: str) -> tuple[int, ...]:
    """``"1,3,224,224"`` or ``"1x3x224x224"`` → ``(1, 3, 224, 224)``; raise BadParameter."""
    parts = text.replace("x", ",").replace(" ", "").split(",")
    try:
        shape = tuple(int(p) for p in parts if p)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a shape like 1,3,224,224") from None
    if not shape or min(shape) < 1:
        raise click.BadParameter(f"{text!r} is not a shape of positive sizes like 1,3,224,224")
    return shape
