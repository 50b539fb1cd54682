"""Which FFN neurons and attention heads each block has, and their physical removal.

Both come from the structural engine, not from layer names: the dependency graph of the
model (whole heads: ``split_units="outer"``; with grouped-query attention a unit is a
key/value group and its query heads) gives, per block, the group of FFN neurons and the
group of heads, and for each the *following projection* (down projection, attention output
projection) with the input columns every unit owns. The chosen units are removed by the
engine (:func:`prunekit.remove_units`) on that same graph, so every coupled tensor and
attribute shrinks consistently.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..engine import remove_units
from ..errors import ConfigError
from ..graph.dependency import DependencyGraph, Group
from ..plan.document import Plan
from .layers import prunable_layers

KINDS: tuple[str, ...] = ("heads", "ffn")


@dataclass(frozen=True)
class BlockUnits:
    """One prunable group of a block: its engine name and the projection that reads it."""

    kind: str  # "heads" or "ffn"
    group: str  # group name in the dependency graph
    layer: str  # the following projection, relative to the block
    columns: torch.Tensor  # [n_units, k]: input columns of ``layer`` owned by each unit

    @property
    def n_units(self) -> int:
        return int(self.columns.shape[0])


def _input_dim(module: nn.Module) -> int:
    """Weight dimension a linear-like layer contracts (Linear ``[out, in]``, Conv1D ``[in, out]``)."""
    return 1 if isinstance(module, nn.Linear) else 0


def _consumer(group: Group, prefix: str, layers: dict[str, nn.Module]
              ) -> tuple[str, torch.Tensor] | None:
    """The single block layer whose *input* columns the group's units are, if any."""
    found = []
    for m in group.members:
        if m.kind != "param" or not m.tensor.startswith(prefix) or not m.tensor.endswith(".weight"):
            continue
        local = m.tensor[len(prefix):-len(".weight")]
        module = layers.get(local)
        if module is not None and m.dim == _input_dim(module):
            found.append((local, torch.from_numpy(m.index.copy()).long()))
    return found[0] if len(found) == 1 else None


def units_graph(model: nn.Module, example: torch.Tensor) -> DependencyGraph:
    """The dependency graph whose units are whole heads (key/value groups) and neurons."""
    return DependencyGraph.build(model, example, split_units="outer")


def block_units(model: nn.Module, blocks: nn.ModuleList, graph: DependencyGraph
                ) -> list[dict[str, BlockUnits]]:
    """Per block: ``{"heads": ..., "ffn": ...}`` found in the model's :func:`units_graph`.

    A group belongs to a block when all its parameters live in it; its units are heads when
    each owns several columns of the following projection, neurons when each owns one.
    """
    names = {id(m): n for n, m in model.named_modules()}
    found: list[dict[str, BlockUnits]] = []
    for index, block in enumerate(blocks):
        prefix = names[id(block)] + "."
        layers = prunable_layers(block)
        units: dict[str, BlockUnits] = {}
        for group in graph.groups:
            params = [m for m in group.members if m.kind != "input"]
            if not group.exact or not params or not all(m.tensor.startswith(prefix)
                                                        for m in params):
                continue
            consumer = _consumer(group, prefix, layers)
            if consumer is None:
                continue
            kind = "heads" if consumer[1].shape[1] > 1 else "ffn"
            if kind in units:
                raise ConfigError(
                    f"block {index} ({prefix[:-1]}) has two groups of {kind}: "
                    f"{units[kind].group!r} and {group.name!r}; structured one-shot pruning "
                    "expects one attention and one FFN per block")
            units[kind] = BlockUnits(kind, group.name, consumer[0], consumer[1])
        found.append(units)
    return found


def remove_chosen(model: nn.Module, example: torch.Tensor, graph: DependencyGraph,
                  removed: dict[str, list[int]]) -> Plan:
    """Physically remove ``removed[group name] = unit indices`` with the engine, on the graph
    the units were found in (the model's weights may have changed, not its shapes)."""
    return remove_units(model, example, removed, graph=graph).plan
