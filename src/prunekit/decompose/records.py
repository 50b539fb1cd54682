"""Factorizations as plain data in the plan, and their replay on a fresh model.

A record names the module, the kind, the rank and the dense layer it replaced
(:func:`.kinds.describe`): enough to rebuild the factorized layer's shape on a fresh
instance of the architecture (after the plan's pruning, which comes first). Records sit in
:attr:`prunekit.Plan.decompositions`, in the order they were applied, and
:func:`prunekit.apply_plan` replays them:

- ``weights="compute"``: factors are computed from the fresh model's weights (the same
  factorization; exact for data-free kinds). Activation-aware records need calibration data:
  replay them with :func:`prunekit.decompose.api.replay` and calibration batches.
- ``weights="empty"``: layers of the right shape with uninitialised weights, for loading
  saved weights (:func:`prunekit.load_pruned`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from ..errors import ConfigError, PlanError
from .kinds import FACTORIZATIONS, describe, factorization

__all__ = ["FactorizationRecord", "parse_records", "replace_module", "replay_factorizations"]

Weights = Literal["compute", "empty"]


@dataclass(frozen=True)
class FactorizationRecord:
    """One factorized layer: where, which kind, which rank, and the dense layer it replaced."""

    module: str
    kind: str
    rank: tuple[int, ...]
    layer: dict[str, Any] = field(default_factory=dict)
    activation_aware: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"module": self.module, "kind": self.kind, "rank": list(self.rank),
                "layer": dict(self.layer), "activation_aware": self.activation_aware}

    @classmethod
    def from_dict(cls, data: Any, where: str = "plan") -> FactorizationRecord:
        try:
            record = cls(str(data["module"]), str(data["kind"]),
                         tuple(int(r) for r in data["rank"]), dict(data["layer"]),
                         bool(data.get("activation_aware", False)))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise PlanError(f"{where}: a decomposition record is malformed "
                            f"({type(exc).__name__}: {exc}); it needs module, kind, rank and "
                            "layer") from None
        if record.kind not in FACTORIZATIONS.names():
            raise PlanError(f"{where}: decomposition of {record.module!r} has kind "
                            f"{record.kind!r}; this prunekit knows {FACTORIZATIONS.names()}")
        return record


def parse_records(data: Sequence[Any], where: str = "plan") -> list[FactorizationRecord]:
    """Records from the plan's plain data (clear :class:`PlanError` when malformed)."""
    if not isinstance(data, (list, tuple)):
        raise PlanError(f"{where}: decompositions must be a list of records")
    return [d if isinstance(d, FactorizationRecord) else FactorizationRecord.from_dict(d, where)
            for d in data]


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    """Put ``new`` where the submodule ``name`` was (keeping its training flag)."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    new.train(getattr(parent, child).training)
    setattr(parent, child, new)


def _target(model: nn.Module, record: FactorizationRecord) -> nn.Module:
    try:
        module = model.get_submodule(record.module)
    except AttributeError:
        raise PlanError(f"the plan factorizes module {record.module!r}, which this model does "
                        "not have: the plan was made for another architecture") from None
    try:
        found = describe(module)
    except ConfigError:
        found = {"type": type(module).__name__}
    if found != record.layer:
        raise PlanError(f"module {record.module!r} is {found} here but the plan factorized "
                        f"{record.layer}: replay plans on a fresh instance of the architecture "
                        "they were made for")
    return module


@torch.no_grad()
def replay_factorizations(model: nn.Module, records: Sequence[FactorizationRecord], *,
                          weights: Weights = "compute") -> nn.Module:
    """Replace each recorded layer of ``model`` (in place) by its factorized layer."""
    if weights not in ("compute", "empty"):
        raise ConfigError(f"weights must be 'compute' or 'empty', got {weights!r}")
    if weights == "compute":
        aware = [r.module for r in records if r.activation_aware]
        if aware:
            raise PlanError(
                f"the plan factorizes {aware[0]!r} (and {len(aware) - 1} more) activation-aware: "
                "its factors depend on calibration data. Load the saved weights with "
                "prunekit.load_pruned, or replay with prunekit.decompose.api.replay(model, "
                "plan, calibration)")
    for record in records:
        module = _target(model, record)
        kind = factorization(record.kind)
        reason = kind.why_not(module)
        if reason is not None:
            raise PlanError(f"cannot replay the {record.kind} of {record.module!r}: {reason}")
        rank = kind.check_rank(record.layer, record.rank, f"plan, module {record.module!r}")
        weight = module.get_parameter("weight")
        if weights == "empty":
            new = kind.empty(record.layer, rank, device="meta", dtype=weight.dtype)
            new = new.to_empty(device=weight.device)
        else:
            new = kind.fit(module, None).layer(rank)[0]
        replace_module(model, record.module, new)
    return model
