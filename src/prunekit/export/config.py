"""Settings of a deployment measurement: which formats to make, how to calibrate, where and
how to time them, and when to recover accuracy with quantization-aware fine-tuning.

:class:`QuantizeConfig` is the recipe's ``quantize:`` section (after ``prune:`` and
``finetune:``) and what ``prunekit export --int8`` builds from its options.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from ..errors import ConfigError
from .quantize import FORMATS, STATIC_FORMATS, QuantizeOptions

__all__ = ["INT8_MODES", "RUNTIMES", "QuantizeConfig"]

INT8_MODES = ("static", "dynamic", "auto")
#: eager PyTorch, ``torch.compile`` (inductor) and ONNX Runtime (CPU execution provider)
RUNTIMES = ("eager", "compile", "onnxruntime")


def _names(value: Any, what: str, allowed: tuple[str, ...] | None = None) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{what} must be a list of names, got {value!r}")
    if allowed is not None:
        unknown = [v for v in value if v not in allowed]
        if unknown:
            raise ConfigError(f"unknown {what} {unknown}; choose from {', '.join(allowed)}")
    return tuple(value)


@dataclass(frozen=True)
class QuantizeConfig:
    """Make lower-precision copies of the pruned model, time them and choose by measurement.

    - ``int8``: ``static`` (calibrated, QDQ and QOperator), ``dynamic`` or ``auto`` (both,
      plus fp16); ``formats`` lists the ONNX formats explicitly instead (fp32 is always
      the baseline);
    - ``per_channel``, ``reduce_range`` (``None``: on for CPUs without VNNI),
      ``calibrate_method``, ``op_types``, ``exclude``: see :class:`QuantizeOptions`;
    - ``calibration_samples``: training samples the static formats are calibrated on;
    - ``runtimes``: where to time (``eager``, ``compile``, ``onnxruntime``), at every
      batch size of ``batch_sizes``, ``threads`` threads (``None``: torch's setting),
      ``repeats`` runs after ``warmup``;
    - ``budget``: largest metric drop from the pruned fp32 model a chosen format may have
      (0.005 = half a point); ``min_speedup``: how much faster than ONNX Runtime fp32 a
      format must measure to be chosen; ``min_cosine``: without a metric, how close (cosine)
      its outputs must stay to fp32's (0 turns the check off, e.g. for random weights);
    - ``qat_epochs``: when the best int8 format loses more than ``budget``, fine-tune this
      many epochs with fake quantization (learning rate ``qat_lr``) and quantize again
      (0: never);
    - ``diagnose``: profile rows that gain less than their MACs promise.
    """

    int8: Literal["static", "dynamic", "auto"] = "auto"
    formats: tuple[str, ...] | None = None
    per_channel: bool = True
    reduce_range: bool | None = None
    calibrate_method: str = "minmax"
    op_types: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()
    calibration_samples: int = 256
    runtimes: tuple[str, ...] = RUNTIMES
    batch_sizes: tuple[int, ...] = (1, 8)
    threads: int | None = None
    warmup: int = 3
    repeats: int = 10
    budget: float = 0.005
    min_speedup: float = 1.05
    min_cosine: float = 0.99
    qat_epochs: int = 0
    qat_lr: float = 1e-4
    diagnose: bool = True

    def __post_init__(self) -> None:
        if self.int8 not in INT8_MODES:
            raise ConfigError(f"int8 must be one of {INT8_MODES}, got {self.int8!r}")
        if self.formats is not None:
            formats = _names(self.formats, "formats", FORMATS)
            object.__setattr__(self, "formats", ("fp32",) + tuple(f for f in formats
                                                                  if f != "fp32"))
        object.__setattr__(self, "runtimes", _names(self.runtimes, "runtimes", RUNTIMES))
        if "onnxruntime" not in self.runtimes:
            raise ConfigError("runtimes must include onnxruntime: the formats are ONNX files")
        sizes = self.batch_sizes
        if isinstance(sizes, int):
            sizes = (sizes,)
        if (not isinstance(sizes, (list, tuple)) or not sizes
                or not all(isinstance(b, int) and not isinstance(b, bool) and b >= 1
                           for b in sizes)):
            raise ConfigError(f"batch_sizes must be positive integers, got {self.batch_sizes!r}")
        object.__setattr__(self, "batch_sizes", tuple(sorted(set(sizes))))
        options = self.options()  # validates per_channel, reduce_range, calibrate_method…
        object.__setattr__(self, "op_types", options.op_types)
        object.__setattr__(self, "exclude", options.exclude)
        for name, least in (("calibration_samples", 1), ("warmup", 0), ("repeats", 1),
                            ("qat_epochs", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise ConfigError(f"{name} must be an integer >= {least}, got {value!r}")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise ConfigError(f"threads must be an integer >= 1 or null, got {self.threads!r}")
        for name, low in (("budget", 0.0), ("min_speedup", 1.0), ("min_cosine", -1.0)):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < low:
                raise ConfigError(f"{name} must be a number >= {low:g}, got {value!r}")
        if not isinstance(self.qat_lr, (int, float)) or not self.qat_lr > 0:
            raise ConfigError(f"qat_lr must be > 0, got {self.qat_lr!r}")
        if not isinstance(self.diagnose, bool):
            raise ConfigError(f"diagnose must be true or false, got {self.diagnose!r}")

    def options(self) -> QuantizeOptions:
        """The file-making options."""
        return QuantizeOptions(per_channel=self.per_channel, reduce_range=self.reduce_range,
                               calibrate_method=self.calibrate_method,
                               op_types=None if self.op_types is None else tuple(self.op_types),
                               exclude=tuple(self.exclude))

    def candidate_formats(self) -> tuple[str, ...]:
        """The ONNX formats to make and time, fp32 (the baseline) first."""
        if self.formats is not None:
            return self.formats
        if self.int8 == "static":
            return ("fp32", *STATIC_FORMATS)
        if self.int8 == "dynamic":
            return ("fp32", "int8-dynamic")
        return FORMATS

    @property
    def needs_calibration(self) -> bool:
        return any(f in STATIC_FORMATS for f in self.candidate_formats())

    def settings(self) -> dict[str, Any]:
        """Plain data for reports."""
        data = asdict(self)
        for key in ("formats", "op_types", "exclude", "runtimes", "batch_sizes"):
            if data[key] is not None:
                data[key] = list(data[key])
        return data
