"""``prunekit.decompose``: factorize Linear and Conv2d layers, ranks chosen by a criterion.

Stages, each in its own module: find the candidate layers and record their call shapes on
the example inputs; gather their input moments on calibration batches (:mod:`.calibration`);
decompose each layer once with every kind that applies (:mod:`.kinds`); time the options
when latency matters (:mod:`.latency`); choose ranks (:mod:`.rank`); put the factorized
layers in place and record them in the plan (:mod:`.records`).
"""

from __future__ import annotations

import copy
import fnmatch
import math
import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils._pytree import tree_flatten

from ..errors import ConfigError, UnsupportedOpError, VerificationError
from ..measure.counts import ExampleInputs, count_macs, count_parameters, run_model
from ..plan.document import Plan, architecture_fingerprint
from ..allocate.ratios import loss_curve
from ..allocate.sensitivity import SensitivityResult
from .._internal.runtime import eval_mode
from ..surgery.apply import apply_plan
from .calibration import collect_moments
from .candidates import build_candidates
from .config import DecomposeConfig
from .kinds import describe, factorization
from .latency import LayerTimes, timing_grid
from .rank import Candidate, Choice, Option, choose_for_target, choose_per_layer
from .records import FactorizationRecord, parse_records, replace_module
from .result import DecomposeResult, LayerDecision

__all__ = ["DecomposeResult", "LayerDecision", "decompose", "replay"]


def _explicit(cand: Candidate, config: DecomposeConfig) -> Option | None:
    """The option ``config.ranks`` fixes for this layer, if any."""
    pattern = next((p for p in config.ranks if fnmatch.fnmatchcase(cand.name, p)), None)
    if pattern is None:
        return None
    rank = config.ranks[pattern]
    if cand.spec["type"] == "Linear":
        kind = "svd"
    else:
        kind = "tucker2" if isinstance(rank, tuple) else "spatial_svd"
    if kind not in cand.fitted:
        raise UnsupportedOpError(f"ranks[{pattern!r}] asks for {kind} on {cand.name!r}, which "
                                 f"does not apply there (factorizations that do: "
                                 f"{sorted(cand.fitted) or 'none'})")
    checked = factorization(kind).check_rank(cand.spec, rank, f"ranks[{pattern!r}] on "
                                                             f"{cand.name!r}")
    return cand.option(kind, checked)


def _timed(cand: Candidate, times: LayerTimes, only_timed: bool) -> Candidate:
    """``cand`` with the measured time of each option (and only the timed options when
    ``only_timed``: a latency target never takes a rank that was not measured)."""
    options = []
    for opt in cand.options:
        ms = times.ms(cand.name, opt.kind, opt.rank)
        if ms is not None or not only_timed:
            options.append(Option(opt.kind, opt.rank, opt.params, opt.macs, opt.error,
                                  opt.energy, ms))
    return Candidate(cand.name, cand.spec, cand.dense_params, cand.dense_macs, cand.fitted,
                     options, times.dense.get(cand.name), cand.error_on, cand.costs)


def _loss(sensitivity: SensitivityResult | None) -> Any:
    def squared_error(_cand: Candidate, opt: Option) -> float:
        return opt.error ** 2

    if sensitivity is None:
        return squared_error

    def measured(cand: Candidate, opt: Option) -> float:
        if cand.name not in sensitivity.curves:
            return squared_error(cand, opt)
        full = factorization(opt.kind).full_rank(cand.spec)
        removed = 1.0 - float(np.mean([r / f for r, f in zip(opt.rank, full)]))
        return float(loss_curve(sensitivity, cand.name, np.asarray([removed]))[0])
    return measured


def _target(cands: list[Candidate], fixed: dict[str, Option], model: nn.Module,
            example_inputs: ExampleInputs, config: DecomposeConfig,
            times: LayerTimes | None, sensitivity: SensitivityResult | None
            ) -> tuple[dict[str, Option], dict[str, Any]]:
    """Options meeting the config's global target (layers in ``fixed`` keep theirs), and
    the target's summary (metric, target, predicted reduction, the model's base cost)."""
    metric = config.criterion.removesuffix("_reduction")  # type: ignore[union-attr]
    target = float(getattr(config, config.criterion))  # type: ignore[arg-type]
    scale = 1.0
    if metric == "params":
        base = float(count_parameters(model))

        def cost_of(o: Option) -> float:
            return float(o.params)

        def dense_of(c: Candidate) -> float:
            return float(c.dense_params)
    elif metric == "macs":
        base = float(count_macs(model, example_inputs))

        def cost_of(o: Option) -> float:
            return float(o.macs)

        def dense_of(c: Candidate) -> float:
            return float(c.dense_macs)
    else:
        assert times is not None
        base, scale = times.dense_ms, times.scale

        def cost_of(o: Option) -> float:
            return math.inf if o.ms is None else o.ms

        def dense_of(c: Candidate) -> float:
            return times.dense[c.name]
    by_name = {c.name: c for c in cands}
    fixed_saved = sum(scale * (dense_of(by_name[n]) - cost_of(o)) for n, o in fixed.items())
    free = [c for c in cands if c.name not in fixed]
    needed = base - base / target - fixed_saved
    chosen, saved = choose_for_target(free, cost_of, dense_of, needed, _loss(sensitivity),
                                      scale)
    reached = base / max(base - saved - fixed_saved, 1e-12)
    if reached < target * (1 - 1e-9):
        warnings.warn(f"{config.criterion}={target:g} is out of reach: factorizing every layer "
                      f"that gains gives {reached:.3g}x ({metric}); the model was decomposed "
                      "that far", UserWarning, stacklevel=3)
    return chosen, {"metric": metric, "target": target, "predicted": reached,
                    "base": base}


def _build(cand: Candidate, opt: Option, config: DecomposeConfig
           ) -> tuple[nn.Module, Option] | str:
    """The factorized layer for ``opt`` (its real figures), or why the layer stays dense.
    Under an error budget a rank whose built layer misses it is raised to the next one."""
    fitted = cand.fitted[opt.kind]
    ladder = [opt] + [o for o in cand.options if o.kind == opt.kind and o.rank > opt.rank]
    for trial in ladder if config.error is not None else [opt]:
        layer, error, energy = fitted.layer(trial.rank)
        if config.error is None or error <= config.error:
            if trial.params >= cand.dense_params:
                break
            return layer, Option(trial.kind, trial.rank, trial.params, trial.macs, error,
                                 energy, trial.ms)
    if config.error is None:
        return (f"{opt.kind} rank {list(opt.rank)} has {opt.params:,} parameters, no fewer "
                f"than the dense layer's {cand.dense_params:,}")
    return f"no {opt.kind} rank with fewer parameters than the dense layer meets the budget"


def _dense_ms(times: LayerTimes | None, cand: Candidate) -> float | None:
    return None if times is None else times.dense.get(cand.name)


def _shapes(out: Any) -> list[tuple[int, ...]]:
    return [tuple(t.shape) for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]


def decompose(model: nn.Module, example_inputs: ExampleInputs, *,
              config: DecomposeConfig | None = None, calibration: Iterable[Any] | None = None,
              plan: Plan | None = None, latency: LayerTimes | None = None,
              sensitivity: SensitivityResult | None = None,
              **options: Any) -> DecomposeResult:
    """Factorize ``model``'s Linear and Conv2d layers in place and return the result.

    Settings are the fields of :class:`DecomposeConfig` (``config=`` or keywords, e.g.
    ``energy=0.95`` or ``params_reduction=2.0``). ``calibration`` (batches as
    :func:`prunekit.prune` takes them) measures errors on real inputs and is needed for
    ``activation_aware``. ``plan``: the plan that pruned this model, if it was pruned: the
    result's plan is that plan plus the factorizations, so it replays on a fresh unpruned
    model. ``latency``: a :class:`LayerTimes` table (measured here when the target is
    latency and none is given). ``sensitivity``: measured metric drops per layer
    (:func:`prunekit.decompose.sensitivity.analyze_sensitivity`) as the global target's loss.
    """
    if config is None:
        config = DecomposeConfig(**options)
    elif options:
        raise ConfigError(f"pass settings either in config= or as keywords, not both: "
                          f"{sorted(options)}")
    if example_inputs is None:
        raise ConfigError("example_inputs is required: inputs shaped like one real batch")
    architecture = plan.architecture if plan is not None else architecture_fingerprint(model)
    with eval_mode(model), torch.no_grad():
        reference = _shapes(run_model(model, example_inputs))
    batches = list(calibration) if calibration is not None else []
    cands, skipped = build_candidates(model, example_inputs, config, batches)

    fixed = {c.name: opt for c in cands if (opt := _explicit(c, config)) is not None}
    times = latency
    if config.latency_reduction is not None and times is None:
        times = LayerTimes.measure(model, example_inputs,
                                   timing_grid(cands, config.points),
                                   {c.name: c.spec for c in cands})
    if times is not None:
        times.check_model(model)
        cands = [_timed(c, times, config.latency_reduction is not None) for c in cands]
    choices: dict[str, Choice] = {n: Choice(o) for n, o in fixed.items()}
    target: dict[str, Any] = {}
    criterion = config.criterion
    if criterion in ("rank_ratio", "energy", "error"):
        value = float(getattr(config, criterion))
        for cand in cands:
            if cand.name not in choices:
                choices[cand.name] = choose_per_layer(cand, criterion, value, config.round_to)
    elif criterion is not None:
        chosen, target = _target(cands, fixed, model, example_inputs, config, times,
                                 sensitivity)
        for cand in cands:
            if cand.name not in choices:
                choices[cand.name] = Choice(chosen.get(cand.name),
                                            None if cand.name in chosen else
                                            "the target is met without it")

    if times is None and config.time_layers:
        grid = {n: {ch.option.kind: [ch.option.rank]} for n, ch in choices.items()
                if ch.option is not None}
        if grid:
            times = LayerTimes.measure(model, example_inputs, grid,
                                       {c.name: c.spec for c in cands if c.name in grid})

    new_plan = copy.deepcopy(plan) if plan is not None else Plan(architecture=architecture)
    decisions: list[LayerDecision] = []
    for cand in cands:
        choice = choices.get(cand.name, Choice(None, "no rank asked for (ranks=)"))
        built = _build(cand, choice.option, config) if choice.option is not None \
            else (choice.reason or "left dense")
        full = None
        if isinstance(built, str):
            decisions.append(LayerDecision(cand.name, cand.spec["type"], None, None, full,
                                           cand.dense_params, cand.dense_params,
                                           cand.dense_macs, cand.dense_macs, on=cand.error_on,
                                           ms_dense=_dense_ms(times, cand), reason=built))
            continue
        layer, opt = built
        replace_module(model, cand.name, layer)
        full = factorization(opt.kind).full_rank(cand.spec)
        new_plan.decompositions.append(FactorizationRecord(
            cand.name, opt.kind, opt.rank, cand.spec,
            config.activation_aware and opt.kind == "svd").to_dict())
        decisions.append(LayerDecision(cand.name, cand.spec["type"], opt.kind, opt.rank, full,
                                       cand.dense_params, opt.params, cand.dense_macs,
                                       opt.macs, opt.error, opt.energy, cand.error_on,
                                       _dense_ms(times, cand),
                                       None if times is None else
                                       times.ms(cand.name, opt.kind, opt.rank)))
    new_plan.settings = {**new_plan.settings, "decompose": config.settings()}
    with eval_mode(model), torch.no_grad():
        try:
            after = _shapes(run_model(model, example_inputs))
        except Exception as exc:  # noqa: BLE001 - the model's own code may raise anything
            raise VerificationError(f"the decomposed model does not run: "
                                    f"{type(exc).__name__}: {exc}") from exc
    if after != reference:
        raise VerificationError(f"decomposition changed the output shapes from {reference} "
                                f"to {after}")
    if target:
        target["reached"] = target["base"] / max(
            _cost_after(model, example_inputs, target["metric"], decisions, times), 1e-12)
    return DecomposeResult(model, new_plan, decisions, skipped, target)


def _cost_after(model: nn.Module, example_inputs: ExampleInputs, metric: str,
                decisions: list[LayerDecision], times: LayerTimes | None) -> float:
    """The model's cost after decomposition: counted (params, MACs) or predicted (latency)."""
    if metric == "params":
        return float(count_parameters(model))
    if metric == "macs":
        return float(count_macs(model, example_inputs))
    assert times is not None
    saved = sum(d.ms_dense - d.ms for d in decisions
                if d.factorized and d.ms is not None and d.ms_dense is not None)
    return times.dense_ms - times.scale * saved


def replay(model: nn.Module, plan: Plan, calibration: Iterable[Any] | None = None, *,
           damp: float | None = None) -> nn.Module:
    """Apply ``plan`` to a fresh ``model``: its pruning, then its factorizations with factors
    computed from the fresh model's weights; activation-aware ones whitened by
    ``calibration`` batches (``damp`` defaults to the one the plan was made with)."""
    records = parse_records(plan.decompositions)
    pruning = copy.copy(plan)
    pruning.decompositions = []
    apply_plan(model, pruning)
    aware = [r for r in records if r.activation_aware]
    batches = list(calibration) if calibration is not None else []
    if aware and not batches:
        raise ConfigError(f"the plan factorizes {aware[0].module!r} activation-aware: pass "
                          "calibration batches to replay it")
    settings = plan.settings.get("decompose", {})
    damp = float(settings.get("damp", 0.01)) if damp is None else damp
    moments = collect_moments(model, [r.module for r in aware], batches) if aware else {}
    for record in records:
        module = model.get_submodule(record.module)
        kind = factorization(record.kind)
        if describe(module) != record.layer:
            raise ConfigError(f"module {record.module!r} is {describe(module)} here but the "
                              f"plan factorized {record.layer}")
        fitted = kind.fit(module, moments.get(record.module),
                          activation_aware=record.activation_aware, damp=damp,
                          iterations=int(settings.get("tucker_iterations", 2)))
        replace_module(model, record.module, fitted.layer(record.rank)[0])
    return model
