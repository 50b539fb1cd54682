"""YAML recipes: each top-level section maps one-to-one onto a field of :class:`RunConfig`,
each key of a section onto a field of that section's dataclass. Unknown keys are errors that
name the key and list the valid ones. ``yaml`` is imported only here, when a recipe is read.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..plan.config import PruneConfig
from ..decompose.config import DecomposeConfig
from ..errors import ConfigError, RecipeError
from ..export.config import QuantizeConfig
from ..train.distill import DistillConfig
from ..train.finetune import FinetuneConfig
from .config import (
    DataSource,
    DepthWidthRun,
    IterativeRun,
    ModelSource,
    OutputConfig,
    Reconstruct,
    RunConfig,
    ShrinkRun,
)

__all__ = ["SECTIONS", "RecipeError", "load_recipe", "recipe_from_dict", "section"]

#: recipe section → the dataclass it builds
SECTIONS: dict[str, type] = {"model": ModelSource, "data": DataSource, "prune": PruneConfig,
                             "finetune": FinetuneConfig, "distill": DistillConfig,
                             "out": OutputConfig, "iterative": IterativeRun,
                             "reconstruct": Reconstruct, "decompose": DecomposeConfig,
                             "quantize": QuantizeConfig, "shrink": ShrinkRun,
                             "depth_width": DepthWidthRun}


def _valid(keys: list[str]) -> str:
    return ", ".join(keys)


def section(name: str, cls: type, base: Any, values: Any, source: str) -> Any:
    """One recipe section: ``values`` (a mapping) onto ``cls`` (over ``base`` when given);
    unknown keys and bad values are :class:`RecipeError` s naming ``source``."""
    if not isinstance(values, Mapping):
        raise RecipeError(f"{source}: section {name!r} must be a mapping of keys to values, "
                          f"got {type(values).__name__}")
    fields = [f.name for f in dataclasses.fields(cls)]
    for key in values:
        if key not in fields:
            raise RecipeError(f"{source}: unknown key {name}.{key}; valid keys of {name!r}: "
                              f"{_valid(fields)}")
    kwargs = dict(values)
    if cls is DecomposeConfig:
        for key in ("layers", "ignore", "conv"):
            if isinstance(kwargs.get(key), str):
                kwargs[key] = [kwargs[key]]
    if cls is PruneConfig:
        for key in ("ignore", "input_features"):
            if isinstance(kwargs.get(key), str):
                kwargs[key] = [kwargs[key]]
        if "input_features" in kwargs:
            kwargs["input_features"] = [tuple(p) if isinstance(p, (list, tuple)) else p
                                        for p in kwargs["input_features"]]
    try:
        return dataclasses.replace(base, **kwargs) if base is not None else cls(**kwargs)
    except ConfigError as exc:
        raise RecipeError(f"{source}: section {name!r}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise RecipeError(f"{source}: section {name!r} has a value of the wrong kind: {exc}") \
            from None


def recipe_from_dict(data: Any, source: str = "recipe") -> RunConfig:
    """Build a :class:`RunConfig` from parsed recipe data.

    Keys override :class:`RunConfig`'s defaults (so ``finetune.epochs`` stays 0 unless
    given); a missing section or key keeps its default; ``distill: null`` turns
    distillation off; ``reconstruct: {}`` turns reconstruction on with its defaults;
    ``decompose: {energy: 0.95}`` factorizes layers after pruning, ``quantize: {}``
    turns on the deployment measurement, ``shrink: {epochs: 12}`` prunes while
    training instead of once, and ``depth_width: {macs_reduction: 2}`` removes whole blocks
    as well as channels where that measures faster.
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise RecipeError(f"{source} must be a mapping with sections {_valid(list(SECTIONS))}")
    for key in data:
        if key not in SECTIONS:
            raise RecipeError(f"{source}: unknown key {key!r}; valid top-level keys: "
                              f"{_valid(list(SECTIONS))}")
    defaults = RunConfig()
    kwargs: dict[str, Any] = {}
    for name, cls in SECTIONS.items():
        if name not in data:
            continue
        if name in ("distill", "iterative", "reconstruct", "decompose", "quantize",
                    "shrink", "depth_width") \
                and data[name] is None:
            kwargs[name] = None
            continue
        kwargs[name] = section(name, cls, getattr(defaults, name), data[name] or {}, source)
    try:
        return RunConfig(**kwargs)
    except RecipeError:
        raise
    except ConfigError as exc:
        raise RecipeError(f"{source}: {exc}") from None


def load_recipe(path: str | os.PathLike[str]) -> RunConfig:
    """Read a YAML recipe file into a :class:`RunConfig`."""
    import yaml  # lazy: only recipes need it

    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError(f"recipe file {str(source)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"recipe file {str(source)!r} cannot be read: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RecipeError(f"recipe file {str(source)!r} is not valid YAML: "
                          f"{' '.join(str(exc).split())}") from None
    return recipe_from_dict(data, source=f"recipe {str(source)!r}")
