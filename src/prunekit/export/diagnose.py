"""Why a row is not as fast as its MACs promise: measured causes, not guesses.

Each finding comes from a measurement of the models at hand:

- ``channels``: the share of the conv/linear MACs (PyTorch's ``FlopCounterMode``, per
  module) in layers whose channel counts are not multiples of 16 / 8, pruned against dense
  (vector kernels and ONNX Runtime's blocked NCHWc convolutions work in blocks of 8/16);
- ``launch-bound``: time per sample at batch 1 against the largest batch timed: a pass
  whose per-sample time falls steeply with the batch is dominated by fixed per-op costs
  that fewer MACs do not remove;
- ``op-time``: ONNX Runtime's profiler: the op types whose share of the run grew most from
  the dense to the pruned model (layout reorders, unblocked convolutions), and for int8
  files the time still spent in float conv/linear ops (those that fell back) and in
  quantize/dequantize conversions;
- ``cpu``: whether the CPU has 8-bit dot-product instructions (VNNI/AMX), from its flags.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..measure.counts import ExampleInputs, run_model
from ..measure.onnxrt import OnnxProfile
from .._internal.runtime import eval_mode
from .quantize import QuantizedFile, vnni_cpu

__all__ = ["Finding", "channel_alignment", "compare_profiles", "int8_findings",
           "launch_bound", "layer_macs"]

_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
CONVERSION_OPS = ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "Cast")
FLOAT_WEIGHTED_OPS = ("Conv", "FusedConv", "MatMul", "Gemm", "FusedMatMul", "FusedGemm")


@dataclass(frozen=True)
class Finding:
    """One measured cause: its kind, one sentence, and the figures behind it."""

    kind: str
    detail: str
    figures: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "detail": self.detail, "figures": dict(self.figures)}


def layer_macs(model: nn.Module, example: ExampleInputs) -> dict[str, int]:
    """MACs of each conv/linear module on ``example``, by module name (FlopCounterMode)."""
    layers = {name for name, m in model.named_modules() if isinstance(m, _LAYERS)}
    with eval_mode(model), torch.no_grad():
        counter = FlopCounterMode(display=False)
        with counter:
            run_model(model, example)
    root = type(model).__name__
    found = {}
    for key, ops in counter.get_flop_counts().items():
        name = key[len(root) + 1:] if key.startswith(root + ".") else key
        if name in layers:
            found[name] = int(sum(ops.values())) // 2
    return found


def _channels(module: nn.Module) -> tuple[int, int]:
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    assert isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d))
    return module.in_channels // module.groups, module.out_channels


def _misaligned(model: nn.Module, macs: Mapping[str, int],
                multiple: int) -> tuple[float, list[str]]:
    modules = dict(model.named_modules())
    total = sum(macs.values())
    off = [(name, n) for name, n in macs.items()
           if any(c % multiple for c in _channels(modules[name]) if c > 3)]
    share = sum(n for _, n in off) / total if total else 0.0
    worst = [f"{name} {_channels(modules[name])[0]}→{_channels(modules[name])[1]}"
             for name, _ in sorted(off, key=lambda t: -t[1])[:5]]
    return share, worst


def channel_alignment(dense: nn.Module, pruned: nn.Module, dense_example: ExampleInputs,
                      pruned_example: ExampleInputs) -> Finding:
    """MAC share in layers whose channel counts (input per group, output; first-layer
    inputs of 3 or fewer are ignored) are not multiples of 16 and of 8, pruned and dense."""
    figures: dict[str, Any] = {}
    for tag, model, example in (("dense", dense, dense_example),
                                ("pruned", pruned, pruned_example)):
        macs = layer_macs(model, example)
        for multiple in (8, 16):
            share, worst = _misaligned(model, macs, multiple)
            figures[f"{tag}_share_not_multiple_of_{multiple}"] = share
            if tag == "pruned" and multiple == 16:
                figures["largest_misaligned_layers"] = worst
    p16 = figures["pruned_share_not_multiple_of_16"]
    d16 = figures["dense_share_not_multiple_of_16"]
    detail = (f"{p16:.0%} of the pruned model's conv/linear MACs are in layers whose channel "
              f"counts are not multiples of 16 (dense: {d16:.0%}; multiples of 8: "
              f"{figures['pruned_share_not_multiple_of_8']:.0%} off)")
    if p16 > d16 + 0.1:
        detail += "; prune with round_to=16 to keep kernels on their blocked paths"
    return Finding("channels", detail, figures)


def launch_bound(per_batch_ms: Mapping[int, float], label: str) -> Finding | None:
    """Per-sample time at the smallest against the largest batch timed (``None`` with one
    batch size)."""
    if len(per_batch_ms) < 2:
        return None
    small, large = min(per_batch_ms), max(per_batch_ms)
    per_small = per_batch_ms[small] / small
    per_large = per_batch_ms[large] / large
    ratio = per_small / per_large if per_large > 0 else float("nan")
    verdict = ("dominated by per-op overhead that fewer MACs do not remove"
               if ratio >= 2 else "not launch-bound")
    return Finding("launch-bound",
                   f"{label}: {per_small:.3f} ms per sample at batch {small} against "
                   f"{per_large:.3f} ms at batch {large} ({ratio:.1f}×): batch {small} is "
                   f"{verdict}",
                   {"batch_small": small, "batch_large": large, "ms_per_sample_small": per_small,
                    "ms_per_sample_large": per_large, "ratio": ratio})


def compare_profiles(dense: OnnxProfile, pruned: OnnxProfile, label: str) -> Finding:
    """The op types whose share of the run grew most from dense to pruned (ORT profiler)."""
    dense_share = {o.op_type: o.share for o in dense.ops}
    grew = sorted(((o.share - dense_share.get(o.op_type, 0.0), o) for o in pruned.ops),
                  key=lambda t: -t[0])
    top = [(o.op_type, dense_share.get(o.op_type, 0.0), o.share) for gain, o in grew[:3]
           if gain > 0.02]
    reorder = pruned.share(("ReorderInput", "ReorderOutput", "Transpose"))
    parts = [f"{op} {before:.0%}→{after:.0%} of the time" for op, before, after in top]
    detail = (f"{label}, ONNX Runtime profile: node time {dense.total_ms:.2f} → "
              f"{pruned.total_ms:.2f} ms per run; "
              + ("; ".join(parts) if parts else "no op type's share grew by more than 2 points")
              + f"; layout reorders {reorder:.0%} (dense "
              f"{dense.share(('ReorderInput', 'ReorderOutput', 'Transpose')):.0%})")
    return Finding("op-time", detail,
                   {"dense": dense.to_dict(), "pruned": pruned.to_dict(),
                    "grew": [{"op_type": op, "dense_share": b, "pruned_share": a}
                             for op, b, a in top]})


def int8_findings(file: QuantizedFile, profile: OnnxProfile | None, label: str
                  ) -> list[Finding]:
    """For an int8 file: conv/linear layers left in float, time in float conv/linear ops
    and in conversions (profiler), and the CPU's 8-bit dot-product support."""
    found = []
    if file.float_nodes:
        names = ", ".join(f"{m} ({op})" for m, op in file.float_nodes[:5])
        more = f" and {len(file.float_nodes) - 5} more" if len(file.float_nodes) > 5 else ""
        found.append(Finding("fell-back", f"{label}: {len(file.float_nodes)} conv/linear "
                                          f"layer(s) stayed in float: {names}{more}",
                             {"float_layers": [list(n) for n in file.float_nodes]}))
    if profile is not None:
        conv = profile.share(CONVERSION_OPS)
        flt = profile.share(FLOAT_WEIGHTED_OPS)
        found.append(Finding("op-time", f"{label}, ONNX Runtime profile: {flt:.0%} of the node "
                                        f"time in float conv/linear ops, {conv:.0%} in "
                                        "quantize/dequantize/cast",
                             {"profile": profile.to_dict(), "float_share": flt,
                              "conversion_share": conv}))
    vnni = vnni_cpu()
    if vnni is not None:
        found.append(Finding("cpu", "this CPU has 8-bit dot-product instructions (VNNI/AMX)"
                             if vnni else "this CPU has no VNNI/AMX: int8 products run on "
                             "AVX2 multiply-add sequences, often no faster than fp32",
                             {"vnni": vnni}))
    return found
