"""Sequential one-shot pruning: one block at a time, on the outputs of the pruned blocks.

For each block: gather its linear layers' input statistics on the calibration inputs,
prune every linear layer, then recompute the block's outputs with the pruned weights; those
outputs are the next block's inputs. Only the current block (and the calibration
activations) live on the compute device; each block goes back where it was afterwards.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

from ..errors import ConfigError, DeviceMemoryError
from .calibration import CalibrationData
from .capture import BlockInputs, capture_block_inputs, run_block
from .config import OneShotConfig
from ..hf.families import check_sequence_length, family_of, find_layers
from ..mask.calibration import InputStats
from .layers import get_weight_2d, in_features, prunable_layers, set_weight_2d, shape_2d
from .offload import DiskStore, InMemory
from .outliers import block_sparsities, outlier_ratio


@dataclass(frozen=True)
class LayerReport:
    """One pruned linear layer: where it is, its achieved sparsity, time spent on it."""

    block: int
    name: str
    shape: tuple[int, int]
    sparsity: float
    seconds: float


@dataclass(frozen=True)
class OneShotResult:
    """What a run did; ``hidden`` holds the last block's outputs when asked for."""

    config: OneShotConfig
    layers: tuple[LayerReport, ...]
    seconds: float
    hidden: tuple[torch.Tensor, ...] | None = None

    @property
    def sparsity(self) -> float:
        """Fraction of zeros over all pruned layers' weights."""
        total = sum(r.shape[0] * r.shape[1] for r in self.layers)
        zeros = sum(r.sparsity * r.shape[0] * r.shape[1] for r in self.layers)
        return zeros / total if total else 0.0


def _home_device(model: nn.Module) -> torch.device:
    """Where the model's non-block weights live (blocks offloaded to disk come back there)."""
    for p in model.parameters():
        if not p.is_meta:
            return p.device
    return torch.device("cpu")


def _compute_device(config: OneShotConfig, model: nn.Module, block: nn.Module) -> torch.device:
    if config.device is not None:
        return torch.device(config.device)
    device = next(block.parameters()).device
    return _home_device(model) if device.type == "meta" else device


def _check_layers(layers: dict[str, nn.Module], block_index: int, config: OneShotConfig) -> None:
    pattern = config.mask_pattern
    for name, mod in layers.items():
        pattern.check_shape(f"block {block_index}: {name}", shape_2d(mod))


@torch.no_grad()
def _gather_stats(block: nn.Module, inputs: BlockInputs, layers: dict[str, nn.Module],
                  hessian: bool, device: torch.device) -> dict[str, InputStats]:
    """Input statistics of every layer of ``block`` over the calibration batches."""
    stats = {n: InputStats(in_features(m), hessian=hessian, device=device)
             for n, m in layers.items()}
    handles = [stats[n].attach(m) for n, m in layers.items()]
    try:
        for b in range(len(inputs.hidden)):
            for s in stats.values():
                s.token_mask = inputs.token_masks[b]
            run_block(block, inputs, b)
    finally:
        for h in handles:
            h.remove()
    return stats


@torch.no_grad()
def _prune_block(block: nn.Module, index: int, inputs: BlockInputs,
                 config: OneShotConfig, device: torch.device) -> list[LayerReport]:
    layers = prunable_layers(block, config.ignore)
    _check_layers(layers, index, config)
    stats = _gather_stats(block, inputs, layers, config.needs_hessian, device)
    reports = []
    method, pattern = config.method_impl(), config.mask_pattern
    for name, mod in layers.items():
        t0 = time.perf_counter()
        w = get_weight_2d(mod).to(device)
        new_w = method.prune(w, stats[name], config.sparsity, pattern)
        set_weight_2d(mod, new_w)
        zeros = float((cast(torch.Tensor, mod.weight) == 0).float().mean())
        reports.append(LayerReport(index, name, (w.shape[0], w.shape[1]), zeros,
                                   time.perf_counter() - t0))
        del stats[name]
    return reports


@torch.no_grad()
def _block_configs(model: nn.Module, blocks: nn.ModuleList, data: CalibrationData,
                   config: OneShotConfig, device: torch.device, decoder: bool,
                   store: InMemory | DiskStore) -> list[OneShotConfig]:
    """One config per block: the same sparsity, or OWL's when ``outlier_weighted``."""
    if not config.outlier_weighted:
        return [config] * len(blocks)
    inputs = capture_block_inputs(model, blocks[0], data, config.batch_size, device,
                                  decoder=decoder)
    ratios, sizes = [], []
    for index, block in enumerate(blocks):  # a dense pass: outliers of the unpruned model
        store.fetch(index, block, device)
        layers = prunable_layers(block, config.ignore)
        stats = _gather_stats(block, inputs, layers, False, device)
        weights = [get_weight_2d(m).to(device) for m in layers.values()]
        ratios.append(outlier_ratio(weights, [stats[n].column_norms for n in layers],
                                    config.outlier_threshold))
        sizes.append(sum(w.numel() for w in weights))
        inputs.hidden = [run_block(block, inputs, b) for b in range(len(inputs.hidden))]
        store.put_back(index, block, changed=False)  # the dense pass changes no weights
    sparsities = block_sparsities(ratios, sizes, config.sparsity, config.outlier_spread)
    return [dataclasses.replace(config, sparsity=s, outlier_weighted=False) for s in sparsities]


def prune_sequential(model: nn.Module, data: CalibrationData, config: OneShotConfig, *,
                     return_hidden: bool = False,
                     offload_dir: str | os.PathLike[str] | None = None,
                     keep_offloaded: bool = False) -> OneShotResult:
    """Prune every block of a supported Hugging Face ``model`` in place, block by block.

    ``return_hidden=True`` keeps the last block's outputs on the calibration batches
    (before any final norm), e.g. to check them against a plain forward pass.
    ``offload_dir`` keeps every block but the one being pruned on disk (one safetensors file
    each, see :class:`prunekit.llm.offload.DiskStore`); blocks already on the ``meta``
    device are read from their files there. At the end the blocks come back into memory,
    unless ``keep_offloaded`` (then the files hold the pruned blocks).
    """
    if not isinstance(data, CalibrationData):
        raise ConfigError(
            f"prune_sequential needs CalibrationData (see calibration_from_tensors / "
            f"calibration_from_text), got {type(data).__name__}"
        )
    family = family_of(model)
    blocks = find_layers(model)
    check_sequence_length(model, data.seq_len)
    device = _compute_device(config, model, blocks[0])
    was_training = model.training
    model.eval()
    start = time.perf_counter()
    reports: list[LayerReport] = []
    store = InMemory() if offload_dir is None else DiskStore(offload_dir, model, blocks)
    try:
        configs = _block_configs(model, blocks, data, config, device, family.decoder, store)
        inputs = capture_block_inputs(model, blocks[0], data, config.batch_size, device,
                                      decoder=family.decoder)
        for index, block in enumerate(blocks):
            store.fetch(index, block, device)
            reports.extend(_prune_block(block, index, inputs, configs[index], device))
            with torch.no_grad():
                inputs.hidden = [run_block(block, inputs, b) for b in range(len(inputs.hidden))]
            store.put_back(index, block)
    except torch.OutOfMemoryError as exc:
        raise DeviceMemoryError(
            f"out of memory on {device} while pruning block {len(reports) and reports[-1].block}: "
            f"lower OneShotConfig(batch_size=...), use fewer or shorter calibration sequences, "
            f"or prune on another device ({exc})"
        ) from exc
    finally:
        model.train(was_training)
    if isinstance(store, DiskStore) and not keep_offloaded:
        store.restore(_home_device(model))
    hidden = tuple(h.detach().cpu() for h in inputs.hidden) if return_hidden else None
    return OneShotResult(config, tuple(reports), time.perf_counter() - start, hidden)
