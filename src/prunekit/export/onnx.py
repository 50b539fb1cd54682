"""ONNX export with ``torch.onnx.export`` and a check in onnxruntime against PyTorch."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import ConfigError, PrunekitError

__all__ = ["OnnxCheck", "check_onnx", "export_onnx"]


def _require(module: str) -> None:
    try:
        __import__(module)
    except ImportError:
        raise ConfigError(f"ONNX export needs {module}: pip install 'prunekit[export]'") from None


EXTERNAL_DATA_BYTES = 1 << 30  # larger models keep their weights in a .data file beside


def _param_bytes(model: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])


def export_onnx(model: nn.Module, example: torch.Tensor, path: str | os.PathLike[str], *,
                opset: int | None = None, dynamic_batch: bool = False) -> list[Path]:
    """Export ``model`` (eval mode) to ``path`` and return the files written.

    ``dynamic_batch``: the first dimension of the input (and output) is left symbolic, so
    the file runs at any batch size.
    The export runs in a temporary folder beside ``path``; the files (the model and any
    external-data file) are moved into place only when it succeeded.
    """
    _require("onnxscript")
    _require("onnx")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            try:
                if dynamic_batch and example.shape[0] == 1:  # batch 1 would be specialized
                    example = example.expand(2, *example.shape[1:]).contiguous()
                torch.onnx.export(model.eval(), (example,), str(staging / target.name),
                                  input_names=["input"], output_names=["output"],
                                  opset_version=opset, dynamo=True, verbose=False,
                                  dynamic_shapes=_batch_axis(example) if dynamic_batch else None,
                                  external_data=_param_bytes(model) > EXTERNAL_DATA_BYTES)
            except Exception as exc:  # noqa: BLE001 - the exporter raises many kinds
                first = str(exc).splitlines()[0] if str(exc) else ""
                raise PrunekitError(f"torch.onnx.export failed: {type(exc).__name__}: "
                                    f"{first}") from None
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


def _batch_axis(example: torch.Tensor) -> tuple[dict[int, object]]:
    """``dynamic_shapes`` of ``torch.onnx.export`` with dimension 0 of the input symbolic."""
    return ({0: torch.export.Dim("batch")},)


def _check_batch_axis(path: Path) -> None:
    """Raise :class:`PrunekitError` when the exported input's first dimension is fixed."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    dim = graph.input[0].type.tensor_type.shape.dim[0]
    if dim.HasField("dim_value"):
        raise PrunekitError(f"the exported model fixes its batch size to {dim.dim_value} "
                            "(its forward uses the batch size as a constant); export it "
                            "without a symbolic batch, one file per batch size")


@dataclass(frozen=True)
class OnnxCheck:
    """onnxruntime against PyTorch on the same input: largest absolute difference."""

    max_abs_diff: float
    output_shape: tuple[int, ...]
    provider: str

    def ok(self, tolerance: float = 1e-4) -> bool:
        """Whether the outputs agree within ``tolerance``."""
        return self.max_abs_diff <= tolerance


def check_onnx(path: str | os.PathLike[str], model: nn.Module,
               example: torch.Tensor) -> OnnxCheck:
    """Run ``path`` in onnxruntime (CPU) and compare with ``model(example)``."""
    _require("onnxruntime")
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    got = session.run(None, {name: example.detach().cpu().numpy()})[0]
    with torch.no_grad():
        expected = model.eval()(example)
    diff = (torch.from_numpy(got) - expected.detach().cpu()).abs().max().item()
    return OnnxCheck(float(diff), tuple(got.shape), "CPUExecutionProvider")
