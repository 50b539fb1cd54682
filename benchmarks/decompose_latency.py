"""Latency return of low-rank decomposition on ResNet-18/50 shapes (CPU): does a model with
fewer MACs by factorization run faster, compared with channel pruning?

Each row starts from the same randomly initialised torchvision model (``weights=None``;
factorizations are data-free, so only the shapes matter for latency): channel pruning
(``prunekit.prune``), ``prunekit.decompose`` to a MACs target (spatial SVD and Tucker-2 on
convolutions, SVD on the classifier), Tucker-2 alone, a latency target (every option timed
on its layer's real inputs, a factorization that measures slower than its dense layer never
taken; predicted and measured speed-up), and pruning followed by decomposition. Every model
is timed at batch 1, fp32, eval, no grad (``prunekit.measure.measure_latency``, median after
warm-up); the dense model before and after the others, the lower median counting.
η = speed-up ÷ MACs reduction.

    OMP_NUM_THREADS=2 python benchmarks/decompose_latency.py \
        --markdown docs/benchmarks/decompose_latency.md
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any
from collections.abc import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Environment, build_model, load_average, write_markdown  # noqa: E402

MODELS = ("resnet18", "resnet50")


def variants(x: Any) -> dict[str, tuple[str, Callable[[Any], dict[str, Any]]]]:
    import prunekit

    def prune(ratio: float) -> Callable[[Any], dict[str, Any]]:
        def run(m: Any) -> dict[str, Any]:
            prunekit.prune(m, x, ratio=ratio)
            return {}
        return run

    def decompose(**options: Any) -> Callable[[Any], dict[str, Any]]:
        def run(m: Any) -> dict[str, Any]:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", UserWarning)
                result = prunekit.decompose(m, x, **options)
            facts = {"factorized": len(result.factorized), "candidates": len(result.layers)}
            if result.target.get("metric") == "latency":
                facts["predicted"] = result.target["reached"]
            if caught:
                facts["warning"] = str(caught[0].message).split(";")[0]
            return facts
        return run

    def both(ratio: float, **options: Any) -> Callable[[Any], dict[str, Any]]:
        def run(m: Any) -> dict[str, Any]:
            plan = prunekit.prune(m, x, ratio=ratio).plan
            return decompose(plan=plan, **options)(m)
        return run

    return {
        "prune0.3": ("channel pruning, ratio 0.3", prune(0.3)),
        "macs2": ("decomposition, 2× MACs target (spatial SVD + Tucker-2, SVD)",
                  decompose(macs_reduction=2.0)),
        "tucker2": ("decomposition, 2× MACs target, Tucker-2 only (SVD on the classifier)",
                    decompose(macs_reduction=2.0, conv=("tucker2",))),
        "lat1.5": ("decomposition, 1.5× latency target (measured per layer)",
                   decompose(latency_reduction=1.5)),
        "both": ("channel pruning 0.3, then decomposition to 1.5× fewer MACs",
                 both(0.3, macs_reduction=1.5)),
    }


def run_model(name: str, repeats: int, threads: int) -> list[dict[str, Any]]:
    import torch

    from prunekit.measure import count_macs, count_parameters, measure_latency

    dense, shape = build_model(name, "torchvision")
    x = torch.randn(*shape)

    def ms(m: Any) -> float:
        return measure_latency(m, x, warmup=max(2, repeats // 5), repeats=repeats,
                               threads=threads).median_ms

    base_macs, base_params = count_macs(dense, x), count_parameters(dense)
    first = ms(dense)
    rows = [{"model": name, "key": "dense", "what": "dense", "macs_x": 1.0, "params_x": 1.0,
             "ms": first, "seconds": 0.0}]
    for key, (what, fn) in variants(x).items():
        model = copy.deepcopy(dense)
        t0 = time.perf_counter()
        facts = fn(model)
        seconds = time.perf_counter() - t0
        row = {"model": name, "key": key, "what": what, "seconds": seconds,
               "macs_x": base_macs / count_macs(model, x),
               "params_x": base_params / count_parameters(model), "ms": ms(model), **facts}
        rows.append(row)
        print(json.dumps(row), flush=True)
    best = min(first, ms(dense))
    rows[0]["ms"] = best
    for row in rows:
        row["speedup"] = best / row["ms"]
        row["eta"] = row["speedup"] / row["macs_x"]
    return rows


def table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| model | variant | MACs reduction | params reduction | batch 1 ms | speed-up | η "
             "| predicted speed-up | layers factorized | time (s) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        predicted = f"{r['predicted']:.2f}×" if "predicted" in r else ""
        layers = f"{r['factorized']} / {r['candidates']}" if "factorized" in r else ""
        lines.append(f"| {r['model']} | {r['what']} | {r['macs_x']:.2f}× | {r['params_x']:.2f}× "
                     f"| {r['ms']:.2f} | {r['speedup']:.2f}× | {r['eta']:.2f} | {predicted} "
                     f"| {layers} | {r['seconds']:.1f} |")
    warned = [r for r in rows if "warning" in r]
    for r in warned:
        lines.append(f"\n{r['model']}, {r['what']}: {r['warning']}.")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None)
    ap.add_argument("--markdown", default=None)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    rows: list[dict[str, Any]] = []
    load_before = load_average()
    for name in args.models.split(","):
        rows += run_model(name, args.repeats, args.threads)
    lines = table(rows)
    print("\n".join(lines))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    if args.markdown:
        notes = [
            "- randomly initialised torchvision models (`weights=None`), input 1×3×224×224; "
            "decomposition without calibration data (weight-space errors: with random "
            "weights the ranks say nothing about accuracy, only about shapes and speed)",
            "- `prunekit.decompose(model, x, macs_reduction=2.0)`: every Conv2d (spatial SVD "
            "or Tucker-2, whichever has fewer parameters at the chosen error) and the "
            "classifier; global choice by the least squared relative error per MAC saved",
            "- latency target: each candidate layer timed alone on its real inputs, dense and "
            "at up to 16 ranks per factorization (median of 20 after 5 warm-up); the "
            "prediction (dense time − Σ layer savings × dense time / Σ dense layer times) is "
            "the 'predicted speed-up' column",
            f"- latency: median of {args.repeats} runs after warm-up; η = speed-up ÷ MACs "
            "reduction; time: wall-clock seconds of the pruning / decomposition call",
            f"- load average (1, 5, 15 min) at the start {load_before}, at the end "
            f"{load_average()}: on a busy machine the timings (and η) are rough",
        ]
        write_markdown(args.markdown, "Low-rank decomposition: latency return on ResNet shapes "
                       "(CPU)", Environment(args.threads), lines, notes)


if __name__ == "__main__":
    main()
