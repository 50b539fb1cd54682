"""Export pruned models: ONNX (checked against PyTorch in onnxruntime), lower-precision
copies made by ONNX Runtime (fp16, static and dynamic int8), deployment timing in eager
PyTorch, ``torch.compile`` and ONNX Runtime, and the choice of the fastest format by
measurement. ``onnx`` and ``onnxruntime`` (extra ``prunekit[export]``) are imported only
when used."""

from .calibration import Calibration, calibration_from_batches
from .choose import Candidate, Choice, choose_format
from .config import QuantizeConfig
from .deploy import Deployment, Row, Variant, measure_deployment
from .onnx import OnnxCheck, check_onnx, export_onnx
from .quantize import FORMATS, QuantizedFile, QuantizeOptions, convert_onnx

__all__ = ["FORMATS", "Calibration", "Candidate", "Choice", "Deployment", "OnnxCheck",
           "QuantizeConfig", "QuantizeOptions", "QuantizedFile", "Row", "Variant",
           "calibration_from_batches", "check_onnx", "choose_format", "convert_onnx",
           "export_onnx", "measure_deployment"]
