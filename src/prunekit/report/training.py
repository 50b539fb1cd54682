"""The report's optional ``training`` section (docs/report.md): the training cost of a run
that pruned while training, against the dense run when one was trained: wall time per
epoch and cumulative, MACs after every pruning step, the metric after every epoch. Its
structural check, its part of ``report.html`` and its plot."""

from __future__ import annotations

import base64
import html
from typing import Any

__all__ = ["check_training", "training_html", "training_png"]

_EPOCH = ("epoch", "seconds", "cumulative", "metric", "macs")


def _check_record(data: Any, where: str) -> None:
    from .schema import ReportError

    if not isinstance(data, dict) or "epochs" not in data or "macs_steps" not in data \
            or "seconds" not in data:
        raise ReportError(f"{where} must be an object with epochs, macs_steps and seconds")
    for i, row in enumerate(data["epochs"]):
        if not isinstance(row, dict) or any(k not in row for k in _EPOCH):
            raise ReportError(f"{where}.epochs[{i}] lacks one of {list(_EPOCH)}")
    for i, pair in enumerate(data["macs_steps"]):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ReportError(f"{where}.macs_steps[{i}] must be [step, MACs]")


def check_training(data: Any, where: str = "training") -> None:
    """Raise :class:`~prunekit.report.schema.ReportError` when ``data`` is malformed."""
    from .schema import ReportError

    if not isinstance(data, dict) or "shrink" not in data:
        raise ReportError(f"{where} must be an object with a 'shrink' record")
    _check_record(data["shrink"], f"{where}.shrink")
    if data.get("dense") is not None:
        _check_record(data["dense"], f"{where}.dense")


def training_png(section: dict[str, Any], metric: str) -> bytes | None:
    """Cumulative time per epoch, MACs per optimizer step, metric against training time."""
    from .plots import _figure, _png

    fig = _figure(12.0, 3.6)
    if fig is None:
        return None
    axes = fig.subplots(1, 3)
    runs = [("shrink while training", section["shrink"], "#d9822b")]
    if section.get("dense"):
        runs.insert(0, ("dense", section["dense"], "#7a818c"))
    for label, record, colour in runs:
        epochs = record["epochs"]
        axes[0].plot([e["epoch"] for e in epochs], [e["cumulative"] for e in epochs],
                     marker="o", color=colour, label=label)
        steps = record["macs_steps"]
        axes[1].step([s for s, _ in steps], [m / 1e6 for _, m in steps], where="post",
                     color=colour, label=label)
        axes[2].plot([e["cumulative"] for e in epochs], [e["metric"] for e in epochs],
                     marker="o", color=colour, label=label)
    axes[0].set(title="cumulative training time", xlabel="epoch", ylabel="seconds")
    axes[1].set(title="MACs of the model", xlabel="optimizer step", ylabel="M MACs")
    axes[2].set(title=f"validation {metric}", xlabel="training seconds", ylabel=metric)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _png(fig)


def _img(png: bytes | None, alt: str) -> str:
    if png is None:
        return f'<p class="note">({html.escape(alt)}: nothing to plot)</p>'
    return (f'<img alt="{html.escape(alt)}" '
            f'src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">')


def training_html(report: dict[str, Any]) -> list[str]:
    """The "Training cost" section of ``report.html``, when the report has one."""
    section = report.get("training")
    if not section:
        return []
    metric = str(report["task"].get("metric", "metric"))
    shrink, dense = section["shrink"], section.get("dense")
    rows = []
    for label, record in (("dense", dense), ("shrink while training", shrink)):
        if not record:
            continue
        speed = (f"{dense['seconds'] / record['seconds']:.2f}&times;"
                 if dense and record["seconds"] else "&ndash;")
        last = record["epochs"][-1] if record["epochs"] else {}
        rows.append(f"<tr><td>{html.escape(label)}</td><td class=num>{record['seconds']:.2f}"
                    f"</td><td class=num>{speed}</td><td class=num>"
                    f"{last.get('macs', 0):,}</td><td class=num>{last.get('metric', 0):.4g}"
                    "</td></tr>")
    note = (f"<p class=note>Training wall time excludes evaluation; "
            f"{int(section.get('threads', 0))} threads. "
            f"{html.escape(str(section.get('stop_reason') or ''))}</p>")
    return ["<h2>Training cost</h2>",
            "<table><tr><th>run</th><th>training seconds</th><th>speed-up over dense</th>"
            f"<th>final MACs</th><th>final {html.escape(metric)}</th></tr>", *rows,
            "</table>", note, _img(training_png(section, metric), "training cost")]
