"""Parameter, FLOP and size counts.

FLOPs come from :class:`torch.utils.flop_counter.FlopCounterMode`, not from a hand-written
counter: a multiply-add counts as two FLOPs, and ops PyTorch does not count (elementwise
activations, bias adds, normalisation) are not counted here either.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from prunekit.errors import ConfigError
from prunekit._internal.runtime import eval_mode

__all__ = [
    "ExampleInputs",
    "count_flops",
    "count_macs",
    "count_parameters",
    "model_size_bytes",
    "run_model",
]

#: A single tensor, a tuple/list of positional arguments, or a mapping of keyword arguments.
ExampleInputs = torch.Tensor | tuple[Any, ...] | list[Any] | Mapping[str, Any]


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameter elements in ``model`` (shared parameters counted once)."""
    return sum(
        p.numel()
        for p in model.parameters()
        if p.requires_grad or not trainable_only
    )


def model_size_bytes(model: nn.Module) -> int:
    """Bytes held by the parameters and buffers of ``model`` (shared tensors counted once)."""
    total = 0
    for t in (*model.parameters(), *model.buffers()):
        total += t.numel() * t.element_size()
    return total


def run_model(model: nn.Module, example_inputs: ExampleInputs) -> Any:
    """Call ``model`` on example inputs: a tensor, a tuple/list (positional) or a dict (kwargs)."""
    if isinstance(example_inputs, torch.Tensor):
        return model(example_inputs)
    if isinstance(example_inputs, (tuple, list)):
        return model(*example_inputs)
    if isinstance(example_inputs, Mapping):
        return model(**example_inputs)
    raise ConfigError(
        f"example_inputs must be a tensor, a tuple of tensors or a dict of keyword arguments, "
        f"got {type(example_inputs).__name__}; wrap a single input as a tensor or a tuple"
    )


def count_flops(model: nn.Module, example_inputs: ExampleInputs) -> int:
    """FLOPs of one forward pass of ``model`` on ``example_inputs``, as PyTorch counts them.

    Runs under ``torch.no_grad()`` in eval mode; the training flags of all submodules are
    restored afterwards. The count scales with the batch size of the example.
    """
    with eval_mode(model), torch.no_grad(), _mha_fastpath_disabled():
        counter = FlopCounterMode(display=False, custom_mapping=_EXTRA_FORMULAS)
        with counter:
            run_model(model, example_inputs)
    return int(counter.get_total_flops())


def _sdpa_flops(query_shape: Any, key_shape: Any, value_shape: Any, *args: Any,
                out_shape: Any = None, **kwargs: Any) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


# scaled_dot_product_attention on CPU runs this op, which PyTorch's counter has no formula for
_EXTRA_FORMULAS = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_flops}


@contextmanager
def _mha_fastpath_disabled() -> Iterator[None]:
    """``nn.MultiheadAttention``'s inference fast path is one fused op the FLOP counter does
    not see (and takes it or not by head count), so count on the regular path."""
    mha = getattr(torch.backends, "mha", None)
    if mha is None:
        yield
        return
    enabled = mha.get_fastpath_enabled()
    mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        mha.set_fastpath_enabled(enabled)


def count_macs(model: nn.Module, example_inputs: ExampleInputs) -> int:
    """Multiply-accumulates: ``count_flops(...) // 2``."""
    return count_flops(model, example_inputs) // 2
