"""What a decomposition reads from real runs: each layer's call shapes on the example inputs
and the moments of its input rows on calibration batches (forward hooks, one pass each).

Input rows are what the weight multiplies: a Linear's input vectors, a convolution's patches
(:func:`prunekit.recover.reconstruct.input_patches`). When a batch is a mapping with an
``attention_mask`` and a Linear's input has the mask's leading shape (``[batch, tokens,
features]``), masked positions (padding) are left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..graph.trace import as_args
from ..mask.calibration import InputStats
from ..measure.counts import ExampleInputs, run_model
from ..recover.reconstruct import batch_inputs, input_patches
from .._internal.runtime import eval_mode
from .kinds import InputMoments, LayerShapes

__all__ = ["collect_moments", "record_shapes"]


def _first_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)):
        return next((v for v in value if isinstance(v, torch.Tensor)), None)
    return None


def record_shapes(model: nn.Module, example_inputs: ExampleInputs,
                  names: Sequence[str]) -> dict[str, list[LayerShapes]]:
    """Input and output shapes of every call of each named layer in one forward pass."""
    shapes: dict[str, list[LayerShapes]] = {n: [] for n in names}

    def hook_for(name: str) -> Any:
        def hook(_mod: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            x, y = _first_tensor(args), _first_tensor(output)
            if x is not None and y is not None:
                shapes[name].append(LayerShapes(tuple(x.shape), tuple(y.shape)))
        return hook

    handles = [model.get_submodule(n).register_forward_hook(hook_for(n)) for n in names]
    try:
        with eval_mode(model), torch.no_grad():
            run_model(model, example_inputs)
    finally:
        for h in handles:
            h.remove()
    return shapes


def _token_mask(inputs: Any) -> torch.Tensor | None:
    if isinstance(inputs, Mapping):
        mask = inputs.get("attention_mask")
        if isinstance(mask, torch.Tensor):
            return mask
    return None


def collect_moments(model: nn.Module, names: Sequence[str], batches: Iterable[Any], *,
                    device: torch.device | str = "cpu") -> dict[str, InputMoments]:
    """``E[x x^T]`` and ``E[x]`` of each named layer's input rows over ``batches``.

    Sums are kept in float64 on ``device``. A layer that never runs on the batches (or sees
    only masked rows) is missing from the result.
    """
    layers = {n: model.get_submodule(n) for n in names}
    stats = {n: InputStats(layer.get_parameter("weight")[0].numel(), hessian=True, mean=True, device=device,
                           precision=torch.float64)
             for n, layer in layers.items()}

    def hook_for(name: str) -> Any:
        layer, acc = layers[name], stats[name]

        def hook(_mod: nn.Module, args: tuple[Any, ...]) -> None:
            x = args[0].detach()
            if isinstance(layer, nn.Linear):
                acc.add(x)  # InputStats drops rows its token_mask leaves out
            else:
                mask, acc.token_mask = acc.token_mask, None
                acc.add(input_patches(layer, x))
                acc.token_mask = mask
        return hook

    handles = [layer.register_forward_pre_hook(hook_for(n)) for n, layer in layers.items()]
    seen = 0
    try:
        with eval_mode(model), torch.no_grad():
            for batch in batches:
                inputs = batch_inputs(batch)
                mask = _token_mask(inputs)
                for acc in stats.values():
                    acc.token_mask = mask
                args, kwargs = as_args(inputs)
                model(*args, **kwargs)
                seen += 1
    finally:
        for h in handles:
            h.remove()
    if not seen:
        raise ConfigError("the calibration data holds no batch; pass a few batches of inputs")
    return {n: InputMoments(*acc.moments(), acc.count) for n, acc in stats.items()
            if acc.count > 0}
