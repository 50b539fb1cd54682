"""Gradual structured pruning: soft channel masks during training, real surgery at the end.

::

    pruner = StructuredGradualPruner(model, example_inputs,
                                     CubicSchedule(final_sparsity=0.5, start=50, end=500,
                                                   frequency=25),
                                     StructuredGradualConfig(regularization="group_lasso"))
    for x, y in batches:
        optimizer.zero_grad()
        loss = loss_fn(model(x), y) + pruner.regularization_loss()
        loss.backward()
        optimizer.step()
        pruner.step()                 # one call after optimizer.step()
    result = pruner.finalize()        # removes the masked channels for real

The units are those of :class:`prunekit.DependencyGraph` groups: removing output channel
*k* of a conv also removes the matching BatchNorm entries and input channel *k* of every
consumer. A masked unit has every coupled parameter slice set to zero after each step, so
the soft-masked model computes exactly what the pruned model will; :meth:`finalize` then
removes exactly the masked units with :func:`prunekit.remove_units`. State-dict keys never
change during training (masks are plain data in :meth:`state_dict`).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn as nn
from torch.utils._pytree import tree_flatten, tree_map

from ..plan.config import PruneConfig
from ..engine import PruneResult, plan_verified, remove_units
from ..errors import ConfigError
from .._internal.validate import check_choice, check_names, check_number, settings_of
from ..graph.dependency import DependencyGraph, Group
from ..graph.trace import as_args
from ..importance.base import Importance
from ..plan.document import architecture_fingerprint
from ..plan.selection import select_global, select_local
from .._internal.runtime import eval_mode
from ..importance.scoring import LossFn, score_groups
from .base import Schedule, as_schedule, check_example, schedule_from_dict

STATE_VERSION = 1
STATE_KIND = "structured"
Regularization = Literal["group_lasso", "bn_scale"]


@dataclass(frozen=True)
class StructuredGradualConfig:
    """How units are scored, chosen and regularised by :class:`StructuredGradualPruner`.

    - ``importance``: a registered group criterion (``"l2"``, ``"l1"``, ``"bn_scale"``,
      ``"taylor"``, ...) or an :class:`~prunekit.importance.base.Importance` instance;
    - ``scope``: ``"local"`` (the scheduled fraction of every group) or ``"global"``
      (normalised scores ranked across groups, at most ``max_ratio`` of one group);
    - ``regularization``: ``None``, ``"group_lasso"`` (sum over units of the L2 norm of all
      the unit's coupled weights) or ``"bn_scale"`` (L1 of BatchNorm scales), scaled by
      ``strength`` in :meth:`StructuredGradualPruner.regularization_loss`;
    - ``ignore``: module-name globs whose tensors keep their shape;
    - ``min_units`` / ``round_to``: keep at least / a multiple of this many units per group;
    - ``regrow``: may masked units come back when masks are recomputed (soft filter
      pruning)? With the default ``False`` a masked unit stays masked.
    """

    importance: str | Importance = "l2"
    scope: Literal["local", "global"] = "local"
    regularization: Regularization | None = None
    strength: float = 1e-4
    ignore: tuple[str, ...] = ()
    min_units: int = 1
    round_to: int = 1
    max_ratio: float = 0.9
    regrow: bool = False

    def __post_init__(self) -> None:
        check_choice(self.regularization, "regularization", (None, "group_lasso", "bn_scale"))
        check_number(self.strength, "strength", minimum=0.0)
        object.__setattr__(self, "ignore", check_names(self.ignore, "ignore"))
        self.prune_config(0.0)  # validates importance, scope, min_units, round_to, max_ratio

    def prune_config(self, ratio: float) -> PruneConfig:
        """The equivalent :class:`PruneConfig` at ``ratio`` (for selection and plans)."""
        return PruneConfig(ratio=ratio, importance=self.importance, scope=self.scope,
                           ignore=self.ignore, min_units=self.min_units,
                           round_to=self.round_to, max_ratio=self.max_ratio)

    def settings(self) -> dict[str, Any]:
        """Plain-data view, saved with the pruner state and compared on resume."""
        return settings_of(self)


#: the former name, kept for code written against it
StructuredConfig = StructuredGradualConfig


@dataclass(frozen=True)
class _Slice:
    """One parameter slice of a group: unit ``u`` owns positions ``index[u]`` along ``dim``."""

    tensor: str
    dim: int
    index: torch.Tensor  # [n_units, k], int64
    scale: bool  # a normalization layer's per-unit affine scale


class StructuredGradualPruner:
    """Grow channel sparsity on a schedule with soft masks; remove the masked units at the end.

    ``example_inputs`` (one batch, as for :func:`prunekit.prune`) is used to discover the
    coupled groups and to verify :meth:`finalize`. ``calibration`` (batches) and
    ``loss_fn(model, batch)`` feed gradient or activation criteria at each update.
    """

    def __init__(self, model: nn.Module, example_inputs: Any,
                 schedule: Schedule | Mapping[str, Any],
                 config: StructuredGradualConfig | None = None, *,
                 calibration: Iterable[Any] | None = None,
                 loss_fn: LossFn | None = None) -> None:
        check_example(example_inputs)
        self.model = model
        self.example_inputs = example_inputs
        self.schedule = as_schedule(schedule)
        self.config = config or StructuredGradualConfig()
        self.calibration = None if calibration is None else list(calibration)
        self.loss_fn = loss_fn
        self.criterion = self.config.prune_config(0.0).criterion()
        if (self.criterion.needs_gradients or self.criterion.needs_activations) \
                and not self.calibration:
            raise ConfigError(f"importance {self.criterion.name!r} needs calibration batches "
                              "at each update: pass calibration=[batch, ...] (and loss_fn for "
                              "gradients), or use 'l2'")
        self.graph = DependencyGraph.build(model, example_inputs, ignore=self.config.ignore,
                                           on_meta=not self.criterion.needs_activations)
        self.architecture = architecture_fingerprint(model)
        self.groups = self._verified_groups()
        params = dict(model.named_parameters())
        self._slices: dict[str, list[_Slice]] = {
            g.name: [_Slice(m.tensor, m.dim, torch.from_numpy(m.index).long(),
                          "scale" in self.graph.tags.get(m.tensor, ()) and
                          params[m.tensor].dim() == 1)
                   for m in g.members if m.kind == "param" and m.tensor in params]
            for g in self.groups}
        if self.config.regularization == "bn_scale" and not any(
                s.scale for slices in self._slices.values() for s in slices):
            raise ConfigError("regularization='bn_scale' needs BatchNorm (normalization) "
                              "layers in the prunable groups, and this model has none; use "
                              "'group_lasso'")
        self._keep = {g.name: torch.ones(g.n_units, dtype=torch.bool) for g in self.groups}
        self.step_count = 0
        self.sparsity = 0.0
        self.updates = 0
        self.finalized = False
        self.result: PruneResult | None = None
        self.max_output_change: float | None = None
        if self.schedule.is_update_step(0):
            self._update(0)

    # -- discovery ----------------------------------------------------------------
    def _verified_groups(self) -> list[Group]:
        """Groups that can really lose units: prune a shape-only copy at the final sparsity
        and leave out groups whose removal breaks the forward (as :func:`prunekit.prune`)."""
        config = self.config.prune_config(self.schedule.final_sparsity)
        candidates = [g for g in self.graph.groups if g.n_units > self.config.min_units]
        flat = {g.name: torch.zeros(g.n_units) for g in candidates}  # probe: the first units
        verified = plan_verified(self.model, self.example_inputs, self.graph, candidates,
                                 lambda active: select_local(active, flat, config, config.ratio),
                                 config.settings())
        groups = [g for g in candidates if g.name not in verified.skipped]
        if not groups:
            raise ConfigError(
                f"{type(self.model).__name__} has no channel group that can be pruned (after "
                f"ignoring {list(self.config.ignore)}); check the model with "
                "prunekit.DependencyGraph.build(model, example_inputs).groups")
        return groups

    # -- the training-loop side ---------------------------------------------------
    def _check_live(self) -> None:
        if self.finalized:
            raise ConfigError("the pruner was finalised (masked units removed); create a new "
                              "StructuredGradualPruner to prune further")

    def _update(self, step: int) -> float:
        level = self.schedule.sparsity_at(step)
        scores = score_groups(self.model, self.graph, self.criterion, self.groups,
                              self.calibration, self.loss_fn)
        if not self.config.regrow:
            scores = {name: s.float().masked_fill(~self._keep[name], float("-inf"))
                      for name, s in scores.items()}
        config = self.config.prune_config(level)
        select = select_global if self.config.scope == "global" else select_local
        chosen = select(self.groups, scores, config, level)
        for g in self.groups:
            keep = torch.ones(g.n_units, dtype=torch.bool)
            keep[torch.as_tensor(chosen.get(g.name, np.zeros(0, np.int64)), dtype=torch.long)] = False
            self._keep[g.name] = keep
        self.apply_masks()
        self.sparsity = level
        self.updates += 1
        return level

    @torch.no_grad()
    def apply_masks(self) -> None:
        """Set every parameter slice of every masked unit to zero (done by :meth:`step`)."""
        params = dict(self.model.named_parameters())
        for g in self.groups:
            units = torch.nonzero(~self._keep[g.name]).flatten()
            if units.numel() == 0:
                continue
            for s in self._slices[g.name]:
                p = params[s.tensor]
                positions = s.index[units].reshape(-1).to(p.device)
                p.index_fill_(s.dim, positions, 0.0)

    def step(self) -> float | None:
        """Count one optimizer step and zero the masked units; at update steps recompute the
        masks first and return the scheduled sparsity."""
        self._check_live()
        self.step_count += 1
        if self.schedule.is_update_step(self.step_count):
            return self._update(self.step_count)
        self.apply_masks()
        return None

    @property
    def done(self) -> bool:
        """Whether the schedule has reached its last update step."""
        return self.step_count >= self.schedule.end

    def masks(self) -> dict[str, torch.Tensor]:
        """Keep-masks (``True`` = kept) by group name, one entry per unit."""
        return {g.name: self._keep[g.name].clone() for g in self.groups}

    def channel_sparsity(self) -> float:
        """Fraction of the prunable units (over all managed groups) that are masked."""
        total = sum(g.n_units for g in self.groups)
        masked = sum(int((~self._keep[g.name]).sum()) for g in self.groups)
        return masked / total

    def regularization_loss(self) -> torch.Tensor:
        """``strength`` × the configured sparsity penalty, to add to the training loss.

        ``"group_lasso"``: sum over units of the L2 norm of all the unit's coupled weights;
        ``"bn_scale"``: sum of ``|gamma|`` of the normalization scales in the groups.
        Without a regularization it is a zero tensor.
        """
        self._check_live()
        params = dict(self.model.named_parameters())
        first = next(iter(params.values()))
        total = first.new_zeros(())
        kind = self.config.regularization
        if kind is None or self.config.strength == 0:
            return total
        for g in self.groups:
            if kind == "bn_scale":
                for s in self._slices[g.name]:
                    if s.scale:
                        p = params[s.tensor]
                        total = total + p[s.index.to(p.device)].abs().sum()
                continue
            squares = first.new_zeros(g.n_units)
            for s in self._slices[g.name]:
                p = params[s.tensor]
                other = [d for d in range(p.dim()) if d != s.dim]
                per_position = p.pow(2).sum(dim=other) if other else p.pow(2)
                squares = squares + per_position[s.index.to(p.device)].sum(1).to(squares.dtype)
            total = total + torch.sqrt(squares + 1e-12).sum()
        return total * self.config.strength

    # -- the end ------------------------------------------------------------------
    def finalize(self, example_inputs: Any | None = None, *,
                 atol: float = 1e-5) -> PruneResult:
        """Remove the masked units from the model (in place) and return the result.

        The plan removes exactly the masked units. The model's outputs on the example
        inputs are compared before and after: a difference above ``atol`` (possible when a
        layer normalises over the pruned channels, e.g. LayerNorm) is warned about and kept
        in :attr:`max_output_change`. Optimizers made before this call hold stale tensors:
        create a new one to fine-tune the pruned model.
        """
        self._check_live()
        if self.updates == 0:
            raise ConfigError(
                "finalize() was called before any pruning step: the schedule "
                f"{self.schedule.to_dict()} has not reached its first update (step "
                f"{self.schedule.start}, now {self.step_count}); call step() after each "
                "optimizer step first")
        if architecture_fingerprint(self.model) != self.architecture:
            raise ConfigError("the model's parameter names or shapes changed since the pruner "
                              "was created; finalize() must see the same model")
        example = self.example_inputs if example_inputs is None else example_inputs
        example = _to_device(example, self.model)
        self.apply_masks()
        units = {g.name: np.flatnonzero(~self._keep[g.name].numpy())
                 for g in self.groups if not bool(self._keep[g.name].all())}
        before = _outputs(self.model, example)
        result = remove_units(self.model, example, units, graph=self.graph,
                              settings=self.config.prune_config(self.sparsity).settings())
        after = _outputs(self.model, example)
        change = max((float((a.float() - b.float()).abs().max()) if a.numel() else 0.0)
                     for a, b in zip(after, before)) if before else 0.0
        self.max_output_change = change
        if change > atol:
            warnings.warn(f"removing the masked units changed the model's outputs by up to "
                          f"{change:.3g} (a layer normalises over the pruned channels?); "
                          "fine-tune the pruned model to recover", stacklevel=2)
        self.finalized = True
        self.result = result
        return result

    # -- checkpoints ----------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Plain data to resume with (masks as bool tensors, everything else JSON-able)."""
        return {
            "version": STATE_VERSION,
            "kind": STATE_KIND,
            "step": self.step_count,
            "sparsity": self.sparsity,
            "updates": self.updates,
            "schedule": self.schedule.to_dict(),
            "settings": self.config.settings(),
            "architecture": self.architecture,
            "groups": {g.name: g.n_units for g in self.groups},
            "masks": {g.name: self._keep[g.name].clone() for g in self.groups},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume from :meth:`state_dict`; model, schedule and settings must be the saved ones."""
        self._check_live()
        if state.get("kind") != STATE_KIND or state.get("version") != STATE_VERSION:
            raise ConfigError(f"this is not a StructuredGradualPruner state of version "
                              f"{STATE_VERSION} (kind {state.get('kind')!r}, version "
                              f"{state.get('version')!r}); load it into the pruner that saved it")
        saved = {str(k): int(v) for k, v in dict(state["groups"]).items()}
        here = {g.name: g.n_units for g in self.groups}
        if state.get("architecture") != self.architecture or saved != here:
            diff = sorted(f"{n}: saved {saved.get(n)}, model {here.get(n)}"
                          for n in set(saved) | set(here) if saved.get(n) != here.get(n))
            raise ConfigError(
                "pruner state does not fit this model (parameter names or shapes differ; "
                f"group differences {diff[:6]}); resume with the same architecture, "
                "example inputs and StructuredGradualConfig(ignore=...) the state was saved with")
        saved_schedule = schedule_from_dict(state["schedule"])
        if saved_schedule != self.schedule:
            raise ConfigError(f"pruner state was saved with schedule {saved_schedule!r}, but "
                              f"this pruner runs {self.schedule!r}; resume with the same schedule")
        if dict(state.get("settings", {})) != self.config.settings():
            raise ConfigError(f"pruner state was saved with settings {state.get('settings')}, "
                              f"but this pruner uses {self.config.settings()}")
        for g in self.groups:
            mask = torch.as_tensor(state["masks"][g.name]).to(torch.bool).cpu()
            if tuple(mask.shape) != (g.n_units,):
                raise ConfigError(f"saved mask of group {g.name!r} has shape "
                                  f"{tuple(mask.shape)}, expected ({g.n_units},)")
            self._keep[g.name] = mask.clone()
        self.step_count = int(state["step"])
        self.sparsity = float(state["sparsity"])
        self.updates = int(state["updates"])
        self.apply_masks()


def _to_device(inputs: Any, model: nn.Module) -> Any:
    """Move the tensors of ``inputs`` to the model's device (if it has a single one)."""
    devices = {p.device for p in model.parameters()}
    if len(devices) != 1:
        return inputs
    device = next(iter(devices))
    return tree_map(lambda t: t.to(device) if isinstance(t, torch.Tensor) else t, inputs)


def _outputs(model: nn.Module, inputs: Any) -> list[torch.Tensor]:
    args, kwargs = as_args(inputs)
    with eval_mode(model), torch.no_grad():
        out = model(*args, **kwargs)
    return [t.detach().clone() for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
