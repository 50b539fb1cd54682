"""Gradual pruning inside the user's own training loop.

::

    pruner = GradualPruner(model, CubicSchedule(final_sparsity=0.9, start=100, end=1000,
                                                frequency=50))
    for x, y in batches:
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()
        pruner.step()            # one call after optimizer.step()
    pruner.finalize()            # bake masks into weights, remove parametrizations

Masks (all ones) are installed when the pruner is created, so the model's state-dict keys
do not change during training; create model, optimizer and pruner, then load their three
state dicts to resume.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn as nn

from ..errors import ConfigError
from ..mask.parametrization import finalize
from ..mask.sparsify import Calibrate, MaskConfig, apply_masks, layer_scores
from .base import Schedule, schedule_from_dict

STATE_VERSION = 1


class GradualPruner:
    """Recompute masks at the schedule's update steps as the weights move.

    - ``schedule``: when and how much (see :mod:`prunekit.schedule`);
    - ``config``: pattern, importance criterion and layers (:class:`MaskConfig`);
    - ``calibrate``: ``fn(model)`` run before each update for criteria that need
      activations or gradients (without it, gradient criteria read the current ``.grad``);
      the model's ``.grad`` values are restored afterwards;
    - ``rewind``: keep a copy of the initial weights for lottery-ticket rewinding
      (:meth:`rewind`).
    """

    def __init__(self, model: nn.Module, schedule: Schedule, config: MaskConfig | None = None,
                 calibrate: Calibrate | None = None, rewind: bool = False) -> None:
        if not isinstance(schedule, Schedule):
            raise ConfigError(f"schedule must be a prunekit.schedule.Schedule, got {schedule!r}")
        self.model = model
        self.schedule = schedule
        self.config = config or MaskConfig()
        self.calibrate = calibrate
        self.targets = self.config.targets(model)
        self.criterion = self.config.criterion()
        limit = self.config.pattern.max_sparsity
        if schedule.final_sparsity > limit + 1e-9:
            raise ConfigError(
                f"schedule {schedule.name!r} ends at sparsity {schedule.final_sparsity}, but "
                f"{self.config.pattern!r} reaches at most {limit:g}; set final sparsity "
                f"<= {limit:g}"
            )
        self.step_count = 0
        self.sparsity = 0.0
        self.finalized = False
        for target in self.targets.values():
            if target.mask is None:
                target.set_mask(torch.ones_like(target.tensor, dtype=torch.bool))
        self._initial: dict[str, torch.Tensor] | None = None
        if rewind:
            self._initial = {k: t.tensor.detach().clone() for k, t in self.targets.items()}
        if schedule.is_update_step(0):
            self._update(0)

    def _check_live(self) -> None:
        if self.finalized:
            raise ConfigError("the pruner was finalised (masks baked and removed); create a "
                              "new GradualPruner to prune further")

    def _update(self, step: int) -> float:
        level = self.schedule.sparsity_at(step)
        scores = layer_scores(self.model, self.targets, self.criterion, self.calibrate)
        with torch.no_grad():
            apply_masks(self.targets, self.config.pattern, scores, level, self.config.regrow)
        self.sparsity = level
        return level

    def step(self) -> float | None:
        """Count one optimizer step; at update steps recompute masks and return the sparsity."""
        self._check_live()
        self.step_count += 1
        if self.schedule.is_update_step(self.step_count):
            return self._update(self.step_count)
        return None

    @property
    def done(self) -> bool:
        """Whether the schedule has reached its last update step."""
        return self.step_count >= self.schedule.end

    def masks(self) -> dict[str, torch.Tensor]:
        """Current keep-masks by tensor name (live buffers)."""
        out = {}
        for key, target in self.targets.items():
            mask = target.mask
            if mask is not None:
                out[key] = mask
        return out

    def rewind(self) -> None:
        """Lottery-ticket rewinding: restore the initial weights, keep the masks."""
        self._check_live()
        if self._initial is None:
            raise ConfigError("rewind() needs the initial weights: create the pruner with "
                              "rewind=True")
        with torch.no_grad():
            for key, target in self.targets.items():
                target.tensor.copy_(self._initial[key])

    def finalize(self) -> nn.Module:
        """Bake the masks into the weights and remove the parametrizations."""
        self._check_live()
        finalize(self.model)
        self.finalized = True
        return self.model

    def state_dict(self) -> dict[str, Any]:
        """Plain data to resume with (save it with ``torch.save`` beside the optimizer's)."""
        return {
            "version": STATE_VERSION,
            "step": self.step_count,
            "sparsity": self.sparsity,
            "schedule": self.schedule.to_dict(),
            "pattern": repr(self.config.pattern),
            "tensors": {k: list(t.tensor.shape) for k, t in self.targets.items()},
            "masks": {n: m.detach().cpu().clone() for n, m in self.masks().items()},
            "initial_weights": None if self._initial is None else
            {n: t.detach().cpu().clone() for n, t in self._initial.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume from :meth:`state_dict`; the model and schedule must match the saved ones."""
        self._check_live()
        if state.get("version") != STATE_VERSION:
            raise ConfigError(f"pruner state has version {state.get('version')!r}; this "
                              f"prunekit reads version {STATE_VERSION}")
        saved = {n: tuple(s) for n, s in state["tensors"].items()}
        here = {k: tuple(t.tensor.shape) for k, t in self.targets.items()}
        if saved != here:
            missing = sorted(set(saved) - set(here))
            extra = sorted(set(here) - set(saved))
            shapes = sorted(f"{n}: saved {saved[n]}, model {here[n]}"
                            for n in set(saved) & set(here) if saved[n] != here[n])
            raise ConfigError(
                "pruner state does not fit this model: "
                f"tensors only in the checkpoint {missing}, only in the model {extra}, "
                f"shape differences {shapes}; resume with the same architecture and "
                "MaskConfig(ignore=...) the state was saved with"
            )
        saved_schedule = schedule_from_dict(state["schedule"])
        if saved_schedule != self.schedule:
            raise ConfigError(f"pruner state was saved with schedule {saved_schedule!r}, but "
                              f"this pruner runs {self.schedule!r}; resume with the same "
                              "schedule")
        if state.get("pattern") != repr(self.config.pattern):
            raise ConfigError(f"pruner state was saved with pattern {state.get('pattern')}, "
                              f"but this pruner uses {self.config.pattern!r}")
        with torch.no_grad():
            for key, target in self.targets.items():
                target.set_mask(state["masks"][key])
        initial = state.get("initial_weights")
        if initial is not None:
            self._initial = {k: initial[k].to(t.tensor.device) for k, t in self.targets.items()}
        self.step_count = int(state["step"])
        self.sparsity = float(state["sparsity"])
