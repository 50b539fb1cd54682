"""Compressed checkpoints: a bitmask plus the non-zero values, in one safetensors file.

Each tensor is stored in the smaller of two encodings:

- ``sparse``: ``bitmask/<key>`` (``np.packbits`` of "this element's bits are not all zero",
  uint8) and ``values/<key>`` (those elements, in the tensor's own dtype, in order);
- ``dense``: ``dense/<key>``, the tensor as it is.

The test for "zero" is on the bit pattern, so ``-0.0`` and NaN are kept as values and the
round trip is bit-exact. The file's metadata records the format, version and each
tensor's encoding, dtype and shape. Files are written to a temporary file in the target
folder and moved into place with ``os.replace``, so a crash never leaves half a file.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from typing import Any
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from ..errors import PlanError
from ..files import atomic_write_bytes
from .parametrization import finalized_state_dict

FORMAT = "prunekit.compressed"
VERSION = "1"
_INT_VIEW = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def _nonzero_bits(t: torch.Tensor) -> torch.Tensor:
    """Boolean tensor: which elements have a bit pattern other than all zeros."""
    if t.dtype == torch.bool:
        return t
    if t.is_floating_point():
        return t.view(_INT_VIEW[t.element_size()]) != 0
    return t != 0


def _sparse_bytes(t: torch.Tensor, nnz: int) -> int:
    return math.ceil(t.numel() / 8) + nnz * t.element_size()


def _encode(key: str, t: torch.Tensor, out: dict[str, torch.Tensor]) -> str:
    t = t.detach().to("cpu").contiguous()
    sparse_ok = t.dim() > 0 and t.numel() > 0 and not t.is_complex() and t.dtype != torch.bool
    if sparse_ok:
        nz = _nonzero_bits(t).reshape(-1)
        nnz = int(nz.sum())
        if _sparse_bytes(t, nnz) < t.numel() * t.element_size():
            out[f"bitmask/{key}"] = torch.from_numpy(np.packbits(nz.numpy()))
            out[f"values/{key}"] = t.reshape(-1)[nz].clone()
            return "sparse"
    out[f"dense/{key}"] = t.clone()
    return "dense"


def save_compressed(source: nn.Module | Mapping[str, torch.Tensor],
                    path: str | os.PathLike[str]) -> Path:
    """Write ``source`` (a model, masked or not, or a state dict) as a compressed checkpoint.

    A masked model is saved as it will be after :func:`prunekit.mask.finalize`: its own
    keys (``fc.weight``) with pruned weights stored as zeros.
    """
    state = finalized_state_dict(source) if isinstance(source, nn.Module) else dict(source)
    tensors: dict[str, torch.Tensor] = {}
    entries: dict[str, dict[str, object]] = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise PlanError(f"entry {key!r} is a {type(value).__name__}, not a tensor; "
                            "a compressed checkpoint stores tensors only")
        encoding = _encode(key, value, tensors)
        entries[key] = {"encoding": encoding, "dtype": str(value.dtype).removeprefix("torch."),
                        "shape": list(value.shape)}
    metadata = {"format": FORMAT, "version": VERSION, "tensors": json.dumps(entries)}
    target = Path(path)
    atomic_write_bytes(target, save(tensors, metadata=metadata))
    return target


def _decode(key: str, entry: Mapping[str, Any], handle: object, where: str) -> torch.Tensor:
    dtype = getattr(torch, str(entry["dtype"]))
    shape = [int(s) for s in entry["shape"]]
    if entry["encoding"] == "dense":
        return handle.get_tensor(f"dense/{key}")  # type: ignore[attr-defined]
    if entry["encoding"] != "sparse":
        raise PlanError(f"{where}: tensor {key!r} has unknown encoding {entry['encoding']!r}")
    numel = math.prod(shape)
    bits = handle.get_tensor(f"bitmask/{key}").numpy()  # type: ignore[attr-defined]
    values = handle.get_tensor(f"values/{key}")  # type: ignore[attr-defined]
    nz = torch.from_numpy(np.unpackbits(bits, count=numel).astype(np.bool_))
    if int(nz.sum()) != values.numel() or values.dtype != dtype:
        raise PlanError(f"{where}: tensor {key!r} is corrupt (bitmask and values disagree)")
    out = torch.zeros(numel, dtype=dtype)
    out[nz] = values
    return out.reshape(shape)


def load_compressed(path: str | os.PathLike[str],
                    device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Read a compressed checkpoint back into a state dict (bit-exact)."""
    source = Path(path)
    where = repr(str(source))
    if not source.is_file():
        raise PlanError(f"{where} does not exist: write it with prunekit.mask.save_compressed")
    try:
        with safe_open(str(source), framework="pt") as handle:
            meta = handle.metadata() or {}
            if meta.get("format") != FORMAT:
                raise PlanError(f"{where} is not a prunekit compressed checkpoint "
                                f"(format {meta.get('format')!r}); load it with safetensors")
            if meta.get("version") != VERSION:
                raise PlanError(f"{where} has format version {meta.get('version')!r}; this "
                                f"prunekit reads version {VERSION}")
            entries = json.loads(meta["tensors"])
            state = {key: _decode(key, entry, handle, where) for key, entry in entries.items()}
    except SafetensorError as exc:
        raise PlanError(f"{where} is not a valid safetensors file: {exc}") from None
    return {k: v.to(device) for k, v in state.items()}


def load_compressed_into(model: nn.Module, path: str | os.PathLike[str],
                         strict: bool = True) -> nn.Module:
    """Load a compressed checkpoint into an unmasked (or finalised) ``model``."""
    state = load_compressed(path)
    try:
        model.load_state_dict(state, strict=strict)
    except RuntimeError as exc:
        raise PlanError(f"the checkpoint {str(path)!r} does not fit "
                        f"{type(model).__name__}: {exc}") from None
    return model
