"""``prunekit.prune``: discover → score → plan → verify → apply, in one call."""

from __future__ import annotations

import fnmatch
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np
import torch
import torch.nn as nn
from torch.func import functional_call
from torch.utils._pytree import tree_flatten

from .config import PruneConfig
from .errors import ConfigError, TraceError, UnsupportedOpError, VerificationError
from .graph.dependency import DependencyGraph, Group
from .graph.trace import as_args, to_meta
from .importance.base import Importance
from .plan import Plan
from .planner import (Selection, build_plan, predicted_macs, predicted_params, removed_flags,
                      search_ratio, select_global, select_local)
from .runtime import cyclic_gc_paused, eval_mode
from .scoring import LossFn, make_importance, score_groups
from .surgery import apply_plan
from .verify import find_mismatch, slice_inputs

MAX_VERIFY_ROUNDS = 64


@dataclass
class PruneResult:
    """The pruned model (the same object, pruned in place), its plan, and what was skipped.

    ``skipped`` names the groups left whole because pruning them broke the model's forward;
    ``skip_reasons`` says, per skipped group, where it broke.
    """

    model: nn.Module
    plan: Plan
    graph: DependencyGraph
    skipped: list[str] = field(default_factory=list)
    skip_reasons: dict[str, str] = field(default_factory=dict)

    @property
    def example_inputs_kept(self) -> dict[str, dict[str, Any]]:
        """For feature selection: which input features remain, per model input."""
        return self.plan.input_features


@cyclic_gc_paused()
def prune(model: nn.Module, example_inputs: Any, ratio: float = 0.5, *,
          config: PruneConfig | None = None, importance: str | Importance = "l2",
          calibration: Iterable[Any] | None = None, loss_fn: LossFn | None = None,
          **options: Any) -> PruneResult:
    """Structurally prune ``model`` in place and return the result.

    Defaults: channel granularity, L2-magnitude importance, the same ratio in every group,
    and the model's outputs never change shape. Other settings are fields of
    :class:`PruneConfig` (pass ``config=`` or keyword ``options``). ``calibration`` (a few
    batches) and ``loss_fn(model, batch)`` feed gradient and activation criteria.
    """
    if config is None:
        config = PruneConfig(ratio=ratio, importance=importance, **options)
    elif options:
        raise ConfigError(f"pass settings either in config= or as keywords, not both: {sorted(options)}")
    if example_inputs is None:
        raise ConfigError("example_inputs is required: a tensor (or tuple/dict of tensors) "
                          "shaped like one real batch, e.g. torch.randn(1, 3, 224, 224)")
    normalize = config.normalize or ("mean" if config.scope == "global" else "none")
    criterion = make_importance(config.importance, reduce=config.reduce, normalize=normalize)
    graph = DependencyGraph.build(model, example_inputs, ignore=config.ignore,
                                  input_features=config.input_features,
                                  on_meta=not criterion.needs_activations,
                                  split_units=config.split_units)
    if graph.on_meta and not _inputs_match_model(model, example_inputs):
        _output_shapes(model, example_inputs)  # shapes alone hide dtype/device mismatches
    for pattern in config.overrides:
        graph.matching_groups(pattern)
    groups = [g for g in graph.groups if g.exact or not config.exact_only]
    scores = score_groups(model, graph, criterion, groups, calibration, loss_fn)

    comp_group = np.full(graph.components.blocked.shape[0], -1, dtype=np.int64)
    for g in groups:
        comp_group[g.components] = g.id
    excluded: set[int] = set()
    reasons: dict[int, str] = {}
    on_meta = graph.on_meta
    for _ in range(MAX_VERIFY_ROUNDS):
        active = [g for g in groups if g.id not in excluded]
        selection = _select(model, graph, active, scores, config)
        plan = build_plan(model, graph, active, selection, config)
        if not config.verify:
            break
        removed = removed_flags(graph, selection)
        mismatch = find_mismatch(model, example_inputs, graph, plan, removed, on_meta=on_meta)
        if mismatch is None:
            break
        culprits = set(comp_group[mismatch.culprits].tolist()) - {-1}
        if not culprits:
            if on_meta:  # the model cannot run on the meta device: check on a real copy
                on_meta = False
                continue
            raise VerificationError(
                f"the pruned model disagrees with the plan at op {mismatch.op} in module "
                f"{mismatch.module!r}, and no pruned group reaches it; please report this "
                "model, and prune with ignore=[...] around that module meanwhile")
        reason = _mismatch_reason(model, mismatch.op, mismatch.module)
        reasons.update({c: reason for c in culprits - excluded})
        excluded |= culprits
    else:
        raise VerificationError("could not find a consistent plan; narrow the model with ignore=")
    skipped = [g.name for g in groups if g.id in excluded]
    skip_reasons = {g.name: reasons[g.id] for g in groups if g.id in excluded}
    plan.settings["skipped_groups"] = skipped
    _refuse_skipped_overrides(config, [g.name for g in groups], skip_reasons)
    if skip_reasons:
        name, reason = next(iter(skip_reasons.items()))
        warnings.warn(f"prunekit left {len(skip_reasons)} group(s) whole, e.g. {name!r}: "
                      f"{reason}. PruneResult.skip_reasons lists them all.", stacklevel=3)

    apply_plan(model, plan, check=False)  # the plan was just built from this model
    if not config.verify:  # otherwise a pruned copy already ran and matched every shape
        reference = [graph.trace.values[r.index].shape for r in graph.trace.output_refs()]
        try:
            shapes = _output_shapes(model, slice_inputs(example_inputs, plan), on_meta=on_meta)
        except TraceError as exc:
            raise VerificationError(f"the pruned model does not run: {exc}") from exc
        if shapes != reference:
            raise VerificationError(
                f"pruning changed the output shapes from {reference} to {shapes}")
    return PruneResult(model, plan, graph, skipped, skip_reasons)


def _mismatch_reason(model: nn.Module, op: str, module: str) -> str:
    """Where a pruned copy broke, with the class to write a handler for."""
    try:
        cls = type(model.get_submodule(module)) if module else type(model)
    except AttributeError:
        cls = None
    where = f"module {module or '<top level>'!r}" + \
        (f" ({cls.__module__}.{cls.__qualname__})" if cls is not None else "")
    return (f"pruning it breaks op {op} in {where}: that forward does not accept the new "
            "sizes (in attention, usually a reshape by a head count or head size attribute); "
            "it stays whole unless a handler for that class is registered "
            "(prunekit.register_handler)")


def _refuse_skipped_overrides(config: PruneConfig, names: list[str],
                              skip_reasons: dict[str, str]) -> None:
    """An override must not come to nothing silently: refuse one whose groups were all skipped."""
    for pattern, ratio in config.overrides.items():
        matched = [name for name in names if fnmatch.fnmatchcase(name, pattern)]
        if ratio > 0 and matched and all(name in skip_reasons for name in matched):
            raise UnsupportedOpError(f"cannot prune {matched[0]!r} (asked for by override "
                                     f"{pattern!r}): {skip_reasons[matched[0]]}")


def _select(model: nn.Module, graph: DependencyGraph, groups: list[Group],
            scores: dict[int, torch.Tensor], config: PruneConfig) -> Selection:
    select = select_global if config.scope == "global" else select_local
    target = config.flops_reduction or config.params_reduction
    if target is None:
        return select(groups, scores, config, config.ratio)
    unpruned = [v.shape for v in graph.trace.values]
    if config.flops_reduction is not None:
        def cost(sizes: list[tuple[int, ...]]) -> float:
            return float(predicted_macs(graph, sizes))
    else:
        def cost(sizes: list[tuple[int, ...]]) -> float:
            return float(predicted_params(model, graph, sizes))
    base = cost(unpruned)

    def reduction(ratio: float) -> float:
        sizes = graph.predicted_sizes(removed_flags(graph, select(groups, scores, config, ratio)))
        return base / max(cost(sizes), 1.0)

    ratio = search_ratio(reduction, float(target))
    reached = reduction(ratio)
    if reached < float(target) * 0.999:
        what = "flops_reduction" if config.flops_reduction is not None else "params_reduction"
        warnings.warn(
            f"{what}={target} is out of reach: the most prunekit can remove here gives "
            f"{reached:.2f}x (ratio {ratio:.2f}; inputs, outputs, ignored modules and ops "
            "without rules keep their size). The model was pruned that far.",
            UserWarning, stacklevel=3)
    return select(groups, scores, config, ratio)


def _output_shapes(model: nn.Module, example_inputs: Any, *,
                   on_meta: bool = False) -> list[tuple[int, ...]]:
    """Run the model once (eval, no grad) and return its output shapes.

    ``on_meta`` runs it with shape-only copies of its parameters, buffers and inputs (no
    compute, no activation memory), and on real tensors only if the model refuses meta.
    """
    args, kwargs = as_args(example_inputs)
    try:
        with eval_mode(model), torch.no_grad():
            out = None
            if on_meta:
                try:
                    meta_args, meta_kwargs = to_meta((args, kwargs))
                    out = functional_call(model, _meta_state(model), meta_args, meta_kwargs)
                except (NotImplementedError, RuntimeError, TypeError, ValueError):
                    out = None  # e.g. data-dependent control flow: check on real tensors
            if out is None:
                out = model(*args, **kwargs)
    except Exception as exc:
        raise TraceError(f"the model does not run on the example_inputs: {type(exc).__name__}: "
                         f"{exc}. Pass inputs shaped, typed and placed like one real batch.") from exc
    return [tuple(t.shape) for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]


def _meta_state(model: nn.Module) -> dict[str, torch.Tensor]:
    state = {n: torch.empty_like(p, device="meta") for n, p in model.named_parameters()}
    state.update({n: torch.empty_like(b, device="meta") for n, b in model.named_buffers()})
    return state


def _inputs_match_model(model: nn.Module, example_inputs: Any) -> bool:
    """Whether every input tensor sits on the model's device and floating inputs share its
    floating dtype (what a shape-only trace cannot see). ``True`` for mixed models."""
    tensors = list(model.parameters()) + list(model.buffers())
    devices = {t.device for t in tensors}
    dtypes = {t.dtype for t in tensors if t.is_floating_point()}
    for t in tree_flatten(as_args(example_inputs))[0]:
        if not isinstance(t, torch.Tensor):
            continue
        if len(devices) == 1 and t.device not in devices:
            return False
        if len(dtypes) == 1 and t.is_floating_point() and t.dtype not in dtypes:
            return False
    return True
