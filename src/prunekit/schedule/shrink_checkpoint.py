"""Training checkpoints of a shrinking run: plans, weights, optimizer and pruner state.

A checkpoint taken after any number of shrinks reloads into the shrunk architecture: the
pruner state carries the plans applied so far (JSON), which are replayed on a fresh instance
of the dense model before the weights (safetensors) are loaded. Nothing is pickled. Files in
the folder:

- ``model.safetensors``: the weights of the (shrunk) model;
- ``plans.json``: the applied plans, in order (for review; the pruner state carries them too);
- ``prunekit_pruner.safetensors``: :meth:`ShrinkingPruner.state_dict` (tensors + JSON);
- ``optimizer-<i>.safetensors``: ``optimizers[i].state_dict()`` (see :mod:`.optim_state`);
- ``rng.safetensors``: the CPU random generator state (``rng=True``), so a resumed run draws
  what an uninterrupted one would.

The folder is written beside its final place and moved there when complete, so a run
killed while saving leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_model, save, save_model

from ..errors import PlanError
from ..integrations._state import STATE_FILE, load_pruner_state, state_to_bytes
from .optim_state import load_optimizer_state, optimizer_state_to_bytes
from .shrink import ShrinkingPruner

__all__ = ["load_training_checkpoint", "save_training_checkpoint"]

WEIGHTS = "model.safetensors"
PLANS = "plans.json"
RNG = "rng.safetensors"


def _optimizer_file(i: int) -> str:
    return f"optimizer-{i}.safetensors"


def save_training_checkpoint(folder: str | os.PathLike[str], pruner: ShrinkingPruner,
                             optimizers: Sequence[torch.optim.Optimizer] = (), *,
                             rng: bool = True) -> Path:
    """Write the model, the pruner and ``optimizers`` (default: the pruner's) to ``folder``."""
    target = Path(folder)
    target.parent.mkdir(parents=True, exist_ok=True)
    optimizers = list(optimizers) or list(pruner.optimizers)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        save_model(pruner.model, str(staging / WEIGHTS))
        (staging / PLANS).write_text(json.dumps([p.to_dict() for p in pruner.plans], indent=1))
        (staging / STATE_FILE).write_bytes(state_to_bytes(pruner.state_dict()))
        for i, opt in enumerate(optimizers):
            (staging / _optimizer_file(i)).write_bytes(
                optimizer_state_to_bytes(opt.state_dict()))
        if rng:
            (staging / RNG).write_bytes(save({"cpu": torch.get_rng_state()}))
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
            os.replace(target, old / "previous")
        os.replace(staging, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def load_training_checkpoint(folder: str | os.PathLike[str], pruner: ShrinkingPruner,
                             optimizers: Sequence[torch.optim.Optimizer] = (), *,
                             rng: bool = True) -> None:
    """Resume a run: ``pruner`` must be freshly made on a fresh dense model (as at the start
    of the run); its plans are replayed, then weights, ``optimizers`` (default: the
    pruner's, built on ``model.parameters()`` before or after this call) and the random
    generator are restored."""
    source = Path(folder)
    if not (source / STATE_FILE).is_file():
        raise PlanError(f"{str(source)!r} is not a shrinking-run checkpoint (no {STATE_FILE}); "
                        "write it with prunekit.schedule.save_training_checkpoint")
    optimizers = list(optimizers) or list(pruner.optimizers)
    for i in range(len(optimizers)):
        if not (source / _optimizer_file(i)).is_file():
            raise PlanError(f"{str(source)!r} holds no state for optimizer {i} "
                            f"({_optimizer_file(i)}); pass as many optimizers as were saved")
    known = {id(o) for o in pruner.optimizers}
    pruner.attach_optimizers([o for o in optimizers if id(o) not in known])
    pruner.load_state_dict(load_pruner_state(source))
    try:
        load_model(pruner.model, str(source / WEIGHTS), strict=True)
    except SafetensorError as exc:
        raise PlanError(f"{str(source / WEIGHTS)!r} is not a valid safetensors file: {exc}") \
            from None
    except RuntimeError as exc:
        raise PlanError(f"the weights in {str(source / WEIGHTS)!r} do not fit the replayed "
                        f"model: {exc}") from None
    for i, opt in enumerate(optimizers):
        opt.load_state_dict(load_optimizer_state(source / _optimizer_file(i)))
    if rng and (source / RNG).is_file():
        with safe_open(str(source / RNG), framework="pt") as handle:
            torch.set_rng_state(handle.get_tensor("cpu"))
