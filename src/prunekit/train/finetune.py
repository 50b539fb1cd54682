"""A plain-PyTorch fine-tuning loop for pruned models, with optional distillation.

Works with any model, loaders and loss: each batch is ``(inputs, targets)`` where ``inputs``
is a tensor, a tuple/list of positional tensors or a dict of keyword tensors. The loop uses
AdamW or SGD with a per-step cosine learning-rate schedule, gradient-norm clipping,
optional mixup of the training inputs (:mod:`.mixup`; a distillation teacher sees the mixed
inputs), evaluation after every epoch, early stopping on the validation metric, and mixed
precision (autocast) only when the model is on a CUDA device.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sized
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .._internal.validate import check_choice, check_int, check_number
from .distill import DistillConfig, distilled_loss
from .features import FeatureMatcher
from .mixup import Mixup, mixed_task_loss
from .outputs import logits_of

__all__ = [
    "EpochRecord",
    "FinetuneConfig",
    "FinetuneResult",
    "LossFn",
    "MetricFn",
    "accuracy",
    "evaluate",
    "finetune",
]

#: ``loss_fn(outputs, targets) -> scalar tensor``
LossFn = Callable[[Any, Any], torch.Tensor]
#: ``metric_fn(outputs, targets) -> float``, averaged over samples (weighted by batch size)
MetricFn = Callable[[Any, Any], float]


@dataclass(frozen=True)
class FinetuneConfig:
    """Fine-tuning settings (validated on creation).

    - ``schedule``: ``"cosine"`` (per step, from ``lr`` to 0) or ``"constant"``.
    - ``grad_clip``: max gradient L2 norm, or ``None`` for no clipping.
    - ``patience``: stop after this many epochs without an improvement of more than
      ``min_delta`` in the validation metric (``None``: never stop early).
    - ``mode``: ``"max"`` if a higher metric is better (accuracy), ``"min"`` otherwise.
    - ``restore_best``: load the weights of the best epoch at the end.
    - ``amp``: use autocast (bf16 where supported, else fp16 with loss scaling) on CUDA;
      ignored on CPU.
    - ``mixup``: ``Beta(mixup, mixup)`` parameter of per-sample input mixup (``0``: off);
      needs floating-point tensor inputs. With a distillation teacher and ``alpha=1`` this
      is "function matching": the student matches the teacher on mixed images.
    """

    epochs: int = 10
    lr: float = 1e-3
    optimizer: Literal["adamw", "sgd"] = "adamw"
    weight_decay: float = 1e-4
    momentum: float = 0.9
    schedule: Literal["cosine", "constant"] = "cosine"
    grad_clip: float | None = 1.0
    patience: int | None = None
    min_delta: float = 0.0
    mode: Literal["max", "min"] = "max"
    restore_best: bool = True
    amp: bool = True
    mixup: float = 0.0

    def __post_init__(self) -> None:
        check_int(self.epochs, "epochs", minimum=0)
        check_number(self.lr, "lr", above=0.0)
        check_choice(self.optimizer, "optimizer", ("adamw", "sgd"))
        check_number(self.weight_decay, "weight_decay", minimum=0.0)
        check_number(self.momentum, "momentum", minimum=0.0, below=1.0)
        check_choice(self.schedule, "schedule", ("cosine", "constant"))
        check_number(self.grad_clip, "grad_clip", above=0.0, optional=True)
        check_int(self.patience, "patience", minimum=1, optional=True)
        check_number(self.min_delta, "min_delta", minimum=0.0)
        check_choice(self.mode, "mode", ("max", "min"))
        check_number(self.mixup, "mixup", minimum=0.0, hint="a Beta parameter; 0 = off")

    def settings(self) -> dict[str, Any]:
        """Plain-data view for reports."""
        return asdict(self)


@dataclass(frozen=True)
class EpochRecord:
    """One epoch: mean training loss, validation metric, last learning rate, wall time."""

    epoch: int
    train_loss: float
    val_metric: float
    lr: float
    seconds: float


@dataclass
class FinetuneResult:
    """The history of a fine-tuning run and its best epoch (0 = before training)."""

    initial_metric: float
    best_metric: float
    best_epoch: int
    history: list[EpochRecord] = field(default_factory=list)
    stopped_early: bool = False
    seconds: float = 0.0


def accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    """Top-1 accuracy of logits ``(N, C)`` (or a ``ModelOutput``'s) against integer labels
    ``(N,)``, in [0, 1]."""
    correct = int((logits_of(outputs).argmax(dim=-1) == targets).sum())
    return correct / max(int(targets.numel()), 1)


def _to_device(obj: Any, device: torch.device) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, Mapping):
        return {k: _to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (tuple, list)):
        return type(obj)(_to_device(v, device) for v in obj)
    return obj


def _split(batch: Any) -> tuple[Any, Any]:
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise ConfigError("each batch must be an (inputs, targets) pair; wrap your loader "
                          "or dataset so that it yields two items")
    return batch[0], batch[1]


def _call(model: nn.Module, inputs: Any) -> Any:
    if isinstance(inputs, Mapping):
        return model(**inputs)
    if isinstance(inputs, (tuple, list)):
        return model(*inputs)
    return model(inputs)


def _cross_entropy(outputs: Any, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits_of(outputs), targets)


def _batch_size(targets: Any) -> int:
    if isinstance(targets, torch.Tensor) and targets.dim() > 0:
        return int(targets.shape[0])
    return 1


def _model_device(model: nn.Module) -> torch.device:
    param = next(iter(model.parameters()), None)
    return param.device if param is not None else torch.device("cpu")


def evaluate(model: nn.Module, loader: Iterable[Any], metric_fn: MetricFn = accuracy,
             device: torch.device | str | None = None) -> float:
    """Sample-weighted mean of ``metric_fn`` over ``loader``, in eval mode without gradients.

    The model's training flag is restored afterwards.
    """
    dev = torch.device(device) if device is not None else _model_device(model)
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        with torch.no_grad():
            for batch in loader:
                inputs, targets = _to_device(_split(batch), dev)
                n = _batch_size(targets)
                total += float(metric_fn(_call(model, inputs), targets)) * n
                count += n
    finally:
        model.train(was_training)
    if count == 0:
        raise ConfigError("the validation loader yielded no batches")
    return total / count


def _optimizer(model: nn.Module, config: FinetuneConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError("the model has no trainable parameters")
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay, nesterov=config.momentum > 0)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def _autocast(device: torch.device, enabled: bool) -> tuple[Any, torch.amp.GradScaler | None]:
    """The autocast context and loss scaler to use: AMP on CUDA only."""
    if not (enabled and device.type == "cuda"):
        return contextlib.nullcontext(), None
    if torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16), None
    return torch.autocast("cuda", dtype=torch.float16), torch.amp.GradScaler("cuda")


def _improved(value: float, best: float, config: FinetuneConfig) -> bool:
    if math.isnan(best):
        return not math.isnan(value)
    if config.mode == "max":
        return value > best + config.min_delta
    return value < best - config.min_delta


def _feature_matcher(model: nn.Module, teacher: nn.Module, names: tuple[str, ...],
                     val_loader: Iterable[Any], device: torch.device) -> FeatureMatcher:
    """Hooks for feature distillation, with adapters fitted on the first validation batch."""
    matcher = FeatureMatcher(model, teacher, names)
    probe = next(iter(val_loader), None)
    if probe is None:
        raise ConfigError("the validation loader yielded no batches")
    inputs, _ = _to_device(_split(probe), device)
    matcher.attach(lambda m: _call(m, inputs))
    return matcher


def finetune(model: nn.Module, train_loader: Iterable[Any], val_loader: Iterable[Any],
             config: FinetuneConfig | None = None, *, loss_fn: LossFn | None = None,
             metric_fn: MetricFn = accuracy, teacher: nn.Module | None = None,
             distill: DistillConfig | None = None,
             on_epoch: Callable[[EpochRecord], None] | None = None) -> FinetuneResult:
    """Fine-tune ``model`` in place and return its history.

    ``loss_fn(outputs, targets)`` defaults to cross-entropy. With a ``teacher`` (for example
    the unpruned model), the loss becomes the distillation blend of :mod:`.distill`
    (``distill`` defaults to :class:`DistillConfig()`); the teacher runs in eval mode without
    gradients and is moved to the student's device. With ``distill.features``, the adapters of
    :mod:`.features` are fitted on the first validation batch and trained alongside the model.
    ``on_epoch`` is called after each epoch.
    """
    config = config if config is not None else FinetuneConfig()
    task_loss: LossFn = loss_fn if loss_fn is not None else _cross_entropy
    if distill is not None and teacher is None:
        raise ConfigError("distill= was given without a teacher= model to distill from")
    distill_cfg = distill if distill is not None else DistillConfig()
    device = _model_device(model)
    if teacher is not None:
        teacher.to(device).eval()
    start = time.perf_counter()
    initial = evaluate(model, val_loader, metric_fn, device)
    result = FinetuneResult(initial_metric=initial, best_metric=initial, best_epoch=0)
    if config.epochs == 0:
        result.seconds = time.perf_counter() - start
        return result

    optimizer = _optimizer(model, config)
    steps_per_epoch = len(train_loader) if isinstance(train_loader, Sized) else None
    if config.schedule == "cosine" and not steps_per_epoch:
        raise ConfigError("the cosine schedule needs a train loader with a length; "
                          "use schedule='constant' for an iterable without len()")
    matcher = None
    if teacher is not None and distill_cfg.features:
        matcher = _feature_matcher(model, teacher, distill_cfg.features, val_loader, device)
        optimizer.add_param_group({"params": matcher.parameters()})
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
    if config.schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=config.epochs * (steps_per_epoch or 1))
    autocast, scaler = _autocast(device, config.amp)
    mixup = Mixup.from_torch_seed(config.mixup) if config.mixup > 0 else None
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    stale = 0
    was_training = model.training
    try:
        for epoch in range(1, config.epochs + 1):
            t0 = time.perf_counter()
            model.train()
            loss_sum, batches = 0.0, 0
            for batch in train_loader:
                inputs, targets = _to_device(_split(batch), device)
                mixed = mixup(inputs) if mixup is not None else None
                if mixed is not None:
                    inputs = mixed.inputs
                with autocast:
                    outputs = _call(model, inputs)
                    if mixed is not None:
                        loss = mixed_task_loss(outputs, targets, mixed, loss_fn)
                    else:
                        loss = task_loss(outputs, targets)
                    if teacher is not None:
                        with torch.no_grad():
                            teacher_out = _call(teacher, inputs)
                        loss = distilled_loss(logits_of(outputs), logits_of(teacher_out), loss,
                                              distill_cfg)
                        if matcher is not None:
                            loss = loss + distill_cfg.feature_weight * matcher.loss()
                if not torch.isfinite(loss):
                    raise ConfigError(f"the training loss became {float(loss)} at epoch {epoch}; "
                                      "lower the learning rate or enable grad_clip")
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.unscale_(optimizer)
                else:
                    loss.backward()
                if config.grad_clip is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                loss_sum += float(loss.detach())
                batches += 1
            metric = evaluate(model, val_loader, metric_fn, device)
            record = EpochRecord(epoch, loss_sum / max(batches, 1), metric,
                                 float(optimizer.param_groups[0]["lr"]), time.perf_counter() - t0)
            result.history.append(record)
            if on_epoch is not None:
                on_epoch(record)
            if _improved(metric, result.best_metric, config):
                result.best_metric, result.best_epoch, stale = metric, epoch, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                stale += 1
                if config.patience is not None and stale >= config.patience:
                    result.stopped_early = True
                    break
    finally:
        model.train(was_training)
        if matcher is not None:
            matcher.detach()
    if config.restore_best:
        model.load_state_dict(best_state)
    result.seconds = time.perf_counter() - start
    return result
