"""Latency return on FLOPs: does a model with fewer MACs actually run faster on this CPU?

For each model, prunekit and Torch-Pruning prune a fresh copy at the same uniform channel
ratio (0.3 and 0.5, about 2x and 4x fewer MACs on convolutional networks); each pruned model
and the dense one are timed at batch 1 and batch 8 (fp32, eval, no grad, median after
warm-up, dense and pruned copies interleaved round by round). eta = latency speed-up / MACs reduction: 1.0
means the MACs saved turned fully into time saved.

    python benchmarks/latency_return.py --markdown docs/benchmarks/latency_return.md
    python benchmarks/latency_return.py --models resnet18 --ratios 0.5 --repeats 5
    python benchmarks/latency_return.py --models mobilenet_v3_large,efficientnet_b0 \
        --ratios 0.3 --tools prunekit,prunekit-hw,prunekit-hw-reach,tp
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (ENGINES, Environment, build_model, finish_tool, load_average,  # noqa: E402
                     write_markdown)

MODELS = ("resnet18", "resnet50", "mobilenet_v3_large", "efficientnet_b0", "vit_b_16",
          "convnext_tiny")
TOOL_TITLES = {"prunekit": "prunekit", "prunekit-latency": "prunekit, latency target",
               "prunekit-hw": "prunekit, hardware-aware",
               "prunekit-hw-reach": "prunekit, hardware-aware, reach",
               "tp": "Torch-Pruning"}
TOOL_TITLES.update({f"prunekit-dw-b{b}": f"prunekit, depth + width (chosen at batch {b})"
                    for b in (1, 2, 4, 8, 16, 32, 64)})


def prune_latency_aware(dense: Any, x: Any, ratio: float, points: int) -> tuple[Any, Any]:
    """A copy pruned by latency-table allocation: the target speed-up is the MACs reduction
    the uniform ``ratio`` gives, kept counts rounded up to the table's fast sizes."""
    import prunekit
    from prunekit.measure import count_macs
    from prunekit.recover import LatencyTable, allocate, median_timer, uniform_sensitivity

    uniform = copy.deepcopy(dense)
    prunekit.prune(uniform, x, ratio=ratio)
    goal = count_macs(dense, x) / count_macs(uniform, x)
    table = LatencyTable.measure(dense, x, points=points, rounds=1,
                                 timer=median_timer(2, 7))
    alloc = allocate(dense, x, uniform_sensitivity(table.groups), latency_reduction=goal,
                     latency_table=table, round_fast=True)
    model = copy.deepcopy(dense)
    prunekit.prune(model, x, config=alloc.config)
    return model, {"table_s": table.seconds, "predicted_x": table.dense_ms / alloc.predicted_ms
                   if alloc.predicted_ms else None}


def prune_hardware_aware(dense: Any, x: Any, ratio: float, points: int,
                         reach: bool = False) -> tuple[Any, Any]:
    """A copy pruned at ``ratio`` made hardware-aware by a latency table measured here: kept
    counts rounded up to fast sizes, groups that cannot pay off left whole; ``reach``: then
    ratios raised where they pay until the table predicts the uniform ratio's MACs
    reduction as speed-up."""
    import prunekit
    from prunekit.measure import count_macs
    from prunekit.recover import LatencyTable, hardware_aware, median_timer

    table = LatencyTable.measure(dense, x, points=points, rounds=1,
                                 timer=median_timer(2, 7))
    goal = None
    if reach:
        uniform = copy.deepcopy(dense)
        prunekit.prune(uniform, x, ratio=ratio)
        goal = count_macs(dense, x) / count_macs(uniform, x)
    choice = hardware_aware(table, ratio, reach=reach, goal=goal)
    model = copy.deepcopy(dense)
    prunekit.prune(model, x, config=choice.config)
    return model, {"table_s": table.seconds, "predicted_x": choice.predicted_speedup,
                   "left_whole": len(choice.left_whole)}


def prune_depth_width(dense: Any, x: Any, serve: Any, ratio: float, points: int,
                      rounds: int, threads: int) -> tuple[Any, Any]:
    """A copy with the uniform ``ratio``'s MACs reduction, split between removed blocks and
    hardware-aware channels by :func:`prunekit.recover.choose_depth_width`, timed at the
    serving batch of ``serve``."""
    import prunekit
    from prunekit.measure import count_macs
    from prunekit.recover import choose_depth_width

    uniform = copy.deepcopy(dense)
    prunekit.prune(uniform, x, ratio=ratio)
    goal = count_macs(dense, x) / count_macs(uniform, x)
    choice = choose_depth_width(dense, x, goal, timing_inputs=serve, rounds=rounds,
                                threads=threads, table_points=points)
    assert choice.chosen is not None and choice.model is not None
    return choice.model, {"blocks_removed": len(choice.chosen.blocks),
                          "ranking": choice.chosen.ranking,
                          "candidates": [c.to_dict() for c in choice.candidates]}


def run_model(name: str, ratios: list[float], tools: list[str], batches: list[int],
              repeats: int, threads: int, points: int) -> list[dict[str, Any]]:
    """Prune every (ratio, tool) copy, then time the dense model and all copies together in
    interleaved rounds (:func:`prunekit.measure.compare.compare_latency`): each round runs
    every model once, the order alternating, so load affects every row alike."""
    import torch

    from prunekit.measure import count_macs
    from prunekit.measure.compare import compare_latency

    dense, shape = build_model(name, "torchvision")
    inputs = {b: torch.randn(b, *shape[1:]) for b in batches}
    dense_macs = count_macs(dense, inputs[1])
    rows = [{"model": name, "tool": "dense", "ratio": 0.0, "macs_x": 1.0, "key": "dense"}]
    models: dict[str, Any] = {"dense": dense}
    for ratio in ratios:
        for tool in tools:
            row: dict[str, Any] = {"model": name, "tool": tool, "ratio": ratio,
                                   "key": f"{tool}@{ratio}"}
            try:
                model = copy.deepcopy(dense)
                if tool == "prunekit-latency":
                    model, facts = prune_latency_aware(dense, inputs[1], ratio, points)
                    row.update(facts)
                elif tool.startswith("prunekit-dw-b"):
                    serve = int(tool.rsplit("b", 1)[1])
                    model, facts = prune_depth_width(
                        dense, inputs[1], torch.randn(serve, *shape[1:]), ratio, points,
                        repeats if serve == 1 else max(5, repeats // 3), threads)
                    row.update(facts)
                elif tool in ("prunekit-hw", "prunekit-hw-reach"):
                    model, facts = prune_hardware_aware(dense, inputs[1], ratio, points,
                                                        reach=tool == "prunekit-hw-reach")
                    row.update(facts)
                else:
                    finish_tool(tool, model, ENGINES[tool](model, inputs[1], ratio))
                row["macs_x"] = dense_macs / count_macs(model, inputs[1])
                models[row["key"]] = model
                row["status"] = "ok"
            except Exception as exc:  # noqa: BLE001 - one failure is one row
                row["status"] = f"error: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            rows.append(row)
    for b in batches:
        n = repeats if b == 1 else max(3, repeats // 3)
        timed = compare_latency(models, inputs[b], warmup=max(2, n // 5), rounds=n,
                                threads=threads)
        for row in rows:
            if row["key"] not in models:
                continue
            row[f"ms_b{b}"] = timed.results[row["key"]].median_ms
            if row["tool"] != "dense":
                row[f"speedup_b{b}"] = timed.speedup("dense", row["key"])
                row[f"eta_b{b}"] = row[f"speedup_b{b}"] / row["macs_x"]
    for row in rows:
        print(json.dumps(row), flush=True)
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
        if "blocks_removed" in r:
            title += f": {r['blocks_removed']} blocks removed"
            if r.get("ranking"):
                title += f" ({r['ranking']} ranking)"
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
    ap.add_argument("--tools", default="prunekit,prunekit-hw,tp",
                    help="prunekit, prunekit-hw, prunekit-hw-reach, prunekit-latency, "
                         "prunekit-dw-bN (depth + width chosen at batch N), tp")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--repeats", type=int, default=30,
                    help="timed runs at batch 1 (a third at larger batches)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--points", type=int, default=8,
                    help="kept counts per group in the latency table (prunekit-latency)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--markdown", default=None)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batches.split(",")]
    rows: list[dict[str, Any]] = []
    load_before = load_average()
    for name in args.models.split(","):
        rows += run_model(name, [float(r) for r in args.ratios.split(",")],
                          args.tools.split(","), batches, args.repeats, args.threads,
                          args.points)
    lines = table(rows, batches)
    env = Environment(args.threads, batch=args.batches)
    print("\n".join([*env.lines(), "- dtype fp32, eval, no grad; timing interleaved", *lines]))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    if args.markdown:
        notes = [
            "- each tool prunes a copy of the same randomly initialised model (`weights=None`) at "
            "the same uniform channel ratio, classifier kept; prunekit with its defaults "
            "(`prunekit.prune(model, x, ratio=r)`), Torch-Pruning 1.6.1 `MetaPruner` with L2 "
            "magnitude (as in `benchmarks/coverage.py`)",
            "- `prunekit, hardware-aware`: `prunekit.recover.hardware_aware(table, r)` on a "
            "`LatencyTable` measured here (kept counts rounded up to the table's fast sizes, "
            "groups whose measured time return is below 0.25 left whole); `…, reach`: then "
            "ratios raised where they pay until the table predicts the uniform ratio's MACs "
            "reduction as speed-up (`reach=True`)",
            "- `prunekit, depth + width (chosen at batch N)`: "
            "`prunekit.recover.choose_depth_width(model, x, R, timing_inputs=batch N)` with R "
            "= the MACs reduction of the uniform ratio: candidates remove the first 0…k "
            "removable blocks of two rankings (`importance`: least cosine importance first; "
            "`time`: most measured time per MAC first, each block timed alone at batch N), "
            "without overshooting R, then thin channels hardware-aware to R (a "
            "`LatencyTable` of the candidate at batch N); all are timed against the dense "
            "model at batch N, interleaved, and the fastest is kept (blocks removed and the "
            "ranking they came from in the tool column); no accuracy measured, so depth is "
            "not penalised here as it would be on a trained model",
            "- `prunekit, latency target`: a `LatencyTable` measured on this machine "
            f"({args.points} kept counts per group, median of 7 runs each), then "
            "`allocate(latency_reduction=R, round_fast=True)` with R = the MACs reduction of "
            "the uniform ratio and the `uniform_sensitivity` prior (no accuracy measured)",
            f"- latency: `prunekit.measure.compare.compare_latency`, {args.repeats} interleaved "
            f"rounds at batch 1 and {max(3, args.repeats // 3)} at larger batches, after "
            "warm-up: each round runs the dense model and every pruned copy once, the order "
            "alternating round by round, so load on the machine affects every row alike; "
            "ms = median of each model's runs; eval, no grad; the timing batch sizes are in "
            "the column titles (the header's batch 1 is the pruning input)",
            "- speed-up = median over rounds of dense time ÷ pruned time in the same round; "
            "η = speed-up ÷ MACs reduction (1.0: every MAC saved is time saved)",
            f"- load average (1, 5, 15 min) at the start {load_before}, at the end "
            f"{load_average()}",
        ]
        write_markdown(args.markdown, "Latency return on FLOPs (CPU)",
                       Environment(args.threads, batch=args.batches), lines, notes)


if __name__ == "__main__":
    main()
