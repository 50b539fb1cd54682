"""Accuracy after recovery at 4× fewer MACs on the digits: channel pruning alone, low-rank
decomposition alone, and both.

Every row starts from the same dense ``DigitsCNN()`` (split seed 0, trained as in
``benchmarks/recovery_digits.py``), is compressed to about 4× fewer MACs, and is recovered by
the recovery benchmark's recipe (150 epochs AdamW with mixup and pure distillation from the
dense model; the last epoch is reported; nothing is selected on the validation split, which
is the reported split). Rows:

- channel pruning: ``prunekit.prune(model, x, ratio=0.5)``;
- decomposition: ``prunekit.decompose(model, x, macs_reduction=4, calibration=8 training
  batches, activation_aware=True)`` (spatial SVD or Tucker-2 per convolution, whitened SVD on
  the classifier; squared relative output error as the loss), and the same with the loss
  measured (``prunekit.decompose.sensitivity.analyze_sensitivity``: each layer alone, the
  relative output error of the logits on the calibration batches);
- both: pruning at ratio 0.3 (about 2× fewer MACs), then decomposition to 4× in total
  (``plan=`` the pruning plan).

Accuracy is given right after compression (no training) and after recovery, for several
shuffling/mixup seeds.

    OMP_NUM_THREADS=1 python benchmarks/decompose_digits.py \
        --markdown docs/benchmarks/decompose_digits.md
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any
from collections.abc import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import command_line, cpu_model, load_average, version  # noqa: E402
from recovery_digits import DENSE, SEED, Split, make_split  # noqa: E402

import prunekit  # noqa: E402
from prunekit.decompose.sensitivity import analyze_sensitivity  # noqa: E402
from prunekit.files import atomic_write_text  # noqa: E402
from prunekit.measure import count_macs, count_parameters  # noqa: E402
from prunekit.train import DistillConfig, FinetuneConfig, evaluate, finetune  # noqa: E402

TARGET = 4.0
CALIBRATION_BATCHES = 8
Compress = Callable[[torch.nn.Module, Split], dict[str, Any]]


def _calibration(sp: Split) -> list[Any]:
    return [b for _, b in zip(range(CALIBRATION_BATCHES), sp.train_at(SEED))]


def prune_only(model: torch.nn.Module, sp: Split) -> dict[str, Any]:
    prunekit.prune(model, sp.x, ratio=0.5)
    return {}


def decompose_to(target: float, measured: bool) -> Compress:
    def run(model: torch.nn.Module, sp: Split, plan: Any = None) -> dict[str, Any]:
        batches = _calibration(sp)
        sens = None
        if measured:
            sens = analyze_sensitivity(model, sp.x, batches,
                                       config=prunekit.DecomposeConfig(
                                           rank_ratio=1.0, activation_aware=True))
        macs = count_macs(model, sp.x)
        result = prunekit.decompose(model, sp.x, macs_reduction=macs / (sp.macs / target),
                                    calibration=batches, activation_aware=True, plan=plan,
                                    sensitivity=sens)
        return {"ranks": {d.name: [d.kind, list(d.rank)] for d in result.factorized}}
    return run


def prune_then_decompose(model: torch.nn.Module, sp: Split) -> dict[str, Any]:
    plan = prunekit.prune(model, sp.x, ratio=0.3).plan
    return decompose_to(TARGET, False)(model, sp, plan)


ROWS: dict[str, tuple[str, Compress]] = {
    "prune": ("channel pruning, 50% of channels per group", prune_only),
    "decompose": ("decomposition, 4× MACs target, squared error as the loss",
                  decompose_to(TARGET, False)),
    "decompose_sens": ("decomposition, 4× MACs target, measured sensitivity as the loss",
                       decompose_to(TARGET, True)),
    "both": ("channel pruning 30%, then decomposition to 4× in total", prune_then_decompose),
}


def run_row(sp: Split, key: str, seed: int, ft: FinetuneConfig,
            distill: DistillConfig) -> dict[str, Any]:
    what, compress = ROWS[key]
    model = copy.deepcopy(sp.dense)
    t0 = time.perf_counter()
    facts = compress(model, sp)
    compress_s = time.perf_counter() - t0
    before = evaluate(model, sp.val)
    torch.manual_seed(seed)
    finetune(model, sp.train_at(seed), sp.val, ft, teacher=sp.dense, distill=distill)
    row = {"key": key, "what": what, "seed": seed, "macs_x": sp.macs / count_macs(model, sp.x),
           "params_x": sp.params / count_parameters(model), "before": before,
           "acc": evaluate(model, sp.val), "compress_s": compress_s,
           "seconds": time.perf_counter() - t0, **facts}
    print(json.dumps(row), flush=True)
    return row


def tables(rows: list[dict[str, Any]], dense_acc: float) -> list[str]:
    seeds = sorted({r["seed"] for r in rows})
    lines = ["| compression | MACs× | params× | right after (no training) | "
             + " | ".join(f"recovered, seed {s}" for s in seeds) + " | mean drop (points) |",
             "|---|---:|---:|---:|" + "---:|" * len(seeds) + "---:|",
             f"| dense | 1.00 | 1.00 | {dense_acc:.2%} |" + " |" * len(seeds) + " |"]
    for key in ROWS:
        mine = [r for r in rows if r["key"] == key]
        if not mine:
            continue
        acc = {r["seed"]: r["acc"] for r in mine}
        drop = 100 * (dense_acc - sum(acc.values()) / len(acc))
        first = mine[0]
        lines.append(f"| {first['what']} | {first['macs_x']:.2f} | {first['params_x']:.2f} | "
                     f"{first['before']:.2%} | "
                     + " | ".join(f"{acc[s]:.2%}" if s in acc else "" for s in seeds)
                     + f" | {drop:+.2f} |")
    ranks = [r for r in rows if "ranks" in r and r["seed"] == seeds[0]]
    if ranks:
        lines += ["", "Ranks chosen (layer: factorization [ranks]):", ""]
        for r in ranks:
            text = ", ".join(f"`{n}` {k} {v}" for n, (k, v) in r["ranks"].items())
            lines.append(f"- {r['what']}: {text or 'none'}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default=",".join(ROWS))
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--epochs", type=int, default=150)
    ap.add_argument("--json", default="out/decompose_digits.json")
    ap.add_argument("--markdown", default="")
    args = ap.parse_args()
    start = time.perf_counter()
    ft = FinetuneConfig(epochs=args.epochs, lr=1e-2, restore_best=False, mixup=0.4)
    distill = DistillConfig(temperature=4.0, alpha=1.0)
    sp = make_split(SEED)
    print(f"dense: {sp.acc:.4f}, {sp.macs} MACs", flush=True)
    rows = [run_row(sp, key, int(seed), ft, distill) for key in args.rows.split(",")
            for seed in args.seeds.split(",")]
    total = time.perf_counter() - start
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"rows": rows, "dense": sp.acc, "seconds": total},
                                          indent=1))
    body = tables(rows, sp.acc)
    print("\n".join(body))
    if not args.markdown:
        return
    head = [
        "# Low-rank decomposition against channel pruning at 4× fewer MACs: digits", "",
        f"- machine: {cpu_model()}, CPU only, {torch.get_num_threads()} thread(s), "
        f"{platform.system()}; shared with other jobs",
        f"- torch {torch.__version__}, prunekit {version('prunekit')}, Python "
        f"{platform.python_version()}",
        f"- command: `{command_line()}`; total runtime {total:.0f} s; load average (1, 5, "
        f"15 min) at the end {load_average()}",
        f"- data: scikit-learn digits, stratified split seed {SEED} "
        f"({len(sp.train_at(SEED).dataset):,} train / {len(sp.val.dataset)} validation "
        f"images; one image = {100 / len(sp.val.dataset):.2f} points)",
        f"- model: `DigitsCNN()` (widths 32, 64, 128), trained {DENSE.epochs} epochs (AdamW "
        f"lr {DENSE.lr:g}, cosine, batch 64, seed {SEED}), as in the recovery benchmark",
        f"- recovery, the same for every row: {ft.epochs} epochs AdamW lr {ft.lr:g}, cosine, "
        f"clip 1.0, batch 64, input mixup `FinetuneConfig(mixup={ft.mixup:g})`, pure "
        f"distillation from the dense model `DistillConfig(temperature={distill.temperature:g}, "
        f"alpha={distill.alpha:g})`; last epoch reported; seeds set the shuffling and mixup",
        f"- calibration (decomposition, sensitivity): the first {CALIBRATION_BATCHES} training "
        "batches of 64 images; nothing is fitted or chosen on the validation split",
        "- MACs and parameters counted by `prunekit.measure` (FlopCounterMode); the MACs "
        "target of the decomposition counts the whole model",
        "",
    ]
    atomic_write_text(args.markdown, "\n".join(head + body) + "\n")


if __name__ == "__main__":
    main()
