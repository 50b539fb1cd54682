"""Export pruned models: ONNX (checked against PyTorch in onnxruntime), lower-precision
copies made by ONNX Runtime (fp16, static and dynamic int8), and the choice of the fastest
format by measurement. ``onnx`` and ``onnxruntime`` (extra ``prunekit[export]``) are imported
only when used."""

from .calibration import Calibration, calibration_from_batches
from .onnx import OnnxCheck, check_onnx, export_onnx
from .quantize import FORMATS, QuantizedFile, QuantizeOptions, convert_onnx

__all__ = ["FORMATS", "Calibration", "OnnxCheck", "QuantizeOptions", "QuantizedFile",
           "calibration_from_batches", "check_onnx", "convert_onnx", "export_onnx"]
