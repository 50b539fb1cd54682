"""A pruning plan: plain data (tensor names, dims, indices, attributes) saved as JSON.

A plan says which positions of which tensors go and which module attributes change. It
can be reviewed, saved, and replayed on a fresh instance of the same architecture with
:func:`prunekit.apply_plan` — no tracing needed to replay it. A plan may also record
low-rank factorizations applied after the pruning (``decompositions``, see
:mod:`prunekit.decompose.records`); such plans are written as version 2, so an older reader
refuses them instead of silently skipping the factorizations. A plan may also start by
removing whole blocks (``blocks``, see :mod:`prunekit.depth`): replayed before the slicing,
written as version 3 for the same reason.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import PlanError
from ..files import read_json, write_json

FORMAT = "prunekit.plan"
VERSION = 1
#: the version of plans that record decompositions
DECOMPOSED_VERSION = 2
#: the version of plans that remove whole blocks first; readers accept all three
BLOCKS_VERSION = 3
#: how a removed block goes: deleted from a Hugging Face layer list, or made an identity
BLOCK_REMOVALS = ("delete", "identity")


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
    #: blocks removed before the slicing: ``{"name": module name, "removal": "delete" or
    #: "identity"}``; ``tensors`` and ``original_shapes`` then refer to the model without them
    blocks: list[dict[str, str]] = field(default_factory=list)

    @property
    def removed_units(self) -> int:
        return sum(len(g.removed) for g in self.groups)

    def to_dict(self) -> dict[str, Any]:
        version = BLOCKS_VERSION if self.blocks else \
            DECOMPOSED_VERSION if self.decompositions else VERSION
        data = {
            "format": FORMAT,
            "version": version,
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
        if self.blocks:
            data["blocks"] = [dict(b) for b in self.blocks]
        return data

    @classmethod
    def from_dict(cls, data: Any, source: str = "plan") -> Plan:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise PlanError(f"{source} is not a prunekit plan (missing format: {FORMAT!r})")
        if data.get("version") not in (VERSION, DECOMPOSED_VERSION, BLOCKS_VERSION):
            raise PlanError(f"{source} has plan version {data.get('version')!r}; this prunekit "
                            f"reads versions {VERSION} to {BLOCKS_VERSION}")
        decompositions = data.get("decompositions", [])
        if not isinstance(decompositions, list) or not all(
                isinstance(d, dict) for d in decompositions):
            raise PlanError(f"{source} is malformed: decompositions must be a list of objects")
        blocks = data.get("blocks", [])
        if not isinstance(blocks, list) or not all(
                isinstance(b, dict) and isinstance(b.get("name"), str)
                and b.get("removal") in BLOCK_REMOVALS for b in blocks):
            raise PlanError(f"{source} is malformed: blocks must be a list of objects with a "
                            f"module name and a removal in {BLOCK_REMOVALS}")
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
                blocks=[{"name": b["name"], "removal": b["removal"]} for b in blocks],
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise PlanError(f"{source} is malformed: {type(exc).__name__}: {exc}") from None

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the plan as JSON atomically (temporary file, then rename)."""
        return write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Plan:
        data = read_json(path, "plan file")
        return cls.from_dict(data, source=f"plan file {str(Path(path))!r}")


def architecture_fingerprint(model: Any) -> str:
    """SHA-256 of every parameter and buffer name with its shape: what a plan fits."""
    entries = [f"{n}:{tuple(t.shape)}" for n, t in model.named_parameters()]
    entries += [f"{n}:{tuple(t.shape)}" for n, t in model.named_buffers()]
    return hashlib.sha256("\n".join(entries).encode()).hexdigest()
