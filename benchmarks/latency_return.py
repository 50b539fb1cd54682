"""Latency return on FLOPs: does a model with fewer MACs actually run faster on this CPU?

For each model, prunekit and Torch-Pruning prune a fresh copy at the same uniform channel
ratio (0.3 and 0.5, about 2x and 4x fewer MACs on convolutional networks); each pruned model
and the dense one are timed at batch 1 and batch 8 (fp32, eval, no grad, median after
warm-up, `prunekit.measure.measure_latency`). eta = latency speed-up / MACs reduction: 1.0
means the MACs saved turned fully into time saved.

    python benchmarks/latency_return.py --markdown docs/benchmarks/latency_return.md
    python benchmarks/latency_return.py --models resnet18 --ratios 0.5 --repeats 5
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ENGINES, Environment, build_model, finish_tool, write_markdown  # noqa: E402

MODELS = ("resnet18", "resnet50", "mobilenet_v3_large", "vit_b_16", "convnext_tiny")
TOOL_TITLES = {"prunekit": "prunekit", "tp": "Torch-Pruning"}


def latency_ms(model: Any, x: Any, repeats: int, threads: int) -> float:
    from prunekit.measure import measure_latency

    return measure_latency(model, x, warmup=max(2, repeats // 5), repeats=repeats,
                           threads=threads).median_ms


def run_model(name: str, ratios: list[float], tools: list[str], batches: list[int],
              repeats: int, threads: int) -> list[dict[str, Any]]:
    import torch

    from prunekit.measure import count_macs

    dense, shape = build_model(name, "torchvision")
    inputs = {b: torch.randn(b, *shape[1:]) for b in batches}
    dense_macs = count_macs(dense, inputs[1])
    def dense_latency() -> dict[int, float]:
        return {b: latency_ms(dense, inputs[b], repeats if b == 1 else max(3, repeats // 3),
                              threads) for b in batches}

    dense_ms = dense_latency()  # measured again after the pruned models; the lower one counts
    rows = [{"model": name, "tool": "dense", "ratio": 0.0, "macs_x": 1.0,
             **{f"ms_b{b}": dense_ms[b] for b in batches}}]
    for ratio in ratios:
        for tool in tools:
            model = copy.deepcopy(dense)
            row: dict[str, Any] = {"model": name, "tool": tool, "ratio": ratio}
            try:
                finish_tool(tool, model, ENGINES[tool](model, inputs[1], ratio))
                row["macs_x"] = dense_macs / count_macs(model, inputs[1])
                for b in batches:
                    ms = latency_ms(model, inputs[b], repeats if b == 1 else max(3, repeats // 3),
                                    threads)
                    row[f"ms_b{b}"] = ms
                    row[f"speedup_b{b}"] = dense_ms[b] / ms
                    row[f"eta_b{b}"] = row[f"speedup_b{b}"] / row["macs_x"]
                row["status"] = "ok"
            except Exception as exc:  # noqa: BLE001 - one failure is one row
                row["status"] = f"error: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            rows.append(row)
            print(json.dumps(row), flush=True)
    again = dense_latency()
    for b in batches:  # a slow first dense run must not inflate the speed-ups
        best = min(dense_ms[b], again[b])
        rows[0][f"ms_b{b}"] = best
        for row in rows[1:]:
            if row.get("status") == "ok":
                row[f"speedup_b{b}"] = best / row[f"ms_b{b}"]
                row[f"eta_b{b}"] = row[f"speedup_b{b}"] / row["macs_x"]
    return rows


def table(rows: list[dict[str, Any]], batches: list[int]) -> list[str]:
    head = "| model | tool | ratio | MACs reduction |"
    sep = "|---|---|---:|---:|"
    for b in batches:
        head += f" batch {b} ms | speed-up | η |"
        sep += "---:|---:|---:|"
    lines = [head, sep]
    for r in rows:
        title = TOOL_TITLES.get(r["tool"], r["tool"])
        if r["tool"] != "dense" and r.get("status") != "ok":
            lines.append(f"| {r['model']} | {title} | {r['ratio']} | {r.get('status')} |"
                         + " |" * (3 * len(batches)))
            continue
        line = f"| {r['model']} | {title} | {r['ratio']} | {r['macs_x']:.2f}× |"
        for b in batches:
            if r["tool"] == "dense":
                line += f" {r[f'ms_b{b}']:.2f} | 1.00× | |"
            else:
                line += (f" {r[f'ms_b{b}']:.2f} | {r[f'speedup_b{b}']:.2f}× |"
                         f" {r[f'eta_b{b}']:.2f} |")
        lines.append(line)
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--ratios", default="0.3,0.5")
    ap.add_argument("--tools", default="prunekit,tp")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--repeats", type=int, default=30,
                    help="timed runs at batch 1 (a third at larger batches)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None)
    ap.add_argument("--markdown", default=None)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batches.split(",")]
    rows: list[dict[str, Any]] = []
    for name in args.models.split(","):
        rows += run_model(name, [float(r) for r in args.ratios.split(",")],
                          args.tools.split(","), batches, args.repeats, args.threads)
    lines = table(rows, batches)
    print("\n".join(lines))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    if args.markdown:
        notes = [
            "- each tool prunes a copy of the same randomly initialised model (`weights=None`) at "
            "the same uniform channel ratio, classifier kept; prunekit with its defaults "
            "(`prunekit.prune(model, x, ratio=r)`), Torch-Pruning 1.6.1 `MetaPruner` with L2 "
            "magnitude (as in `benchmarks/coverage.py`)",
            f"- latency: `prunekit.measure.measure_latency`, median of {args.repeats} runs at "
            f"batch 1 and {max(3, args.repeats // 3)} at larger batches, after warm-up; eval, "
            "no grad; the timing batch sizes are in the column titles (the header's batch 1 "
            "is the pruning input)",
            "- η = latency speed-up ÷ MACs reduction (1.0: every MAC saved is time saved); the "
            "dense model is timed before and after the pruned ones and the lower median is "
            "used, so a slow first run cannot inflate the speed-ups",
        ]
        write_markdown(args.markdown, "Latency return on FLOPs (CPU)",
                       Environment(args.threads), lines, notes)


if __name__ == "__main__":
    main()
