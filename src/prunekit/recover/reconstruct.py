"""Layer-wise reconstruction after structured pruning: no training, a few calibration batches.

Every convolution or linear layer that lost input channels is re-fitted, in forward order,
so that its kept outputs match the unpruned model's on the calibration batches:

    W', b' = argmin ||X W'^T + b' - Y||^2 + lam ||[W', b'] - [W, b]||^2

``X`` are the layer's inputs *in the pruned model* (already reconstructed upstream, so each
layer also absorbs the error of the layers before it), unfolded into patches for
convolutions; ``Y`` are the unpruned layer's outputs on the same batches, restricted to the
output channels the plan kept. The damping ``lam = damp * mean(diag X^T X)`` pulls towards
the pruned weights, so two facts hold exactly: the calibration error of a layer never rises,
and a layer whose removed inputs were always zero keeps its weights.

Cost: for each re-fitted layer, both models run every batch up to that layer, and one
``(d+1) x (d+1)`` float64 matrix is held (``d`` = input channels x kernel area).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, NumericalError
from ..graph.trace import as_args
from ..plan.document import Plan
from .._internal.runtime import eval_mode

__all__ = ["DAMP", "LayerFit", "ReconstructResult", "batch_inputs", "input_patches",
           "reconstruct"]

#: default damping, relative to the mean diagonal of the layer's input Gram matrix
DAMP = 0.01

_CONVS = (nn.Conv1d, nn.Conv2d)


@dataclass(frozen=True)
class LayerFit:
    """One re-fitted layer: relative output error on the calibration data before and after."""

    name: str
    error_before: float
    error_after: float


@dataclass
class ReconstructResult:
    """Per-layer fits in forward order, and the layers left alone with the reason."""

    layers: list[LayerFit] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


class _Reached(BaseException):
    """Stops a forward pass once the layer being fitted has run (a BaseException, so that a
    model's own ``except Exception`` does not swallow it)."""


def input_patches(layer: Any, x: torch.Tensor) -> torch.Tensor:
    """Rows of the layer's input that its weight (flattened to ``[out, d]``) multiplies."""
    if isinstance(layer, nn.Linear):
        return x.reshape(-1, x.shape[-1])
    if isinstance(layer, nn.Conv1d):
        if x.dim() == 2:
            x = x.unsqueeze(0)
        mode = "constant" if layer.padding_mode == "zeros" else layer.padding_mode
        x = F.pad(x, layer._reversed_padding_repeated_twice, mode=mode).unsqueeze(2)
        cols = F.unfold(x, (1, layer.kernel_size[0]), dilation=(1, layer.dilation[0]),
                        stride=(1, layer.stride[0]))
    else:
        if x.dim() == 3:
            x = x.unsqueeze(0)
        mode = "constant" if layer.padding_mode == "zeros" else layer.padding_mode
        x = F.pad(x, layer._reversed_padding_repeated_twice, mode=mode)
        cols = F.unfold(x, layer.kernel_size, dilation=layer.dilation, stride=layer.stride)
    return cols.transpose(1, 2).reshape(-1, cols.shape[1])


def _outputs(layer: Any, y: torch.Tensor) -> torch.Tensor:
    """Rows of the layer's output, one column per output channel."""
    if isinstance(layer, nn.Linear):
        return y.reshape(-1, y.shape[-1])
    if y.dim() == layer.weight.dim() - 1:  # unbatched convolution
        y = y.unsqueeze(0)
    return y.flatten(2).transpose(1, 2).reshape(-1, y.shape[1])


def _why_not(layer: nn.Module) -> str | None:
    if not isinstance(layer, (nn.Linear, *_CONVS)):
        return f"{type(layer).__name__} is not a Linear, Conv1d or Conv2d"
    if isinstance(layer, _CONVS) and layer.groups != 1:
        return "grouped convolution (each output sees only its own inputs)"
    if not isinstance(getattr(layer, "weight", None), nn.Parameter):
        return "its weight is not a plain parameter (masked or parametrized)"
    return None


def batch_inputs(batch: Any) -> Any:
    """The inputs of a calibration batch: ``batch`` itself, or ``batch[0]`` of an
    ``(inputs, targets)`` pair."""
    return batch[0] if isinstance(batch, (tuple, list)) and len(batch) == 2 else batch


def _run_until(model: nn.Module, layer: nn.Module, batch: Any, take_input: bool
               ) -> torch.Tensor:
    """The first input (or output) of ``layer`` when ``model`` runs ``batch``."""
    seen: list[torch.Tensor] = []

    def hook(_mod: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        seen.append((args[0] if take_input else output).detach())
        raise _Reached
    handle = layer.register_forward_hook(hook)
    args, kwargs = as_args(batch_inputs(batch))
    try:
        model(*args, **kwargs)
    except _Reached:
        pass
    finally:
        handle.remove()
    if not seen:
        raise _Reached
    return seen[0]


def _order(model: nn.Module, names: Sequence[str], batch: Any) -> list[str]:
    """``names`` in the order their modules first run."""
    order: list[str] = []
    handles = [model.get_submodule(n).register_forward_pre_hook(
        lambda _m, _a, n=n: order.append(n) if n not in order else None) for n in names]
    args, kwargs = as_args(batch_inputs(batch))
    try:
        model(*args, **kwargs)
    finally:
        for h in handles:
            h.remove()
    return order


def _default_layers(pruned: nn.Module, plan: Plan) -> list[str]:
    layers = []
    for name, module in pruned.named_modules():
        removed = plan.tensors.get(f"{name}.weight", {})
        if removed.get(1) and isinstance(module, (nn.Linear, *_CONVS)):
            layers.append(name)
    return layers


def _kept_rows(name: str, dense_layer: Any, pruned_layer: Any, plan: Plan
               ) -> torch.Tensor:
    removed = set(plan.tensors.get(f"{name}.weight", {}).get(0, []))
    kept = [i for i in range(dense_layer.weight.shape[0]) if i not in removed]
    if len(kept) != pruned_layer.weight.shape[0]:
        raise ConfigError(f"layer {name!r}: the plan keeps {len(kept)} of "
                          f"{dense_layer.weight.shape[0]} outputs but the pruned layer has "
                          f"{pruned_layer.weight.shape[0]}; pass the plan that pruned this model")
    return torch.as_tensor(kept, dtype=torch.long)


def _fit(name: str, dense_layer: Any, pruned_layer: Any, rows: torch.Tensor,
         dense: nn.Module, pruned: nn.Module, batches: list[Any], damp: float) -> LayerFit:
    weight = pruned_layer.weight
    bias = pruned_layer.bias
    width = weight[0].numel() + (1 if bias is not None else 0)
    gram = torch.zeros(width, width, dtype=torch.float64)
    cross = torch.zeros(width, weight.shape[0], dtype=torch.float64)
    target_energy = 0.0
    for batch in batches:
        try:
            x = input_patches(pruned_layer, _run_until(pruned, pruned_layer, batch, True)).double()
            y = _outputs(dense_layer, _run_until(dense, dense_layer, batch, False))
        except _Reached:
            raise ConfigError(f"layer {name!r} did not run on a calibration batch") from None
        y = y[:, rows].double().cpu()
        x = x.cpu()
        if bias is not None:
            x = torch.cat([x, torch.ones(x.shape[0], 1, dtype=x.dtype)], dim=1)
        gram += x.t() @ x
        cross += x.t() @ y
        target_energy += float(y.pow(2).sum())
    current = weight.detach().reshape(weight.shape[0], -1).double().cpu()
    if bias is not None:
        current = torch.cat([current, bias.detach().double().cpu()[:, None]], dim=1)

    def error(w: torch.Tensor) -> float:  # ||X w^T - Y||^2 / ||Y||^2 from the sums
        value = (w @ gram * w).sum() - 2 * (w * cross.t()).sum() + target_energy
        return max(float(value), 0.0) / max(target_energy, 1e-30)

    ridge = damp * float(gram.diagonal().mean().clamp_min(1e-12))
    system = gram + ridge * torch.eye(width, dtype=gram.dtype)
    chol, info = torch.linalg.cholesky_ex(system)
    if int(info) != 0:
        raise NumericalError(f"layer {name!r}: the calibration inputs are degenerate even with "
                             f"damping {damp:g}; raise damp or pass more calibration batches")
    solved = torch.cholesky_solve(cross + ridge * current.t(), chol).t()
    before, after = error(current), error(solved)
    if after > before:  # cannot happen in exact arithmetic; keep the layer if rounding says so
        return LayerFit(name, before, before)
    n_weight = weight[0].numel()
    weight.copy_(solved[:, :n_weight].reshape(weight.shape).to(weight))
    if bias is not None:
        bias.copy_(solved[:, n_weight].to(bias))
    return LayerFit(name, before, after)


def reconstruct(pruned: nn.Module, dense: nn.Module, plan: Plan, calibration: Iterable[Any], *,
                layers: Sequence[str] | None = None, damp: float = DAMP) -> ReconstructResult:
    """Re-fit ``pruned``'s layers (in place) to reproduce ``dense``'s outputs; see the module doc.

    ``dense`` is an unpruned copy of the model (for example the distillation teacher) and
    ``plan`` the one that pruned it (``PruneResult.plan``). ``calibration`` holds batches as
    :func:`prunekit.prune` takes them (inputs, or ``(inputs, targets)`` pairs). ``layers``
    defaults to every Linear / Conv1d / Conv2d that lost input channels.
    """
    if not isinstance(damp, (int, float)) or not damp > 0:
        raise ConfigError(f"damp must be > 0, got {damp!r}")
    batches = list(calibration)
    if not batches:
        raise ConfigError("reconstruction needs calibration batches; pass a few training batches")
    names = list(layers) if layers is not None else _default_layers(pruned, plan)
    result = ReconstructResult()
    modules = dict(pruned.named_modules())
    dense_modules = dict(dense.named_modules())
    for name in names:
        if name not in modules or name not in dense_modules:
            raise ConfigError(f"layer {name!r} is not in both the pruned and the dense model")
        reason = _why_not(modules[name])
        if reason is not None:
            result.skipped[name] = reason
    wanted = [n for n in names if n not in result.skipped]
    with eval_mode(pruned), eval_mode(dense), torch.no_grad():
        order = _order(pruned, wanted, batches[0])
        for name in wanted:
            if name not in order:
                result.skipped[name] = "did not run in the forward pass"
        for name in order:
            rows = _kept_rows(name, dense_modules[name], modules[name], plan)
            result.layers.append(_fit(name, dense_modules[name], modules[name], rows, dense,
                                      pruned, batches, damp))
    return result
