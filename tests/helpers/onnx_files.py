"""Helpers of the ONNX tests: small files made from torch modules (``torch.onnx``) or built
with ``onnx.helper``, and the exact-pruning check."""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path
from typing import Any

import torch






def export_torch(module: torch.nn.Module, example: Any, path: Path, *,
                 input_names: list[str], output_names: list[str],
                 dynamic: dict[str, dict[int, str]] | None = None,
                 opset: int | None = None) -> Path:
    """Export ``module`` (eval) with the dynamo exporter, quietly."""
    inputs = example if isinstance(example, tuple) else (example,)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), inputs, str(path), input_names=input_names,
                          output_names=output_names, dynamic_axes=dynamic, dynamo=True,
                          opset_version=opset)
    return path


def save_graph(path: Path, nodes: list[Any], inputs: list[Any], outputs: list[Any],
               initializers: dict[str, Any], opset: int = 17) -> Path:
    """Write a graph built with ``onnx.helper`` (initializers: name -> numpy array)."""
    import onnx
    from onnx import helper, numpy_helper

    graph = helper.make_graph(nodes, "test", inputs, outputs,
                              [numpy_helper.from_array(v, k) for k, v in initializers.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def assert_prunes_exactly(model: torch.nn.Module, x: torch.Tensor) -> None:
    """Zeroed units removed at ratio 0.5 leave the outputs unchanged, and something goes."""
    from prunekit.testing import run_exact_check

    with torch.no_grad():
        scale = float(model(x).abs().max())
    check = run_exact_check(model, x, ratio=0.5)
    assert check.params_after < check.params_before
    assert check.max_diff <= 1e-5 * max(1.0, scale)
