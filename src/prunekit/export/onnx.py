"""ONNX export with ``torch.onnx.export`` and a check in onnxruntime against PyTorch."""

from __future__ import annotations

import contextlib
import inspect
import io
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_flatten

from ..errors import ConfigError, ExportError

__all__ = ["OnnxCheck", "check_onnx", "export_onnx"]


def _require(module: str) -> None:
    try:
        __import__(module)
    except ImportError:
        raise ConfigError(f"ONNX export needs {module}: pip install 'prunekit[export]'") from None


EXTERNAL_DATA_BYTES = 1 << 30  # larger models keep their weights in a .data file beside


def _param_bytes(model: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])


def _examples(example: Any) -> tuple[Any, ...]:
    return tuple(example) if isinstance(example, (tuple, list)) else (example,)


def _written_opset(path: Path) -> int:
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)


def _convert_opset(path: Path, opset: int) -> None:
    """Rewrite the file at ``path`` to ``opset`` with ONNX's version converter."""
    import onnx
    from onnx import version_converter

    proto = onnx.load(str(path))
    try:
        converted = version_converter.convert_version(proto, opset)
    except Exception as exc:  # noqa: BLE001 - the converter raises many kinds
        raise ExportError(f"the exported graph (opset {_written_opset(path)}) could not be "
                          f"converted to opset {opset}: {type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    onnx.save(converted, str(path))


def _dynamic_shapes(model: nn.Module, names: list[str],
                    dynamic_axes: dict[str, dict[int, str]]) -> Any:
    """``torch.export`` dynamic shapes for the inputs ``names`` (a model whose forward takes
    ``*args`` gets them as one tuple)."""
    from torch.export import Dim

    per_input = tuple({axis: Dim.DYNAMIC for axis in dynamic_axes[name]}
                      if dynamic_axes.get(name) else None for name in names)
    params = inspect.signature(model.forward).parameters.values()
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return (per_input,)
    return per_input


def _name_dynamic_axes(path: Path, dynamic_axes: dict[str, dict[int, str]]) -> None:
    """Give the graph inputs' and outputs' symbolic dims the names of ``dynamic_axes``."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    for value in [*proto.graph.input, *proto.graph.output]:
        axes = dynamic_axes.get(value.name, {})
        dims = value.type.tensor_type.shape.dim
        for axis, name in axes.items():
            if axis < len(dims) and not dims[axis].HasField("dim_value"):
                dims[axis].dim_param = name
    onnx.save(proto, str(path))


def export_onnx(model: nn.Module, example: Any, path: str | os.PathLike[str], *,
                opset: int | None = None, input_names: Sequence[str] | None = None,
                output_names: Sequence[str] | None = None,
                dynamic_axes: dict[str, dict[int, str]] | None = None,
                dynamic_batch: bool = False) -> list[Path]:
    """Export ``model`` (eval mode) to ``path`` and return the files written.

    ``example``: one tensor or a tuple of inputs; ``input_names`` / ``output_names``
    (default ``input`` / ``output``), ``dynamic_axes`` (name -> {axis: axis name}; axes of
    size 1 in the example cannot stay dynamic) and ``opset`` are kept in the file; an
    opset the exporter does not write itself is reached with ONNX's version converter.
    ``dynamic_batch``: dimension 0 of every input (and output) is left symbolic, so the file
    runs at any batch size (a batch-1 example is widened to 2 for the export, since a
    dimension of size 1 is specialized); a model whose forward fixes its batch is refused.
    The export runs in a temporary folder beside ``path``; the files (the model and any
    external-data file) are moved into place only when it succeeded.
    """
    _require("onnxscript")
    _require("onnx")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    inputs = list(input_names or ["input"])
    outputs = list(output_names or ["output"])
    if dynamic_batch:
        example = tuple(_batch_of_two(x) for x in _examples(example))
        dynamic_axes = {**{name: {0: "batch"} for name in inputs + outputs},
                        **(dynamic_axes or {})}
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            try:
                torch.onnx.export(model.eval(), _examples(example), str(staging / target.name),
                                  input_names=inputs, output_names=outputs,
                                  dynamic_shapes=(_dynamic_shapes(model, inputs, dynamic_axes)
                                                  if dynamic_axes else None),
                                  opset_version=opset, dynamo=True, verbose=False,
                                  external_data=_param_bytes(model) > EXTERNAL_DATA_BYTES)
            except Exception as exc:  # noqa: BLE001 - the exporter raises many kinds
                first = str(exc).splitlines()[0] if str(exc) else ""
                raise ExportError(f"torch.onnx.export failed: {type(exc).__name__}: "
                                  f"{first}") from None
        if opset is not None and _written_opset(staging / target.name) != opset:
            _convert_opset(staging / target.name, opset)
        if dynamic_axes:
            _name_dynamic_axes(staging / target.name, dynamic_axes)
        if dynamic_batch:
            _check_batch_axis(staging / target.name)
        written = []
        for produced in sorted(staging.iterdir()):
            final = target.parent / produced.name
            os.replace(produced, final)
            written.append(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return written


def _batch_of_two(x: Any) -> Any:
    """A batch-1 tensor repeated to batch 2 (other inputs as they are)."""
    if isinstance(x, torch.Tensor) and x.dim() > 0 and x.shape[0] == 1:
        return x.expand(2, *x.shape[1:]).contiguous()
    return x


def _check_batch_axis(path: Path) -> None:
    """Raise :class:`ExportError` when the exported first input's batch dimension is fixed."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    dim = graph.input[0].type.tensor_type.shape.dim[0]
    if dim.HasField("dim_value"):
        raise ExportError(f"the exported model fixes its batch size to {dim.dim_value} (its "
                          "forward uses the batch size as a constant); export it without a "
                          "symbolic batch, one file per batch size")


@dataclass(frozen=True)
class OnnxCheck:
    """onnxruntime against PyTorch on the same input: largest absolute difference."""

    max_abs_diff: float
    output_shape: tuple[int, ...]
    provider: str

    def ok(self, tolerance: float = 1e-4) -> bool:
        """Whether the outputs agree within ``tolerance``."""
        return self.max_abs_diff <= tolerance


def check_onnx(path: str | os.PathLike[str], model: nn.Module, example: Any) -> OnnxCheck:
    """Run ``path`` in onnxruntime (CPU) and compare with ``model(example)`` (one tensor or
    a tuple of inputs in the file's input order; every output is compared, the largest
    difference is kept; ``output_shape`` is the first output's)."""
    _require("onnxruntime")
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    inputs = _examples(example)
    feeds = {i.name: x.detach().cpu().numpy() for i, x in zip(session.get_inputs(), inputs)}
    got = session.run(None, feeds)
    with torch.no_grad():
        expected = model.eval()(*inputs)
    # outputs in the exporter's order: tuples, dicts and Hugging Face ModelOutputs flattened
    expected = [t for t in tree_flatten(expected)[0] if isinstance(t, torch.Tensor)]
    diff = max(float((torch.from_numpy(g) - e.detach().cpu()).abs().max())
               for g, e in zip(got, expected))
    return OnnxCheck(diff, tuple(got[0].shape), "CPUExecutionProvider")
