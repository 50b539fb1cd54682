"""Engine speed and peak memory: prunekit vs Torch-Pruning on five torchvision models.

For each (model, tool) it runs ``--repeats`` fresh subprocesses (fresh model each) and reports
the median engine time (prunekit: the ``prunekit.prune`` call; Torch-Pruning:
``MetaPruner(...)`` construction + ``step()``), both at ratio 0.5, batch 1, fp32, CPU.

Peak memory method: inside the subprocess, after the model and input are built, the kernel's
peak-RSS counter is reset (``echo 5 > /proc/self/clear_refs``, Linux >= 4.0; if that is not
permitted the counter is left alone and the report says so) and ``VmRSS`` is read from
``/proc/self/status`` as the baseline. After pruning, ``VmHWM`` (peak RSS) is read. The report
shows ``(VmHWM - baseline) / parameter bytes of the unpruned model``: the extra resident memory
the engine needed, in units of the model's own weights.

Usage::

    python benchmarks/engine_speed.py --markdown docs/benchmarks/engine_speed.md
    python benchmarks/engine_speed.py --models resnet50 --repeats 1 --tools prunekit
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_model, load_average  # noqa: E402


TOOLS = ("prunekit", "tp")
TOOL_NAMES = {"prunekit": "prunekit", "tp": "Torch-Pruning"}
RATIO = 0.5


def build(name: str):
    """A fresh, randomly initialised torchvision classifier in eval mode and a 1x3x224x224 input."""
    import torch
    import torchvision
    torch.manual_seed(0)
    model = torchvision.models.get_model(name, weights=None).eval()
    side = 299 if name == "inception_v3" else 224
    return model, torch.randn(1, 3, side, side)


def engine(tool: str, model, x, surgery: dict[str, float] | None = None) -> float:
    """Prune ``model`` in place at RATIO with one tool; return the engine seconds.

    ``surgery`` receives the peak RSS growth (bytes) of the phase that changes the model:
    prunekit's final ``apply_plan``, Torch-Pruning's ``step()`` (which also scores).
    """
    surgery = {} if surgery is None else surgery
    if tool == "prunekit":
        import prunekit
        import prunekit.api

        apply_plan = prunekit.api.apply_plan

        def measured_apply(*args, **kwargs):
            with _peak_growth(surgery):
                return apply_plan(*args, **kwargs)

        prunekit.api.apply_plan = measured_apply
        try:
            t0 = time.perf_counter()
            prunekit.prune(model, x, ratio=RATIO)
            return time.perf_counter() - t0
        finally:
            prunekit.api.apply_plan = apply_plan
    if tool == "tp":
        import torch.nn as nn
        import torch_pruning as tp
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        heads = [m for m in linears if m.out_features == 1000] or linears[-1:]
        num_heads = {m: m.num_heads for m in model.modules() if isinstance(m, nn.MultiheadAttention)}
        t0 = time.perf_counter()
        pruner = tp.pruner.MetaPruner(model, x, importance=tp.importance.MagnitudeImportance(p=2),
                                      pruning_ratio=RATIO, ignored_layers=heads,
                                      num_heads=num_heads)
        with _peak_growth(surgery):
            pruner.step()
        return time.perf_counter() - t0
    raise ValueError(f"unknown tool {tool!r}")


class _peak_growth:
    """Context manager: peak RSS growth inside the block, in bytes, into ``out["bytes"]``.

    The kernel's peak counter is reset on entry, so the peak reached before the block is
    kept in ``out["peak_before_kb"]`` for the whole-run figure."""

    def __init__(self, out: dict[str, float]) -> None:
        self.out = out

    def __enter__(self) -> None:
        self.out["peak_before_kb"] = _status_kb("VmHWM")
        Path("/proc/self/clear_refs").write_text("5")
        self.start_kb = _status_kb("VmRSS")

    def __exit__(self, *exc: object) -> None:
        self.out["bytes"] = max(0, _status_kb("VmHWM") - self.start_kb) * 1024


def first_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text.splitlines()[0][:300]


def _versions() -> dict[str, str]:
    import importlib.metadata as md
    import platform
    out = {"python": platform.python_version()}
    for pkg in ("torch", "torchvision", "torch-pruning", "prunekit"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def header(title: str, command: str, threads: int, extra: list[str] | None = None) -> list[str]:
    v = _versions()
    lines = [f"# {title}", "",
             f"- CPU: {cpu_model()}, {os.cpu_count()} cores visible; torch threads per run: {threads}",
             f"- torch {v['torch']}, torchvision {v['torchvision']}, torch-pruning {v['torch-pruning']}, "
             f"prunekit {v['prunekit']}, Python {v['python']}",
             "- batch 1, fp32, CPU, eval mode, random init (`weights=None`), input 1x3x224x224, "
             "pruning ratio 0.5",
             f"- command: `{command}`"]
    return lines + (extra or []) + [""]


MODELS = ("resnet50", "densenet161", "vit_b_16", "convnext_base", "efficientnet_b0")


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def worker(name: str, tool: str, threads: int) -> dict[str, Any]:
    import torch
    torch.set_num_threads(threads)
    if tool == "tp":
        import torch_pruning  # noqa: F401 - import before the baseline, like prunekit below
    else:
        import prunekit  # noqa: F401
    model, x = build(name)
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    try:
        Path("/proc/self/clear_refs").write_text("5")
        reset = True
    except OSError:
        reset = False
    baseline_kb = _status_kb("VmRSS")
    rec: dict[str, Any] = {"model": name, "tool": tool, "param_bytes": param_bytes,
                           "hwm_reset": reset, "baseline_kb": baseline_kb}
    surgery: dict[str, float] = {}
    try:
        rec["seconds"] = engine(tool, model, x, surgery)
        rec["status"] = "ok"
    except Exception as exc:  # noqa: BLE001
        rec["status"] = first_line(exc)
    peak_kb = max(_status_kb("VmHWM"), surgery.get("peak_before_kb", 0))
    rec["peak_kb"] = peak_kb
    rec["peak_over_params"] = (peak_kb - baseline_kb) * 1024 / param_bytes
    if "bytes" in surgery:
        rec["surgery_over_params"] = surgery["bytes"] / param_bytes
    return rec


def run_one(name: str, tool: str, threads: int, timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", name, "--tools", tool,
           "--threads", str(threads)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"model": name, "tool": tool, "status": f"timeout ({timeout:.0f} s)"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    err = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    return {"model": name, "tool": tool,
            "status": f"crashed (exit {proc.returncode}): {err[-1] if err else ''}"[:300]}


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in runs if r.get("status") == "ok"]
    if not ok:
        return {"status": runs[0].get("status", "?") if runs else "not run"}
    return {"status": "ok" if len(ok) == len(runs) else f"ok {len(ok)}/{len(runs)}",
            "median_s": statistics.median(r["seconds"] for r in ok),
            "times": [round(r["seconds"], 3) for r in ok],
            "mem": statistics.median(r["peak_over_params"] for r in ok),
            "surgery": statistics.median(r.get("surgery_over_params", float("nan")) for r in ok),
            "param_mb": ok[0]["param_bytes"] / 2**20,
            "hwm_reset": all(r.get("hwm_reset") for r in ok)}


def markdown(results: dict[str, dict[str, dict[str, Any]]], models: list[str], tools: list[str],
             command: str, threads: int, repeats: int, load_before: str) -> str:
    resets = [s.get("hwm_reset") for m in results.values() for s in m.values() if "hwm_reset" in s]
    how = ("peak counter reset via `/proc/self/clear_refs` after the build" if all(resets)
           else "peak counter could NOT be reset, so peaks from model construction may dominate")
    extra = [f"- load average (1, 5, 15 min) at the start {load_before}, at the end "
             f"{load_average()}",
             f"- median of {repeats} runs, each a fresh subprocess with a freshly built model; "
             "subprocesses run one at a time, the tools alternating run by run (A B, B A, ...) so "
             "load on the machine lands on both alike",
             "- time = engine seconds (prunekit: `prunekit.prune(model, x, ratio=0.5)`; "
             "Torch-Pruning: `MetaPruner(model, x, MagnitudeImportance(p=2), pruning_ratio=0.5, "
             "ignored_layers=[classifier], num_heads={each nn.MultiheadAttention: its heads})` + `step()`); "
             "ratio = prunekit time / TP time",
             "- peak mem = (VmHWM after pruning − VmRSS after building model and input) / "
             f"parameter bytes of the unpruned fp32 model, from `/proc/self/status` ({how}); "
             "median over runs",
             "- surgery peak = the same, for the phase that changes the model only: prunekit's "
             "`apply_plan` (the slicing), Torch-Pruning's `step()` (scoring and slicing)"]
    lines = header("Engine speed and peak memory", command, threads, extra)
    head, sep = "| model | params (MiB) |", "|---|---:|"
    for t in tools:
        n = TOOL_NAMES[t]
        head += f" {n} s (median) | {n} peak mem × params | {n} surgery peak × params |"
        sep += "---:|---:|---:|"
    if set(tools) == set(TOOLS):
        head += " time ratio prunekit / TP |"
        sep += "---:|"
    lines += [head, sep]
    for m in models:
        res = results.get(m, {})
        pm = next((s["param_mb"] for s in res.values() if "param_mb" in s), None)
        row = f"| {m} | {'' if pm is None else f'{pm:.1f}'} |"
        for t in tools:
            s = res.get(t, {"status": "not run"})
            if "median_s" in s:
                extra_s = "" if s["status"] == "ok" else f" ({s['status']})"
                row += f" {s['median_s']:.2f}{extra_s} | {s['mem']:.2f} | {s['surgery']:.2f} |"
            else:
                row += f" {s['status'].replace('|', '/')} | | |"
        if set(tools) == set(TOOLS):
            a, b = res.get("prunekit", {}), res.get("tp", {})
            row += (f" {a['median_s'] / b['median_s']:.2f} |" if "median_s" in a and "median_s" in b
                    else " |")
        lines.append(row)
    lines += ["", "Individual run times (s): "]
    for m in models:
        for t in tools:
            s = results.get(m, {}).get(t, {})
            if "times" in s:
                lines.append(f"- {m} / {TOOL_NAMES[t]}: {s['times']}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--tools", default="prunekit,tp")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--json", help="write raw runs and summaries here")
    ap.add_argument("--markdown", help="write the markdown report here")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    if args.worker:
        print("RESULT " + json.dumps(worker(args.worker, tools[0], args.threads)), flush=True)
        return 0
    command = "python benchmarks/engine_speed.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    raw: list[dict[str, Any]] = []
    results: dict[str, dict[str, dict[str, Any]]] = {}
    load_before = load_average()
    for m in models:
        # tools alternate run by run (A B, B A, ...), so a busy spell on the machine lands on
        # both tools alike instead of on whichever ran its repeats at that moment
        runs: dict[str, list[dict[str, Any]]] = {t: [] for t in tools}
        failed: set[str] = set()
        for i in range(args.repeats):
            for t in tools if i % 2 == 0 else list(reversed(tools)):
                if t in failed:
                    continue
                r = run_one(m, t, args.threads, args.timeout)
                runs[t].append(r)
                raw.append(r)
                print(f"{m:16s} {t:9s} {r.get('status', '?')[:80]:80s} "
                      f"s={r.get('seconds', 0) or 0:.2f} mem×={r.get('peak_over_params', 0) or 0:.2f}",
                      flush=True)
                if r.get("status") != "ok":
                    failed.add(t)  # a failure is deterministic; do not spend the time again
        for t in tools:
            results.setdefault(m, {})[t] = summarize(runs[t])
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps({"command": command, "raw": raw,
                                                   "results": results}, indent=1))
        if args.markdown:
            Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
            Path(args.markdown).write_text(markdown(results, models, tools, command,
                                                    args.threads, args.repeats, load_before))
    return 0


if __name__ == "__main__":
    sys.exit(main())
