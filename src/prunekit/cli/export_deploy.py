"""``prunekit export --int8``: the deployment measurement of a pruned folder, with the dense
model and the data of the run that wrote it (from its report.json) where it names them."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import PrunekitError, QuantizationError
from ..export.config import QuantizeConfig
from ..export.deploy import Deployment
from ..workflow.config import DataSource, ModelSource
from ..workflow.deploy import DeployData, deploy_data, run_deployment
from ..workflow.inputs import build_model

__all__ = ["deploy_folder"]


def _known(cls: type, values: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``values`` that are fields of dataclass ``cls``."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in values.items() if k in names}


def _data_source(options: Mapping[str, Any], run: Mapping[str, Any]) -> DataSource | None:
    if options.get("spec"):
        given = {k: v for k, v in options.items() if v is not None}
        given.setdefault("metric", "accuracy")
        return DataSource(**given)
    recorded = run.get("data")
    return DataSource(**_known(DataSource, recorded)) if isinstance(recorded, dict) else None


def deploy_folder(config: QuantizeConfig, target: Path, pruned: nn.Module,
                  example: torch.Tensor, spec_text: str, shape: tuple[int, ...],
                  run: Mapping[str, Any], *, data_options: Mapping[str, Any],
                  trust_pickle: bool, log: Callable[[str], None]) -> Deployment:
    """Measure the pruned model (files beside ``target``) against the dense one.

    The dense model is the run's (its spec and weights, from ``settings.run.model``), else
    the architecture freshly built (timed, not scored). Data: ``--calibration``, else the
    run's data, else none (static formats then cannot be made).
    """
    recorded = run.get("model") if isinstance(run.get("model"), dict) else None
    source = (ModelSource(**_known(ModelSource, recorded)) if recorded
              else ModelSource(spec_text, input_shape=shape, trust_pickle=trust_pickle))
    data_source = _data_source(data_options, run)
    explicit_static = config.int8 == "static" or (
        config.formats is not None and config.needs_calibration)
    if data_source is None and explicit_static:
        raise QuantizationError("static int8 needs calibration data: pass --calibration DATA "
                                "(the folder's report.json names no data); nothing was written")
    try:
        built = build_model(source, log=log)
        scored = source.weights is not None
    except PrunekitError as exc:
        log(f"dense model not rebuilt with its weights ({exc}); timing the architecture only")
        built = build_model(ModelSource(spec_text, input_shape=shape, trust_pickle=trust_pickle))
        scored = False
    data: DeployData | None = None
    dense_example = built.spec.random_example(shape)
    if data_source is not None:
        data, dense_example = deploy_data(built, source, data_source)
        example = dense_example
        log(f"data: {data.name} (calibration and metric)")
    return run_deployment(config, target.parent, dense=built.model.eval(), pruned=pruned,
                          dense_example=dense_example, pruned_example=example, data=data,
                          score_dense=scored, stem=target.stem, log=log)
