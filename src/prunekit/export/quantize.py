"""Lower-precision copies of an exported ONNX model, made by ONNX Runtime's own tools.

Formats (a registry keyed by name, :data:`FORMATS`):

- ``fp32``: the exported file itself;
- ``fp16``: ``onnxruntime.transformers.float16`` (inputs and outputs stay float32);
- ``int8-qdq`` / ``int8-qoperator``: ``onnxruntime.quantization.quantize_static`` with
  calibration, QuantizeLinear/DequantizeLinear pairs (fused by ORT at load) or QLinear*
  operators; uint8 activations, int8 weights, per output channel by default;
- ``int8-dynamic``: ``quantize_dynamic``, int8 weights and activation ranges computed at run
  time (``MatMul`` and ``Gather`` by default: the Linear layers and embeddings of
  transformers).

Every file is written in a temporary folder beside the target and moved into place only when
it is complete; bad input (no calibration data for a static format, an op type the quantizer
cannot take, calibration inputs that do not fit) raises :class:`QuantizationError` before
anything is written. ``torch.ao.quantization`` (deprecated upstream) is not used.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, QuantizationError
from .calibration import Calibration

__all__ = ["DYNAMIC_OP_TYPES", "FORMATS", "LOW_PRECISION_FLAGS", "STATIC_FORMATS",
           "STATIC_OP_TYPES", "QuantizeOptions", "QuantizedFile", "convert_onnx", "cpu_flags",
           "format_file", "node_modules", "vnni_cpu"]

FORMATS = ("fp32", "fp16", "int8-qdq", "int8-qoperator", "int8-dynamic")
STATIC_FORMATS = ("int8-qdq", "int8-qoperator")
#: op types quantized by default: the convolution and linear layers, and embedding tables
#: (``Gather``: most of a small transformer's file; quantizing it left the MiniLM
#: embeddings' cosine unchanged to three decimals in ``benchmarks/int8_accuracy.py``)
STATIC_OP_TYPES = ("Conv", "MatMul", "Gemm", "Gather")
DYNAMIC_OP_TYPES = ("MatMul", "Gather")
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
_WEIGHTED = ("Conv", "ConvTranspose", "MatMul", "Gemm")
_INT8_WEIGHTED = ("QLinearConv", "QLinearMatMul", "QGemm", "ConvInteger", "MatMulInteger",
                  "MatMulIntegerToFloat", "DynamicQuantizeMatMul")


#: CPU flags that decide which low-precision kernels run natively
LOW_PRECISION_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16",
                       "avx512_fp16", "amx_bf16", "amx_int8", "amx_tile")


def cpu_flags() -> frozenset[str] | None:
    """The CPU's feature flags from ``/proc/cpuinfo`` (``None`` where it cannot be read)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return None


def vnni_cpu() -> bool | None:
    """Whether this CPU has 8-bit dot-product instructions (AVX-512 VNNI, AVX-VNNI or AMX);
    ``None`` when that cannot be told."""
    flags = cpu_flags()
    return None if flags is None else bool(flags & {"avx512_vnni", "avx_vnni", "amx_int8"})


@dataclass(frozen=True)
class QuantizeOptions:
    """How int8 files are made.

    - ``per_channel``: one weight scale per output channel (static and dynamic);
    - ``reduce_range``: 7-bit weights, which avoids the saturation of uint8 × int8 products
      on x86 CPUs without VNNI; ``None`` (default) turns it on exactly there;
    - ``calibrate_method``: ``minmax``, ``entropy`` or ``percentile`` (static formats);
    - ``op_types``: ONNX op types to quantize (default: ``Conv``, ``MatMul``, ``Gemm``,
      ``Gather`` for static, ``MatMul``, ``Gather`` for dynamic); ``exclude``: module names
      kept in float.
    """

    per_channel: bool = True
    reduce_range: bool | None = None
    calibrate_method: str = "minmax"
    op_types: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.per_channel, bool):
            raise ConfigError(f"per_channel must be true or false, got {self.per_channel!r}")
        if self.reduce_range is not None and not isinstance(self.reduce_range, bool):
            raise ConfigError(f"reduce_range must be true, false or null, got "
                              f"{self.reduce_range!r}")
        if self.calibrate_method not in CALIBRATION_METHODS:
            raise ConfigError(f"calibrate_method must be one of {CALIBRATION_METHODS}, got "
                              f"{self.calibrate_method!r}")
        for name in ("op_types", "exclude"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, str) or not all(isinstance(v, str) and v for v in value):
                raise ConfigError(f"{name} must be a list of names, got {value!r}")
            object.__setattr__(self, name, tuple(value))
        if self.op_types is not None and not self.op_types:
            raise ConfigError("op_types must name at least one op type (or be null)")

    def resolved_reduce_range(self) -> bool:
        """``reduce_range`` with ``None`` resolved for this CPU."""
        if self.reduce_range is not None:
            return self.reduce_range
        return vnni_cpu() is False


@dataclass(frozen=True)
class QuantizedFile:
    """One written file: its format, path and size, and what was (not) quantized.

    ``quantized``: module names (or node names) of the conv/linear nodes that run in int8;
    ``float_nodes``: ``(module or node, op type)`` of the conv/linear nodes left in float.
    """

    format: str
    path: Path
    bytes: int
    quantized: tuple[str, ...] = ()
    float_nodes: tuple[tuple[str, str], ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "file": self.path.name, "bytes": self.bytes,
                "quantized_layers": len(self.quantized),
                "float_layers": [list(n) for n in self.float_nodes],
                "settings": dict(self.settings)}


def _onnx() -> Any:
    try:
        import onnx
        import onnxruntime.quantization  # noqa: F401
    except ImportError:
        raise ConfigError("ONNX quantization needs onnx and onnxruntime: pip install "
                          "'prunekit[export]'") from None
    return onnx


def _weight_module(node: Any) -> str | None:
    """``layer1.0.conv1`` for a node whose weight input is ``layer1.0.conv1.weight`` (also
    after quantization renamed it)."""
    for name in node.input[1:]:
        base = name.removesuffix("_DequantizeLinear_Output").removesuffix("_quantized")
        if base.endswith(".weight"):
            return base.removesuffix(".weight")
    return None


def _scope_module(node: Any) -> str | None:
    """The innermost module of the exporter's ``pkg.torch.onnx.name_scopes`` metadata."""
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            scopes = [s.strip(" '\"") for s in prop.value.strip("[]").split(",")]
            if len(scopes) >= 2 and scopes[-2]:
                return scopes[-2]
    return None


def node_modules(model: Any) -> dict[str, str]:
    """Node name → the PyTorch module it came from: the module of its weight
    (``layer1.0.conv1.weight`` → ``layer1.0.conv1``), else the exporter's name scope, else
    the node name."""
    return {node.name: _weight_module(node) or _scope_module(node) or node.name
            for node in model.graph.node}


def _check_op_types(model: Any, fmt: str, op_types: Sequence[str]) -> None:
    from onnxruntime.quantization import registry

    table = registry.IntegerOpsRegistry if fmt == "int8-dynamic" else (
        registry.QDQRegistry if fmt == "int8-qdq" else registry.QLinearOpsRegistry)
    names = node_modules(model)
    for op in op_types:
        if op in table:
            continue
        users = [names[n.name] for n in model.graph.node if n.op_type == op]
        where = (f" (used by {', '.join(users[:5])}{' …' if len(users) > 5 else ''})"
                 if users else " (no node of this type in the model)")
        raise QuantizationError(
            f"{fmt}: ONNX Runtime's quantizer cannot take op type {op!r}{where}; it quantizes "
            f"{', '.join(sorted(table))}; drop {op!r} from op_types, or exclude those modules")


def _exclude_nodes(model: Any, exclude: Sequence[str]) -> list[str]:
    names = node_modules(model)
    nodes = [n for n, module in names.items()
             if any(module == e or module.startswith(e + ".") for e in exclude)]
    unknown = [e for e in exclude if not any(m == e or m.startswith(e + ".")
                                             for m in names.values())]
    if unknown:
        raise QuantizationError(f"exclude names modules the ONNX graph does not have: "
                                f"{unknown}; use module names as in model.named_modules()")
    return nodes


def _elem_dtype(value_info: Any) -> Any:
    import numpy as np
    from onnx import helper

    return np.dtype(helper.tensor_dtype_to_np_dtype(value_info.type.tensor_type.elem_type))


def _input_shape(value_info: Any) -> list[Any]:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
            for d in value_info.type.tensor_type.shape.dim]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """ONNX Runtime's quantizer logs and prints per node; keep the console clean."""
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


def _float_weighted(model: Any, fmt: str) -> tuple[list[str], list[tuple[str, str]]]:
    """Conv/linear layers (nodes with a constant weight of two or more dimensions) of a
    converted model that run in int8, and those left in float."""
    names = node_modules(model)
    produced_by = {out: n for n in model.graph.node for out in n.output}
    weights = {i.name for i in model.graph.initializer if len(i.dims) >= 2}

    def constant(name: str) -> bool:  # an initializer, or one dequantized
        source = produced_by.get(name)
        return name in weights or (source is not None and source.op_type == "DequantizeLinear"
                                   and source.input[0] in weights)

    quantized: list[str] = []
    left: list[tuple[str, str]] = []
    for node in model.graph.node:
        name = names.get(node.name, node.name)
        if node.op_type in _INT8_WEIGHTED and any(i in weights for i in node.input[1:]):
            quantized.append(name)
        elif node.op_type in _WEIGHTED and len(node.input) > 1 and constant(node.input[1]):
            if node.input[1] in weights:
                if fmt != "fp16":
                    left.append((name, node.op_type))
            else:
                quantized.append(name)
    return quantized, left


def convert_onnx(fp32_path: str | os.PathLike[str], out_path: str | os.PathLike[str],
                 fmt: str, *, calibration: Calibration | None = None,
                 options: QuantizeOptions | None = None) -> QuantizedFile:
    """Write ``fmt`` (see :data:`FORMATS`) of the float model ``fp32_path`` to ``out_path``.

    Static formats need ``calibration``. The file appears at ``out_path`` only when it is
    complete; on any error nothing is left there.
    """
    onnx = _onnx()
    options = options or QuantizeOptions()
    source, target = Path(fp32_path), Path(out_path)
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    if fmt in STATIC_FORMATS and calibration is None:
        raise QuantizationError(f"{fmt} is static int8 and needs calibration data: pass "
                                "--calibration DATA (or calibration batches); nothing was written")
    if fmt == "fp32":
        if source.resolve() != target.resolve():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        return QuantizedFile("fp32", target, target.stat().st_size)
    model = onnx.load(str(source))
    op_types = list(options.op_types or (DYNAMIC_OP_TYPES if fmt == "int8-dynamic"
                                         else STATIC_OP_TYPES))
    if fmt != "fp16":
        _check_op_types(model, fmt, op_types)
    excluded = _exclude_nodes(model, options.exclude) if options.exclude else []
    graph_input = model.graph.input[0]
    if calibration is not None and fmt in STATIC_FORMATS:
        calibration.check_fits(graph_input.name, _input_shape(graph_input),
                               _elem_dtype(graph_input))
    reduce_range = options.resolved_reduce_range()
    settings: dict[str, Any] = {}
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        staged = staging / target.name
        if fmt == "fp16":
            from onnxruntime.transformers.float16 import convert_float_to_float16

            try:
                with _quiet():
                    converted = convert_float_to_float16(model, keep_io_types=True)
                onnx.save(_topologically_sorted(converted), str(staged))
            except Exception as exc:  # noqa: BLE001 - the converter raises many kinds
                first = (str(exc).strip().splitlines() or [""])[0]
                raise QuantizationError(f"fp16: conversion failed: {type(exc).__name__}: "
                                        f"{first[:300]}; nothing was written") from None
            settings = {"tool": "onnxruntime.transformers.float16", "keep_io_types": True}
        else:
            settings = _quantize(model, staging, staged, fmt, op_types, excluded, reduce_range,
                                 options, calibration)
        written = onnx.load(str(staged))
        quantized, left = _float_weighted(written, fmt)
        os.replace(staged, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return QuantizedFile(fmt, target, target.stat().st_size, tuple(quantized), tuple(left),
                         settings)


def _topologically_sorted(model: Any) -> Any:
    """The model with its nodes in topological order (the fp16 converter appends the input
    casts last, which ONNX's checker refuses); sorted by ``onnx_ir`` (onnxscript's IR)."""
    import onnx_ir as ir

    graph = ir.serde.deserialize_model(model)
    graph.graph.sort()
    return ir.serde.serialize_model(graph)


def _quantize(model: Any, staging: Path, staged: Path, fmt: str, op_types: list[str],
              excluded: list[str], reduce_range: bool, options: QuantizeOptions,
              calibration: Calibration | None) -> dict[str, Any]:
    """Pre-process (shape inference, basic optimisation) and quantize into ``staged``."""
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    onnx = _onnx()
    prepared = staging / "prepared.onnx"
    tool = "quantize_dynamic" if fmt == "int8-dynamic" else "quantize_static"
    settings: dict[str, Any] = {"tool": f"onnxruntime.quantization ({tool})",
                                "op_types": op_types, "per_channel": options.per_channel,
                                "reduce_range": reduce_range, "weights": "int8",
                                "excluded_nodes": len(excluded)}
    loaded = staging / "loaded.onnx"  # one self-contained file (older ORT reads paths only)
    onnx.save(model, str(loaded))
    try:
        with _quiet():
            quant_pre_process(str(loaded), str(prepared), skip_symbolic_shape=False)
    except Exception:  # noqa: BLE001 - symbolic shape inference refuses some graphs
        os.replace(loaded, prepared)
        settings["pre_process"] = "skipped (shape inference refused the graph)"
    try:
        with _quiet():
            if fmt == "int8-dynamic":
                quantize_dynamic(str(prepared), str(staged), op_types_to_quantize=op_types,
                                 per_channel=options.per_channel, reduce_range=reduce_range,
                                 weight_type=QuantType.QInt8, nodes_to_exclude=excluded)
                settings["activations"] = "uint8, ranges computed at run time"
            else:
                assert calibration is not None
                method = {"minmax": CalibrationMethod.MinMax,
                          "entropy": CalibrationMethod.Entropy,
                          "percentile": CalibrationMethod.Percentile}[options.calibrate_method]
                quantize_static(
                    str(prepared), str(staged),
                    calibration.reader(onnx.load(str(prepared)).graph.input[0].name,
                                       per_sample=options.calibrate_method != "minmax"),
                    quant_format=QuantFormat.QDQ if fmt == "int8-qdq" else QuantFormat.QOperator,
                    op_types_to_quantize=op_types, per_channel=options.per_channel,
                    reduce_range=reduce_range, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, nodes_to_exclude=excluded,
                    calibrate_method=method)
                settings.update(activations="uint8, ranges from calibration",
                                calibrate_method=options.calibrate_method,
                                calibration_samples=calibration.samples,
                                calibration_source=calibration.source)
    except QuantizationError:
        raise
    except Exception as exc:  # noqa: BLE001 - ORT raises many kinds
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise QuantizationError(f"{fmt}: ONNX Runtime's quantizer failed: "
                                f"{type(exc).__name__}: {first[:300]}; nothing was written"
                                ) from None
    return settings


def format_file(base: Path, fmt: str) -> Path:
    """Where ``fmt`` of ``base`` (``model.onnx``) goes: ``model.onnx`` for fp32, else
    ``model.<fmt>.onnx``."""
    return base if fmt == "fp32" else base.with_name(f"{base.stem}.{fmt}{base.suffix}")
