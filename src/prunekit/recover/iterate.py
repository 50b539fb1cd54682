"""Iterate until target (dynamic pruning): prune a step → fine-tune → evaluate → keep the
step, or roll it back and try a smaller one when the metric budget is broken. With
``budget=None`` it is a fixed gradual schedule instead: every step that shrinks the model is
kept, so nothing is selected on the validation loader.

Every step is checkpointed atomically in ``checkpoint_dir``: an accepted step writes
``step_NNN/`` (:func:`prunekit.save_pruned`: safetensors weights + the plan composed since
the dense model), then ``state.json`` (written last, the commit point) records the history,
the current step size and which checkpoint is current. No pickle anywhere. A run started
again on the same folder resumes after the last committed step; with the same seeds and a
deterministic ``make_train_loader(seed)`` it ends exactly as an uninterrupted run.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from ..api import prune
from ..plan.config import PruneConfig
from ..errors import ConfigError, PlanError
from ..files import atomic_write_text
from ..measure import count_macs, count_parameters
from ..plan.document import Plan
from ..surgery.serialization import load_pruned, save_pruned
from ..train.distill import DistillConfig
from ..train.finetune import FinetuneConfig, MetricFn, accuracy, evaluate, finetune
from .._internal.validate import check_choice, check_int, check_number
from ..plan.compose import compose_plans
from .reconstruct import DAMP, reconstruct

__all__ = ["IterativeConfig", "IterativeResult", "StepRecord", "iterative_prune"]

STATE = "state.json"
FORMAT = "prunekit.iterative"

StepConfigFn = Callable[[nn.Module, float], PruneConfig]


@dataclass(frozen=True)
class IterativeConfig:
    """Iterative pruning settings.

    - ``target``: stop once the model has this many times fewer ``metric`` (MACs/params).
    - ``budget``: largest allowed metric drop from the dense model (0.005 = 0.5 points);
      ``None`` keeps every step that shrinks the model (a fixed gradual schedule: the
      validation loader is then only reported, never used to accept or roll back).
    - ``step_factor``: reduction asked of each step; after a rollback it becomes
      ``step_factor ** shrink``; the run stops when it falls below ``min_step_factor``.
    - ``finetune`` / ``distill``: recovery after each step (``distill`` uses the dense model).
    - ``reconstruct_batches``: when > 0, each step first re-fits its pruned layers to the
      model before the step (:func:`~prunekit.recover.reconstruct`, damping
      ``reconstruct_damp``) on that many batches of the step's training loader.
    """

    target: float
    budget: float | None
    metric: Literal["macs", "params"] = "macs"
    step_factor: float = 2.0
    shrink: float = 0.5
    min_step_factor: float = 1.05
    max_steps: int = 20
    finetune: FinetuneConfig = field(default_factory=lambda: FinetuneConfig(epochs=2))
    distill: DistillConfig | None = None
    seed: int = 0
    mode: Literal["max", "min"] = "max"
    reconstruct_batches: int = 0
    reconstruct_damp: float = DAMP

    def __post_init__(self) -> None:
        where = "IterativeConfig"
        check_int(self.reconstruct_batches, f"{where}.reconstruct_batches", minimum=0)
        check_number(self.reconstruct_damp, f"{where}.reconstruct_damp", above=0.0)
        check_number(self.target, f"{where}.target", minimum=1.0, hint="times fewer")
        check_number(self.budget, f"{where}.budget", minimum=0.0, optional=True,
                     hint="in metric units (0.005 = half a point of accuracy)")
        check_choice(self.metric, f"{where}.metric", ("macs", "params"))
        check_number(self.min_step_factor, f"{where}.min_step_factor", above=1.0)
        check_number(self.step_factor, f"{where}.step_factor", minimum=self.min_step_factor,
                     hint="at least min_step_factor")
        check_number(self.shrink, f"{where}.shrink", above=0.0, below=1.0)
        check_int(self.max_steps, f"{where}.max_steps", minimum=1)
        check_choice(self.mode, f"{where}.mode", ("max", "min"))
        if not isinstance(self.finetune, FinetuneConfig):
            raise ConfigError(f"{where}.finetune must be a FinetuneConfig")

    def settings(self) -> dict[str, Any]:
        """Plain-data view (stored in the state file to refuse resuming other settings)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class StepRecord:
    """One step: the reduction asked, what it reached, the metric after recovery."""

    step: int
    factor: float
    reduction: float
    metric: float
    drop: float
    accepted: bool
    checkpoint: str | None


@dataclass
class IterativeResult:
    """The last accepted model and its composed plan (``None`` if no step was kept)."""

    model: nn.Module
    plan: Plan | None
    baseline: float
    reduction: float
    metric: float
    history: list[StepRecord] = field(default_factory=list)
    resumed_from: int = 0


def _cost(model: nn.Module, example_inputs: Any, metric: str) -> float:
    if metric == "macs":
        return float(count_macs(model, example_inputs))
    return float(count_parameters(model))


def _digest(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()


def _default_step(config: IterativeConfig) -> StepConfigFn:
    key = "flops_reduction" if config.metric == "macs" else "params_reduction"

    def step(model: nn.Module, factor: float) -> PruneConfig:
        target: dict[str, Any] = {key: factor}
        return PruneConfig(scope="global", **target)
    return step


def iterative_prune(model: nn.Module, example_inputs: Any,
                    make_train_loader: Callable[[int], Iterable[Any]],
                    val_loader: Iterable[Any], config: IterativeConfig,
                    checkpoint_dir: str | Path, *, step_config: StepConfigFn | None = None,
                    metric_fn: MetricFn = accuracy,
                    on_step: Callable[[StepRecord], None] | None = None) -> IterativeResult:
    """Prune ``model`` (left unchanged; a copy is pruned) step by step until the target.

    ``make_train_loader(seed)`` must return the training batches in an order fixed by the
    seed (each step gets ``config.seed + step``). ``step_config(model, factor)`` returns the
    :class:`PruneConfig` of one step (default: global scope with that FLOPs/parameter
    reduction). ``on_step`` is called after each step is committed to disk.
    """
    folder = Path(checkpoint_dir)
    folder.mkdir(parents=True, exist_ok=True)
    step_config = step_config or _default_step(config)
    settings = config.settings()
    dense = copy.deepcopy(model)
    base_cost = _cost(dense, example_inputs, config.metric)
    sign = 1.0 if config.mode == "max" else -1.0
    teacher = copy.deepcopy(model) if config.distill is not None else None
    state_path = folder / STATE
    if state_path.is_file():
        state = json.loads(state_path.read_text())
        if state.get("format") != FORMAT or state.get("settings_digest") != _digest(settings):
            raise ConfigError(f"{str(state_path)!r} belongs to a run with other settings; "
                              "resume with the same IterativeConfig or use another folder")
        history = [StepRecord(**r) for r in state["history"]]
        baseline = float(state["baseline"])
    else:
        state = {"format": FORMAT, "settings_digest": _digest(settings), "settings": settings,
                 "step": 0, "step_factor": float(config.step_factor), "checkpoint": None,
                 "done": False, "history": []}
        history = []
        baseline = evaluate(dense, val_loader, metric_fn)
        state["baseline"] = baseline
    resumed_from = int(state["step"])
    plan: Plan | None = None
    current = copy.deepcopy(dense)
    if state["checkpoint"] is not None:
        source = folder / state["checkpoint"]
        load_pruned(current, source)
        plan = Plan.load(source / "plan.json")
    metric = history_metric(history, baseline)
    reduction = base_cost / max(_cost(current, example_inputs, config.metric), 1.0)

    while not state["done"]:
        step = int(state["step"])
        factor = min(float(state["step_factor"]), config.target / reduction)
        if reduction >= config.target * (1 - 1e-6) or step >= config.max_steps or factor <= 1.0:
            state["done"] = True
            atomic_write_text(state_path, json.dumps(state, indent=1))
            break
        torch.manual_seed(config.seed + step)
        candidate = copy.deepcopy(current)
        pruned = prune(candidate, example_inputs, config=step_config(candidate, factor))
        if config.reconstruct_batches:
            batches = [b for _, b in zip(range(config.reconstruct_batches),
                                         make_train_loader(config.seed + step))]
            reconstruct(candidate, current, pruned.plan, batches, damp=config.reconstruct_damp)
        finetune(candidate, make_train_loader(config.seed + step), val_loader, config.finetune,
                 metric_fn=metric_fn, teacher=teacher, distill=config.distill)
        value = evaluate(candidate, val_loader, metric_fn)
        new_reduction = base_cost / max(_cost(candidate, example_inputs, config.metric), 1.0)
        drop = sign * (baseline - value)
        within = config.budget is None or drop <= config.budget
        accepted = within and new_reduction > reduction * (1 + 1e-9)
        name = None
        if accepted:
            name = f"step_{step:03d}"
            plan = pruned.plan if plan is None else compose_plans(plan, pruned.plan)
            save_pruned(candidate, plan, folder / name)
            current, reduction, metric = candidate, new_reduction, value
            state["checkpoint"] = name
        else:
            state["step_factor"] = float(state["step_factor"]) ** config.shrink
            if state["step_factor"] < config.min_step_factor or new_reduction <= reduction:
                state["done"] = True
        record = StepRecord(step, factor, new_reduction, value, drop, accepted, name)
        history.append(record)
        state["history"] = [dataclasses.asdict(r) for r in history]
        state["step"] = step + 1
        atomic_write_text(state_path, json.dumps(state, indent=1))
        if on_step is not None:
            on_step(record)
    if plan is None and state["checkpoint"] is not None:
        raise PlanError(f"checkpoint {state['checkpoint']!r} in {str(folder)!r} has no plan")
    return IterativeResult(current, plan, baseline, reduction, metric, history, resumed_from)


def history_metric(history: list[StepRecord], baseline: float) -> float:
    """The metric of the last accepted step (the baseline when none was accepted)."""
    for record in reversed(history):
        if record.accepted:
            return record.metric
    return baseline
