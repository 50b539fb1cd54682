"""Masked sparsity: masks as parametrizations, patterns, scores, finalisation, storage.

- patterns: :class:`Unstructured` (local/global), :class:`NM` (any N:M along the input
  dimension), :class:`Block`;
- :func:`sparsify` installs masks at a sparsity (one shot); :class:`MaskConfig` says how;
  :class:`prunekit.schedule.GradualPruner` grows sparsity during training;
- :func:`finalize` bakes masks into weights; :func:`save_compressed` /
  :func:`load_compressed` store bitmask + non-zero values in safetensors;
- :func:`accelerate_semi_structured` converts 2:4 Linear layers on GPU where measured faster;
- :class:`InputStats`: statistics of a layer's calibration inputs (input norms, ``X^T X``),
  shared with the one-shot methods of :mod:`prunekit.llm`.

State-dict keys while masked: see :mod:`prunekit.mask.parametrization`.
"""

from __future__ import annotations

from .accelerate import (
    AccelerationReport,
    LayerDecision,
    accelerate_semi_structured,
    cuda_measure,
    is_two_four,
    plan_semi_structured,
)
from .calibration import InputNormRecorder, InputStats
from .checkpoint import load_compressed, load_compressed_into, save_compressed
from .compute import nm_mask, prune_lowest, prune_lowest_global
from .parametrization import (
    WeightMask,
    finalize,
    finalized_state_dict,
    get_mask,
    is_masked,
    masked_modules,
    original_parameter,
    remove_mask,
    set_mask,
)
from .patterns import NM, Block, Pattern, Unstructured
from .scores import (
    InputNormWeightedImportance,
    element_scores,
    resolve_element_importance,
)
from .sparsify import MaskConfig, apply_masks, layer_scores, mask_sparsity, sparsify
from .targets import DEFAULT_LAYER_TYPES, MaskTarget, maskable_targets

__all__ = [
    "DEFAULT_LAYER_TYPES",
    "NM",
    "AccelerationReport",
    "Block",
    "InputNormRecorder",
    "InputStats",
    "InputNormWeightedImportance",
    "LayerDecision",
    "MaskConfig",
    "MaskTarget",
    "Pattern",
    "Unstructured",
    "WeightMask",
    "accelerate_semi_structured",
    "apply_masks",
    "cuda_measure",
    "element_scores",
    "finalize",
    "finalized_state_dict",
    "get_mask",
    "is_masked",
    "is_two_four",
    "layer_scores",
    "load_compressed",
    "load_compressed_into",
    "mask_sparsity",
    "maskable_targets",
    "masked_modules",
    "nm_mask",
    "original_parameter",
    "plan_semi_structured",
    "prune_lowest",
    "prune_lowest_global",
    "remove_mask",
    "resolve_element_importance",
    "save_compressed",
    "set_mask",
    "sparsify",
]
