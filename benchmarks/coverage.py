"""Coverage sweep: prune every torchvision (or a list of timm) classifier with prunekit and
with Torch-Pruning, and report status, engine time, MACs and parameter reductions.

Each (model, tool) pair runs in its own subprocess with a timeout, on a fresh randomly
initialised model (eval mode, batch 1, fp32). MACs of both tools are counted by the same
counter (``prunekit.measure.count_flops`` / 2, i.e. PyTorch's ``FlopCounterMode``).

    python benchmarks/coverage.py                       # all torchvision classifiers
    python benchmarks/coverage.py --models resnet18,vit_b_16 --tools prunekit
    python benchmarks/coverage.py --timm --out timm.json --markdown docs/benchmarks/coverage_timm.md
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (ENGINES, TIMM_MODELS, Environment, build_model, emit, error_status,  # noqa: E402
                     finish_tool, layer_shapes, run_worker, torchvision_models, write_markdown)

TOOLS = ("prunekit", "tp")
TOOL_TITLES = {"prunekit": "prunekit", "tp": "Torch-Pruning"}


# ----------------------------------------------------------------------------------------
# Worker: one model, one tool, in this process.
# ----------------------------------------------------------------------------------------

def worker(model_name: str, zoo: str, tool: str, ratio: float, threads: int) -> dict[str, Any]:
    import torch

    from prunekit.measure import count_flops, count_parameters

    torch.set_num_threads(threads)
    row: dict[str, Any] = {"model": model_name, "tool": tool}
    try:
        model, shape = build_model(model_name, zoo)
    except Exception as exc:  # construction failed (e.g. needs a download): not counted
        row["status"] = error_status(exc, "build")
        row["build_failed"] = True
        return row
    row["input"] = list(shape)
    torch.manual_seed(1)
    x = torch.randn(*shape)
    try:
        with torch.no_grad():
            ref = model(x)
        row["macs_before"] = count_flops(model, x) // 2
    except Exception as exc:
        row["status"] = error_status(exc, "forward of the unpruned model")
        row["build_failed"] = True
        return row
    row["params_before"] = count_parameters(model)
    layers_before = layer_shapes(model)

    start = time.perf_counter()
    try:
        facts = ENGINES[tool](model, x, ratio)
    except Exception as exc:
        row["time_s"] = time.perf_counter() - start
        row["status"] = error_status(exc)
        return row
    row["time_s"] = time.perf_counter() - start
    try:
        row.update(finish_tool(tool, model, facts))
    except Exception as exc:
        row["status"] = error_status(exc, "attribute fix-up")
        return row

    layers_after = layer_shapes(model)
    row["layers_total"] = len(layers_before)
    row["layers_changed"] = sum(layers_before[n] != layers_after.get(n) for n in layers_before)
    row["params_after"] = count_parameters(model)
    try:
        with torch.no_grad():
            out = model(x)
        row["macs_after"] = count_flops(model, x) // 2
    except Exception as exc:
        row["status"] = error_status(exc, "forward of the pruned model")
        return row
    row["shape_ok"] = tuple(out.shape) == tuple(ref.shape)
    row["finite"] = bool(torch.isfinite(out).all())
    row["macs_x"] = row["macs_before"] / max(row["macs_after"], 1)
    row["params_x"] = row["params_before"] / max(row["params_after"], 1)
    if not row["shape_ok"]:
        row["status"] = f"error: output shape {tuple(ref.shape)} -> {tuple(out.shape)}"
    else:
        row["status"] = "ok"
    return row


# ----------------------------------------------------------------------------------------
# Parent: the sweep, the table.
# ----------------------------------------------------------------------------------------

def is_ok(r: dict[str, Any] | None) -> bool:
    return bool(r) and r.get("status") == "ok"


def cell(r: dict[str, Any] | None) -> list[str]:
    if r is None:
        return ["–", "", "", ""]
    status = r.get("status", "?")
    if status != "ok":
        status = status.replace("|", "/").replace("\n", " ")
        status = status if len(status) <= 90 else status[:87] + "..."
    if status == "ok" and r.get("skipped"):
        status = f"ok ({r['skipped']} groups skipped)"
    macs = f"{r['macs_x']:.2f}" if "macs_x" in r else ""
    params = f"{r['params_x']:.2f}" if "params_x" in r else ""
    t = f"{r['time_s']:.2f}" if "time_s" in r else ""
    return [status, macs, params, t]


def table(results: dict[str, dict[str, Any]], models: list[str], tools: list[str]) -> list[str]:
    head = ["model"]
    for tool in tools:
        title = TOOL_TITLES[tool]
        head += [f"{title} status", "MACs×", "params×", "time s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in models:
        row = [name]
        for tool in tools:
            row += cell(results.get(name, {}).get(tool))
        lines.append("| " + " | ".join(row) + " |")
    return lines


def summary(results: dict[str, dict[str, Any]], models: list[str], tools: list[str]) -> list[str]:
    built = [m for m in models
             if not any(r.get("build_failed") for r in results.get(m, {}).values())]
    lines = [f"Models: {len(models)} listed, {len(built)} built and run "
             f"({len(models) - len(built)} could not be built offline and are not counted).", ""]
    for tool in tools:
        rows = [results.get(m, {}).get(tool) for m in built]
        ok = [r for r in rows if is_ok(r)]
        reduced = [r for r in ok if r.get("macs_x", 1.0) > 1.0 + 1e-9]
        times = sorted(r["time_s"] for r in ok)
        median = times[len(times) // 2] if times else float("nan")
        lines.append(f"- {TOOL_TITLES[tool]}: {len(ok)}/{len(built)} ok, {len(reduced)} with "
                     f"fewer MACs; median engine time of the ok runs {median:.2f} s")
    if set(tools) == set(TOOLS):
        both = [m for m in built if all(is_ok(results.get(m, {}).get(t)) for t in TOOLS)]
        times = {t: sum(results[m][t]["time_s"] for m in both) for t in TOOLS}
        if both:
            lines.append(f"- both ok on {len(both)} models; total engine time there: prunekit "
                         f"{times['prunekit']:.1f} s, Torch-Pruning {times['tp']:.1f} s "
                         f"(ratio {times['prunekit'] / max(times['tp'], 1e-9):.2f})")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", help="comma-separated model names (default: the whole zoo)")
    ap.add_argument("--tools", default=",".join(TOOLS), help="prunekit,tp")
    ap.add_argument("--timm", action="store_true", help="sweep timm families instead")
    ap.add_argument("--ratio", type=float, default=0.5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per model per tool")
    ap.add_argument("--out", default=None, help="JSON results (written after every model)")
    ap.add_argument("--resume", action="store_true", help="keep rows already in --out")
    ap.add_argument("--merge", default=None,
                    help="comma-separated JSON files of earlier runs (e.g. one per tool, run "
                         "side by side) whose rows are kept like --resume rows")
    ap.add_argument("--markdown", default=None, help="also write the table to this file")
    ap.add_argument("--worker", nargs=3, metavar=("MODEL", "ZOO", "TOOL"), help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        name, zoo, tool = args.worker
        emit(worker(name, zoo, tool, args.ratio, args.threads))
        return

    zoo = "timm" if args.timm else "torchvision"
    models = args.models.split(",") if args.models else (
        list(TIMM_MODELS) if args.timm else torchvision_models())
    tools = [t for t in args.tools.split(",") if t]
    for t in tools:
        if t not in TOOLS:
            ap.error(f"unknown tool {t!r}; choose from {TOOLS}")
    results: dict[str, dict[str, Any]] = {}
    if args.resume and args.out and Path(args.out).exists():
        results = json.loads(Path(args.out).read_text()).get("results", {})
    for path in (args.merge.split(",") if args.merge else []):
        for name, rows in json.loads(Path(path).read_text()).get("results", {}).items():
            for tool, r in rows.items():
                results.setdefault(name, {}).setdefault(tool, r)

    env = Environment(args.threads)
    for i, name in enumerate(models, 1):
        for tool in tools:
            if tool in results.get(name, {}):
                continue
            r = run_worker([__file__, "--worker", name, zoo, tool, "--ratio", str(args.ratio),
                            "--threads", str(args.threads)], args.timeout)
            r.setdefault("model", name)
            r.setdefault("tool", tool)
            results.setdefault(name, {})[tool] = r
            print(f"[{i}/{len(models)}] {name:28s} {tool:9s} " + " ".join(cell(r)[:1]) +
                  "".join(f" {k}={v}" for k, v in zip(("MACs×", "params×", "s"), cell(r)[1:]) if v),
                  flush=True)
            if r.get("build_failed"):
                break
        if args.out:
            Path(args.out).write_text(json.dumps(
                {"zoo": zoo, "ratio": args.ratio, "threads": args.threads,
                 "environment": env.lines(), "results": results}, indent=1))

    body = table(results, models, tools) + [""] + summary(results, models, tools)
    if args.merge:
        body += ["", f"Rows merged from separate runs, one per tool, on this machine: "
                 f"{args.merge} (the first file's row wins; a 'timeout after N s' cell states "
                 "that run's per-model limit). Engine times of runs "
                 "that shared the machine with other jobs are rough; "
                 "docs/benchmarks/engine_speed.md has timings from a quiet machine."]
    print("\n".join(body))
    if args.markdown:
        title = f"Coverage: {zoo} classifiers pruned at ratio {args.ratio}"
        notes = [
            "Each cell: status, MACs before/after, parameters before/after, engine time. MACs "
            "of both tools come from the same counter (`prunekit.measure.count_flops` / 2, i.e. "
            "`torch.utils.flop_counter.FlopCounterMode`). Engine time: prunekit's whole "
            "`prunekit.prune(model, x, ratio)` call (trace on a shape-only meta copy, groups, "
            "scoring, plan, meta-device verification, surgery); Torch-Pruning's `MetaPruner(...)` "
            "construction (dependency graph) plus `pruner.step()`.",
            "",
            "Torch-Pruning setup (its README usage): `MetaPruner(model, x, "
            "importance=MagnitudeImportance(p=2), pruning_ratio=0.5, global_pruning=False, "
            "ignored_layers=[classifier], num_heads={...})`, where `num_heads` maps each "
            "`nn.MultiheadAttention`, or the fused `qkv` Linear of a timm-style attention "
            "block, to its head count, and after `step()` the attributes its examples update "
            "by hand (`VisionTransformer.hidden_dim`, `num_heads`/`head_dim`/`attn_dim`) are "
            "updated. prunekit runs with its defaults (`prunekit.prune(model, x, ratio=0.5)`).",
            "",
            "Each model and tool runs in its own subprocess on a fresh randomly initialised "
            f"model (eval mode) with a {args.timeout:.0f} s timeout. 'ok' means the pruned model "
            "runs and keeps its output shape; 'groups skipped' are groups prunekit's "
            "verification left unpruned.",
        ]
        write_markdown(args.markdown, title, env, body, notes)


if __name__ == "__main__":
    main()
