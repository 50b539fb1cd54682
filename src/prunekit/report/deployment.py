"""The report's optional ``deployment`` section (docs/report.md): its structural check and
its part of ``report.html`` (rows side by side, the choice per batch size, the diagnosis)."""

from __future__ import annotations

import html
from typing import Any

__all__ = ["check_deployment", "deployment_html"]

_ROW = ("variant", "runtime", "format", "batch_size", "latency_ms", "status")


def check_deployment(data: Any, where: str = "deployment") -> None:
    """Raise :class:`~prunekit.report.schema.ReportError` when ``data`` is malformed."""
    from .schema import ReportError

    if not isinstance(data, dict):
        raise ReportError(f"{where} must be an object, got {type(data).__name__}")
    missing = [k for k in ("conditions", "rows", "chosen") if k not in data]
    if missing:
        raise ReportError(f"{where} lacks {missing}")
    if not isinstance(data["rows"], list) or not isinstance(data["chosen"], dict):
        raise ReportError(f"{where}.rows must be a list and {where}.chosen an object")
    for i, row in enumerate(data["rows"]):
        if not isinstance(row, dict) or any(k not in row for k in _ROW):
            raise ReportError(f"{where}.rows[{i}] lacks one of {list(_ROW)}")
        lat = row["latency_ms"]
        if lat is not None and (not isinstance(lat, dict) or "median" not in lat):
            raise ReportError(f"{where}.rows[{i}].latency_ms must be null or have a median")
    for batch, choice in data["chosen"].items():
        if not isinstance(choice, dict) or "format" not in choice or "reason" not in choice:
            raise ReportError(f"{where}.chosen[{batch!r}] must have a format and a reason")


def _e(value: Any) -> str:
    return html.escape(str(value))


def _cell(value: Any, digits: int = 3) -> str:
    if value is None:
        return "&ndash;"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def _metric(value: Any, fraction: bool) -> str:
    if value is None:
        return "&ndash;"
    return f"{100 * value:.2f}%" if fraction else f"{value:.4g}"


def deployment_html(report: dict[str, Any]) -> list[str]:
    """The "Deployment" section of ``report.html``, when the report has one."""
    section = report.get("deployment")
    if not section:
        return []
    fraction = bool(report["task"].get("metric_fraction", True))
    cond = section.get("conditions", {})
    base = {(r["runtime"], r["batch_size"]): r["latency_ms"]["median"]
            for r in section["rows"]
            if r["variant"] == "dense" and r["format"] == "fp32" and r["latency_ms"]}
    head = ("<tr><th>variant</th><th>runtime</th><th>format</th><th>batch</th>"
            "<th>latency median (ms)</th><th>p10&ndash;p90</th><th>vs dense fp32, same "
            "runtime</th><th>file (bytes)</th><th>metric</th><th>cosine vs fp32</th></tr>")
    body = []
    for r in section["rows"]:
        lat = r["latency_ms"]
        if lat is None:
            body.append(f"<tr><td>{_e(r['variant'])}</td><td>{_e(r['runtime'])}</td>"
                        f"<td>{_e(r['format'])}</td><td class=num>{_e(r['batch_size'])}</td>"
                        f"<td colspan=6>{_e(r['status'])}</td></tr>")
            continue
        ref = base.get((r["runtime"], r["batch_size"]))
        speed = f"{ref / lat['median']:.2f}&times;" if ref and lat["median"] else "&ndash;"
        body.append(
            f"<tr><td>{_e(r['variant'])}</td><td>{_e(r['runtime'])}</td><td>{_e(r['format'])}"
            f"</td><td class=num>{_e(r['batch_size'])}</td><td class=num>"
            f"{_cell(lat['median'])}</td><td class=num>{_cell(lat['p10'])}&ndash;"
            f"{_cell(lat['p90'])}</td><td class=num>{speed}</td><td class=num>"
            f"{_cell(r.get('file_bytes'))}</td><td class=num>"
            f"{_metric(r.get('metric'), fraction)}</td><td class=num>"
            f"{_cell(r.get('cosine_vs_fp32'), 5)}</td></tr>")
    chosen = "".join(f"<li>batch {_e(b)}: <b>{_e(c['format'])}</b> &mdash; {_e(c['reason'])}"
                     "</li>" for b, c in sorted(section["chosen"].items(),
                                               key=lambda item: int(item[0])))
    flags = cond.get("cpu_flags")
    parts = ["<h2>Deployment</h2>",
             (f'<p class="note">Timed on {_e(cond.get("cpu", "cpu"))} (flags: '
              f"{_e(', '.join(flags) if flags else 'unknown')}), {_e(cond.get('threads'))} "
              f"thread(s), median of {_e(cond.get('repeats'))} runs after "
              f"{_e(cond.get('warmup'))} warm-up runs, onnxruntime "
              f"{_e(cond.get('onnxruntime'))} ({_e(cond.get('provider'))}), torch "
              f"{_e(cond.get('torch'))}. A format is chosen only where it measures at least "
              f"{_e(cond.get('min_speedup'))}&times; faster than ONNX Runtime fp32 of the "
              f"pruned model, within a metric budget of {_e(cond.get('budget'))}.</p>"),
             f"<table>{head}{''.join(body)}</table>", f"<p>Chosen:</p><ul>{chosen}</ul>"]
    qat = section.get("qat")
    if qat:
        parts.append(f'<p class="note">Quantization-aware recovery: '
                     f"{'ran' if qat.get('triggered') else 'not needed'} "
                     f"({_e(qat.get('reason', ''))}).</p>")
    diagnosis = section.get("diagnosis") or {}
    items = []
    if diagnosis.get("channels"):
        items.append(f"<li>{_e(diagnosis['channels']['detail'])}</li>")
    for entry in diagnosis.get("rows", []):
        per = "; ".join(
            f"batch {p['batch_size']}: "
            + (f"{p['speedup_vs_dense_fp32']:.2f}&times; dense (&eta; {p['eta']:.2f})"
               if "eta" in p else "")
            + (f", {p['speedup_vs_own_fp32']:.2f}&times; its fp32"
               if "speedup_vs_own_fp32" in p else "")
            for p in entry["per_batch"])
        found = "".join(f"<li>{_e(f['detail'])}</li>" for f in entry["findings"])
        items.append(f"<li>{_e(entry['variant'])} {_e(entry['runtime'])} "
                     f"{_e(entry['format'])} (MACs {_cell(entry.get('macs_reduction'), 2)}"
                     f"&times; fewer): {per}<ul>{found}</ul></li>")
    if items:
        parts += ["<h3>Why not faster (measured)</h3>", f"<ul>{''.join(items)}</ul>"]
    return parts
