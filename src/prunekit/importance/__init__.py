"""Importance criteria: how much each prunable unit matters.

Importing this package registers every built-in criterion; resolve one by name with
:func:`get_importance` or add your own with :func:`register_importance`.
"""

from __future__ import annotations

from .activation import ActivationImportance, APoZImportance
from .base import (
    ActivationStats,
    GroupSlices,
    Importance,
    MemberSlice,
    Normalization,
    Reduction,
    available_importances,
    get_importance,
    register_importance,
)
from .bn_scale import BNScaleImportance
from .gradient import GradientImportance, TaylorImportance
from .magnitude import L1Importance, L2Importance
from .randomized import RandomImportance
from .reduce import (
    MemberImportance,
    NormalizedImportance,
    ReducedImportance,
    normalize_scores,
    reduce_scores,
)
from .redundancy import GeometricMedianImportance, RedundancyImportance

__all__ = [
    "APoZImportance",
    "ActivationImportance",
    "ActivationStats",
    "BNScaleImportance",
    "GeometricMedianImportance",
    "GradientImportance",
    "GroupSlices",
    "Importance",
    "L1Importance",
    "L2Importance",
    "MemberImportance",
    "MemberSlice",
    "Normalization",
    "NormalizedImportance",
    "RandomImportance",
    "Reduction",
    "ReducedImportance",
    "RedundancyImportance",
    "TaylorImportance",
    "available_importances",
    "get_importance",
    "register_importance",
    "normalize_scores",
    "reduce_scores",
]
