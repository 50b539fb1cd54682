"""ONNX in and out: ``load`` turns an ONNX file (from Keras, TensorFlow, PaddlePaddle,
scikit-learn, PyTorch...) into an :class:`OnnxModel` that prunekit prunes like any PyTorch
module, checked against onnxruntime on the original file; ``export`` writes a (pruned)
converted model back to ONNX with the original input/output names, dynamic axes and opset.

This package is ``prunekit.onnx``; it reads files with the ``onnx`` package (absolute
imports, imported only when a function runs) and needs the ``onnx`` extra.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from ..errors import ConfigError, PrunekitError
from .check import Agreement, compare_with_onnxruntime, example_inputs
from .graph import OnnxSignature, TensorSpec, read_signature
from .module import OnnxModel
from .ops import supported_ops

__all__ = ["Agreement", "OnnxModel", "OnnxSignature", "TensorSpec", "example_inputs",
           "export", "load", "read_signature", "supported_ops"]

TOLERANCE = 1e-4  # relative to the largest |output| of onnxruntime


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise ConfigError("reading ONNX files needs the onnx package: pip install "
                          "'prunekit[onnx]'") from None


def _inputs_tuple(example: Any, signature: OnnxSignature) -> tuple[torch.Tensor, ...]:
    names = signature.input_names
    if isinstance(example, torch.Tensor):
        example = (example,)
    if isinstance(example, dict):
        missing = [n for n in names if n not in example]
        if missing:
            raise ConfigError(f"example inputs lack {missing}; the graph reads {names}")
        example = tuple(example[n] for n in names)
    if not isinstance(example, (tuple, list)) or len(example) != len(names) or \
            not all(isinstance(t, torch.Tensor) for t in example):
        raise ConfigError(f"example inputs must be {len(names)} tensor(s) for {names}")
    return tuple(example)


def load(path: str | os.PathLike[str], *, example: Any = None,
         input_shapes: dict[str, tuple[int, ...]] | None = None,
         outputs: tuple[str, ...] | list[str] | None = None, check: bool = True,
         tolerance: float = TOLERANCE) -> OnnxModel:
    """Convert the ONNX file at ``path`` into an :class:`OnnxModel` (eval mode).

    ``example``: inputs to convert and check with (a tensor, a tuple in graph-input order
    or a dict by name); default: random inputs of the recorded shapes (``input_shapes``
    overrides them; dynamic axes get 2 on axis 0, else 7). ``outputs``: keep only these
    graph outputs (and the nodes they need). With ``check`` the converted module must
    agree with onnxruntime on the file within ``tolerance`` (relative to the largest
    output value) or a :class:`PrunekitError` says by how much it did not; the figures are
    in ``model.conversion``. An op that cannot be converted raises
    :class:`~prunekit.UnsupportedOpError` naming the op, the node and the opset.
    """
    from .convert import convert_graph
    from .graph import read_onnx

    _require_onnx()
    graph = read_onnx(path, None if outputs is None else tuple(outputs))
    signature = graph.signature
    if example is not None:
        inputs = _inputs_tuple(example, signature)
        model = convert_graph(graph, inputs).eval()
    else:
        inputs = example_inputs(signature, input_shapes)
        try:
            model = convert_graph(graph, inputs).eval()
        except PrunekitError:
            # some files fix a dynamic axis to 1 inside (a batch-1 export): try size 1
            ones = example_inputs(signature, input_shapes, dynamic_size=1)
            if [t.shape for t in ones] == [t.shape for t in inputs]:
                raise
            inputs = ones
            model = convert_graph(graph, inputs).eval()
    info: dict[str, Any] = {"file": str(path), "opset": signature.opset,
                            "producer": signature.producer,
                            "example_shapes": [list(t.shape) for t in inputs]}
    if check:
        found = compare_with_onnxruntime(path, model, inputs, signature.input_names,
                                         signature.output_names)
        info["onnxruntime"] = found.to_dict()
        if not found.ok(tolerance):
            worst = max(range(len(found.outputs)), key=lambda i: found.max_rel_diff[i])
            raise PrunekitError(
                f"the model converted from {path} disagrees with onnxruntime: output "
                f"{found.outputs[worst]!r} differs by up to {found.max_abs_diff[worst]:.3g} "
                f"({found.max_rel_diff[worst]:.3g} of its largest value; tolerance "
                f"{tolerance:g}); nothing was pruned. Pass check=False to inspect it")
    model.conversion = info
    return model


def export(model: OnnxModel, path: str | os.PathLike[str], *, example: Any = None,
           tolerance: float = TOLERANCE) -> dict[str, Any]:
    """Export a converted (pruned, fine-tuned) model back to ONNX at ``path`` with the
    original input/output names, dynamic axes and opset, check it in onnxruntime against
    the PyTorch module on ``example`` (default: random inputs of the recorded shapes), and
    return the facts (files, opset, agreement); a disagreement beyond ``tolerance`` raises.
    """
    from ..export.onnx import export_onnx
    from .check import compare_with_onnxruntime as compare

    if not isinstance(model, OnnxModel):
        raise ConfigError("prunekit.onnx.export takes a model made by prunekit.onnx.load; "
                          "use prunekit.export.export_onnx for other modules")
    signature = model.signature
    inputs = (example_inputs(signature) if example is None
              else _inputs_tuple(example, signature))
    files = export_onnx(model, inputs, path, opset=signature.opset,
                        input_names=signature.input_names, output_names=signature.output_names,
                        dynamic_axes=signature.dynamic_axes())
    written = read_signature(path)
    found = compare(path, model, inputs, signature.input_names, signature.output_names)
    if not found.ok(tolerance):
        raise PrunekitError(f"onnxruntime disagrees with PyTorch on {path}: max abs diff "
                            f"{found.worst_abs:.3g} ({found.worst_rel:.3g} relative) > "
                            f"tolerance {tolerance:g}")
    return {"files": [str(f) for f in files], "opset": written.opset,
            "inputs": [t.to_dict() for t in written.inputs],
            "outputs": [t.to_dict() for t in written.outputs],
            "onnxruntime": found.to_dict()}
