"""Training cost of shrinking while training, against dense and soft-mask gradual pruning.

Trains from scratch, same recipe and epochs, each of
(a) ``dense``: no pruning;
(b) ``soft``: ``StructuredGradualPruner`` (soft channel masks, channels removed at the end);
(c) ``shrink``: ``ShrinkingPruner`` (channels removed at every pruning step, optimizer state
    sliced), the same schedule and criterion as (b);
on two models: the digits CNN (8×8 digits) and a wider CNN with ResNet-18 stage widths
(64/128/256/512) on the digits upsampled to 32×32, so that compute dominates. The schedule
reaches the final channel sparsity early (``--prune-end`` epochs), so most epochs of (c) run
on the small model. Reports per variant and seed: total training wall time (pruning
included, evaluation excluded), final MACs per image, validation accuracy, and the speed-up
over dense; the JSON keeps wall time per epoch, cumulative time, MACs per step and the
accuracy curve, and ``--plot`` draws them against the dense run.

    python benchmarks/shrink_training.py --threads 1 \\
        --json docs/benchmarks/shrink_training.json \\
        --markdown docs/benchmarks/shrink_training.md --plot docs/benchmarks/shrink_training.png
    python benchmarks/shrink_training.py --quick        # a small run that proves it works
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Environment, save_outputs, write_markdown  # noqa: E402

from prunekit.data.digits import load_digits_data  # noqa: E402
from prunekit.measure import count_macs  # noqa: E402
from prunekit.models.digits_cnn import DigitsCNN  # noqa: E402
from prunekit.schedule import (  # noqa: E402
    LinearSchedule,
    ShrinkConfig,
    ShrinkingPruner,
    StructuredGradualConfig,
    StructuredGradualPruner,
)

VARIANTS = ("dense", "soft", "shrink")


class WideCNN(nn.Module):
    """Four conv-bn-relu stages with ResNet-18's widths, each followed by 2×2 max pooling
    (32 → 16 → 8 → 4 → 2), global average pooling and a linear head."""

    def __init__(self, widths: tuple[int, ...] = (64, 128, 256, 512), classes: int = 10) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 1
        for w in widths:
            layers += [nn.Conv2d(cin, w, 3, padding=1, bias=False), nn.BatchNorm2d(w),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            cin = w
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(cin, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


def datasets(size: int, subset: int | None) -> tuple[torch.Tensor, ...]:
    data = load_digits_data()
    xs = [data.x_train, data.x_val]
    if size != 8:
        xs = [F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
              for x in xs]
    x_train, y_train = xs[0], data.y_train
    if subset:
        x_train, y_train = x_train[:subset], y_train[:subset]
    return x_train.contiguous(), y_train, xs[1].contiguous(), data.y_val


MODELS: dict[str, tuple[Callable[[float], nn.Module], int]] = {
    "digits_cnn": (lambda s: DigitsCNN(tuple(max(1, round(w * s)) for w in (32, 64, 128))), 8),
    "wide_cnn_32": (lambda s: WideCNN(tuple(max(1, round(w * s))
                                            for w in (64, 128, 256, 512))), 32),
}


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    correct = sum(int((model(x[i:i + 512]).argmax(1) == y[i:i + 512]).sum())
                  for i in range(0, len(x), 512))
    model.train()
    return correct / len(x)


def train_one(model_name: str, variant: str, seed: int, args: argparse.Namespace,
              data: tuple[torch.Tensor, ...]) -> dict[str, Any]:
    build, _ = MODELS[model_name]
    x_train, y_train, x_val, y_val = data
    torch.manual_seed(seed)
    model = build(args.width_scale)
    example = x_train[:2]
    one = x_train[:1]
    steps_per_epoch = math.ceil(len(x_train) / args.batch)
    total_steps = steps_per_epoch * args.epochs
    schedule = LinearSchedule(final_sparsity=args.sparsity,
                              start=max(1, round(args.prune_start * steps_per_epoch)),
                              end=max(2, round(args.prune_end * steps_per_epoch)),
                              frequency=max(1, round(args.prune_every * steps_per_epoch)))
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9,
                                weight_decay=5e-4, nesterov=True)
    lr_at = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    pruner: Any = None
    shrink_seconds: list[float] = []  # wall time of each pruning step (scoring + surgery)
    if variant == "soft":
        pruner = StructuredGradualPruner(model, example, schedule,
                                         StructuredGradualConfig(importance=args.importance))
    elif variant == "shrink":
        pruner = ShrinkingPruner(model, example, schedule,
                                 ShrinkConfig(importance=args.importance,
                                              stable_after=args.stable_after),
                                 optimizers=[optimizer])
    gen = torch.Generator().manual_seed(seed)
    epochs: list[dict[str, Any]] = []
    macs_steps: list[tuple[int, int]] = [(0, count_macs(model, one))]
    elapsed = 0.0
    step = 0
    model.train()
    for epoch in range(args.epochs):
        order = torch.randperm(len(x_train), generator=gen)
        start = time.perf_counter()
        for i in range(0, len(x_train), args.batch):
            idx = order[i:i + args.batch]
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x_train[idx]), y_train[idx]).backward()
            optimizer.step()
            lr_at.step()
            step += 1
            t1 = time.perf_counter()
            pruned = pruner is not None and pruner.step() is not None
            if pruned:
                shrink_seconds.append(time.perf_counter() - t1)
            if pruned and variant == "shrink":
                t0 = time.perf_counter()  # the benchmark's own measurement is not training
                macs_steps.append((step, count_macs(model, one)))
                start += time.perf_counter() - t0
        if variant == "soft" and epoch == args.epochs - 1:
            pruner.finalize()
        seconds = time.perf_counter() - start
        elapsed += seconds
        epochs.append({"epoch": epoch + 1, "seconds": seconds, "cumulative": elapsed,
                       "accuracy": accuracy(model, x_val, y_val),
                       "macs": count_macs(model, one)})
    macs_steps.append((step, count_macs(model, one)))  # the line runs to the last step
    return {"model": model_name, "variant": variant, "seed": seed, "seconds": elapsed,
            "accuracy": epochs[-1]["accuracy"], "macs": epochs[-1]["macs"],
            "dense_macs": macs_steps[0][1], "epochs": epochs, "macs_steps": macs_steps,
            "stop_reason": getattr(pruner, "stop_reason", "") if variant == "shrink" else "",
            "shrink_seconds": shrink_seconds}


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for model in dict.fromkeys(r["model"] for r in runs):
        dense = [r["seconds"] for r in runs if r["model"] == model and r["variant"] == "dense"]
        for variant in VARIANTS:
            sel = [r for r in runs if r["model"] == model and r["variant"] == variant]
            if not sel:
                continue
            seconds = [r["seconds"] for r in sel]
            acc = [100 * r["accuracy"] for r in sel]
            rows.append({
                "model": model, "variant": variant, "seeds": len(sel),
                "seconds": statistics.mean(seconds),
                "seconds_sd": statistics.stdev(seconds) if len(sel) > 1 else 0.0,
                "accuracy": statistics.mean(acc),
                "accuracy_sd": statistics.stdev(acc) if len(sel) > 1 else 0.0,
                "macs": statistics.mean(r["macs"] for r in sel),
                "macs_reduction": sel[0]["dense_macs"] / statistics.mean(r["macs"] for r in sel),
                "speedup": statistics.mean(dense) / statistics.mean(seconds) if dense else None,
                "pruning_seconds": statistics.mean(sum(r["shrink_seconds"]) for r in sel),
            })
    return rows


def render(rows: list[dict[str, Any]], args: argparse.Namespace) -> list[str]:
    lines = ["| model | variant | seeds | training time (s) | of which pruning steps (s) | "
             "speed-up over dense | final MACs per image | MACs reduction | accuracy (%) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        speed = f"{r['speedup']:.2f}×" if r["speedup"] else "–"
        lines.append(f"| {r['model']} | {r['variant']} | {r['seeds']} | {r['seconds']:.1f} ± "
                     f"{r['seconds_sd']:.1f} | {r['pruning_seconds']:.2f} | {speed} | "
                     f"{r['macs'] / 1e6:.2f} M | "
                     f"{r['macs_reduction']:.2f}× | {r['accuracy']:.2f} ± "
                     f"{r['accuracy_sd']:.2f} |")
    return lines


def plot(runs: list[dict[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(r["model"] for r in runs))
    fig, axes = plt.subplots(len(models), 3, figsize=(13, 3.6 * len(models)), squeeze=False)
    colours = {"dense": "tab:gray", "soft": "tab:blue", "shrink": "tab:orange"}
    for row, model in enumerate(models):
        for variant in VARIANTS:
            sel = [r for r in runs if r["model"] == model and r["variant"] == variant]
            if not sel:
                continue
            r = sel[0]  # the first seed
            e = [x["epoch"] for x in r["epochs"]]
            axes[row][0].plot(e, [x["cumulative"] for x in r["epochs"]], marker="o",
                              color=colours[variant], label=variant)
            axes[row][1].step([s for s, _ in r["macs_steps"]],
                              [m / 1e6 for _, m in r["macs_steps"]], where="post",
                              color=colours[variant], label=variant)
            axes[row][2].plot([x["cumulative"] for x in r["epochs"]],
                              [100 * x["accuracy"] for x in r["epochs"]], marker="o",
                              color=colours[variant], label=variant)
        axes[row][0].set(title=f"{model}: cumulative training time", xlabel="epoch",
                         ylabel="seconds")
        axes[row][1].set(title="MACs per image of the trained model", xlabel="optimizer step",
                         ylabel="M MACs")
        axes[row][2].set(title="validation accuracy", xlabel="training seconds", ylabel="%")
        for ax in axes[row]:
            ax.grid(alpha=0.3)
            ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--sparsity", type=float, default=0.5,
                        help="final channel sparsity per group (0.5 ≈ 4× fewer MACs)")
    parser.add_argument("--importance", default="bn_scale")
    parser.add_argument("--prune-start", type=float, default=1.0, help="epochs")
    parser.add_argument("--prune-end", type=float, default=3.0, help="epochs")
    parser.add_argument("--prune-every", type=float, default=0.5, help="epochs")
    parser.add_argument("--stable-after", type=float, default=None,
                        help="early-bird stop for the shrink variant")
    parser.add_argument("--width-scale", type=float, default=1.0)
    parser.add_argument("--train-subset", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true",
                        help="2 epochs, 1 seed, 256 training images, half widths")
    parser.add_argument("--json", default="")
    parser.add_argument("--markdown", default="")
    parser.add_argument("--plot", default="")
    args = parser.parse_args()
    if args.quick:
        args.epochs, args.seeds, args.train_subset, args.width_scale = 3, [0], 256, 0.5
        args.prune_start, args.prune_end = 0.5, 1.5
    torch.set_num_threads(args.threads)
    runs = []
    for model_name in args.models:
        data = datasets(MODELS[model_name][1], args.train_subset)
        for seed in args.seeds:
            for variant in args.variants:
                result = train_one(model_name, variant, seed, args, data)
                runs.append(result)
                print(f"{model_name:12s} {variant:7s} seed {seed}: {result['seconds']:7.1f} s, "
                      f"{result['macs'] / 1e6:7.2f} M MACs, acc {100 * result['accuracy']:.2f}%",
                      flush=True)
    rows = summarise(runs)
    body = render(rows, args)
    print("\n".join(body))
    notes = [f"Recipe: {args.epochs} epochs, batch {args.batch}, SGD (Nesterov momentum 0.9, "
             f"weight decay 5e-4) with cosine learning rate from {args.lr}; channel sparsity "
             f"{args.sparsity} per group, importance {args.importance!r}, linear schedule from "
             f"epoch {args.prune_start} to {args.prune_end}, a pruning step every "
             f"{args.prune_every} epochs; training time excludes the per-epoch evaluation; "
             f"seeds {args.seeds}; width scale {args.width_scale}; training images "
             f"{args.train_subset or 'all 1437'}."]
    if args.json:
        save_outputs({"args": vars(args), "rows": rows, "runs": runs}, args.json, "",
                     lambda: "")
    if args.markdown and args.plot:
        import os

        image = os.path.relpath(args.plot, os.path.dirname(os.path.abspath(args.markdown)))
        body += ["", f"![cumulative training time, MACs per step and accuracy]({image})"]
    if args.markdown:
        write_markdown(args.markdown, "Shrinking while training: training cost",
                       Environment(threads=args.threads, batch=str(args.batch)), body, notes)
    if args.plot:
        plot(runs, args.plot)


if __name__ == "__main__":
    main()
