"""Catch what the model feeds its first block, then replay blocks on those inputs.

A forward pre-hook on block 0 records its positional and keyword arguments (attention
mask, position ids, rotary ``position_embeddings``, ...) for each calibration batch and
stops the forward pass, so only the embeddings run. Replaying a block swaps in new hidden
states and keeps the other arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .calibration import CalibrationData


class StopForward(Exception):
    """Raised by a hook to end a forward pass once what it needs was recorded."""


def _to(obj: Any, device: torch.device) -> Any:
    """Move tensors (nested in tuples, lists, dicts) to ``device``; drop KV caches."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if type(obj).__name__.endswith("Cache"):
        return None
    if isinstance(obj, tuple):
        return tuple(_to(o, device) for o in obj)
    if isinstance(obj, list):
        return [_to(o, device) for o in obj]
    if isinstance(obj, dict):
        return {k: _to(v, device) for k, v in obj.items()}
    return obj


@dataclass
class BlockInputs:
    """Per calibration batch: hidden states, the other block arguments, the token mask."""

    hidden: list[torch.Tensor]
    args: list[tuple[Any, ...]]
    kwargs: list[dict[str, Any]]
    token_masks: list[torch.Tensor | None]


@torch.no_grad()
def capture_block_inputs(model: nn.Module, first_block: nn.Module, data: CalibrationData,
                         batch_size: int, device: torch.device, *,
                         decoder: bool) -> BlockInputs:
    """Run the model on each batch up to ``first_block`` and record that block's inputs."""
    record: dict[str, Any] = {}

    def hook(_mod: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        record["args"], record["kwargs"] = args, kwargs
        raise StopForward

    model_device = next(model.parameters()).device
    out = BlockInputs([], [], [], [])
    handle = first_block.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        for ids, mask in data.batches(batch_size):
            extra: dict[str, Any] = {"use_cache": False} if decoder else {}
            if mask is not None:
                extra["attention_mask"] = mask.to(model_device)
            try:
                model(input_ids=ids.to(model_device), **extra)
            except StopForward:
                pass
            args, kwargs = record.pop("args"), dict(record.pop("kwargs"))
            if args:
                hidden, rest = args[0], args[1:]
            else:
                hidden, rest = kwargs.pop("hidden_states"), ()
            if "use_cache" in kwargs:
                kwargs["use_cache"] = False
            out.hidden.append(hidden.detach().to(device))
            out.args.append(_to(rest, device))
            out.kwargs.append(_to(kwargs, device))
            out.token_masks.append(None if mask is None else mask.to(device).bool())
    finally:
        handle.remove()
    return out


def run_block(block: nn.Module, inputs: BlockInputs, index: int) -> torch.Tensor:
    """Block output hidden states for calibration batch ``index``."""
    result = block(inputs.hidden[index], *inputs.args[index], **inputs.kwargs[index])
    return result[0] if isinstance(result, (tuple, list)) else result
