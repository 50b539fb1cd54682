"""Compose a chain of plans, each made on the model the previous one left.

The result is one plan for the *original* architecture, so a model pruned in several steps
(iterative pruning, shrinking while training) is replayed on a fresh instance with a single
:func:`prunekit.apply_plan` and saved with :func:`prunekit.save_pruned`. Removed positions
are mapped back to original ones, for tensors and for each group's units; attributes take
their last values.
"""

from __future__ import annotations

from typing import Any

from ..errors import PlanError
from .document import GroupDecision, Plan

__all__ = ["compose_plans"]


def _kept(size: int, removed: list[int]) -> list[int]:
    gone = set(removed)
    return [i for i in range(size) if i not in gone]


def compose_plans(first: Plan, *rest: Plan) -> Plan:
    """One plan equivalent to applying ``first``, then each plan of ``rest`` in turn."""
    plan = first
    for following in rest:
        plan = _compose(plan, following)
    return plan


def _groups(first: Plan, second: Plan) -> list[GroupDecision]:
    """Group decisions by name, the second's removed units mapped to original positions."""
    groups = {g.name: GroupDecision(g.name, g.units, sorted(g.removed), g.exact,
                                    list(g.modules)) for g in first.groups}
    for g in second.groups:
        base = groups.get(g.name)
        if base is None:
            groups[g.name] = GroupDecision(g.name, g.units, sorted(g.removed), g.exact,
                                           list(g.modules))
            continue
        kept = _kept(base.units, base.removed)
        try:
            base.removed = sorted(base.removed + [kept[i] for i in g.removed])
        except IndexError:
            raise PlanError(f"cannot compose plans: the second plan removes units of group "
                            f"{g.name!r} beyond its {len(kept)} kept ones; was it made on the "
                            "model the first plan produced?") from None
        base.exact = base.exact and g.exact
    return list(groups.values())


def _compose(first: Plan, second: Plan) -> Plan:
    if first.decompositions or second.decompositions:
        raise PlanError("cannot compose plans that record decompositions: compose the pruning "
                        "plans first, then decompose (prunekit.decompose(..., plan=composed))")
    shapes = {k: list(v) for k, v in second.original_shapes.items()}
    for name, shape in first.original_shapes.items():
        shapes[name] = list(shape)
    tensors: dict[str, dict[int, list[int]]] = {}
    for name in sorted(set(first.tensors) | set(second.tensors)):
        dims1 = first.tensors.get(name, {})
        dims2 = second.tensors.get(name, {})
        out: dict[int, list[int]] = {}
        for dim in sorted(set(dims1) | set(dims2)):
            removed1 = dims1.get(dim, [])
            if name not in shapes or dim >= len(shapes[name]):
                raise PlanError(f"cannot compose plans: no original shape for {name!r} dim {dim}")
            kept1 = _kept(shapes[name][dim], removed1)
            try:
                removed2 = [kept1[i] for i in dims2.get(dim, [])]
            except IndexError:
                raise PlanError(f"cannot compose plans: the second plan removes index beyond "
                                f"{len(kept1)} kept positions of {name!r} dim {dim}; was it "
                                "made on the model the first plan produced?") from None
            out[dim] = sorted(set(removed1) | set(removed2))
        tensors[name] = out
    attributes: dict[str, dict[str, Any]] = {k: dict(v) for k, v in first.attributes.items()}
    for name, attrs in second.attributes.items():
        attributes.setdefault(name, {}).update(attrs)
    inputs = {k: dict(v) for k, v in first.input_features.items()}
    for name, spec in second.input_features.items():
        if name in inputs:
            kept1 = inputs[name]["kept"]
            inputs[name] = {"dim": spec["dim"], "kept": [kept1[i] for i in spec["kept"]]}
        else:
            inputs[name] = dict(spec)
    steps = list(first.settings.get("steps", [first.settings]))
    steps.append(second.settings)
    skipped = sorted({g for s in steps for g in s.get("skipped_groups", [])})
    return Plan(architecture=first.architecture, tensors=tensors,
                original_shapes={n: shapes[n] for n in tensors}, attributes=attributes,
                groups=_groups(first, second), input_features=inputs,
                settings={"steps": steps, "skipped_groups": skipped})
