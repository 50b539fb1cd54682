"""The built-in demo: train (or reuse) a digits CNN, prune it, reconstruct its layers, recover
it by distillation, measure before and after, and write the report. ``prunekit demo`` runs
:func:`run_demo`.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save as safetensors_bytes
from torch import nn

from ..api import prune
from ..plan.config import PruneConfig
from ..data.digits import DigitsData, digits_loaders, load_digits_data
from .._internal.runtime import torch_threads
from .._internal.validate import check_int, check_number, settings_of
from ..models.cache import cache_key, default_cache_dir, load_cached, save_cached
from ..models.digits_cnn import DigitsCNN
from ..plan.document import Plan
from ..recover.reconstruct import reconstruct
from ..report.build import build_report, point
from ..report.io import ReportFiles, write_report
from ..report.speed import speed_section
from ..report.stats import ModelStats, collect_stats
from ..surgery.serialization import WEIGHTS, save_pruned
from ..train.distill import DistillConfig
from ..train.finetune import EpochRecord, FinetuneConfig, evaluate, finetune

__all__ = ["DemoConfig", "DemoResult", "run_demo"]

Log = Callable[[str], None]


@dataclass(frozen=True)
class DemoConfig:
    """Settings of the demo. The defaults finish in well under a minute on 2 CPU cores.

    ``ratio`` is the channel fraction removed from every conv (0.5 ≈ 4× fewer MACs);
    ``sweep`` adds more ratios, each pruned and fine-tuned the same way, as extra points of
    the accuracy-vs-MACs plot. ``reconstruct`` re-fits the pruned layers to the dense
    outputs on ``reconstruct_batches`` training batches before fine-tuning. ``threads`` sets
    the CPU threads for latency (``None``: torch's current setting); latency is timed on
    ``latency_batch`` validation images, and throughput at ``serving_batch`` (the batch size
    the model serves; the headline figure), dense and pruned interleaved round by round so
    load on the machine affects both alike.
    ``train_threads`` sets the CPU threads for training and fine-tuning (``None``: torch's
    setting): batches of 8x8 images are too small to gain from more threads, and on a busy
    machine extra threads slow training down several times.
    """

    ratio: float = 0.5
    sweep: tuple[float, ...] = (0.25, 0.75)
    importance: str = "l2"
    train_epochs: int = 30
    train_lr: float = 3e-3
    reconstruct: bool = True
    reconstruct_batches: int = 8
    finetune_epochs: int = 20
    finetune_lr: float = 1e-3
    temperature: float = 2.0
    alpha: float = 0.9
    batch_size: int = 64
    seed: int = 0
    threads: int | None = None
    latency_warmup: int = 10
    latency_repeats: int = 50
    latency_batch: int = 1
    serving_batch: int = 64
    train_threads: int | None = 1
    use_cache: bool = True

    def __post_init__(self) -> None:
        check_number(self.ratio, "ratio", above=0.0, below=1.0)
        for r in self.sweep:
            check_number(r, "sweep ratios", above=0.0, below=1.0)
        object.__setattr__(self, "sweep", tuple(float(r) for r in self.sweep))
        check_int(self.reconstruct_batches, "reconstruct_batches", minimum=1)
        for name in ("train_epochs", "finetune_epochs", "latency_warmup"):
            check_int(getattr(self, name), name, minimum=0)
        check_int(self.latency_repeats, "latency_repeats", minimum=1)
        check_int(self.latency_batch, "latency_batch", minimum=1, maximum=256)
        check_int(self.serving_batch, "serving_batch", minimum=1, maximum=256)
        for name in ("threads", "train_threads"):
            check_int(getattr(self, name), name, minimum=1, optional=True)
        DistillConfig(self.temperature, self.alpha)  # validates
        PruneConfig(ratio=self.ratio, importance=self.importance)  # validates

    def settings(self) -> dict[str, Any]:
        """Plain-data view for reports."""
        return settings_of(self)


@dataclass
class DemoResult:
    """The report document, where it was written, and the pruned model's folder."""

    report: dict[str, Any]
    files: ReportFiles
    model_dir: Path
    dense_from_cache: bool


def _file_bytes(model: nn.Module) -> int:
    """Size of the model's weights as a safetensors file (serialized in memory)."""
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    return len(safetensors_bytes(state))


def _dense_model(config: DemoConfig, data: DigitsData, cache_dir: Path | None,
                 log: Log) -> tuple[DigitsCNN, bool]:
    model = DigitsCNN()
    key_settings = {"model": "digits_cnn", "widths": list(model.widths), "seed": config.seed,
                    "epochs": config.train_epochs, "lr": config.train_lr,
                    "batch_size": config.batch_size, "data": "sklearn-digits/val0.2"}
    path = None
    if cache_dir is not None and config.use_cache:
        path = cache_dir / f"digits_cnn-{cache_key(key_settings)}.safetensors"
        metadata, reason = load_cached(model, path)
        if metadata is not None:
            log(f"dense model: reusing {path}")
            return model, True
        log(f"dense model: {reason}; training")
    torch.manual_seed(config.seed)  # before the weights are drawn: the same seed, the same model
    model = DigitsCNN()  # fresh weights even if a failed load touched some
    train, val = digits_loaders(config.batch_size, seed=config.seed, data=data)
    result = finetune(model, train, val,
                      FinetuneConfig(epochs=config.train_epochs, lr=config.train_lr,
                                     restore_best=False),
                      on_epoch=_epoch_logger(log, "train", config.train_epochs))
    log(f"dense model: trained {config.train_epochs} epochs in {result.seconds:.1f} s")
    if path is not None:
        save_cached(model, path, {"prunekit.settings": json.dumps(key_settings)})
    return model, False


def _epoch_logger(log: Log, stage: str, epochs: int) -> Callable[[EpochRecord], None]:
    every = max(1, epochs // 4)

    def on_epoch(record: EpochRecord) -> None:
        if record.epoch % every == 0 or record.epoch == epochs:
            log(f"{stage}: epoch {record.epoch}/{epochs} loss {record.train_loss:.4f} "
                f"val accuracy {100 * record.val_metric:.2f}%")
    return on_epoch


@dataclass(frozen=True)
class _Recovered:
    """One ratio: the student, its plan, and its accuracy after each stage."""

    student: nn.Module
    plan: Plan
    pruned: float
    reconstructed: float | None
    tuned: float


def _prune_and_recover(teacher: nn.Module, ratio: float, config: DemoConfig, data: DigitsData,
                       example: torch.Tensor, log: Log) -> _Recovered:
    """Prune a copy of ``teacher`` at ``ratio``, reconstruct it (if configured) and fine-tune
    it with distillation."""
    student = copy.deepcopy(teacher)
    result = prune(student, example, ratio=ratio, importance=config.importance)
    train, val = digits_loaders(config.batch_size, seed=config.seed, data=data)
    pruned_acc = evaluate(student, val)
    rebuilt_acc = None
    if config.reconstruct:
        batches = [batch for _, batch in zip(range(config.reconstruct_batches), train)]
        reconstruct(student, teacher, result.plan, batches)
        rebuilt_acc = evaluate(student, val)
    torch.manual_seed(config.seed + 1)
    tuned = finetune(student, train, val,
                     FinetuneConfig(epochs=config.finetune_epochs, lr=config.finetune_lr,
                                    restore_best=False),
                     teacher=teacher, distill=DistillConfig(config.temperature, config.alpha),
                     on_epoch=_epoch_logger(log, f"fine-tune ratio {ratio:g}",
                                            config.finetune_epochs))
    final = tuned.history[-1].val_metric if tuned.history else tuned.initial_metric
    return _Recovered(student, result.plan, pruned_acc, rebuilt_acc, final)


def run_demo(config: DemoConfig | None = None, out_dir: str | Path = "prunekit-demo", *,
             cache_dir: str | Path | None = None, log: Log | None = None,
             html: bool = True) -> DemoResult:
    """Run the whole demo and write ``report.json``, ``report.html`` and ``pruned/``.

    ``cache_dir`` defaults to :func:`~prunekit.models.cache.default_cache_dir`. The global
    torch RNG is seeded inside a forked RNG state, so the caller's RNG is left untouched.
    """
    config = config if config is not None else DemoConfig()
    say: Log = log if log is not None else (lambda _msg: None)
    out = Path(out_dir)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    start = time.perf_counter()
    timings: dict[str, float] = {}
    with torch.random.fork_rng(devices=[]):
        data = load_digits_data(seed=config.seed)
        example = data.x_val[:config.latency_batch].clone()  # pruning uses example[:1]
        t0 = time.perf_counter()
        with torch_threads(config.train_threads):
            dense, cached = _dense_model(config, data, cache, say)
        timings["train"] = time.perf_counter() - t0
        _, val = digits_loaders(config.batch_size, seed=config.seed, data=data)
        dense_acc = evaluate(dense, val)
        say(f"dense model: val accuracy {100 * dense_acc:.2f}%")
        before = _measure(dense, example, config, dense_acc, latency=False)

        points = [point("dense", "dense", before)]
        chosen: tuple[nn.Module, Plan, float] | None = None
        timings["prune_and_finetune"] = 0.0
        for ratio in sorted({config.ratio, *config.sweep}):
            t0 = time.perf_counter()
            with torch_threads(config.train_threads):
                run = _prune_and_recover(dense, ratio, config, data, example[:1], say)
            timings["prune_and_finetune"] += time.perf_counter() - t0
            stats = _measure(run.student, example, config, run.tuned, latency=False)
            rebuilt = ("" if run.reconstructed is None else
                       f", {100 * run.reconstructed:.2f}% reconstructed (no training)")
            say(f"ratio {ratio:g}: {stats.macs:,} MACs, accuracy {100 * run.pruned:.2f}% after "
                f"pruning{rebuilt}, {100 * run.tuned:.2f}% after fine-tuning")
            label = f"ratio {ratio:g}"
            points.append(point(label, "pruned", stats, metric=run.pruned))
            if run.reconstructed is not None:
                points.append(point(label, "reconstructed", stats, metric=run.reconstructed))
            points.append(point(label, "fine-tuned", stats))
            if ratio == config.ratio:
                chosen = (run.student, run.plan, run.tuned)
        assert chosen is not None
        student, plan, acc = chosen
        after = _measure(student, example, config, acc, latency=False)
        speed, timed = speed_section(
            dense, student,
            {config.latency_batch: example, config.serving_batch:
             data.x_val[:config.serving_batch].clone()},
            serving_batch=config.serving_batch, macs_ratio=before.macs / max(1, after.macs),
            warmup=config.latency_warmup, rounds=config.latency_repeats,
            threads=config.threads)
        dense_timed, pruned_timed = timed[config.latency_batch]
        before = replace(before, latency=dense_timed, warmup=config.latency_warmup)
        after = replace(after, latency=pruned_timed, warmup=config.latency_warmup)
        model_dir = save_pruned(student, plan, out / "pruned")
        after = after.with_file_bytes((model_dir / WEIGHTS).stat().st_size)
    timings["total"] = time.perf_counter() - start
    report = build_report(
        model={"name": "digits_cnn", "spec": "prunekit:digits_cnn",
               "input_shape": list(example[:1].shape)},
        task={"dataset": "sklearn digits (8x8, 10 classes)", "metric": "accuracy",
              "split": "validation", "train_samples": len(data.y_train),
              "val_samples": len(data.y_val)},
        before=before, after=after, plan=plan, points=points,
        settings={"demo": config.settings(), "prune": plan.settings,
                  "dense_from_cache": cached},
        timings_s=timings, speed=speed, files={"model": f"pruned/{WEIGHTS}", "plan": "pruned/plan.json"})
    files = write_report(report, out, html=html)
    say(f"report written to {files.json}" + (f" and {files.html}" if files.html else ""))
    return DemoResult(report, files, model_dir, cached)


def _measure(model: nn.Module, example: torch.Tensor, config: DemoConfig, metric: float,
             *, latency: bool = True) -> ModelStats:
    warmup, repeats = (config.latency_warmup, config.latency_repeats) if latency else (0, 1)
    stats = collect_stats(model, example[:1], threads=config.threads, warmup=warmup,
                          repeats=repeats, metric=metric,
                          latency_inputs=example[:config.latency_batch])
    return stats.with_file_bytes(_file_bytes(model))
