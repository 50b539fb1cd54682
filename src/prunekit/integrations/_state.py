"""What the framework callbacks need from a pruner, and pruner state as one safetensors file.

The file holds every tensor of ``pruner.state_dict()`` (masks, initial weights) under its
path in the state (``masks/fc.weight``) and the rest of the state as JSON in the file's
metadata, so nothing is unpickled when a run resumes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from safetensors.torch import save

from ..errors import ConfigError, PlanError
from ..files import atomic_write_bytes, read_safetensors_document

STATE_FILE = "prunekit_pruner.safetensors"
FORMAT = "prunekit.pruner_state"
VERSION = "1"
_TENSOR = "__tensor__"


@runtime_checkable
class SteppedPruner(Protocol):
    """A pruner called once after each optimizer step (``GradualPruner``,
    ``StructuredGradualPruner``, or your own)."""

    step_count: int

    def step(self) -> float | None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...

    def finalize(self) -> Any: ...


def check_pruner(pruner: object) -> SteppedPruner:
    """Return ``pruner`` if it has the methods the callbacks call, else raise ConfigError."""
    if not isinstance(pruner, SteppedPruner):
        raise ConfigError(f"the callback needs a pruner with step(), state_dict(), "
                          f"load_state_dict(), finalize() and step_count (e.g. "
                          f"prunekit.schedule.GradualPruner), got {type(pruner).__name__}")
    return pruner


def torch_optimizers(optimizers: Any) -> list[torch.optim.Optimizer]:
    """The ``torch.optim`` optimizers behind a framework's (accelerate's
    ``AcceleratedOptimizer``, Lightning's ``LightningOptimizer`` wrap one as ``.optimizer``)."""
    if optimizers is None:
        return []
    if not isinstance(optimizers, (list, tuple)):
        optimizers = [optimizers]
    found = []
    for opt in optimizers:
        while isinstance(getattr(opt, "optimizer", None), torch.optim.Optimizer):
            opt = opt.optimizer
        found.append(opt)
    return found


def attach_optimizers(pruner: SteppedPruner, optimizers: Any) -> None:
    """Give a pruner that slices optimizer state (``ShrinkingPruner``) the framework's
    optimizers; other pruners need none."""
    attach = getattr(pruner, "attach_optimizers", None)
    if callable(attach):
        attach(torch_optimizers(optimizers))


def catch_up(pruner: SteppedPruner, optimizer_steps: int) -> None:
    """Call ``pruner.step()`` until it has counted ``optimizer_steps`` steps."""
    while pruner.step_count < optimizer_steps:
        pruner.step()


def check_in_step(pruner: SteppedPruner, optimizer_steps: int, framework: str) -> None:
    """Raise unless the pruner has counted exactly the framework's optimizer steps."""
    if pruner.step_count != optimizer_steps:
        raise ConfigError(
            f"the pruner has counted {pruner.step_count} optimizer steps but the {framework} "
            f"is at step {optimizer_steps}: create a fresh pruner for a new run, or resume "
            "from a checkpoint saved with this callback so the pruner state is restored")


def _split(value: Any, path: str, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, torch.Tensor):
        tensors[path] = value.detach().to("cpu").contiguous().clone()
        return {_TENSOR: path}
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigError(f"pruner state key {key!r} at {path or '<top>'} is not a "
                                  "string; state dicts saved as files need string keys")
            out[key] = _split(item, f"{path}/{key}" if path else key, tensors)
        return out
    if isinstance(value, (list, tuple)):
        return [_split(item, f"{path}/{i}", tensors) for i, item in enumerate(value)]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ConfigError(f"pruner state entry {path!r} is a {type(value).__name__}; state files "
                      "hold tensors and plain data only")


def _join(value: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    if isinstance(value, dict):
        if set(value) == {_TENSOR}:
            return tensors[value[_TENSOR]]
        return {k: _join(v, tensors) for k, v in value.items()}
    if isinstance(value, list):
        return [_join(v, tensors) for v in value]
    return value


def state_to_bytes(state: Mapping[str, Any]) -> bytes:
    """Serialise a pruner state dict as safetensors bytes (tensors + JSON metadata)."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _split(state, "", tensors)
    metadata = {"format": FORMAT, "version": VERSION, "state": json.dumps(skeleton)}
    return save(tensors, metadata=metadata)


def save_pruner_state(pruner: SteppedPruner, folder: str | os.PathLike[str]) -> Path:
    """Write ``pruner.state_dict()`` to ``folder/prunekit_pruner.safetensors`` atomically."""
    target = Path(folder) / STATE_FILE
    atomic_write_bytes(target, state_to_bytes(pruner.state_dict()))
    return target


def load_pruner_state(folder_or_file: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a state written by :func:`save_pruner_state` (a folder or the file itself)."""
    source = Path(folder_or_file)
    if source.is_dir():
        source = source / STATE_FILE
    where = repr(str(source))
    if not source.is_file():
        raise PlanError(f"no pruner state at {where}: it is written into each checkpoint by "
                        "the prunekit training callbacks")
    tensors, meta = read_safetensors_document(source, "pruner state", FORMAT, VERSION)
    state = _join(json.loads(meta["state"]), tensors)
    if not isinstance(state, dict):
        raise PlanError(f"{where} holds no pruner state dict")
    return state
