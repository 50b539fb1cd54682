"""Export pruned models: ONNX (checked against PyTorch in onnxruntime) and int8 dynamic
quantization. ``onnx`` and ``onnxruntime`` (extra ``prunekit[export]``) are imported only
when used."""

from .onnx import OnnxCheck, check_onnx, export_onnx, quantize_onnx_dynamic
from .quantize import QuantizeResult, quantize_int8

__all__ = ["OnnxCheck", "QuantizeResult", "check_onnx", "export_onnx", "quantize_int8",
           "quantize_onnx_dynamic"]
