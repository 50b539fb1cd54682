"""The staged structural engine: discover → score → select → plan → verify → apply.

Each stage is one public function; together they are the only way into the engine, for
:func:`prunekit.prune` as for every other part of prunekit:

1. discover: :meth:`DependencyGraph.build` — the groups of coupled units;
2. score: :func:`~prunekit.importance.scoring.score_groups` — ``{group name: one score per unit}``;
3. select: :func:`~prunekit.plan.selection.select_units` (from scores and a
   :class:`~prunekit.PruneConfig`) or :func:`~prunekit.plan.selection.selection_from_units` (units a
   caller chose) — ``{group name: removed unit indices}``;
4. plan: :func:`~prunekit.plan.selection.build_plan` — a :class:`~prunekit.Plan` (plain data);
5. verify: :func:`~prunekit.plan.verify.verify_plan` — prune a shape-only copy, re-trace it;
6. apply: :func:`~prunekit.apply_plan` — slice the real tensors.

:func:`plan_verified` runs select → plan → verify until the plan verifies, leaving whole
the groups whose pruning breaks a module's forward. :func:`remove_units` removes exactly the
units a caller chose, verified first (it never skips a group); pass the ``graph`` it was
chosen on to reuse it: a graph stays valid while the model's tensor names and shapes do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch.func import functional_call
from torch.utils._pytree import tree_flatten

from .errors import ConfigError, TraceError, VerificationError
from .graph.dependency import DependencyGraph, Group
from .graph.trace import as_args, to_meta
from .plan.document import Plan
from .plan.selection import Selection, build_plan, selection_from_units
from ._internal.runtime import cyclic_gc_paused, eval_mode
from .surgery.apply import apply_plan
from .plan.verify import Mismatch, slice_inputs, verify_plan

__all__ = ["MAX_VERIFY_ROUNDS", "PruneResult", "VerifiedPlan", "check_example_inputs",
           "plan_verified", "remove_units"]

#: most select → plan → verify rounds before :func:`plan_verified` gives up
MAX_VERIFY_ROUNDS = 64

#: ``choose(groups) -> selection``: the select stage of :func:`plan_verified`
Choose = Callable[[list[Group]], Selection]


@dataclass
class PruneResult:
    """The pruned model (the same object, pruned in place), its plan, and what was skipped.

    ``graph`` is the dependency graph of the model *before* pruning. ``skipped`` names the
    groups left whole because pruning them broke the model's forward; ``skip_reasons``
    says, per skipped group, where it broke.
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


@dataclass
class VerifiedPlan:
    """A plan whose pruned shape-only copy ran with the predicted shapes.

    ``skipped`` maps each group left whole to the reason (where its pruning broke).
    """

    plan: Plan
    selection: Selection
    skipped: dict[str, str] = field(default_factory=dict)


def plan_verified(model: nn.Module, example_inputs: Any, graph: DependencyGraph,
                  groups: list[Group], choose: Choose,
                  settings: Mapping[str, Any] | None = None, *,
                  verify: bool = True) -> VerifiedPlan:
    """Select, plan and verify until the plan verifies (at most :data:`MAX_VERIFY_ROUNDS`).

    ``choose(active groups)`` is the select stage. The groups whose units reach the first
    op that disagrees with the prediction are left whole and ``choose`` runs again on the
    rest. A model that refuses the shape-only copy is checked on a real copy.
    ``verify=False`` returns the first plan unchecked.
    """
    component_group = np.full(graph.components.blocked.shape[0], -1, dtype=np.int64)
    for i, g in enumerate(groups):
        component_group[g.components] = i
    skipped: dict[str, str] = {}
    on_meta = graph.on_meta
    for _ in range(MAX_VERIFY_ROUNDS):
        active = [g for g in groups if g.name not in skipped]
        selection = choose(active)
        plan = build_plan(model, graph, selection, settings)
        if not verify or not any(len(units) for units in selection.values()):
            return VerifiedPlan(plan, selection, skipped)
        mismatch = verify_plan(model, example_inputs, graph, plan, selection, on_meta=on_meta)
        if mismatch is None:
            return VerifiedPlan(plan, selection, skipped)
        culprits = {groups[i].name for i in set(component_group[mismatch.culprits].tolist())
                    if i >= 0} - set(skipped)
        if not culprits:
            if on_meta:  # the model cannot run on the meta device: check on a real copy
                on_meta = False
                continue
            raise VerificationError(
                f"the pruned model disagrees with the plan at op {mismatch.op} in module "
                f"{mismatch.module!r}, and no pruned group reaches it; please report this "
                "model, and prune with ignore=[...] around that module meanwhile")
        reason = mismatch_reason(model, mismatch)
        skipped.update(dict.fromkeys(sorted(culprits), reason))
    raise VerificationError("could not find a consistent plan; narrow the model with ignore=")


def mismatch_reason(model: nn.Module, mismatch: Mismatch) -> str:
    """Where a pruned copy broke, with the class to write a handler for."""
    module = mismatch.module
    try:
        cls = type(model.get_submodule(module)) if module else type(model)
    except AttributeError:
        cls = None
    where = f"module {module or '<top level>'!r}" + \
        (f" ({cls.__module__}.{cls.__qualname__})" if cls is not None else "")
    return (f"pruning it breaks op {mismatch.op} in {where}: that forward does not accept the "
            "new sizes (in attention, usually a reshape by a head count or head size "
            "attribute); it stays whole unless a handler for that class is registered "
            "(prunekit.register_handler)")


@cyclic_gc_paused()
def remove_units(model: nn.Module, example_inputs: Any, units: Mapping[str, Iterable[int]], *,
                 graph: DependencyGraph | None = None, ignore: Iterable[str] = (),
                 split_units: str = "inner", verify: bool = True,
                 settings: Mapping[str, Any] | None = None) -> PruneResult:
    """Remove exactly ``units`` (``{group name: unit indices}``) from ``model``, in place.

    The plan is verified on a shape-only copy first: if removing these units breaks the
    model's forward, :class:`~prunekit.VerificationError` says where and the model is left
    unchanged (no group is silently skipped). ``graph`` is the dependency graph the units
    were chosen on; it is reused (no new trace) while the model keeps the tensor names and
    shapes it was built on, which makes repeated calls cheap (score, choose, remove, then
    build the graph of the smaller model for the next round). Without ``graph`` one is
    built with ``ignore`` and ``split_units``. The plan (``result.plan.tensors``: removed
    indices per tensor and dimension) says which slices went, e.g. to slice optimizer state;
    ``settings`` (plain data) are recorded in it.
    """
    if graph is None:
        graph = DependencyGraph.build(model, example_inputs, ignore=tuple(ignore),
                                      split_units=split_units)
    elif not graph.fits(model):
        raise ConfigError("the dependency graph was built on another architecture (or before "
                          "the model was pruned): build the graph of this model with "
                          "prunekit.DependencyGraph.build(model, example_inputs)")
    check_example_inputs(model, example_inputs, graph)
    selection = {name: index for name, index in selection_from_units(graph, units).items()
                 if index.size}
    if settings is None:
        settings = {"selection": "chosen units", "split_units": graph.split_units}
    plan = build_plan(model, graph, selection, settings)
    if verify and selection:
        mismatch = verify_plan(model, example_inputs, graph, plan, selection)
        if mismatch is not None:
            raise VerificationError(
                f"cannot remove the chosen units of {sorted(selection)[:3]}: "
                f"{mismatch_reason(model, mismatch)}; the model was left unchanged")
    apply_plan(model, plan, check=False)  # the plan was just built from this model
    return PruneResult(model, plan, graph)


def check_example_inputs(model: nn.Module, example_inputs: Any, graph: DependencyGraph) -> None:
    """Raise :class:`~prunekit.TraceError` when the model does not run on ``example_inputs``
    in ways a shape-only trace cannot see (dtype or device mismatch)."""
    if graph.on_meta and not _inputs_match_model(model, example_inputs):
        output_shapes(model, example_inputs)


def check_pruned_outputs(model: nn.Module, example_inputs: Any, graph: DependencyGraph,
                         plan: Plan) -> None:
    """Raise :class:`~prunekit.VerificationError` unless the pruned ``model`` runs on the
    kept input features with the output shapes it had before (on a shape-only copy)."""
    reference = [graph.trace.values[r.index].shape for r in graph.trace.output_refs()]
    try:
        shapes = output_shapes(model, slice_inputs(example_inputs, plan), on_meta=graph.on_meta)
    except TraceError as exc:
        raise VerificationError(f"the pruned model does not run: {exc}") from exc
    if shapes != reference:
        raise VerificationError(f"pruning changed the output shapes from {reference} to {shapes}")


def output_shapes(model: nn.Module, example_inputs: Any, *,
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
