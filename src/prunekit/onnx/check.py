"""Example inputs for a graph and the agreement of a module with onnxruntime on a file."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from .graph import OnnxSignature

__all__ = ["Agreement", "agreement", "compare_with_onnxruntime", "example_inputs", "run_onnxruntime"]

BATCH, OTHER = 2, 7  # sizes given to dynamic axes of generated examples


def example_inputs(signature: OnnxSignature, shapes: dict[str, tuple[int, ...]] | None = None,
                   seed: int = 0, dynamic_size: int | None = None) -> tuple[torch.Tensor, ...]:
    """One random tensor per graph input: float inputs normal, integer inputs in {0, 1};
    dynamic axes get size 2 (axis 0) or 7 (or ``dynamic_size``) unless ``shapes`` names
    the input's shape."""
    generator = torch.Generator().manual_seed(seed)
    given = dict(shapes or {})
    unknown = sorted(set(given) - set(signature.input_names))
    if unknown:
        raise ConfigError(f"no ONNX input named {unknown}; inputs: {signature.input_names}")
    tensors = []
    for spec in signature.inputs:
        if spec.name in given:
            shape = tuple(given[spec.name])
        elif spec.dims is None:
            raise ConfigError(f"ONNX input {spec.name!r} has no recorded shape: give its "
                              "shape (input_shapes= / --input-shape)")
        else:
            shape = tuple(d if isinstance(d, int) else dynamic_size or (BATCH if i == 0 else OTHER)
                          for i, d in enumerate(spec.dims))
        dtype = np.dtype(spec.dtype) if spec.dtype != "?" else np.dtype("float32")
        if dtype.kind == "f":
            tensors.append(torch.randn(shape, generator=generator).to(
                torch.from_numpy(np.zeros(1, dtype)).dtype))
        elif dtype.kind in "iu":
            tensors.append(torch.randint(0, 2, shape, generator=generator).to(
                torch.from_numpy(np.zeros(1, dtype)).dtype))
        elif dtype.kind == "b":
            tensors.append(torch.randint(0, 2, shape, generator=generator).bool())
        else:
            raise ConfigError(f"ONNX input {spec.name!r} has dtype {spec.dtype}, which "
                              "prunekit cannot generate; pass example inputs")
    return tuple(tensors)


def run_onnxruntime(path: str | os.PathLike[str], inputs: dict[str, torch.Tensor],
                    outputs: list[str] | None = None,
                    threads: int | None = None) -> list[np.ndarray]:
    """Run the file in onnxruntime (CPU) on named inputs; the named outputs (default: all)
    in order."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ConfigError("checking against onnxruntime needs it: pip install "
                          "'prunekit[onnx]'") from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feeds = {k: v.detach().cpu().numpy() for k, v in inputs.items()}
    return list(session.run(outputs, feeds))


@dataclass(frozen=True)
class Agreement:
    """onnxruntime against PyTorch, per output: largest absolute difference, and that
    difference relative to the largest absolute onnxruntime value."""

    outputs: tuple[str, ...]
    max_abs_diff: tuple[float, ...]
    max_rel_diff: tuple[float, ...]

    @property
    def worst_abs(self) -> float:
        return max(self.max_abs_diff, default=0.0)

    @property
    def worst_rel(self) -> float:
        return max(self.max_rel_diff, default=0.0)

    def ok(self, tolerance: float) -> bool:
        """Every output within ``tolerance`` relative (absolute for all-zero outputs)."""
        return self.worst_rel <= tolerance

    def to_dict(self) -> dict[str, Any]:
        return {"runtime": "onnxruntime (CPUExecutionProvider)", "outputs": list(self.outputs),
                "max_abs_diff": list(self.max_abs_diff), "max_rel_diff": list(self.max_rel_diff)}


def _as_list(result: Any) -> list[torch.Tensor]:
    items = list(result) if isinstance(result, (tuple, list)) else [result]
    return [t if isinstance(t, torch.Tensor) else torch.as_tensor(t) for t in items]


def agreement(names: list[str], expected: list[np.ndarray], got: Any) -> Agreement:
    """Compare onnxruntime's ``expected`` outputs with a module's result ``got``."""
    tensors = _as_list(got)
    if len(tensors) != len(expected):
        raise ConfigError(f"the module returned {len(tensors)} output(s), the ONNX file "
                          f"{len(expected)}")
    abs_diffs, rel_diffs = [], []
    for ref, out in zip(expected, tensors):
        ref_t = torch.from_numpy(np.asarray(ref))
        out_t = out.detach().cpu()
        if tuple(ref_t.shape) != tuple(out_t.shape):
            abs_diffs.append(float("inf"))
            rel_diffs.append(float("inf"))
            continue
        if ref_t.numel() == 0:
            abs_diffs.append(0.0)
            rel_diffs.append(0.0)
            continue
        if ref_t.dtype == torch.bool or not ref_t.is_floating_point():
            diff = float((ref_t.long() - out_t.long()).abs().max())
            scale = float(ref_t.long().abs().max())
        else:
            diff = float((ref_t.double() - out_t.double()).abs().max())
            scale = float(ref_t.double().abs().max())
        abs_diffs.append(diff)
        rel_diffs.append(diff / scale if scale > 0 else diff)
    return Agreement(tuple(names), tuple(abs_diffs), tuple(rel_diffs))


def compare_with_onnxruntime(path: str | os.PathLike[str], module: torch.nn.Module,
                             inputs: tuple[torch.Tensor, ...], input_names: list[str],
                             output_names: list[str]) -> Agreement:
    """Run ``module`` and the ONNX file at ``path`` on the same inputs and compare."""
    expected = run_onnxruntime(path, dict(zip(input_names, inputs)), output_names)
    with torch.no_grad():
        got = module.eval()(*inputs)
    return agreement(output_names, expected, got)
