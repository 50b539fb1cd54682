"""How much each block matters (higher = keep), by named criteria in an open registry.

- ``"cosine"``: ``1 - mean cos(input, output)`` of each block on calibration data, all
  blocks in one pass with forward hooks. A block that barely turns its input is cheap to lose.
- ``"angular"``: mean angle between input and output over pi (same pass, same order near 0).
- ``"metric"``: the drop of a user metric when the block alone is skipped
  (``metric(model) -> float``, e.g. accuracy on a validation set); one evaluation per block.

Similarity is taken per token (along the last dimension) for ``(batch, tokens, features)``
tensors and per sample (all features flattened) otherwise. Padding tokens are not masked out.
Add a criterion with :func:`register_depth_criterion`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._pytree import tree_flatten, tree_unflatten

from ..errors import ConfigError
from ..graph.trace import as_args
from .._internal.registry import Registry
from .blocks import RemovableBlock
from .probe import first_tensor, input_tensor

__all__ = ["DepthCriterion", "MetricFn", "available_depth_criteria", "get_depth_criterion",
           "register_depth_criterion", "score_blocks", "similarity", "skipped"]

#: ``metric(model) -> float``: evaluates the whole model (higher is better unless told)
MetricFn = Callable[[nn.Module], float]


class DepthCriterion:
    """Scores blocks; subclasses implement :meth:`score` (higher = more important)."""

    name: ClassVar[str] = ""

    def __init__(self, *, metric: MetricFn | None = None, higher_is_better: bool = True) -> None:
        self.metric = metric
        self.higher_is_better = higher_is_better

    def score(self, model: nn.Module, blocks: Sequence[RemovableBlock],
              batches: Iterable[Any]) -> dict[str, float]:
        raise NotImplementedError


DEPTH_CRITERIA: Registry[type[DepthCriterion]] = Registry(
    "depth criterion", "prunekit.depth.register_depth_criterion")
register_depth_criterion = DEPTH_CRITERIA.register


def available_depth_criteria() -> list[str]:
    """Names of the registered depth criteria."""
    return DEPTH_CRITERIA.names()


def get_depth_criterion(name: str, **options: Any) -> DepthCriterion:
    """An instance of the criterion registered as ``name`` (``metric=``, ``higher_is_better=``)."""
    return DEPTH_CRITERIA.get(name)(**options)


def to_device(obj: Any, device: torch.device) -> Any:
    """``obj`` with every tensor (in dicts, tuples, lists) moved to ``device``."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, Mapping):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (tuple, list)):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


def run_batches(model: nn.Module, batches: Iterable[Any]) -> int:
    """Run ``model`` on every batch (eval mode, no gradients); return how many ran."""
    param = next(iter(model.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    count = 0
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in batches:
                args, kwargs = as_args(to_device(batch, device))
                model(*args, **kwargs)
                count += 1
    finally:
        model.train(was_training)
    if count == 0:
        raise ConfigError("the calibration data yielded no batches")
    return count


def similarity(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine and angle (radians) between ``x`` and ``y`` per token (3-D tensors) or per
    sample (others). The angle is ``2 atan2(|u - v|, |u + v|)`` of the unit vectors, which
    stays accurate near zero where ``arccos`` does not."""
    if x.dim() == 3:
        a, b = x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1])
    else:
        a, b = x.reshape(x.shape[0], -1), y.reshape(y.shape[0], -1)
    u = F.normalize(a.float(), dim=-1, eps=1e-12)
    v = F.normalize(b.float(), dim=-1, eps=1e-12)
    angle = 2.0 * torch.atan2((u - v).norm(dim=-1), (u + v).norm(dim=-1))
    return (u * v).sum(dim=-1).clamp(-1.0, 1.0), angle


def similarity_sums(model: nn.Module, blocks: Sequence[RemovableBlock],
                    batches: Iterable[Any]) -> dict[str, tuple[float, float, int]]:
    """Per block: sum of cosines, sum of angles (radians), count; in one pass of the data."""
    sums = {b.name: [0.0, 0.0, 0] for b in blocks}
    pending: dict[str, torch.Tensor] = {}
    handles = []

    def pre(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            x = input_tensor(args, kwargs)
            if x is not None:
                pending[name] = x
        return hook

    def post(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any, kwargs: Any, output: Any) -> None:
            x, y = pending.pop(name, None), first_tensor(output)
            if x is None or y is None or x.shape != y.shape:
                return
            cos, angle = similarity(x, y)
            entry = sums[name]
            entry[0] += float(cos.double().sum())
            entry[1] += float(angle.double().sum())
            entry[2] += cos.numel()
        return hook

    try:
        for block in blocks:
            module = model.get_submodule(block.name)
            handles.append(module.register_forward_pre_hook(pre(block.name), with_kwargs=True))
            handles.append(module.register_forward_hook(post(block.name), with_kwargs=True))
        run_batches(model, batches)
    finally:
        for handle in handles:
            handle.remove()
    missing = [name for name, (_, _, n) in sums.items() if n == 0]
    if missing:
        raise ConfigError(f"blocks {missing} never ran on the calibration data")
    return {name: (c, a, int(n)) for name, (c, a, n) in sums.items()}


@register_depth_criterion("cosine")
class CosineCriterion(DepthCriterion):
    """``1 - mean cosine`` between each block's input and output."""

    def score(self, model: nn.Module, blocks: Sequence[RemovableBlock],
              batches: Iterable[Any]) -> dict[str, float]:
        sums = similarity_sums(model, blocks, batches)
        return {name: 1.0 - c / n for name, (c, _, n) in sums.items()}


@register_depth_criterion("angular")
class AngularCriterion(DepthCriterion):
    """Mean angle between each block's input and output, over pi (in [0, 1])."""

    def score(self, model: nn.Module, blocks: Sequence[RemovableBlock],
              batches: Iterable[Any]) -> dict[str, float]:
        sums = similarity_sums(model, blocks, batches)
        return {name: a / n / math.pi for name, (_, a, n) in sums.items()}


@contextmanager
def skipped(model: nn.Module, name: str) -> Iterator[None]:
    """Within the context the block ``name`` passes its input through (it still runs)."""
    module = model.get_submodule(name)
    held: list[torch.Tensor] = []

    def pre(mod: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        held[:] = [t for t in (input_tensor(args, kwargs),) if t is not None]

    def post(mod: nn.Module, args: Any, kwargs: Any, output: Any) -> Any:
        if not held:
            return output
        leaves, spec = tree_flatten(output)
        first = next(i for i, t in enumerate(leaves) if isinstance(t, torch.Tensor))
        leaves[first] = held.pop()
        return tree_unflatten(leaves, spec)

    handles = [module.register_forward_pre_hook(pre, with_kwargs=True),
               module.register_forward_hook(post, with_kwargs=True)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@register_depth_criterion("metric")
class MetricCriterion(DepthCriterion):
    """Metric lost when the block alone is skipped (``metric(model)``; calibration unused)."""

    def __init__(self, *, metric: MetricFn | None = None, higher_is_better: bool = True) -> None:
        if metric is None or not callable(metric):
            raise ConfigError("criterion 'metric' needs metric=<callable(model) -> float>, "
                              "e.g. accuracy on a validation set")
        super().__init__(metric=metric, higher_is_better=higher_is_better)

    def score(self, model: nn.Module, blocks: Sequence[RemovableBlock],
              batches: Iterable[Any]) -> dict[str, float]:
        assert self.metric is not None
        sign = 1.0 if self.higher_is_better else -1.0
        baseline = float(self.metric(model))
        scores = {}
        for block in blocks:
            with skipped(model, block.name):
                scores[block.name] = sign * (baseline - float(self.metric(model)))
        return scores


def score_blocks(model: nn.Module, blocks: Sequence[RemovableBlock], batches: Iterable[Any], *,
                 criterion: str = "cosine", metric: MetricFn | None = None,
                 higher_is_better: bool = True) -> dict[str, float]:
    """Importance of each block (higher = keep) by the named ``criterion``."""
    options: dict[str, Any] = {"higher_is_better": higher_is_better}
    if metric is not None:
        options["metric"] = metric
    return get_depth_criterion(criterion, **options).score(model, blocks, batches)
