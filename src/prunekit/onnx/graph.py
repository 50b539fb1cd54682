"""Read an ONNX file: its signature (input/output names, dtypes, dynamic axes, opset), its
constants and its nodes, with the unused ones dropped."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, PrunekitError

__all__ = ["OnnxGraph", "OnnxSignature", "TensorSpec", "read_onnx"]

DEFAULT_DOMAINS = ("", "ai.onnx")


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: name, numpy dtype name and dims (an int, or the name of a
    dynamic axis, or ``None`` when the file gives neither)."""

    name: str
    dtype: str
    dims: tuple[int | str | None, ...] | None

    @property
    def dynamic_axes(self) -> dict[int, str]:
        """Axis index -> name, for every axis without a fixed size."""
        if self.dims is None:
            return {}
        return {i: (d if isinstance(d, str) else f"{self.name}_dim{i}")
                for i, d in enumerate(self.dims) if not isinstance(d, int)}

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype,
                "dims": None if self.dims is None else list(self.dims)}


@dataclass(frozen=True)
class OnnxSignature:
    """What an exported copy must keep: input and output names, dtypes, dynamic axes and the
    default-domain opset of the original file."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    opset: int
    producer: str = ""

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """``torch.onnx.export``'s ``dynamic_axes``: name -> {axis: axis name}."""
        return {t.name: t.dynamic_axes for t in (*self.inputs, *self.outputs) if t.dynamic_axes}

    def to_dict(self) -> dict[str, Any]:
        return {"inputs": [t.to_dict() for t in self.inputs],
                "outputs": [t.to_dict() for t in self.outputs], "opset": self.opset,
                "producer": self.producer}


@dataclass(frozen=True)
class OnnxGraph:
    """A parsed file: signature, constants (name -> numpy array) and nodes in order."""

    signature: OnnxSignature
    constants: dict[str, Any]
    nodes: tuple[Any, ...]  # onnx.NodeProto
    path: str


def _tensor_spec(value: Any) -> TensorSpec:
    from onnx import helper

    tensor = value.type.tensor_type
    dtype = helper.tensor_dtype_to_np_dtype(tensor.elem_type).name if tensor.elem_type else "?"
    if not tensor.HasField("shape"):
        return TensorSpec(value.name, dtype, None)
    dims: list[int | str | None] = []
    for d in tensor.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return TensorSpec(value.name, dtype, tuple(dims))


def _load_proto(path: Path) -> Any:
    import onnx

    if not path.is_file():
        raise ConfigError(f"ONNX file {str(path)!r} does not exist")
    try:
        return onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - protobuf raises many kinds
        raise PrunekitError(f"{path} is not a readable ONNX model ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''})") from None


def read_signature(path: str | os.PathLike[str]) -> OnnxSignature:
    """The signature of the ONNX file at ``path`` (weights not read)."""
    import onnx

    target = Path(path)
    if not target.is_file():
        raise ConfigError(f"ONNX file {str(target)!r} does not exist")
    try:
        proto = onnx.load(str(target), load_external_data=False)
    except Exception as exc:  # noqa: BLE001
        raise PrunekitError(f"{target} is not a readable ONNX model ({type(exc).__name__})") \
            from None
    return _signature(proto)


def _signature(proto: Any, outputs: tuple[str, ...] | None = None) -> OnnxSignature:
    graph = proto.graph
    initialized = {t.name for t in graph.initializer}
    inputs = tuple(_tensor_spec(v) for v in graph.input if v.name not in initialized)
    all_outputs = {v.name: _tensor_spec(v) for v in graph.output}
    if outputs:
        unknown = [o for o in outputs if o not in all_outputs]
        if unknown:
            raise ConfigError(f"the ONNX graph has no output(s) {unknown}; its outputs are "
                              f"{list(all_outputs)}")
        chosen = tuple(all_outputs[o] for o in outputs)
    else:
        chosen = tuple(all_outputs.values())
    opset = next((o.version for o in proto.opset_import if o.domain in DEFAULT_DOMAINS), 0)
    return OnnxSignature(inputs, chosen, int(opset), proto.producer_name or "")


def _needed_nodes(nodes: list[Any], wanted: set[str]) -> list[Any]:
    """The nodes the outputs ``wanted`` depend on, in their order."""
    keep = [False] * len(nodes)
    needed = set(wanted)
    for i in range(len(nodes) - 1, -1, -1):
        if any(o in needed for o in nodes[i].output):
            keep[i] = True
            needed.update(n for n in nodes[i].input if n)
    return [n for n, k in zip(nodes, keep) if k]


def read_onnx(path: str | os.PathLike[str], outputs: tuple[str, ...] | None = None) -> OnnxGraph:
    """Parse the file at ``path``; keep only what ``outputs`` (default: all) depend on."""
    from onnx import numpy_helper

    target = Path(path)
    proto = _load_proto(target)
    signature = _signature(proto, outputs)
    other = sorted({n.domain for n in proto.graph.node if n.domain not in DEFAULT_DOMAINS})
    nodes = _needed_nodes(list(proto.graph.node), set(signature.output_names))
    foreign = [n for n in nodes if n.domain not in DEFAULT_DOMAINS]
    if foreign:
        node = foreign[0]
        raise PrunekitError(
            f"{target}: node {node.name or node.output[0]!r} is op {node.op_type!r} of domain "
            f"{node.domain!r}, which prunekit cannot convert (only the default ONNX domain; "
            f"domains in this file: {other}); pass outputs=... (--onnx-output) to keep only "
            "outputs that do not depend on it")
    constants = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    return OnnxGraph(signature, constants, tuple(nodes), str(target))
