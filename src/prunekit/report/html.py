"""Render a report document as one self-contained HTML page (plots inlined as base64 PNG)."""

from __future__ import annotations

import base64
import html
import json
from typing import Any

from .deployment import deployment_html
from .training import training_html
from .plots import kept_units_png, metric_vs_macs_png, sensitivity_curves_png

__all__ = ["render_html"]

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:60rem;
color:#1d2330;padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #dde}
table{border-collapse:collapse;margin:.5rem 0}
td,th{padding:.3rem .8rem;border-bottom:1px solid #eee}
th{text-align:left;background:#f4f6fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%}pre{background:#f4f6fa;padding:.8rem;overflow-x:auto;font-size:.8rem}
.note{color:#5a6270;font-size:.9rem}
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _num(value: Any, digits: int = 0) -> str:
    if value is None:
        return "&ndash;"
    if isinstance(value, float) and digits:
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else f"{value:.4g}"


def _pct(value: Any) -> str:
    return "&ndash;" if value is None else f"{100 * value:.2f}%"


def _metric(value: Any, report: dict[str, Any]) -> str:
    """A metric value: a percentage for fractions (accuracy), else 4 significant digits."""
    if value is None:
        return "&ndash;"
    return _pct(value) if report["task"].get("metric_fraction", True) else f"{value:.4g}"


def _ratio(before: Any, after: Any) -> str:
    if not before or not after:
        return "&ndash;"
    return f"{before / after:.2f}&times;"


def _img(png: bytes | None, alt: str) -> str:
    if png is None:
        return f'<p class="note">({_e(alt)}: nothing to plot)</p>'
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _speed(report: dict[str, Any]) -> list[str]:
    """The headline: serving-batch throughput, batch-1 latency and where the time goes."""
    if not report.get("speed"):
        return []
    from .speed import speed_lines

    lines = speed_lines(report["speed"])
    return ["<h2>Speed</h2>", "<ul>" + "".join(f"<li>{_e(line)}</li>" for line in lines)
            + "</ul>"]


def _depth_width(report: dict[str, Any]) -> list[str]:
    """Every depth + width candidate as measured, the chosen one marked."""
    section = report.get("depth_width")
    if not section:
        return []
    chosen = section.get("chosen") or {}
    head = ("<tr><th>blocks removed</th><th>ranking</th><th>MACs reduction</th><th>ms</th>"
            "<th>speed-up</th><th>metric</th><th>note</th></tr>")
    rows = []
    for c in section["candidates"]:
        mark = " (chosen)" if c["blocks"] == chosen.get("blocks") else ""
        metric = "" if c.get("metric") is None else f"{c['metric']:.4g}"
        rows.append(f"<tr><td>{len(c['blocks'])}{mark}</td><td>{_e(c['ranking'])}</td>"
                    f"<td>{c['macs_reduction']:.2f}&times;</td><td>{c['ms']:.3f}</td>"
                    f"<td>{c['speedup']:.2f}&times;</td><td>{metric}</td>"
                    f"<td>{_e(c.get('note', ''))}</td></tr>")
    batch = section.get("batch_size")
    return ["<h2>Depth + width candidates</h2>",
            f'<p class="note">each candidate meets {section["target"]:.2f}&times; fewer MACs; '
            f"timed against the dense model, interleaved, at batch {_e(str(batch))}; the "
            "fastest acceptable one was kept</p>",
            f"<table>{head}{''.join(rows)}</table>"]


def _summary_table(report: dict[str, Any]) -> str:
    b, a = report["before"], report["after"]
    lb, la = b["latency_ms"], a["latency_ms"]
    metric = report["task"].get("metric", "metric")
    rows = [
        ("parameters", _num(b["params"]), _num(a["params"]), _ratio(b["params"], a["params"])),
        ("MACs", _num(b["macs"]), _num(a["macs"]), _ratio(b["macs"], a["macs"])),
        ("size (bytes, parameters + buffers)", _num(b["size_bytes"]), _num(a["size_bytes"]),
         _ratio(b["size_bytes"], a["size_bytes"])),
        ("file on disk (bytes, safetensors)", _num(b["file_bytes"]), _num(a["file_bytes"]),
         _ratio(b["file_bytes"], a["file_bytes"])),
        ("latency median (ms)", _num(lb["median"], 3), _num(la["median"], 3),
         _ratio(lb["median"], la["median"])),
        ("latency p10&ndash;p90 (ms)", f"{lb['p10']:.3f}&ndash;{lb['p90']:.3f}",
         f"{la['p10']:.3f}&ndash;{la['p90']:.3f}", ""),
        (_e(metric), _metric(b["metric"], report), _metric(a["metric"], report), ""),
    ]
    body = "".join(f"<tr><td>{name}</td><td class=num>{x}</td><td class=num>{y}</td>"
                   f"<td class=num>{r}</td></tr>" for name, x, y, r in rows)
    int8_rows, int8_note = _int8_rows(report.get("int8"))
    graph = ", timed as CUDA-graph replays" if la.get("cuda_graph") else ""
    return ("<table><tr><th></th><th>before</th><th>after</th><th>before / after</th></tr>"
            f"{body}{int8_rows}</table>"
            f'<p class="note">Latency: {_e(la["device"])}, batch {_e(la["batch_size"])}, '
            f'{_e(la["dtype"])}, {_e(la["threads"])} thread(s), median of {_e(la["repeats"])} '
            f'runs after {_e(la["warmup"])} warm-up runs{graph}. MACs counted by PyTorch\'s '
            f"FlopCounterMode (FLOPs / 2).{int8_note}</p>")


def _int8_rows(int8: dict[str, Any] | None) -> tuple[str, str]:
    """Rows (pruned fp32 against int8) and a note for the ``int8`` section, if present."""
    if not int8:
        return "", ""
    size, lat = int8["size_bytes"], int8["latency_ms_median"]
    cond = int8.get("latency_conditions") or {}
    rows = [("int8: serialized size (bytes, state dict)", _num(size["fp32"]),
             _num(size["int8"]), _ratio(size["fp32"], size["int8"])),
            ("int8: latency median (ms)", _num(float(lat["fp32"]), 3),
             _num(float(lat["int8"]), 3), _ratio(lat["fp32"], lat["int8"]))]
    head = ("<tr><th>int8 export (prunekit export --int8)</th><th>pruned fp32</th>"
            "<th>pruned int8</th><th>fp32 / int8</th></tr>")
    body = "".join(f"<tr><td>{name}</td><td class=num>{x}</td><td class=num>{y}</td>"
                   f"<td class=num>{r}</td></tr>" for name, x, y, r in rows)
    diff = int8.get("max_abs_diff_vs_fp32")
    note = (f" int8: {_e(int8.get('quantized_linear_layers', '?'))} Linear layer(s) quantized "
            f"by {_e(int8.get('method', 'dynamic quantization'))}; latency on "
            f"{_e(cond.get('device', 'cpu'))}, {_e(cond.get('threads', '?'))} thread(s), median "
            f"of {_e(cond.get('repeats', '?'))} runs; largest output difference from fp32 "
            f"{'&ndash;' if diff is None else f'{float(diff):.3g}'}.")
    return head + body, note


def _layers_table(layers: list[dict[str, Any]]) -> str:
    if not layers:
        return '<p class="note">No pruned groups.</p>'
    body = "".join(
        f"<tr><td>{_e(r['group'])}</td><td>{_e(', '.join(r['modules']))}</td>"
        f"<td class=num>{r['units_before']}</td><td class=num>{r['units_after']}</td></tr>"
        for r in layers)
    return ("<table><tr><th>group</th><th>modules</th><th>units before</th><th>kept</th></tr>"
            f"{body}</table>")


def _points_table(report: dict[str, Any]) -> str:
    metric = str(report["task"].get("metric", "metric"))
    body = "".join(f"<tr><td>{_e(p['label'])}</td><td>{_e(p['stage'])}</td>"
                   f"<td class=num>{_num(p['macs'])}</td><td class=num>{_num(p['params'])}</td>"
                   f"<td class=num>{_metric(p['metric'], report)}</td></tr>"
                   for p in report["points"])
    return ("<table><tr><th>variant</th><th>stage</th><th>MACs</th><th>parameters</th>"
            f"<th>{_e(metric)}</th></tr>"
            f"{body}</table>")


def _sensitivity(report: dict[str, Any]) -> list[str]:
    """The "Sensitivity curves" section, when the report carries one."""
    section = report.get("sensitivity")
    if not section:
        return []
    units = section.get("units") or {}
    ratios = section["ratios"]
    head = "".join(f"<th>{_e(f'{r:g}')}</th>" for r in ratios)
    body = "".join(
        f"<tr><td>{_e(key)}</td><td class=num>{_e(units.get(key, ''))}</td>"
        + "".join(f"<td class=num>{_num(float(v))}</td>" for v in values) + "</tr>"
        for key, values in section["curves"].items())
    return ["<h2>Sensitivity curves</h2>",
            _img(sensitivity_curves_png(section), "sensitivity curves"),
            (f'<p class="note">Each group pruned alone, no fine-tuning; '
             f"{_e(section.get('metric', 'metric'))} on the validation data (baseline "
             f"{_num(float(section['baseline']))}).</p>"),
            f"<table><tr><th>group</th><th>units</th>{head}</tr>{body}</table>"]


def _decomposition(report: dict[str, Any]) -> list[str]:
    """The "Low-rank decomposition" section, when the run factorized layers."""
    section = report.get("decomposition")
    if not section:
        return []

    def cell(value: Any, digits: int = 4) -> str:
        return "&ndash;" if value is None else f"{float(value):.{digits}f}"

    rows = []
    for r in section["layers"]:
        rank = "&ndash;" if r["rank"] is None else _e(" x ".join(str(v) for v in r["rank"]))
        full = "" if not r.get("full_rank") else f" / {_e(' x '.join(map(str, r['full_rank'])))}"
        what = _e(r["kind"]) if r["kind"] else \
            f'dense <span class="note">({_e(r["reason"])})</span>'
        rows.append(f"<tr><td>{_e(r['name'])}</td><td>{what}</td><td>{rank}{full}</td>"
                    f"<td class=num>{_num(r['params_before'])}</td>"
                    f"<td class=num>{_num(r['params_after'])}</td>"
                    f"<td class=num>{cell(r['energy'])}</td><td class=num>{cell(r['error'])}</td>"
                    f"<td class=num>{cell(r['ms_dense'], 3)}</td>"
                    f"<td class=num>{cell(r['ms'], 3)}</td></tr>")
    skipped = section.get("skipped") or {}
    note = "".join(f"<li>{_e(name)}: {_e(why)}</li>" for name, why in skipped.items())
    return ["<h2>Low-rank decomposition</h2>",
            ('<p class="note">Error: relative output error of the layer on the calibration '
             "batches (or in weight space without them); energy: fraction of the spectrum "
             "kept; latency: the layer alone on its real inputs, dense and factorized (when "
             "timed).</p>"),
            ("<table><tr><th>layer</th><th>factorization</th><th>rank / full</th>"
             "<th>params before</th><th>after</th><th>energy kept</th><th>error</th>"
             f"<th>ms dense</th><th>ms factorized</th></tr>{''.join(rows)}</table>"),
            *([f'<p class="note">Left alone:</p><ul class="note">{note}</ul>'] if note else [])]


def render_html(report: dict[str, Any]) -> str:
    """The report as an HTML page with no external resources (ASCII-only text)."""
    metric = str(report["task"].get("metric", "metric"))
    title = f"prunekit report: {report['model'].get('name', 'model')}"
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        (f'<p class="note">Created {_e(report["created"])} &middot; data: '
         f'{_e(report["task"].get("dataset", "?"))} ({_e(report["task"].get("split", ""))}) '
         f"&middot; metric: {_e(metric)} &middot; prunekit "
         f"{_e(report['versions'].get('prunekit'))}, torch "
         f"{_e(report['versions'].get('torch'))}</p>"),
        *_speed(report),
        *_depth_width(report),
        "<h2>Before and after</h2>", _summary_table(report),
        "<h2>Kept units per layer</h2>", _img(kept_units_png(report["layers"]),
                                             "kept units per group"),
        _layers_table(report["layers"]),
        f"<h2>{_e(metric)} vs MACs</h2>",
        _img(metric_vs_macs_png(report["points"], metric,
                                fraction=bool(report["task"].get("metric_fraction", True))),
             f"{metric} vs MACs"),
        _points_table(report),
        *_decomposition(report),
        *_sensitivity(report),
        *deployment_html(report),
        *training_html(report),
        "<h2>Settings</h2>",
        f"<pre>{_e(json.dumps(report['settings'], indent=1))}</pre>",
        "<h2>Versions</h2>",
        f"<pre>{_e(json.dumps(report['versions'], indent=1))}</pre>",
        "</body></html>\n",
    ]
    return "".join(parts).encode("ascii", "xmlcharrefreplace").decode("ascii")
