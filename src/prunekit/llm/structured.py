"""Structured one-shot pruning: remove FFN neurons and attention heads, re-fit what follows.

Block by block, on calibration data (the same capture/replay as :func:`prune_sequential`):

1. heads: gather the inputs ``X`` of the attention output projection (the concatenated
   per-head outputs), choose the heads to remove (``importance``), re-fit the projection's
   kept columns by least squares (:func:`refit_weights`) and zero the removed ones;
2. FFN: the same with the down projection's inputs (the intermediate activations),
   gathered with the already pruned attention;
3. recompute the block's outputs: the next block's inputs.

Zeroed input columns of a projection are exactly what removing the units does, so the pass
sees the pruned model throughout. At the end the structural engine removes the units for
real (:func:`~prunekit.remove_units`): rows of the up/gate/query/key/value projections, columns of the
following ones, head counts. Unit counts are ``floor(ratio * units)`` per block.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError, DeviceMemoryError
from .._internal.validate import check_bool, check_fraction, check_int, check_number
from ..plan.document import Plan
from .calibration import CalibrationData
from .capture import BlockInputs, StopForward, capture_block_inputs, run_block
from ..hf.families import check_sequence_length, family_of, find_layers
from .layers import get_weight_2d, in_features, set_weight_2d
from ..mask.calibration import InputStats
from .refit import (
    UNIT_CRITERIA,
    UnitProblem,
    covariance,
    refit_weights,
    relative_error,
)
from .units import KINDS, BlockUnits, block_units, remove_chosen, units_graph


@dataclass(frozen=True)
class StructuredOneShotConfig:
    """How many FFN neurons and heads each block loses, how they are chosen and re-fitted.

    ``ffn_ratio`` / ``head_ratio``: fraction of each block's FFN neurons / attention heads
    removed (with grouped-query attention the unit is a key/value group). ``importance``:
    ``"wanda"`` (``||W[:, j]|| * ||X_j||`` summed over a unit's columns) or ``"obs"``
    (greedy Optimal Brain Surgeon: least output error after re-fitting, ``obs_rounds``
    batches). ``refit``: least-squares re-fit of the following projection's kept columns,
    damped by ``damp`` times the mean diagonal of the Gram matrix (0.1 generalised best on
    MiniLM with ~3k calibration tokens; with far more tokens than features less is needed).
    ``bias_correction``: when that projection has a bias, fit an intercept (the bias
    absorbs the mean of the removed activations); the Wanda score then uses the centred
    ``||X_j - mean||``. ``device``: where each block is processed (default: where it is).
    """

    ffn_ratio: float = 0.5
    head_ratio: float = 0.25
    importance: str = "wanda"
    refit: bool = True
    bias_correction: bool = True
    damp: float = 0.1
    obs_rounds: int = 16
    batch_size: int = 8
    device: str | None = None

    def __post_init__(self) -> None:
        where = "StructuredOneShotConfig"
        for name in ("ffn_ratio", "head_ratio"):
            r = getattr(self, name)
            if isinstance(r, (int, float)) and not isinstance(r, bool) and r >= 1.0:
                what = "attention head" if name == "head_ratio" else "FFN neuron"
                raise ConfigError(
                    f"{where}: {name}={r!r} would remove every {what} of each block; "
                    f"it must be in [0, 1) (0.25 removes a quarter)")
            check_fraction(r, f"{where}: {name}")
        if self.importance not in UNIT_CRITERIA:
            raise ConfigError(f"{where}: unknown importance {self.importance!r}; "
                              f"choose one of {sorted(UNIT_CRITERIA)}")
        for name in ("refit", "bias_correction"):
            check_bool(getattr(self, name), f"{where}: {name}")
        check_number(self.damp, f"{where}: damp", minimum=0.0, below=1.0, hint="0.1 is typical")
        for name in ("obs_rounds", "batch_size"):
            check_int(getattr(self, name), f"{where}: {name}", minimum=1)

    def ratio(self, kind: str) -> float:
        """The ratio for ``"heads"`` or ``"ffn"``."""
        return self.head_ratio if kind == "heads" else self.ffn_ratio


#: the former name (docs/large_models.md shows it)
StructuredConfig = StructuredOneShotConfig


@dataclass(frozen=True)
class UnitReport:
    """One block's heads or FFN neurons: what was kept and how well the re-fit did.

    ``error_removed`` is the relative output error of the projection (mean over calibration
    tokens of ``||dy||^2 / ||y||^2``) with the units merely removed; ``error`` after bias
    correction and re-fit (as configured).
    """

    block: int
    kind: str
    layer: str
    units: int
    kept: tuple[int, ...]
    error_removed: float
    error: float
    seconds: float


@dataclass(frozen=True)
class StructuredResult:
    """What a run did: per-block reports, the engine's plan, time; ``hidden`` on request."""

    config: StructuredOneShotConfig
    layers: tuple[UnitReport, ...]
    plan: Plan | None
    seconds: float
    hidden: tuple[torch.Tensor, ...] | None = None

    def kept(self, kind: str) -> list[tuple[int, ...]]:
        """Kept unit indices per block for ``"heads"`` or ``"ffn"`` (pruned kinds only)."""
        return [r.kept for r in self.layers if r.kind == kind]


@torch.no_grad()
def _gather(block: nn.Module, layer: nn.Module, inputs: BlockInputs,
            device: torch.device) -> InputStats:
    stats = InputStats(in_features(layer), hessian=True, mean=True, device=device,
                       precision=torch.float64)
    handle = stats.attach(layer, stop=StopForward)
    try:
        for b in range(len(inputs.hidden)):
            stats.token_mask = inputs.token_masks[b]
            try:
                run_block(block, inputs, b)
            except StopForward:
                pass
    finally:
        handle.remove()
    return stats


@torch.no_grad()
def _prune_units(block: nn.Module, index: int, units: BlockUnits, inputs: BlockInputs,
                 config: StructuredOneShotConfig, device: torch.device) -> tuple[UnitReport, list[int]]:
    """Choose, re-fit and zero one block's heads or neurons; return the report and the choice."""
    t0 = time.perf_counter()
    layer = block.get_submodule(units.layer)
    n_remove = math.floor(config.ratio(units.kind) * units.n_units + 1e-9)
    moment, mean = _gather(block, layer, inputs, device).moments()
    bias = getattr(layer, "bias", None)
    weight = get_weight_2d(layer).to(device, torch.float64)
    center = config.bias_correction and bias is not None
    problem = UnitProblem(weight, covariance(moment, mean) if center else moment,
                          units.columns.to(device), config.damp, config.obs_rounds)
    chosen = UNIT_CRITERIA[config.importance](problem, n_remove).tolist()
    columns = units.columns[chosen].reshape(-1).to(device)
    new_w, new_b = refit_weights(weight, moment, columns, damp=config.damp,
                                 mean=mean if center else None,
                                 bias=None if bias is None else bias.detach().to(device),
                                 refit=config.refit)
    plain = weight.clone()
    plain[:, columns] = 0.0
    shift = None if new_b is None or bias is None else new_b - bias.detach().to(new_b)
    errors = (relative_error(weight, plain, moment, mean),
              relative_error(weight, new_w, moment, mean, shift))
    set_weight_2d(layer, new_w)
    if new_b is not None and bias is not None:
        bias.copy_(new_b.to(bias))
    kept = tuple(sorted(set(range(units.n_units)) - set(chosen)))
    report = UnitReport(index, units.kind, units.layer, units.n_units, kept, *errors,
                        time.perf_counter() - t0)
    return report, sorted(chosen)


def _warn_no_units(found: list[dict[str, BlockUnits]], config: StructuredOneShotConfig) -> None:
    for kind in KINDS:
        ratio = config.ratio(kind)
        sizes = [u[kind].n_units for u in found if kind in u]
        if ratio > 0 and sizes and all(math.floor(ratio * n + 1e-9) == 0 for n in sizes):
            what = "head_ratio" if kind == "heads" else "ffn_ratio"
            warnings.warn(f"{what}={ratio} removes no unit: blocks have {min(sizes)} "
                          f"{'heads (key/value groups)' if kind == 'heads' else 'neurons'}",
                          UserWarning, stacklevel=3)


def prune_structured(model: nn.Module, data: CalibrationData, config: StructuredOneShotConfig, *,
                     return_hidden: bool = False) -> StructuredResult:
    """Remove FFN neurons and heads of every block of a Hugging Face ``model`` in place.

    ``return_hidden=True`` keeps the last block's outputs on the calibration batches (they
    equal what the pruned model's last block returns on them).
    """
    if not isinstance(data, CalibrationData):
        raise ConfigError(
            f"prune_structured needs CalibrationData (see calibration_from_tensors / "
            f"calibration_from_text), got {type(data).__name__}")
    if not isinstance(config, StructuredOneShotConfig):
        raise ConfigError(f"prune_structured needs a StructuredOneShotConfig, got "
                          f"{type(config).__name__}")
    family = family_of(model)
    blocks = find_layers(model)
    check_sequence_length(model, data.seq_len)
    device = torch.device(config.device) if config.device is not None \
        else next(blocks[0].parameters()).device
    example = data.input_ids[:1].long().to(next(model.parameters()).device)
    was_training = model.training
    model.eval()
    start = time.perf_counter()
    reports: list[UnitReport] = []
    removed: dict[str, list[int]] = {}
    try:
        graph = units_graph(model, example)
        found = block_units(model, blocks, graph)
        for index, units in enumerate(found):
            missing = [k for k in KINDS if config.ratio(k) > 0 and k not in units]
            if missing:
                raise ConfigError(
                    f"block {index} of {type(model).__name__}: no prunable group of "
                    f"{missing[0]} found in its dependency graph; set that ratio to 0")
        _warn_no_units(found, config)
        inputs = capture_block_inputs(model, blocks[0], data, config.batch_size, device,
                                      decoder=family.decoder)
        for index, block in enumerate(blocks):
            home = next(block.parameters()).device
            block.to(device)
            for kind in KINDS:
                group_units = found[index].get(kind)
                if group_units is None or config.ratio(kind) == 0:
                    continue
                report, chosen = _prune_units(block, index, group_units, inputs, config, device)
                reports.append(report)
                removed[group_units.group] = chosen
            with torch.no_grad():
                inputs.hidden = [run_block(block, inputs, b) for b in range(len(inputs.hidden))]
            block.to(home)
        plan = remove_chosen(model, example, graph, removed) if any(removed.values()) else None
    except torch.OutOfMemoryError as exc:
        raise DeviceMemoryError(
            f"out of memory on {device} during structured pruning: lower "
            f"StructuredOneShotConfig(batch_size=...) or use fewer calibration sequences ({exc})"
        ) from exc
    finally:
        model.train(was_training)
    hidden = tuple(h.detach().cpu() for h in inputs.hidden) if return_hidden else None
    return StructuredResult(config, tuple(reports), plan, time.perf_counter() - start, hidden)
