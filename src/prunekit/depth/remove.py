"""Remove whole blocks: delete Hugging Face layers, replace other blocks by ``nn.Identity``.

Hugging Face layer lists lose their entries for real. What depends on a layer's position is
updated so the model still generates with a key/value cache and reloads from its config:
every submodule's ``layer_idx`` (the cache slot), the config's layer count
(``num_hidden_layers`` / ``n_layer`` / ``decoder_layers`` ...), per-layer config lists of that
length (``layer_types``, ``mlp_layer_types``) and lists of layer indices (``*_layers``).

Other blocks are replaced by :class:`torch.nn.Identity`; module names stay stable, so a
fresh model replays the removal with :func:`remove_blocks` before ``load_state_dict``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

import torch
from torch import nn

from ..errors import ConfigError, PlanError, VerificationError
from ..graph.trace import as_args
from .._internal.runtime import eval_mode
from .blocks import RemovableBlock, find_blocks, layer_count
from .probe import first_tensor

__all__ = ["NO_BLOCKS", "apply_removal", "check_removal", "emptied_lists", "lookup_blocks",
           "output_shape", "recorded_blocks", "remove_blocks", "remove_recorded_blocks",
           "select_blocks"]

#: per-layer config lists whose names do not end in ``_types``
PER_LAYER_LISTS = frozenset({"no_rope_layers"})
#: per-layer config features depth pruning cannot update correctly
UNSUPPORTED = ("kv_sharing_modes",)
#: config flags that make a layer's weights depend on its position (refused when layers shift)
POSITIONAL = ("scale_attn_by_inverse_layer_idx",)


NO_BLOCKS = ("the model has no removable blocks (residual modules whose output has the "
             "shape of their input); depth pruning cannot apply to it")


def lookup_blocks(blocks: Sequence[RemovableBlock], names: Sequence[str]) -> list[RemovableBlock]:
    """The blocks named ``names`` (duplicates once), or an error naming the removable ones."""
    by_name = {b.name: b for b in blocks}
    if not by_name:
        raise ConfigError(NO_BLOCKS)
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ConfigError(f"{unknown} are not removable blocks of this model; the removable "
                          f"blocks are {list(by_name)}")
    return [by_name[n] for n in dict.fromkeys(names)]


def emptied_lists(blocks: Sequence[RemovableBlock], chosen: Sequence[RemovableBlock]) -> list[str]:
    """Hugging Face layer lists that would lose every layer if ``chosen`` were removed."""
    left: dict[str, int] = defaultdict(int)
    for block in blocks:
        if block.removal == "delete":
            left[block.name.rpartition(".")[0]] += 1
    for block in chosen:
        if block.removal == "delete":
            left[block.name.rpartition(".")[0]] -= 1
    return [name for name, n in left.items() if n <= 0]


def select_blocks(blocks: Sequence[RemovableBlock], names: Sequence[str]) -> list[RemovableBlock]:
    """Like :func:`lookup_blocks`; refuse to remove every block, or every layer of a list."""
    chosen = lookup_blocks(blocks, names)
    if len(chosen) >= len(blocks):
        raise ConfigError(f"cannot remove all {len(blocks)} removable blocks of the model; "
                          "keep at least one (remove fewer names)")
    emptied = emptied_lists(blocks, chosen)
    if emptied:
        raise ConfigError(f"cannot remove every layer of {emptied}; keep at least one layer "
                          "in each (remove fewer names)")
    return chosen


def _per_layer_updates(config: Any, attr: str, old: int, removed: set[int]) -> dict[str, Any]:
    """New values of the config attributes that depend on layer positions."""
    if getattr(config, "is_heterogeneous", False):
        raise ConfigError(f"{type(config).__name__} has per-layer overrides (per_layer_config); "
                          "depth pruning does not support heterogeneous configs yet")
    for key in UNSUPPORTED:
        if getattr(config, key, None) is not None:
            raise ConfigError(f"{type(config).__name__}.{key} shares state between layers; "
                              "depth pruning cannot remove layers of this model safely")
    new_index = {o: n for n, o in enumerate(i for i in range(old) if i not in removed)}
    shifted = any(o != n for o, n in new_index.items())
    for key in POSITIONAL:
        if shifted and getattr(config, key, False) is True:
            raise ConfigError(f"{type(config).__name__}.{key} is set: a layer's attention "
                              "depends on its position, so only the last layers can be removed "
                              "(a reloaded model would differ)")
    updates: dict[str, Any] = {attr: len(new_index)}
    for key in config.to_dict():
        value = getattr(config, key, None)
        if key == attr or not isinstance(value, (list, tuple)):
            continue
        if len(value) == old and (key.endswith("_types") or key in PER_LAYER_LISTS):
            updates[key] = type(value)(v for i, v in enumerate(value) if i not in removed)
        elif key.endswith("_layers") and all(type(v) is int and 0 <= v < old for v in value):
            updates[key] = type(value)(new_index[v] for v in value if v in new_index)
    return updates


def _delete(model: nn.Module, container: str, indices: set[int]) -> None:
    """Delete entries of a Hugging Face layer list and update what counts them."""
    found = layer_count(model, container)
    assert found is not None
    config, attr = found
    layers = model.get_submodule(container)
    assert isinstance(layers, nn.ModuleList)
    updates = _per_layer_updates(config, attr, len(layers), indices)  # may raise: nothing done yet
    for old in sorted(indices, reverse=True):
        del layers[old]
    kept = [i for i in range(len(layers) + len(indices)) if i not in indices]
    for new, (old, layer) in enumerate(zip(kept, layers)):
        for sub in layer.modules():
            indexed: Any = sub  # attention modules of Hugging Face layers carry layer_idx
            if type(getattr(indexed, "layer_idx", None)) is int and indexed.layer_idx == old:
                indexed.layer_idx = new
    for key, value in updates.items():
        setattr(config, key, value)


def _replace(model: nn.Module, name: str) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name)
    if isinstance(parent, (nn.ModuleList, nn.Sequential)) and child.isdigit():
        parent[int(child)] = nn.Identity()
    else:
        setattr(parent, child, nn.Identity())


def output_shape(model: nn.Module, example_inputs: Any) -> tuple[int, ...] | None:
    """Shape of the first output tensor of ``model`` (logits, last hidden state), no gradients.

    Only the first: caches and per-layer hidden states legitimately shrink with the depth.
    """
    args, kwargs = as_args(example_inputs)
    with torch.no_grad():
        out = first_tensor(model(*args, **kwargs))
    return tuple(out.shape) if out is not None else None


class Removal(Protocol):
    """What removing a block takes: its module name and how it goes."""

    @property
    def name(self) -> str: ...

    @property
    def removal(self) -> str: ...


@dataclass(frozen=True)
class _Recorded:
    name: str
    removal: str


def recorded_blocks(blocks: Sequence[Removal]) -> list[dict[str, str]]:
    """``blocks`` as a plan records them (:attr:`prunekit.Plan.blocks`)."""
    return [{"name": b.name, "removal": b.removal} for b in blocks]


def remove_recorded_blocks(model: nn.Module, records: Sequence[Mapping[str, str]]) -> None:
    """Replay a plan's block removals on a fresh instance of the architecture, in place."""
    names = {n for n, _ in model.named_modules()}
    missing = [r["name"] for r in records if r["name"] not in names]
    if missing:
        raise PlanError(f"the plan removes blocks {missing[:3]}, which this model does not "
                        "have: the plan was made for another architecture")
    try:
        apply_removal(model, [_Recorded(r["name"], r["removal"]) for r in records])
    except ConfigError as exc:
        raise PlanError(f"cannot replay the plan's block removals: {exc}") from None


def apply_removal(model: nn.Module, blocks: Sequence[Removal]) -> nn.Module:
    """Remove ``blocks`` (found by :func:`find_blocks` on this model) in place."""
    lists: dict[str, set[int]] = defaultdict(set)
    for block in blocks:
        if block.removal == "delete":
            container, _, index = block.name.rpartition(".")
            lists[container].add(int(index))
    for container, indices in lists.items():  # check every config before changing anything
        found = layer_count(model, container)
        if found is None:
            raise ConfigError(f"{container!r} is no longer a Hugging Face layer list with a "
                              "matching layer count; were blocks already removed?")
        _per_layer_updates(*found, len(cast(nn.ModuleList, model.get_submodule(container))),
                           indices)
    for container, indices in lists.items():
        _delete(model, container, indices)
    for block in blocks:
        if block.removal == "identity":
            _replace(model, block.name)
    return model


def remove_checked(model: nn.Module, blocks: Sequence[RemovableBlock], example_inputs: Any) -> None:
    """Remove ``blocks`` in place, checking the model still runs with its output shape."""
    with eval_mode(model):
        before = output_shape(model, example_inputs)
    apply_removal(model, blocks)
    check_removal(model, example_inputs, before)


def check_removal(model: nn.Module, example_inputs: Any, before: tuple[int, ...] | None) -> None:
    """Raise :class:`VerificationError` unless ``model`` runs with the output shape ``before``."""
    try:
        with eval_mode(model):
            after = output_shape(model, example_inputs)
    except Exception as exc:
        raise VerificationError(f"the model no longer runs after removing blocks: "
                                f"{type(exc).__name__}: {exc}") from exc
    if after != before:
        raise VerificationError(f"removing blocks changed the output shape from {before} to "
                                f"{after}")


def remove_blocks(model: nn.Module, names: Sequence[str], example_inputs: Any) -> list[RemovableBlock]:
    """Remove the blocks named ``names`` from ``model`` in place and return them.

    ``example_inputs`` (a tensor, a tuple of positional inputs or a dict of kwargs) finds the
    removable blocks and checks the model still runs with its output shapes afterwards.
    """
    if isinstance(names, str):
        names = [names]
    chosen = select_blocks(find_blocks(model, example_inputs), list(names))
    remove_checked(model, chosen, example_inputs)
    return chosen
