"""Settings of one pruning run: frozen, validated dataclasses, one per recipe section.

``RunConfig`` holds the ``model``, ``data``, ``prune`` (:class:`~prunekit.PruneConfig`),
``finetune`` (:class:`~prunekit.train.FinetuneConfig`), ``distill``
(:class:`~prunekit.train.DistillConfig`, or ``None`` for plain fine-tuning), ``reconstruct``
(:class:`Reconstruct`, or ``None``), ``decompose``
(:class:`~prunekit.decompose.DecomposeConfig`, or ``None``), ``quantize``
(:class:`~prunekit.export.config.QuantizeConfig`, or ``None``) and ``out`` sections.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ..plan.config import PruneConfig
from ..decompose.config import DecomposeConfig
from ..errors import ConfigError
from ..export.config import QuantizeConfig
from ..metrics import parse_metric
from ..models.spec import ModelSpec, parse_model_spec
from ..recover.reconstruct import DAMP
from ..train.distill import DistillConfig
from ..train.finetune import FinetuneConfig

__all__ = ["DataSource", "DepthWidthRun", "IterativeRun", "ModelSource", "OutputConfig",
           "Reconstruct", "RunConfig", "ShrinkRun"]


@dataclass(frozen=True)
class ModelSource:
    """The model: a spec (``torchvision:NAME``, ``timm:NAME``, ``prunekit:digits_cnn``, a
    Hugging Face folder, ``file.py:factory``, ``model.onnx``, ``model.pt`` with
    ``trust_pickle``; constructor arguments after ``?``), more constructor ``args`` (e.g.
    ``{"num_classes": 10}``), optional weights, and an optional example-input shape (batch
    first) that each data sample is reshaped to."""

    spec: str = "prunekit:digits_cnn"
    weights: str | None = None
    input_shape: tuple[int, ...] | None = None
    trust_pickle: bool = False
    args: dict[str, Any] = field(default_factory=dict)

    def model_spec(self) -> ModelSpec:
        """The parsed spec with ``args`` added (a key given twice differently is an error)."""
        return parse_model_spec(self.spec, self.args)

    def __post_init__(self) -> None:
        if not isinstance(self.spec, str) or not self.spec.strip():
            raise ConfigError(f"model spec must be a non-empty string, got {self.spec!r}")
        if not isinstance(self.args, Mapping):
            raise ConfigError(f"model args must be a mapping of names to values, got "
                              f"{self.args!r}")
        for key, value in self.args.items():
            if not isinstance(key, str) or not key.isidentifier():
                raise ConfigError(f"model argument names must be Python names, got {key!r}")
            if not isinstance(value, (bool, int, float, str)):
                raise ConfigError(f"model argument {key} must be a number, true/false or a "
                                  f"string, got {value!r}")
        object.__setattr__(self, "args", dict(self.args))
        if self.input_shape is not None:
            shape = tuple(self.input_shape)
            if not shape or not all(isinstance(s, int) and s >= 1 for s in shape):
                raise ConfigError(f"input_shape must be positive integers, got "
                                  f"{self.input_shape!r}")
            object.__setattr__(self, "input_shape", shape)
        if not isinstance(self.trust_pickle, bool):
            raise ConfigError(f"trust_pickle must be true or false, got {self.trust_pickle!r}")


@dataclass(frozen=True)
class DataSource:
    """Classification data: ``digits``, ``path.npz``, ``path.csv`` (with ``label_column``),
    a Hugging Face dataset folder (``save_to_disk``; ``split`` ``NAME`` or ``TRAIN,VAL``,
    ``feature_column``, ``label_column``) or an image folder (class subfolders, resized to
    ``image_size``), split into train/validation by ``val_fraction`` and ``seed``; ``metric``
    is measured on the validation split (``accuracy``, ``top5`` / ``topk:5``, or
    ``path/to/file.py:function``)."""

    spec: str = "digits"
    label_column: str = "label"
    val_fraction: float = 0.2
    batch_size: int = 64
    seed: int = 0
    image_size: int = 224
    split: str | None = None
    feature_column: str | None = None
    metric: str = "accuracy"

    def __post_init__(self) -> None:
        if not isinstance(self.spec, str) or not self.spec.strip():
            raise ConfigError(f"data spec must be a non-empty string, got {self.spec!r}")
        for name in ("split", "feature_column"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ConfigError(f"{name} must be a non-empty string or null, got {value!r}")
        parse_metric(self.metric)
        if not isinstance(self.val_fraction, (int, float)) or not 0 < self.val_fraction < 1:
            raise ConfigError(f"val_fraction must be in (0, 1), got {self.val_fraction!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if not isinstance(self.seed, int):
            raise ConfigError(f"seed must be an integer, got {self.seed!r}")
        if not isinstance(self.image_size, int) or self.image_size < 1:
            raise ConfigError(f"image_size must be a positive integer, got {self.image_size!r}")


@dataclass(frozen=True)
class OutputConfig:
    """Where files go and how latency is measured (``threads=None``: torch's setting;
    ``device``: where latency and memory are measured, ``cpu``, ``cuda`` or ``cuda:N``;
    ``cuda_graph``: time CUDA-graph replays, CUDA devices only; ``serving_batch``: also time
    the dense and the pruned model interleaved at batch 1 and at this batch size, the one
    the model will serve, for the report's speed section)."""

    dir: str = "prunekit-out"
    html: bool = True
    threads: int | None = None
    warmup: int = 5
    repeats: int = 20
    device: str = "cpu"
    cuda_graph: bool = False
    serving_batch: int | None = None

    def __post_init__(self) -> None:
        if self.serving_batch is not None and (
                isinstance(self.serving_batch, bool) or not isinstance(self.serving_batch, int)
                or not 1 <= self.serving_batch <= 4096):
            raise ConfigError(f"serving_batch must be an integer in [1, 4096], got "
                              f"{self.serving_batch!r}")
        if self.serving_batch is not None and self.device != "cpu":
            raise ConfigError("the serving-batch timing runs on the CPU: drop serving_batch "
                              "(--serving-batch) or measure latency on cpu")
        if not isinstance(self.dir, str) or not self.dir:
            raise ConfigError(f"out dir must be a non-empty string, got {self.dir!r}")
        if not isinstance(self.device, str) or not (
                self.device in ("cpu", "cuda") or (self.device.startswith("cuda:")
                                                   and self.device[5:].isdigit())):
            raise ConfigError(f"device must be cpu, cuda or cuda:N, got {self.device!r}")
        if not isinstance(self.cuda_graph, bool):
            raise ConfigError(f"cuda_graph must be true or false, got {self.cuda_graph!r}")
        if self.cuda_graph and not self.device.startswith("cuda"):
            raise ConfigError("CUDA-graph timing needs a CUDA device: set the latency device "
                              "to cuda (--latency-device cuda, or out.device in a recipe)")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise ConfigError(f"threads must be an integer >= 1, got {self.threads!r}")
        if not isinstance(self.warmup, int) or self.warmup < 0:
            raise ConfigError(f"warmup must be an integer >= 0, got {self.warmup!r}")
        if not isinstance(self.repeats, int) or self.repeats < 1:
            raise ConfigError(f"repeats must be an integer >= 1, got {self.repeats!r}")


@dataclass(frozen=True)
class IterativeRun:
    """Iterate until a target instead of pruning once: each step removes ``step_factor``
    times of the ``metric`` (``macs`` or ``params``, with the ``prune`` section's criterion,
    scope and constraints), fine-tunes (the ``finetune`` / ``distill`` sections) and is kept
    only if the accuracy drop from the dense model stays within ``budget`` (0.01 = one
    point); a rejected step is retried smaller. Every kept step is checkpointed atomically
    in ``out.dir/checkpoints`` so that an interrupted run resumes."""

    target: float = 2.0
    metric: Literal["macs", "params"] = "macs"
    budget: float = 0.01
    step_factor: float = 2.0
    max_steps: int = 20

    def __post_init__(self) -> None:
        def number(value: Any) -> bool:
            return isinstance(value, (int, float)) and not isinstance(value, bool)

        if not number(self.target) or self.target <= 1:
            raise ConfigError(f"iterative target must be a reduction > 1 (2 = half), got "
                              f"{self.target!r}")
        if self.metric not in ("macs", "params"):
            raise ConfigError(f"iterative metric must be 'macs' or 'params', got {self.metric!r}")
        if not number(self.budget) or self.budget < 0:
            raise ConfigError(f"iterative budget must be >= 0 (accuracy as a fraction, 0.01 = "
                              f"one point), got {self.budget!r}")
        if not number(self.step_factor) or self.step_factor < 1.05:
            raise ConfigError(f"iterative step_factor must be >= 1.05 (the reduction asked of "
                              f"each step), got {self.step_factor!r}")
        if not isinstance(self.max_steps, int) or self.max_steps < 1:
            raise ConfigError(f"iterative max_steps must be an integer >= 1, got "
                              f"{self.max_steps!r}")


@dataclass(frozen=True)
class Reconstruct:
    """Layer-wise reconstruction right after pruning (:func:`prunekit.recover.reconstruct`):
    every layer that lost inputs is re-fitted to the unpruned outputs on ``batches``
    training batches, with relative ``damp``; fine-tuning, if any, starts from there. In an
    iterative run, each step is re-fitted to the model before that step."""

    batches: int = 8
    damp: float = DAMP

    def __post_init__(self) -> None:
        if not isinstance(self.batches, int) or isinstance(self.batches, bool) \
                or self.batches < 1:
            raise ConfigError(f"reconstruct batches must be an integer >= 1, got "
                              f"{self.batches!r}")
        if not isinstance(self.damp, (int, float)) or isinstance(self.damp, bool) \
                or not 0 < self.damp < float("inf"):
            raise ConfigError(f"reconstruct damp must be a finite number > 0, got {self.damp!r}")


@dataclass(frozen=True)
class ShrinkRun:
    """Prune while training (the ``shrink`` recipe section): the model trains for ``epochs``
    with the ``finetune`` section's optimizer and learning rate, and the ``prune`` section's
    units are removed for real at each pruning step, from epoch ``start`` to ``end`` every
    ``every`` epochs (``schedule``: ``linear``, ``cubic`` or ``one_shot`` at ``start``),
    until ``prune.ratio`` of every group is gone. Stops early on ``stable_after``
    (early-bird), ``target_macs`` / ``target_params`` (fractions of the dense model);
    ``max_drop`` rolls back a shrink that costs more validation metric. ``dense_baseline``
    also trains the dense model the same way, for the report's training-cost comparison."""

    epochs: int = 10
    start: float = 1.0
    end: float = 3.0
    every: float = 0.5
    schedule: Literal["linear", "cubic", "one_shot"] = "linear"
    stable_after: float | None = None
    target_macs: float | None = None
    target_params: float | None = None
    max_drop: float | None = None
    dense_baseline: bool = False

    def __post_init__(self) -> None:
        from .._internal.validate import check_choice, check_fraction, check_int, check_number

        check_int(self.epochs, "shrink.epochs", minimum=1)
        check_number(self.start, "shrink.start", minimum=0.0, hint="in epochs")
        check_number(self.end, "shrink.end", minimum=0.0, hint="in epochs")
        check_number(self.every, "shrink.every", above=0.0, hint="in epochs")
        if self.end < self.start or self.end > self.epochs:
            raise ConfigError(f"shrink.end ({self.end}) must lie between shrink.start "
                              f"({self.start}) and shrink.epochs ({self.epochs})")
        check_choice(self.schedule, "shrink.schedule", ("linear", "cubic", "one_shot"))
        for name in ("stable_after", "target_macs", "target_params"):
            if getattr(self, name) is not None:
                check_fraction(getattr(self, name), f"shrink.{name}")
        check_number(self.max_drop, "shrink.max_drop", minimum=0.0, optional=True)
        if not isinstance(self.dense_baseline, bool):
            raise ConfigError(f"shrink.dense_baseline must be true or false, got "
                              f"{self.dense_baseline!r}")


@dataclass(frozen=True)
class DepthWidthRun:
    """Meet ``macs_reduction`` with whole blocks removed and channels thinned, the fastest
    mix as measured at ``out.serving_batch`` (batch 1 without it), instead of channels alone
    (:func:`prunekit.recover.choose_depth_width`; ``prune`` gives the width pruning's
    criterion, ``ignore`` and ``round_to``). ``budget``: the largest drop of the validation
    metric, before any fine-tuning, a candidate may have (``None``: the fastest wins);
    ``steps``, ``rank_by``, ``width`` and ``rounds`` as there."""

    macs_reduction: float = 2.0
    budget: float | None = None
    steps: int = 4
    rank_by: str = "both"
    width: str = "hardware"
    rounds: int = 15

    def __post_init__(self) -> None:
        if isinstance(self.macs_reduction, bool) or not isinstance(
                self.macs_reduction, (int, float)) or not self.macs_reduction > 1.0:
            raise ConfigError(f"depth_width macs_reduction must be a number > 1 (2 = half the "
                              f"MACs), got {self.macs_reduction!r}")
        if self.budget is not None and (isinstance(self.budget, bool) or not isinstance(
                self.budget, (int, float)) or not self.budget >= 0):
            raise ConfigError(f"depth_width budget must be a number >= 0 (0.01 = one point of "
                              f"accuracy) or null, got {self.budget!r}")
        for name in ("steps", "rounds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"depth_width {name} must be an integer >= 1, got {value!r}")
        if self.rank_by not in ("importance", "time", "both"):
            raise ConfigError(f"depth_width rank_by must be importance, time or both, got "
                              f"{self.rank_by!r}")
        if self.width not in ("hardware", "uniform"):
            raise ConfigError(f"depth_width width must be hardware or uniform, got "
                              f"{self.width!r}")


@dataclass(frozen=True)
class RunConfig:
    """Every setting of one run; ``finetune.epochs == 0`` skips fine-tuning; ``reconstruct``
    (default ``None``: off) re-fits layers after pruning; ``decompose`` (default ``None``:
    off) factorizes layers after that, before fine-tuning; ``iterative`` (default ``None``:
    prune once) iterates until a target; ``quantize`` (default ``None``: off) exports the
    fine-tuned model to ONNX in fp32 and lower precisions, times dense, pruned and
    pruned+int8 side by side and chooses the fastest acceptable format; ``depth_width``
    (default ``None``: channels only) removes whole blocks as well where that is faster."""

    model: ModelSource = field(default_factory=ModelSource)
    data: DataSource = field(default_factory=DataSource)
    prune: PruneConfig = field(default_factory=PruneConfig)
    finetune: FinetuneConfig = field(default_factory=lambda: FinetuneConfig(epochs=0))
    distill: DistillConfig | None = field(default_factory=DistillConfig)
    out: OutputConfig = field(default_factory=OutputConfig)
    iterative: IterativeRun | None = None
    reconstruct: Reconstruct | None = None
    decompose: DecomposeConfig | None = None
    quantize: QuantizeConfig | None = None
    shrink: ShrinkRun | None = None
    depth_width: DepthWidthRun | None = None

    def __post_init__(self) -> None:
        for name, kind in (("model", ModelSource), ("data", DataSource),
                           ("prune", PruneConfig), ("finetune", FinetuneConfig),
                           ("out", OutputConfig)):
            if not isinstance(getattr(self, name), kind):
                raise ConfigError(f"{name} must be a {kind.__name__}")
        if self.distill is not None and not isinstance(self.distill, DistillConfig):
            raise ConfigError("distill must be a DistillConfig or None")
        if self.iterative is not None and not isinstance(self.iterative, IterativeRun):
            raise ConfigError("iterative must be an IterativeRun or None")
        if self.reconstruct is not None and not isinstance(self.reconstruct, Reconstruct):
            raise ConfigError("reconstruct must be a Reconstruct or None")
        if self.quantize is not None and not isinstance(self.quantize, QuantizeConfig):
            raise ConfigError("quantize must be a QuantizeConfig or None")
        if self.quantize is not None and self.iterative is not None:
            raise ConfigError("the quantize section is not available in iterative runs yet: "
                              "run prunekit export --int8 on the result folder instead")
        if self.reconstruct is not None and self.prune.input_features:
            raise ConfigError("reconstruction is not available together with input-feature "
                              "pruning yet; use one or the other")
        if self.decompose is not None and not isinstance(self.decompose, DecomposeConfig):
            raise ConfigError("decompose must be a DecomposeConfig or None")
        if self.shrink is not None and not isinstance(self.shrink, ShrinkRun):
            raise ConfigError("shrink must be a ShrinkRun or None")
        if self.shrink is not None and any(
                getattr(self, n) is not None for n in ("iterative", "reconstruct",
                                                       "decompose", "quantize")):
            raise ConfigError("the shrink section (prune while training) is not available "
                              "together with iterative, reconstruct, decompose or quantize "
                              "yet; run those on the result folder")
        if self.shrink is not None and (self.prune.input_features or
                                        self.prune.flops_reduction or
                                        self.prune.params_reduction):
            raise ConfigError("a shrink run prunes prune.ratio of every group; for a MACs or "
                              "parameter target use shrink.target_macs / "
                              "shrink.target_params, and leave input_features out")
        if self.depth_width is not None and not isinstance(self.depth_width, DepthWidthRun):
            raise ConfigError("depth_width must be a DepthWidthRun or None")
        if self.depth_width is not None and any(
                getattr(self, n) is not None for n in ("iterative", "reconstruct",
                                                       "decompose", "shrink")):
            raise ConfigError("the depth_width section is not available together with "
                              "iterative, reconstruct, decompose or shrink yet")
        if self.depth_width is not None and (self.prune.input_features or
                                             self.prune.flops_reduction or
                                             self.prune.params_reduction):
            raise ConfigError("a depth_width run has its own target: set "
                              "depth_width.macs_reduction, and leave prune.flops_reduction, "
                              "prune.params_reduction and input_features out")
        if self.decompose is not None and (self.prune.input_features or self.iterative):
            raise ConfigError("decomposition is not available together with input-feature "
                              "pruning or an iterative run yet; decompose a one-shot run")

    def settings(self) -> dict[str, Any]:
        """Plain-data view for reports."""
        return {"model": asdict(self.model), "data": asdict(self.data),
                "prune": self.prune.settings(), "finetune": self.finetune.settings(),
                "distill": None if self.distill is None else self.distill.settings(),
                "out": asdict(self.out),
                "iterative": None if self.iterative is None else asdict(self.iterative),
                "reconstruct": None if self.reconstruct is None else asdict(self.reconstruct),
                "decompose": None if self.decompose is None else self.decompose.settings(),
                "quantize": None if self.quantize is None else self.quantize.settings(),
                "shrink": None if self.shrink is None else asdict(self.shrink),
                "depth_width": None if self.depth_width is None else asdict(self.depth_width)}
