"""Shrink as you train: remove channels for real at each pruning step, optimizer state kept.

::

    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    pruner = ShrinkingPruner(model, example_inputs,
                             LinearSchedule(final_sparsity=0.5, start=100, end=400,
                                            frequency=100),
                             ShrinkConfig(importance="bn_scale", stable_after=0.02),
                             optimizers=[optimizer])
    for x, y in batches:
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()
        pruner.step()          # at a pruning step the model (and optimizer state) shrink

Unlike :class:`~prunekit.schedule.StructuredGradualPruner` (soft masks until the end), each
pruning step removes the chosen units with :func:`prunekit.remove_units` in place, so every
later step costs what the smaller model costs. Parameters keep their identity through the
surgery, so the optimizer keeps training exactly the surviving parameters; its per-parameter
state is sliced by :mod:`.optim_state` (checked before anything changes), and EMA copies of
the model (``ema=[...]``) are pruned by the same plan. The schedule's sparsity is measured
against the *original* unit count of every group.

Stopping early: ``stable_after`` (the early-bird criterion: when the structure the final
sparsity would keep changes by at most this fraction of units between two pruning steps,
shrink to the final sparsity at once and stop), ``target_macs`` / ``target_params`` (stop
once the model is at most this fraction of the dense cost), ``stop_when(model)`` (e.g. a
measured latency), and ``evaluate`` + ``max_drop`` (a shrink whose metric drop exceeds the
budget is rolled back and shrinking stops).

Under ``torch.distributed`` the scores are averaged over all ranks before every decision,
so every rank removes the same units; wrap the model in DDP again after a shrink
(``on_shrink=[...]``, see :func:`rewrap_ddp`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn as nn

from ..plan.config import PruneConfig
from ..engine import remove_units
from ..errors import ConfigError
from ..graph.dependency import DependencyGraph, Group
from ..graph.handlers import handler_for
from ..importance.base import Importance
from ..measure.counts import count_parameters
from ..plan.document import Plan, architecture_fingerprint
from ..plan.selection import group_ratio, kept_count, predicted_macs
from ..importance.scoring import LossFn, Scores, score_groups
from ..surgery.apply import apply_plan
from .._internal.validate import check_fraction, check_names, check_number, settings_of
from .base import Schedule, as_schedule, check_example, schedule_from_dict
from .optim_state import check_sliceable, slice_optimizer_state

__all__ = ["STATE_KIND", "ShrinkConfig", "ShrinkEvent", "ShrinkingPruner", "rewrap_ddp"]

STATE_VERSION = 1
STATE_KIND = "shrink"


@dataclass(frozen=True)
class ShrinkConfig:
    """How :class:`ShrinkingPruner` scores, chooses and stops.

    - ``importance``, ``scope``, ``ignore``, ``min_units``, ``round_to``, ``max_ratio``: as
      in :class:`~prunekit.PruneConfig`, counted against each group's original size;
    - ``stable_after``: early-bird stop (fraction of all units, e.g. ``0.02``);
    - ``target_macs`` / ``target_params``: stop shrinking once MACs / parameters are at
      most this fraction of the dense model's;
    - ``max_drop``: with ``evaluate=``, roll back a shrink whose metric falls by more.
    """

    importance: str | Importance = "l2"
    scope: Literal["local", "global"] = "local"
    ignore: tuple[str, ...] = ()
    min_units: int = 1
    round_to: int = 1
    max_ratio: float = 0.9
    stable_after: float | None = None
    target_macs: float | None = None
    target_params: float | None = None
    max_drop: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "ignore", check_names(self.ignore, "ignore"))
        for name in ("stable_after", "target_macs", "target_params"):
            value = getattr(self, name)
            if value is not None:
                check_fraction(value, name)
        if self.max_drop is not None:
            check_number(self.max_drop, "max_drop", minimum=0.0)
        self.prune_config(0.0)

    def prune_config(self, ratio: float) -> PruneConfig:
        """The equivalent :class:`PruneConfig` at ``ratio`` (validation, rounding, plans)."""
        return PruneConfig(ratio=ratio, importance=self.importance, scope=self.scope,
                           ignore=self.ignore, min_units=self.min_units,
                           round_to=self.round_to, max_ratio=self.max_ratio)

    def settings(self) -> dict[str, Any]:
        """Plain-data view, saved with the pruner state and compared on resume."""
        return settings_of(self)


@dataclass
class ShrinkEvent:
    """One pruning step: when, to which sparsity, the cost after it, and what happened."""

    step: int
    sparsity: float
    removed: int
    macs: int
    params: int
    change: float | None = None  # early-bird: fraction of units the final structure changed
    rolled_back: bool = False
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class ShrinkingPruner:
    """Physically remove channel groups on a schedule during training (see module docs).

    ``optimizers`` (or :meth:`attach_optimizers` later) have their state sliced at every
    shrink; ``ema`` are copies of the model (same architecture, e.g. ``AveragedModel.module``)
    pruned alongside; ``on_shrink`` callables run after each shrink as ``fn(pruner, plan)``.
    """

    def __init__(self, model: nn.Module, example_inputs: Any,
                 schedule: Schedule | Mapping[str, Any], config: ShrinkConfig | None = None,
                 *, optimizers: Iterable[torch.optim.Optimizer] = (),
                 ema: Iterable[nn.Module] = (),
                 calibration: Iterable[Any] | None = None, loss_fn: LossFn | None = None,
                 evaluate: Callable[[nn.Module], float] | None = None,
                 stop_when: Callable[[nn.Module], bool] | None = None,
                 on_shrink: Sequence[Callable[[ShrinkingPruner, Plan], None]] = ()) -> None:
        check_example(example_inputs)
        self.model = model
        self.example_inputs = example_inputs
        self.schedule = as_schedule(schedule)
        self.config = config or ShrinkConfig()
        if self.config.max_drop is not None and evaluate is None:
            raise ConfigError("max_drop needs evaluate=fn(model) -> metric (higher is better)")
        self.calibration = None if calibration is None else list(calibration)
        self.loss_fn = loss_fn
        self.evaluate = evaluate
        self.stop_when = stop_when
        self.on_shrink = list(on_shrink)
        self.criterion = self.config.prune_config(0.0).criterion()
        if (self.criterion.needs_gradients or self.criterion.needs_activations) \
                and not self.calibration:
            raise ConfigError(f"importance {self.criterion.name!r} needs calibration batches "
                              "at each pruning step: pass calibration=[batch, ...] (and "
                              "loss_fn for gradients), or use 'l2' or 'bn_scale'")
        self.optimizers: list[torch.optim.Optimizer] = []
        self.attach_optimizers(optimizers)
        self.ema = list(ema)
        self.architecture = architecture_fingerprint(model)
        self.graph = self._build_graph()
        self.original_units = {g.name: g.n_units for g in self.graph.groups
                               if g.n_units > self.config.min_units}
        if not self.original_units:
            raise ConfigError(f"{type(model).__name__} has no channel group that can be "
                              "pruned; check prunekit.DependencyGraph.build(model, "
                              "example_inputs).groups and ignore=")
        self.origin = {n: np.arange(k, dtype=np.int64) for n, k in self.original_units.items()}
        self.dense_macs = self._macs()
        self.dense_params = count_parameters(model)
        self.plans: list[Plan] = []
        self.history: list[ShrinkEvent] = []
        self._final: dict[str, np.ndarray] | None = None  # early-bird: last final structure
        self.step_count = 0
        self.sparsity = 0.0
        self.stopped = False
        self.stop_reason = ""
        if self.schedule.is_update_step(0):
            self._update(0)

    # -- set-up -----------------------------------------------------------------------
    def attach_optimizers(self, optimizers: Iterable[torch.optim.Optimizer]) -> None:
        """Slice these optimizers' state at every shrink (checked now, and before each)."""
        optimizers = list(optimizers)
        check_sliceable(optimizers, self.model)
        known = {id(o) for o in self.optimizers}
        self.optimizers += [o for o in optimizers if id(o) not in known]

    def _build_graph(self) -> DependencyGraph:
        return DependencyGraph.build(self.model, self.example_inputs, ignore=self.config.ignore,
                                     on_meta=not self.criterion.needs_activations)

    def _groups(self) -> list[Group]:
        groups = [g for g in self.graph.groups if g.name in self.original_units]
        for g in groups:
            if g.n_units != len(self.origin[g.name]):
                raise ConfigError(f"group {g.name!r} has {g.n_units} units after a shrink but "
                                  f"{len(self.origin[g.name])} were kept; the model was "
                                  "changed outside the pruner")
        return groups

    def _macs(self) -> int:
        return predicted_macs(self.graph, [v.shape for v in self.graph.trace.values])

    # -- decisions ------------------------------------------------------------------------
    def _scores(self, groups: list[Group]) -> Scores:
        scores = score_groups(self.model, self.graph, self.criterion, groups,
                              self.calibration, self.loss_fn)
        return all_reduce_scores({n: s.float() for n, s in scores.items()})

    def _select(self, groups: list[Group], scores: Scores, level: float) -> dict[str, np.ndarray]:
        """Current unit indices to remove so each group (or all) is at ``level`` of its
        original size."""
        cfg = self.config.prune_config(level)
        if self.config.scope == "local":
            chosen = {}
            for g in groups:
                keep = kept_count(self.original_units[g.name], group_ratio(g, cfg, level), cfg)
                order = torch.argsort(scores[g.name], stable=True).numpy()
                chosen[g.name] = np.sort(order[: max(0, g.n_units - keep)])
            return chosen
        total = sum(self.original_units[g.name] for g in groups)
        budget = sum(g.n_units for g in groups) - (total - int(np.floor(level * total + 1e-9)))
        limit = {g.name: g.n_units - min(g.n_units, kept_count(self.original_units[g.name],
                                                               cfg.max_ratio, cfg))
                 for g in groups}
        values = np.concatenate([scores[g.name].numpy() for g in groups])
        owner = np.concatenate([np.full(g.n_units, i) for i, g in enumerate(groups)])
        unit = np.concatenate([np.arange(g.n_units) for g in groups])
        picked: list[list[int]] = [[] for _ in groups]
        for k in np.argsort(values, kind="stable"):
            if budget <= 0:
                break
            i = int(owner[k])
            if len(picked[i]) < limit[groups[i].name]:
                picked[i].append(int(unit[k]))
                budget -= 1
        chosen = {}
        for i, g in enumerate(groups):
            n0 = self.original_units[g.name]
            keep = kept_count(n0, 1 - (g.n_units - len(picked[i])) / n0, cfg)
            drop = max(0, g.n_units - keep)
            ranked = sorted(picked[i], key=scores[g.name].tolist().__getitem__)
            chosen[g.name] = np.sort(np.asarray(ranked[:drop], dtype=np.int64))
        return chosen

    def _final_change(self, groups: list[Group], scores: Scores) -> float | None:
        """Early-bird distance: fraction of original units whose fate at the final sparsity
        changed since the last pruning step."""
        final = self._select(groups, scores, self.schedule.final_sparsity)
        removed = {}
        for g in groups:
            mask = np.ones(self.original_units[g.name], dtype=bool)
            mask[self.origin[g.name]] = False  # already gone
            mask[self.origin[g.name][final[g.name]]] = True
            removed[g.name] = mask
        previous, self._final = self._final, removed
        if previous is None:
            return None
        changed = sum(int((previous[n] ^ removed[n]).sum()) for n in removed)
        return changed / sum(self.original_units.values())

    # -- the training-loop side --------------------------------------------------------
    def step(self) -> float | None:
        """Count one optimizer step; at a pruning step shrink the model and return the
        scheduled sparsity (``None`` otherwise)."""
        self.step_count += 1
        if self.schedule.is_update_step(self.step_count):
            return self._update(self.step_count)
        return None

    @property
    def done(self) -> bool:
        """Whether shrinking is over (schedule end reached or stopped early)."""
        return self.stopped or self.step_count >= self.schedule.end

    def _update(self, step: int) -> float | None:
        if self.stopped:
            return None
        level = self.schedule.sparsity_at(step)
        groups = self._groups()
        scores = self._scores(groups)
        change = self._final_change(groups, scores) \
            if self.config.stable_after is not None else None
        settled = change is not None and change <= float(self.config.stable_after or 0.0)
        if settled:
            level = self.schedule.final_sparsity
        units = {n: idx for n, idx in self._select(groups, scores, level).items() if idx.size}
        event = ShrinkEvent(step, level, sum(int(i.size) for i in units.values()), 0, 0, change)
        if units:
            self._shrink(units, event)
        event.macs, event.params = self._macs(), count_parameters(self.model)
        self.history.append(event)
        if not event.rolled_back:
            self.sparsity = level
        if settled:
            self._stop(f"the structure changed by {change:.3f} <= stable_after at step {step}")
        elif self.config.target_macs is not None and \
                event.macs <= self.config.target_macs * self.dense_macs:
            self._stop(f"MACs at {event.macs / self.dense_macs:.3f} of dense at step {step}")
        elif self.config.target_params is not None and \
                event.params <= self.config.target_params * self.dense_params:
            self._stop(f"parameters at {event.params / self.dense_params:.3f} of dense at step "
                       f"{step}")
        elif self.stop_when is not None and self.stop_when(self.model):
            self._stop(f"stop_when(model) was true at step {step}")
        return level

    def _stop(self, reason: str) -> None:
        self.stopped = True
        self.stop_reason = reason
        if self.history:
            self.history[-1].reason = self.history[-1].reason or reason

    def _shrink(self, units: Mapping[str, np.ndarray], event: ShrinkEvent) -> None:
        check_sliceable(self.optimizers, self.model)  # before anything changes
        before = None
        if self.config.max_drop is not None and self.evaluate is not None:
            before = self.evaluate(self.model)
        undo = _Snapshot(self.model) if before is not None else None
        result = remove_units(self.model, self.example_inputs, units, graph=self.graph,
                              settings=self.config.prune_config(event.sparsity).settings())
        if before is not None and undo is not None and self.evaluate is not None:
            drop = before - self.evaluate(self.model)
            if drop > float(self.config.max_drop or 0.0):
                undo.restore()
                event.rolled_back = True
                event.removed = 0
                self._stop(f"the shrink at step {event.step} lost {drop:.4g} > max_drop; "
                           "rolled back")
                return
        self._after_apply(result.plan)
        for name, idx in units.items():
            self.origin[name] = np.delete(self.origin[name], idx)
        self.plans.append(result.plan)
        self.graph = self._build_graph()
        for fn in self.on_shrink:
            fn(self, result.plan)

    def _after_apply(self, plan: Plan) -> None:
        """What must follow the model's surgery: optimizer state and EMA copies."""
        slice_optimizer_state(self.optimizers, self.model, plan)
        for copy in self.ema:
            apply_plan(copy, plan)

    def channel_sparsity(self) -> float:
        """Fraction of the original prunable units that were removed."""
        total = sum(self.original_units.values())
        return 1 - sum(len(o) for o in self.origin.values()) / total

    def finalize(self) -> list[Plan]:
        """Nothing is left to remove (units went at each step); returns the applied plans."""
        return list(self.plans)

    # -- checkpoints ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Plain data to resume with: counters, the plans applied so far (as JSON-able
        dicts) and the early-bird state."""
        return {
            "version": STATE_VERSION, "kind": STATE_KIND,
            "step": self.step_count, "sparsity": self.sparsity,
            "stopped": self.stopped, "stop_reason": self.stop_reason,
            "schedule": self.schedule.to_dict(), "settings": self.config.settings(),
            "architecture": self.architecture,
            "original_units": dict(self.original_units),
            "plans": [p.to_dict() for p in self.plans],
            "history": [e.to_dict() for e in self.history],
            "final": None if self._final is None else
            {n: torch.from_numpy(m.copy()) for n, m in self._final.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume: replay the saved plans on this (dense) model, its optimizers and EMA
        copies, then restore the counters. Loading the state the pruner is already at only
        restores the counters (so frameworks may call it twice)."""
        if state.get("kind") != STATE_KIND or state.get("version") != STATE_VERSION:
            raise ConfigError(f"this is not a ShrinkingPruner state of version {STATE_VERSION} "
                              f"(kind {state.get('kind')!r}, version {state.get('version')!r})")
        if state.get("architecture") != self.architecture:
            raise ConfigError("the pruner state was saved for another architecture; resume "
                              "on a fresh instance of the model the run started from")
        if schedule_from_dict(state["schedule"]) != self.schedule:
            raise ConfigError(f"the pruner state was saved with schedule {state['schedule']}, "
                              f"but this pruner runs {self.schedule.to_dict()}")
        if dict(state.get("settings", {})) != self.config.settings():
            raise ConfigError(f"the pruner state was saved with settings "
                              f"{state.get('settings')}, but this pruner uses "
                              f"{self.config.settings()}")
        plans = [Plan.from_dict(p, "saved pruner plan") for p in state["plans"]]
        mine = [p.to_dict() for p in self.plans]
        if mine != [p.to_dict() for p in plans][:len(mine)]:
            raise ConfigError("this pruner has already shrunk the model differently from the "
                              "saved state; load the state into a fresh pruner on a fresh model")
        check_sliceable(self.optimizers, self.model)
        for plan in plans[len(mine):]:
            apply_plan(self.model, plan)
            self._after_apply(plan)
            for group in plan.groups:
                if group.name in self.origin:
                    self.origin[group.name] = np.delete(self.origin[group.name], group.removed)
            self.plans.append(plan)
        if len(plans) > len(mine):
            self.graph = self._build_graph()
        self.step_count = int(state["step"])
        self.sparsity = float(state["sparsity"])
        self.stopped = bool(state["stopped"])
        self.stop_reason = str(state.get("stop_reason", ""))
        self.history = [ShrinkEvent(**dict(e)) for e in state.get("history", [])]
        final = state.get("final")
        self._final = None if final is None else \
            {str(n): torch.as_tensor(m).numpy().astype(bool) for n, m in dict(final).items()}


_PLAIN = (bool, int, float, str, tuple)


class _Snapshot:
    """What a rollback restores: every tensor and every plain attribute of every module.
    Surgery replaces ``.data`` by new tensors, so holding the old ones costs no copy."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.tensors = {n: t.data for n, t in model.named_parameters()}
        self.tensors.update({n: t.data for n, t in model.named_buffers()})
        self.attributes = {name: {k: v for k, v in vars(m).items()
                                  if not k.startswith("_") and isinstance(v, _PLAIN)}
                           for name, m in model.named_modules()}

    @torch.no_grad()
    def restore(self) -> None:
        tensors: dict[str, torch.Tensor] = dict(self.model.named_parameters())
        tensors.update(dict(self.model.named_buffers()))
        for name, old in self.tensors.items():
            tensors[name].data = old
            if isinstance(tensors[name], nn.Parameter):
                tensors[name].grad = None
        for name, module in self.model.named_modules():
            changed = False
            for key, value in self.attributes.get(name, {}).items():
                if module.__dict__.get(key) != value:
                    module.__dict__[key] = value
                    changed = True
            if changed or name == "":
                handler_for(module).after_apply(module)


def all_reduce_scores(scores: Scores) -> Scores:
    """Average the scores over all ranks when ``torch.distributed`` is initialised, so every
    rank removes the same units (identity otherwise)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return scores
    names = sorted(scores)
    flat = torch.cat([scores[n].reshape(-1).double() for n in names])
    if dist.get_backend() == "nccl" and torch.cuda.is_available():
        flat = flat.cuda()
    dist.all_reduce(flat)
    flat = (flat / dist.get_world_size()).cpu()
    out, offset = {}, 0
    for n in names:
        size = scores[n].numel()
        out[n] = flat[offset: offset + size].reshape(scores[n].shape).float()
        offset += size
    return out


def rewrap_ddp(ddp: Any) -> Any:
    """A new ``DistributedDataParallel`` around ``ddp.module`` with the same settings, for
    after a shrink (DDP sizes its gradient buckets, and holds each parameter's gradient
    accumulator with its old shape, from construction).

    The old wrapper's reducer and hooks are released first, so the new one sees the
    parameters' new shapes; do not use the old wrapper afterwards.
    """
    import gc

    from torch.nn.parallel import DistributedDataParallel as DDP

    settings = {"device_ids": ddp.device_ids, "output_device": ddp.output_device,
                "broadcast_buffers": ddp.broadcast_buffers,
                "find_unused_parameters": ddp.find_unused_parameters,
                "gradient_as_bucket_view": ddp.gradient_as_bucket_view,
                "static_graph": bool(getattr(ddp, "static_graph", False)),
                "process_group": getattr(ddp, "process_group", None)}
    module = ddp.module
    for handle in getattr(ddp, "_accum_grad_hooks", []):
        handle.remove()
    for p in module.parameters():
        if hasattr(p, "_ddp_mp_hook_state"):
            p._ddp_mp_hook_state[1].remove()
            del p._ddp_mp_hook_state
    for attr in ("logger", "reducer"):  # DDP's logger holds the reducer too
        if hasattr(ddp, attr):
            delattr(ddp, attr)
    gc.collect()  # the reducer held every parameter's gradient accumulator
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # broadcast_buffers is being renamed
        return DDP(module, **settings)
