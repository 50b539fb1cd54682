"""Deployment measurement: the same models timed where users run them, side by side.

Each :class:`Variant` (dense, pruned, pruned after quantization-aware fine-tuning) is
exported to ONNX (batch dimension symbolic) and, for the variants that ask, converted to
lower-precision formats (:mod:`.quantize`). Every (variant, runtime, format) is timed at
every batch size (eager PyTorch fp32 and bf16 where the CPU has bf16 instructions,
``torch.compile`` fp32, ONNX Runtime for every file) and scored once: the task metric on
validation data when an ``evaluate`` function is given, and the cosine of its outputs with
the variant's eager fp32 outputs on a probe batch. Then, per batch size, the fastest
acceptable format is chosen by :func:`.choose.choose_format` against ONNX Runtime fp32 of
the same variant, and rows that gain less than their MACs promise are diagnosed
(:mod:`.diagnose`).
"""

from __future__ import annotations

import copy
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from ..errors import PrunekitError, QuantizationError
from ..measure import count_macs, measure_latency
from ..measure.latency import LatencyResult
from ..measure.onnxrt import OnnxModule, measure_onnx_latency, profile_onnx
from .calibration import Calibration
from .choose import Candidate, Choice, choose_format
from .config import QuantizeConfig
from .diagnose import (
    Finding,
    channel_alignment,
    compare_profiles,
    int8_findings,
    launch_bound,
)
from .onnx import export_onnx
from .quantize import STATIC_FORMATS, QuantizedFile, convert_onnx, cpu_flags, format_file

__all__ = ["ETA_THRESHOLD", "Deployment", "Row", "Variant", "int8_drop", "measure_deployment"]

#: a row is diagnosed when its speed-up is below this share of its MACs reduction
ETA_THRESHOLD = 0.8
Evaluate = Callable[[nn.Module], float]
Log = Callable[[str], None]


@dataclass(frozen=True)
class Variant:
    """A model to deploy: ``name`` (``dense``, ``pruned``…), the model, a one-sample example
    input, the ONNX formats to make (fp32 first) and the file stem they are named after
    (``model`` → ``model.onnx``, ``model.int8-qdq.onnx``); ``keep``: write the files into the
    output folder (else they are measured in a temporary folder and removed); ``score``:
    measure its metric (off for an architecture without its trained weights)."""

    name: str
    model: nn.Module
    example: torch.Tensor
    formats: tuple[str, ...] = ("fp32",)
    stem: str = "model"
    keep: bool = True
    score: bool = True


@dataclass(frozen=True)
class Row:
    """One timed (variant, runtime, format, batch size); ``status`` is ``ok`` or what broke."""

    variant: str
    runtime: str
    format: str
    batch_size: int
    macs: int
    latency: LatencyResult | None = None
    file: str | None = None
    file_bytes: int | None = None
    metric: float | None = None
    cosine: float | None = None
    status: str = "ok"

    @property
    def candidate(self) -> str:
        """The name the chooser knows it by: ``runtime/format``."""
        return f"{self.runtime}/{self.format}"

    def label(self) -> str:
        return f"{self.variant} {self.runtime} {self.format} batch {self.batch_size}"

    def to_dict(self) -> dict[str, Any]:
        lat = self.latency
        return {"variant": self.variant, "runtime": self.runtime, "format": self.format,
                "batch_size": self.batch_size, "macs": self.macs,
                "latency_ms": None if lat is None else {
                    "median": lat.median_ms, "p10": lat.p10_ms, "p90": lat.p90_ms,
                    "repeats": lat.repeats, "threads": lat.threads, "device": lat.device,
                    "dtype": lat.dtype},
                "file": self.file, "file_bytes": self.file_bytes, "metric": self.metric,
                "cosine_vs_fp32": self.cosine, "status": self.status}


@dataclass
class Deployment:
    """Rows, the files written, the choice per batch size and the diagnosis."""

    rows: list[Row]
    files: dict[str, QuantizedFile]
    choices: dict[int, Choice]
    diagnosis: dict[str, Any]
    conditions: dict[str, Any]
    qat: dict[str, Any] | None = None

    def row(self, variant: str, runtime: str, fmt: str, batch: int) -> Row | None:
        for r in self.rows:
            if (r.variant, r.runtime, r.format, r.batch_size) == (variant, runtime, fmt, batch):
                return r
        return None

    def to_dict(self) -> dict[str, Any]:
        """The report's ``deployment`` section (docs/report.md)."""
        return {"conditions": dict(self.conditions), "rows": [r.to_dict() for r in self.rows],
                "files": {name: f.to_dict() for name, f in self.files.items()},
                "chosen": {str(b): c.to_dict() for b, c in self.choices.items()},
                "diagnosis": dict(self.diagnosis), "qat": self.qat}

    def summary(self) -> list[str]:
        """One line per batch size: what was chosen and what it measured."""
        return [f"batch {b}: {c.format} — {c.reason}" for b, c in sorted(self.choices.items())]


def _bf16_native() -> bool:
    flags = cpu_flags() or frozenset()
    return bool(flags & {"avx512_bf16", "amx_bf16"})


class _Bf16(nn.Module):
    """Runs a bf16 copy of a model on float inputs and returns float32 outputs."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = copy.deepcopy(model).to(torch.bfloat16).eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_floating_point():
            x = x.to(torch.bfloat16)
        return self.model(x).float()


def _batch_of(samples: torch.Tensor | None, example: torch.Tensor, batch: int) -> torch.Tensor:
    """``batch`` real samples when there are enough, else the example repeated."""
    if samples is not None and samples.shape[0] >= batch \
            and samples.shape[1:] == example.shape[1:]:
        return samples[:batch].contiguous()
    return example[:1].expand(batch, *example.shape[1:]).contiguous()


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(
        a.flatten().double(), b.flatten().double(), dim=0))


def _first_line(exc: BaseException) -> str:
    return f"error: {type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:200]}"


def _signature_of(model: nn.Module) -> dict[str, Any]:
    """For a model converted from an ONNX file: its input/output names, dynamic axes and
    opset, so every format keeps the file's signature (nothing for other models)."""
    from ..onnx.module import OnnxModel

    if not isinstance(model, OnnxModel):
        return {}
    signature = model.signature
    return {"opset": signature.opset, "input_names": signature.input_names,
            "output_names": signature.output_names, "dynamic_axes": signature.dynamic_axes()}


def _make_files(variant: Variant, folder: Path, config: QuantizeConfig,
                calibration: Calibration | None, log: Log) -> dict[str, QuantizedFile | str]:
    """Export fp32 and convert to the variant's other formats; a format that cannot be
    made is the reason as a string (``auto`` mode), or raises (an explicit request)."""
    base = folder / f"{variant.stem}.onnx"
    export_onnx(variant.model, variant.example, base, dynamic_batch=True,
                **_signature_of(variant.model))
    made: dict[str, QuantizedFile | str] = {
        "fp32": QuantizedFile("fp32", base, base.stat().st_size)}
    explicit = config.int8 != "auto" or config.formats is not None
    for fmt in variant.formats:
        if fmt == "fp32":
            continue
        if fmt in STATIC_FORMATS and calibration is None and not explicit:
            made[fmt] = "skipped: no calibration data (pass --calibration DATA)"
            continue
        log(f"{variant.name}: converting to {fmt}")
        try:
            made[fmt] = convert_onnx(base, format_file(base, fmt), fmt,
                                     calibration=calibration, options=config.options())
        except QuantizationError as exc:
            if explicit:
                raise
            made[fmt] = _first_line(exc)
    return made


def _time_torch(model: nn.Module, x: torch.Tensor, config: QuantizeConfig) -> LatencyResult:
    return measure_latency(model, x, warmup=config.warmup, repeats=config.repeats,
                           threads=config.threads)


def _runtime_models(variant: Variant, config: QuantizeConfig
                    ) -> list[tuple[str, str, Callable[[], nn.Module]]]:
    """(runtime, format, builder) of the PyTorch rows."""
    runs: list[tuple[str, str, Callable[[], nn.Module]]] = []
    if "eager" in config.runtimes:
        runs.append(("eager", "fp32", lambda: variant.model))
        if _bf16_native():
            runs.append(("eager", "bf16", lambda: _Bf16(variant.model)))
    if "compile" in config.runtimes:
        runs.append(("compile", "fp32",
                     lambda: cast(nn.Module, torch.compile(variant.model))))
    return runs


def _measure_variant(variant: Variant, folder: Path, config: QuantizeConfig,
                     calibration: Calibration | None, evaluate: Evaluate | None,
                     samples: torch.Tensor | None, log: Log
                     ) -> tuple[list[Row], dict[str, QuantizedFile]]:
    model = variant.model.eval()
    macs = count_macs(model, variant.example[:1])
    probe = _batch_of(samples, variant.example, max(config.batch_sizes))
    with torch.no_grad():
        reference = model(probe)
    rows: list[Row] = []

    def score(m: nn.Module) -> tuple[float | None, float | None]:
        with torch.no_grad():
            cosine = _cosine(m(probe), reference)
        return (evaluate(m) if evaluate is not None and variant.score else None), cosine

    metric: float | None
    cosine: float | None
    for runtime, fmt, build in _runtime_models(variant, config):
        log(f"{variant.name}: timing {runtime} {fmt}")
        try:
            timed = build()
            if runtime == "compile":  # scored on the probe only (each new shape recompiles)
                with torch.no_grad():
                    metric, cosine = None, _cosine(timed(probe), reference)
            else:
                metric, cosine = score(timed)
            for b in config.batch_sizes:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    lat = _time_torch(timed, _batch_of(samples, variant.example, b), config)
                rows.append(Row(variant.name, runtime, fmt, b, macs, lat, metric=metric,
                                cosine=cosine))
        except Exception as exc:  # noqa: BLE001 - one failure is one row
            rows += [Row(variant.name, runtime, fmt, b, macs, status=_first_line(exc))
                     for b in config.batch_sizes]
    files = _make_files(variant, folder, config, calibration, log)
    written: dict[str, QuantizedFile] = {}
    for fmt in variant.formats:
        made = files.get(fmt, "not made")
        if isinstance(made, str):
            rows += [Row(variant.name, "onnxruntime", fmt, b, macs, status=made)
                     for b in config.batch_sizes]
            continue
        written[fmt] = made
        log(f"{variant.name}: timing onnxruntime {fmt}")
        try:
            session = OnnxModule(made.path, threads=config.threads)
            metric, cosine = score(session)
            del session  # its threads must not compete with the timing
            for b in config.batch_sizes:
                lat = measure_onnx_latency(made.path, _batch_of(samples, variant.example, b),
                                           warmup=config.warmup, repeats=config.repeats,
                                           threads=config.threads)
                rows.append(Row(variant.name, "onnxruntime", fmt, b, macs, lat,
                                made.path.name if variant.keep else None, made.bytes,
                                metric, cosine))
        except Exception as exc:  # noqa: BLE001 - one failure is one row
            rows += [Row(variant.name, "onnxruntime", fmt, b, macs, file_bytes=made.bytes,
                         status=_first_line(exc)) for b in config.batch_sizes]
    return rows, written


def _choices(rows: Sequence[Row], variants: Sequence[str], config: QuantizeConfig,
             higher_is_better: bool) -> dict[int, Choice]:
    """Per batch size, the fastest acceptable row of the deployable variants, against ONNX
    Runtime fp32 of the first of them."""
    choices = {}
    for b in config.batch_sizes:
        at = [r for r in rows if r.batch_size == b and r.variant in variants]
        candidates = []
        for r in at:
            name = r.candidate if r.variant == variants[0] else f"{r.variant}:{r.candidate}"
            candidates.append(Candidate(name, None if r.latency is None else r.latency.median_ms,
                                        r.metric, r.cosine, r.status))
        try:
            choices[b] = choose_format(candidates, baseline="onnxruntime/fp32",
                                       min_speedup=config.min_speedup, budget=config.budget,
                                       min_cosine=config.min_cosine,
                                       higher_is_better=higher_is_better)
        except PrunekitError as exc:
            raise PrunekitError(f"batch {b}: {exc}") from None
    return choices


def _diagnose(rows: Sequence[Row], variants: Sequence[Variant], files: dict[str, QuantizedFile],
              dense_files: dict[str, QuantizedFile], config: QuantizeConfig, log: Log
              ) -> dict[str, Any]:
    """Diagnose every (variant, runtime, format) that gains less than promised at some batch
    size: below :data:`ETA_THRESHOLD` of its MACs reduction over dense fp32 in the same
    runtime, or, in a lower precision, no faster than its own fp32."""
    by_name = {v.name: v for v in variants}
    dense = by_name.get("dense")
    ms = {(r.variant, r.runtime, r.format, r.batch_size): r.latency.median_ms
          for r in rows if r.latency is not None}
    macs = {r.variant: r.macs for r in rows}
    largest = max(config.batch_sizes)
    profiles: dict[tuple[str, str], Any] = {}

    def profile(variant: str, fmt: str, path: Path) -> Any:
        if (variant, fmt) not in profiles:
            log(f"{variant}: profiling onnxruntime {fmt} at batch {largest}")
            profiles[(variant, fmt)] = profile_onnx(
                path, _batch_of(None, by_name[variant].example, largest), runs=3,
                threads=config.threads)
        return profiles[(variant, fmt)]

    groups = sorted({(r.variant, r.runtime, r.format) for r in rows
                     if r.variant != "dense" and r.latency is not None
                     and r.runtime != "compile"})
    entries = []
    for variant, runtime, fmt in groups:
        macs_x = macs["dense"] / macs[variant] if dense is not None and macs[variant] else None
        per_batch, short = [], False
        for b in config.batch_sizes:
            own = ms.get((variant, runtime, fmt, b))
            if own is None:
                continue
            item: dict[str, Any] = {"batch_size": b}
            base = ms.get(("dense", runtime, "fp32", b))
            if base is not None and macs_x:
                item["speedup_vs_dense_fp32"] = base / own
                item["eta"] = base / own / macs_x
                short |= item["eta"] < ETA_THRESHOLD
            fp32 = ms.get((variant, runtime, "fp32", b))
            if fmt != "fp32" and fp32 is not None:
                item["speedup_vs_own_fp32"] = fp32 / own
                short |= fp32 / own < 1.0
            per_batch.append(item)
        if not short:
            continue
        findings: list[Finding] = []
        bound = launch_bound({b: ms[(variant, runtime, fmt, b)] for b in config.batch_sizes
                              if (variant, runtime, fmt, b) in ms}, f"{variant} {runtime} {fmt}")
        if bound is not None:
            findings.append(bound)
        if runtime == "onnxruntime":
            try:
                if fmt == "fp32" and "fp32" in dense_files:
                    findings.append(compare_profiles(
                        profile("dense", "fp32", dense_files["fp32"].path),
                        profile(variant, "fp32", files[f"{variant}:fp32"].path),
                        f"{variant} fp32"))
                elif fmt != "fp32" and f"{variant}:{fmt}" in files:
                    qfile = files[f"{variant}:{fmt}"]
                    findings += int8_findings(qfile, profile(variant, fmt, qfile.path),
                                              f"{variant} {fmt}")
            except Exception as exc:  # noqa: BLE001 - a profile that fails is stated
                findings.append(Finding("op-time", f"profiling failed: {_first_line(exc)}"))
        entries.append({"variant": variant, "runtime": runtime, "format": fmt,
                        "macs_reduction": macs_x, "per_batch": per_batch,
                        "findings": [f.to_dict() for f in findings]})
    channels = None
    if entries and dense is not None:
        pruned = next(v for v in variants if v.name != "dense")
        channels = channel_alignment(dense.model, pruned.model, dense.example[:1],
                                     pruned.example[:1]).to_dict()
    return {"threshold_eta": ETA_THRESHOLD, "channels": channels, "rows": entries}


def conditions(config: QuantizeConfig) -> dict[str, Any]:
    """Where and how the rows were measured."""
    import platform

    from ..environment import versions

    flags = cpu_flags()
    try:
        import onnxruntime

        ort_version: str | None = onnxruntime.__version__
    except ImportError:  # pragma: no cover - needed before getting here
        ort_version = None
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from .quantize import LOW_PRECISION_FLAGS

    return {"device": "cpu", "cpu": cpu,
            "cpu_flags": None if flags is None else sorted(f for f in LOW_PRECISION_FLAGS
                                                           if f in flags),
            "threads": config.threads or torch.get_num_threads(),
            "batch_sizes": list(config.batch_sizes), "warmup": config.warmup,
            "repeats": config.repeats, "runtimes": list(config.runtimes),
            "onnxruntime": ort_version, "torch": versions().get("torch"),
            "provider": "CPUExecutionProvider", "min_speedup": config.min_speedup,
            "budget": config.budget, "min_cosine": config.min_cosine}


def int8_drop(rows: Sequence[Row], variant: str, config: QuantizeConfig,
              higher_is_better: bool = True) -> tuple[float, str] | None:
    """How much of its fp32 metric (ONNX Runtime) ``variant`` loses in the best-scoring int8
    format among those that measure at least ``config.min_speedup`` times faster than its
    fp32 file at the largest batch size, and which format that is; ``None`` without
    metrics or without a faster int8 format."""
    largest = max(config.batch_sizes)
    ort = {r.format: r for r in rows if r.variant == variant and r.runtime == "onnxruntime"
           and r.status == "ok" and r.batch_size == largest and r.latency is not None}
    base = ort.get("fp32")
    if base is None or base.metric is None or base.latency is None:
        return None
    faster = {f: r.metric for f, r in ort.items() if f.startswith("int8")
              and r.metric is not None and r.latency is not None
              and base.latency.median_ms / r.latency.median_ms >= config.min_speedup}
    if not faster:
        return None
    pick = max if higher_is_better else min
    fmt = pick(faster, key=lambda f: faster[f])
    value = faster[fmt]
    assert value is not None
    drop = (base.metric - value) if higher_is_better else (value - base.metric)
    return drop, fmt


def measure_deployment(variants: Sequence[Variant], folder: str | Path,
                       config: QuantizeConfig | None = None, *,
                       calibration: Calibration | None = None,
                       evaluate: Evaluate | None = None, samples: torch.Tensor | None = None,
                       higher_is_better: bool = True,
                       recover: Callable[[nn.Module], nn.Module] | None = None,
                       log: Log | None = None) -> Deployment:
    """Export, convert, time and score every variant; choose per batch size among the
    variants other than ``dense`` (the first of them is the baseline's); diagnose.

    ``samples``: real inputs for timing and the probe batch (else the example repeated);
    ``evaluate(model) -> metric`` scores a model or an ONNX session on validation data;
    ``recover(model) -> model``: when the best int8 format of the first deployable variant
    loses more than ``config.budget`` of its fp32 metric, it is called on that variant's
    model (quantization-aware fine-tuning of a copy) and the result is measured too, as
    ``NAME+qat`` with files ``STEM.qat*.onnx``.
    """
    config = config or QuantizeConfig()
    say: Log = log if log is not None else (lambda _msg: None)
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    files: dict[str, QuantizedFile] = {}
    dense_files: dict[str, QuantizedFile] = {}
    qat: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(prefix="prunekit-deploy-") as scratch:
        def run(v: Variant) -> None:
            where = target if v.keep else Path(scratch) / v.name
            where.mkdir(parents=True, exist_ok=True)
            got, written = _measure_variant(v, where, config, calibration, evaluate, samples,
                                            say)
            rows.extend(got)
            for fmt, f in written.items():
                if v.name == "dense":
                    dense_files[fmt] = f
                else:
                    files[f"{v.name}:{fmt}"] = f

        for v in variants:
            run(v)
        deployable = [v.name for v in variants if v.name != "dense"]
        if recover is not None and deployable:
            first = next(v for v in variants if v.name == deployable[0])
            qat = _recover(first, rows, config, higher_is_better, recover, run, say)
            if qat.get("variant"):
                deployable.append(qat["variant"])
        choices = _choices(rows, deployable, config, higher_is_better)
        diagnosis = (_diagnose(rows, variants, files, dense_files, config, say)
                     if config.diagnose else {})
    kept = {name: f for name, f in files.items() if _kept(variants, name) or
            (qat is not None and name.startswith(f"{qat.get('variant')}:"))}
    return Deployment(rows, kept, choices, diagnosis, conditions(config), qat)


def _recover(first: Variant, rows: list[Row], config: QuantizeConfig, higher_is_better: bool,
             recover: Callable[[nn.Module], nn.Module], run: Callable[[Variant], None],
             say: Log) -> dict[str, Any]:
    """Quantization-aware recovery when the best int8 format loses more than the budget."""
    measured = int8_drop(rows, first.name, config, higher_is_better)
    if measured is None:
        return {"triggered": False, "reason": "no int8 format both scored and measured "
                                              f"{config.min_speedup:g}× faster than fp32"}
    drop, fmt = measured
    if drop <= config.budget:
        return {"triggered": False, "int8_drop": drop, "format": fmt,
                "reason": f"{fmt}, faster than fp32, loses {drop:.4g} <= budget "
                          f"{config.budget:g}"}
    say(f"{fmt} loses {drop:.4g} of the metric (budget {config.budget:g}): "
        "quantization-aware fine-tuning")
    name = f"{first.name}+qat"
    int8 = tuple(f for f in first.formats if f == "fp32" or f.startswith("int8"))
    run(Variant(name, recover(first.model), first.example, int8, f"{first.stem}.qat",
                first.keep))
    best = {r.format: r.metric for r in rows if r.variant == name
            and r.runtime == "onnxruntime" and r.metric is not None}
    return {"triggered": True, "variant": name, "int8_drop_before": drop, "format_before": fmt,
            "metrics_after": best, "reason": f"{fmt} lost {drop:.4g} > budget {config.budget:g}"}


def _kept(variants: Sequence[Variant], key: str) -> bool:
    """Whether the file ``variant:format`` belongs to a variant whose files are kept."""
    name = key.split(":", 1)[0]
    return any(v.name == name and v.keep for v in variants)
