"""The ONNX tests need onnx, onnxruntime and onnxscript (the ``onnx`` extra)."""

import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
