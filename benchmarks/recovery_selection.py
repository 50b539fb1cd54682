"""How the recovery recipe of ``recovery_digits.py`` was chosen: variants of one row compared on
held-out splits of the digits (never split 0, the reported split).

    OMP_NUM_THREADS=1 python benchmarks/recovery_selection.py --markdown docs/benchmarks/recovery_selection.md

The row is prunekit's group L2 pruning at 85% of channels (39.2× fewer MACs). Each variant
changes one thing of the recovery recipe; every variant runs on split seeds 1–6 (each with
its own dense model, trained as in ``recovery_digits.py``) with recovery seeds 1–3, and is
compared run by run with the reference recipe (same split, same seed).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import command_line, cpu_model, save_outputs, version
from recovery_digits import BUDGET, Split, make_split

import prunekit
from prunekit.measure import count_macs
from prunekit.recover import reconstruct
from prunekit.train import DistillConfig, FinetuneConfig, evaluate, finetune

RATIO = 0.85
REFERENCE = FinetuneConfig(epochs=60, lr=1e-2, restore_best=False, mixup=0.4)
DISTILL = DistillConfig(temperature=4.0, alpha=1.0)
FEATURES = ("features.0", "features.1", "features.3")

# name -> (what it changes, recovery config, distillation, reconstruct before recovery)
Variant = tuple[str, FinetuneConfig, DistillConfig, bool]
VARIANTS: dict[str, Variant] = {
    "reference": ("60 epochs, mixup 0.4, logit distillation alpha 1", REFERENCE, DISTILL, False),
    "150 epochs": ("150 epochs instead of 60",
                   dataclasses.replace(REFERENCE, epochs=150), DISTILL, False),
    "reconstruct": ("layer-wise reconstruction on 8 training batches before recovery",
                    REFERENCE, DISTILL, True),
    "features": (f"feature distillation on {', '.join(FEATURES)} (weight 1) as well",
                 REFERENCE, dataclasses.replace(DISTILL, features=FEATURES), False),
}


def run(sp: Split, variant: Variant, seed: int) -> dict[str, Any]:
    _, ft, distill, rebuild = variant
    t0 = time.perf_counter()
    model = copy.deepcopy(sp.dense)
    plan = prunekit.prune(model, sp.x, config=prunekit.PruneConfig(
        ratio=RATIO, importance="group_l2")).plan
    if rebuild:
        reconstruct(model, sp.dense, plan, [b for _, b in zip(range(8), sp.train_at(0))])
    torch.manual_seed(seed)
    finetune(model, sp.train_at(seed), sp.val, ft, teacher=sp.dense, distill=distill)
    acc = evaluate(model, sp.val)
    return {"split": sp.seed, "seed": seed, "acc": acc, "dense_acc": sp.acc,
            "drop": sp.acc - acc, "macs_x": sp.macs / count_macs(model, sp.x),
            "seconds": time.perf_counter() - t0}


def render(result: dict[str, Any], args: argparse.Namespace) -> str:
    runs = result["runs"]
    ref = {(r["split"], r["seed"]): r["drop"] for r in runs["reference"]}
    lines = [
        "# How the recovery recipe was chosen: held-out splits of the digits", "",
        f"- machine: {cpu_model()}, CPU only, {result['threads']} thread(s)",
        f"- torch {torch.__version__}, prunekit {version('prunekit')}",
        f"- command: `{command_line()}`; total runtime {result['seconds']:.0f} s",
        f"- row: `prunekit.prune(PruneConfig(ratio={RATIO}, importance=\"group_l2\"))` on "
        f"`DigitsCNN()` ({runs['reference'][0]['macs_x']:.1f}× fewer MACs); split seeds "
        f"{args.splits} (never 0, the reported split), each with its own dense model; recovery "
        f"seeds {args.seeds}",
        "- reference recipe: the recovery of `recovery_digits.py` before this comparison (60 "
        "epochs AdamW lr 0.01, cosine, clip 1.0, input mixup 0.4, distillation T=4, alpha=1, "
        "last epoch reported); each variant changes one thing",
        f"- a drop is against that split's dense model; within 0.5 = at most {BUDGET * 100:g} "
        "points (one image is 0.28 points)", "",
        "| variant | what changes | runs | mean drop (points) | within 0.5 | better / worse / "
        "same as reference, run by run |", "|---|---|---:|---:|---:|---|"]
    for name, rows in runs.items():
        drops = [r["drop"] for r in rows]
        ok = sum(d <= BUDGET + 1e-12 for d in drops)
        if name == "reference":
            paired = ""
        else:
            pairs = [(r["drop"], ref[(r["split"], r["seed"])]) for r in rows
                     if (r["split"], r["seed"]) in ref]
            better = sum(d < b - 1e-12 for d, b in pairs)
            worse = sum(d > b + 1e-12 for d, b in pairs)
            paired = f"{better} / {worse} / {len(pairs) - better - worse}"
        lines.append(f"| {name} | {VARIANTS[name][0]} | {len(rows)} | "
                     f"{100 * sum(drops) / len(drops):+.2f} | {ok}/{len(drops)} | {paired} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", default="1,2,3,4,5,6")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--json", default="out/recovery_selection.json")
    parser.add_argument("--markdown", default="")
    args = parser.parse_args()
    splits = [int(s) for s in args.splits.split(",") if s]
    if 0 in splits:
        raise SystemExit("split 0 is the reported split of recovery_digits.py; choose others")
    names = [n for n in args.variants.split(",") if n]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown or "reference" not in names:
        raise SystemExit(f"--variants must include 'reference' and name only {list(VARIANTS)}")
    start = time.perf_counter()
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for split in splits:
        sp = make_split(split)
        for seed in (int(s) for s in args.seeds.split(",") if s):
            for name in names:
                row = run(sp, VARIANTS[name], seed)
                runs[name].append(row)
                print(f"split {split} seed {seed} {name:12s} drop {100 * row['drop']:+.2f} "
                      f"({row['seconds']:.0f} s)", flush=True)
    result: dict[str, Any] = {"runs": runs, "threads": torch.get_num_threads(),
                              "seconds": time.perf_counter() - start}
    save_outputs(result, args.json, args.markdown, lambda: render(result, args))
    print(f"total {result['seconds']:.0f} s")


if __name__ == "__main__":
    main()
