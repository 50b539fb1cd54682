"""Helpers that make small ONNX files in the tests: torch modules exported with ``torch.onnx`` and graphs
built with ``onnx.helper``."""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path
from typing import Any

import pytest
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
