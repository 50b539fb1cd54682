"""Accuracy right after structured pruning, without training: plain, with BatchNorm statistics
re-estimated, and with layer-wise reconstruction (``prunekit.recover.reconstruct``).

    OMP_NUM_THREADS=1 python benchmarks/reconstruct_digits.py --markdown docs/benchmarks/reconstruct.md

DigitsCNN on scikit-learn's digits, several stratified splits, each with its own dense model
trained as in ``recovery_digits.py``. Every row prunes a copy of the dense model with
``prunekit.prune(ratio=r)`` (L2, channels) and measures validation accuracy:

- plain: the pruned model as it comes out of surgery;
- BN re-estimated: the usual training-free baseline, BatchNorm running statistics recomputed
  on the calibration batches (cumulative average, train-mode forward, weights untouched);
- reconstructed: ``reconstruct(pruned, dense, plan, batches)``.

Calibration batches are the first ``--batches`` batches (64 images) of the training split in
a fixed shuffled order; the validation split is never used for fitting.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import command_line, cpu_model, save_outputs, version
from recovery_digits import DENSE, make_split

import prunekit
from prunekit.measure import count_macs
from prunekit.recover import reconstruct
from prunekit.train import evaluate


def reestimate_batchnorm(model: nn.Module, batches: list[Any]) -> None:
    """Recompute every BatchNorm's running statistics on ``batches`` (weights unchanged)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the batches
    model.train()
    with torch.no_grad():
        for x, _ in batches:
            model(x)
    model.eval()


def run_split(split: int, ratios: list[float], n_batches: int) -> list[dict[str, Any]]:
    sp = make_split(split)
    batches = [b for _, b in zip(range(n_batches), sp.train_at(0))]
    rows = []
    for ratio in ratios:
        pruned = copy.deepcopy(sp.dense)
        plan = prunekit.prune(pruned, sp.x, ratio=ratio).plan
        plain = evaluate(pruned, sp.val)
        recal = copy.deepcopy(pruned)
        reestimate_batchnorm(recal, batches)
        t0 = time.perf_counter()
        fits = reconstruct(pruned, sp.dense, plan, batches)
        seconds = time.perf_counter() - t0
        row = {"split": split, "ratio": ratio, "dense": sp.acc,
               "macs_x": sp.macs / count_macs(pruned, sp.x), "plain": plain,
               "bn": evaluate(recal, sp.val), "reconstructed": evaluate(pruned, sp.val),
               "seconds": seconds, "layers": [[f.name, f.error_before, f.error_after]
                                              for f in fits.layers]}
        print(f"split {split} ratio {ratio:.2f} ({row['macs_x']:.1f}x): dense {sp.acc:.4f} "
              f"plain {plain:.4f} bn {row['bn']:.4f} reconstructed {row['reconstructed']:.4f} "
              f"({seconds:.2f} s)", flush=True)
        rows.append(row)
    return rows


def render(result: dict[str, Any], args: argparse.Namespace) -> str:
    pct = "{:.2%}".format
    lines = [
        "# Accuracy right after pruning, without training: digits", "",
        f"- machine: {cpu_model()}, CPU only, {result['threads']} thread(s)",
        f"- torch {torch.__version__}, prunekit {version('prunekit')}",
        f"- command: `{command_line()}`; total runtime {result['seconds']:.0f} s",
        f"- data: scikit-learn digits, stratified split seeds {args.splits} (1,437 train / 359 "
        "validation images each; one image = 0.28 points); each split trains its own dense "
        f"`DigitsCNN()` ({DENSE.epochs} epochs AdamW, as in the recovery benchmark)",
        "- pruning: `prunekit.prune(model, x, ratio=r)` (L2, channels of every conv); the "
        "classifier's outputs are kept",
        f"- calibration: the first {args.batches} training batches of 64 images; nothing is "
        "fitted on the validation split",
        "- BN re-estimated: BatchNorm running statistics recomputed on the same batches "
        "(the usual training-free baseline); reconstructed: `prunekit.recover.reconstruct` "
        "(damped least squares per layer, in forward order, inputs from the pruned model)",
        "- seconds: the `reconstruct` call alone", "",
        "| split | ratio | MACs× | dense | pruned | BN re-estimated | reconstructed | seconds |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(f"| {r['split']} | {r['ratio']:.2f} | {r['macs_x']:.1f} | {pct(r['dense'])} "
                     f"| {pct(r['plain'])} | {pct(r['bn'])} | {pct(r['reconstructed'])} "
                     f"| {r['seconds']:.2f} |")
    lines += ["", "Mean over the splits:", "",
              "| ratio | MACs× | drop: pruned | drop: BN re-estimated | drop: reconstructed |",
              "|---:|---:|---:|---:|---:|"]
    for ratio in sorted({r["ratio"] for r in result["rows"]}):
        rs = [r for r in result["rows"] if r["ratio"] == ratio]

        def drop(key: str, rs: list[dict[str, Any]] = rs) -> str:
            return f"{100 * sum(r['dense'] - r[key] for r in rs) / len(rs):+.2f} points"
        lines.append(f"| {ratio:.2f} | {rs[0]['macs_x']:.1f} | {drop('plain')} | {drop('bn')} "
                     f"| {drop('reconstructed')} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratios", default="0.3,0.5,0.7,0.85")
    parser.add_argument("--splits", default="0,1,2,3")
    parser.add_argument("--batches", type=int, default=8, help="calibration batches of 64")
    parser.add_argument("--json", default="out/reconstruct.json")
    parser.add_argument("--markdown", default="")
    args = parser.parse_args()
    start = time.perf_counter()
    ratios = [float(r) for r in args.ratios.split(",") if r]
    rows = [row for s in args.splits.split(",") if s
            for row in run_split(int(s), ratios, args.batches)]
    result = {"rows": rows, "threads": torch.get_num_threads(),
              "seconds": time.perf_counter() - start}
    save_outputs(result, args.json, args.markdown, lambda: render(result, args))
    print(f"total {result['seconds']:.0f} s")


if __name__ == "__main__":
    main()
