"""A pruning plan: plain data (tensor names, dims, indices, attributes) saved as JSON.

A plan says which positions of which tensors go and which module attributes change. It
can be reviewed, saved, and replayed on a fresh instance of the same architecture with
:func:`prunekit.apply_plan` — no tracing needed to replay it. A plan may also record
low-rank factorizations applied after the pruning (``decompositions``, see
:mod:`prunekit.decompose.records`); such plans are written as version 2, so an older reader
refuses them instead of silently skipping the factorizations.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import PlanError
from .files import atomic_write_text

FORMAT = "prunekit.plan"
VERSION = 1
#: the version of plans that record decompositions; readers accept both
DECOMPOSED_VERSION = 2


@dataclass
class GroupDecision:
    """What happened to one group (for review; surgery reads ``Plan.tensors``)."""

    name: str
    units: int
    removed: list[int]
    exact: bool
    modules: list[str]


@dataclass
class Plan:
    """Which slices of which tensors are removed, and the module attributes that change."""

    architecture: str = ""  # fingerprint of every tensor name and shape of the unpruned model
    tensors: dict[str, dict[int, list[int]]] = field(default_factory=dict)
    original_shapes: dict[str, list[int]] = field(default_factory=dict)
    attributes: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: list[GroupDecision] = field(default_factory=list)
    input_features: dict[str, dict[str, Any]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    decompositions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def removed_units(self) -> int:
        return sum(len(g.removed) for g in self.groups)

    def to_dict(self) -> dict[str, Any]:
        data = {
            "format": FORMAT,
            "version": DECOMPOSED_VERSION if self.decompositions else VERSION,
            "architecture": self.architecture,
            "settings": self.settings,
            "groups": [g.__dict__ for g in self.groups],
            "input_features": self.input_features,
            "original_shapes": self.original_shapes,
            "tensors": {name: {str(d): idx for d, idx in dims.items()}
                        for name, dims in self.tensors.items()},
            "attributes": self.attributes,
        }
        if self.decompositions:
            data["decompositions"] = [dict(d) for d in self.decompositions]
        return data

    @classmethod
    def from_dict(cls, data: Any, source: str = "plan") -> Plan:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise PlanError(f"{source} is not a prunekit plan (missing format: {FORMAT!r})")
        if data.get("version") not in (VERSION, DECOMPOSED_VERSION):
            raise PlanError(f"{source} has plan version {data.get('version')!r}; this prunekit "
                            f"reads versions {VERSION} and {DECOMPOSED_VERSION}")
        decompositions = data.get("decompositions", [])
        if not isinstance(decompositions, list) or not all(
                isinstance(d, dict) for d in decompositions):
            raise PlanError(f"{source} is malformed: decompositions must be a list of objects")
        try:
            return cls(
                architecture=str(data.get("architecture", "")),
                tensors={name: {int(d): [int(i) for i in idx] for d, idx in dims.items()}
                         for name, dims in data["tensors"].items()},
                original_shapes={k: [int(s) for s in v] for k, v in data["original_shapes"].items()},
                attributes=dict(data.get("attributes", {})),
                groups=[GroupDecision(**g) for g in data.get("groups", [])],
                input_features=dict(data.get("input_features", {})),
                settings=dict(data.get("settings", {})),
                decompositions=[dict(d) for d in decompositions],
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise PlanError(f"{source} is malformed: {type(exc).__name__}: {exc}") from None

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the plan as JSON atomically (temporary file, then rename)."""
        target = Path(path)
        atomic_write_text(target, json.dumps(self.to_dict(), indent=1))
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Plan:
        target = Path(path)
        try:
            data = json.loads(target.read_text())
        except FileNotFoundError:
            raise PlanError(f"plan file {str(target)!r} does not exist") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise PlanError(f"plan file {str(target)!r} is not valid JSON: {exc}") from None
        return cls.from_dict(data, source=f"plan file {str(target)!r}")


def architecture_fingerprint(model: Any) -> str:
    """SHA-256 of every parameter and buffer name with its shape: what a plan fits."""
    entries = [f"{n}:{tuple(t.shape)}" for n, t in model.named_parameters()]
    entries += [f"{n}:{tuple(t.shape)}" for n, t in model.named_buffers()]
    return hashlib.sha256("\n".join(entries).encode()).hexdigest()


def compose_plans(plans: list[Plan]) -> Plan:
    """One plan that does what ``plans`` do one after the other (each made for the model the
    previous one left), against the first one's architecture: removed indices are mapped
    back to original positions, attributes take their last values. Replaying it on a fresh
    model gives the shapes (and, on the same weights, the values) the chain gives."""
    if not plans:
        raise PlanError("compose_plans needs at least one plan")
    shapes: dict[str, list[int]] = {}
    kept: dict[str, dict[int, list[int]]] = {}
    units: dict[str, GroupDecision] = {}
    unit_kept: dict[str, list[int]] = {}
    attributes: dict[str, dict[str, Any]] = {}
    for k, plan in enumerate(plans):
        if plan.decompositions or plan.input_features:
            raise PlanError(f"plan {k} factorizes layers or prunes input features; only "
                            "channel plans can be composed")
        for name, shape in plan.original_shapes.items():
            shapes.setdefault(name, list(shape))  # first seen: never changed before
        for name, dims in plan.tensors.items():
            for dim, removed in dims.items():
                if not removed:
                    continue
                current = kept.setdefault(name, {}).get(dim)
                if current is None:
                    current = list(range(shapes[name][dim]))
                gone = set(removed)
                if len(current) <= max(gone):
                    raise PlanError(f"plan {k} removes position {max(gone)} of dim {dim} of "
                                    f"{name!r}, which has {len(current)} left: the plans "
                                    "are not a chain")
                kept[name][dim] = [p for i, p in enumerate(current) if i not in gone]
        for group in plan.groups:
            first = units.setdefault(group.name, GroupDecision(
                group.name, group.units, [], group.exact, list(group.modules)))
            current = unit_kept.setdefault(group.name, list(range(first.units)))
            gone = set(group.removed)
            first.removed = sorted(first.removed + [current[i] for i in gone])
            first.exact = first.exact and group.exact
            unit_kept[group.name] = [p for i, p in enumerate(current) if i not in gone]
        for module, attrs in plan.attributes.items():
            attributes.setdefault(module, {}).update(attrs)
    tensors = {name: {dim: sorted(set(range(shapes[name][dim])) - set(keep))
                      for dim, keep in dims.items()} for name, dims in kept.items()}
    return Plan(architecture=plans[0].architecture, tensors=tensors,
                original_shapes={n: shapes[n] for n in tensors}, attributes=attributes,
                groups=list(units.values()),
                settings={**plans[-1].settings, "composed_from": len(plans)})
