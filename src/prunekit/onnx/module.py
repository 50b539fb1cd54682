"""``OnnxModel``: an ONNX graph as a PyTorch module, one submodule per node."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn

from .graph import OnnxSignature
from .ops.base import Ints

__all__ = ["OnnxModel", "Step"]


@dataclass(frozen=True)
class Step:
    """One node to run: its submodule, the value names it reads and writes, and the
    values no later step reads (dropped to keep memory low)."""

    module: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    release: tuple[str, ...] = ()


class OnnxModel(nn.Module):
    """A converted ONNX graph. ``forward`` takes the graph inputs (positionally in the
    file's order, or by name) and returns its output, or a tuple when there are several.

    ``signature`` holds the original names, dtypes, dynamic axes and opset (for exporting
    back); ``conversion`` the agreement with onnxruntime measured when it was loaded.
    """

    def __init__(self, signature: OnnxSignature, steps: list[Step],
                 modules: dict[str, nn.Module], constant_outputs: dict[str, torch.Tensor]
                 ) -> None:
        super().__init__()
        self.signature = signature
        self.steps = steps
        for name, module in modules.items():
            self.add_module(name, module)
        self.constant_outputs = list(constant_outputs)
        for k, tensor in enumerate(constant_outputs.values()):
            self.register_buffer(f"output_constant{k}", tensor)
        self.conversion: dict[str, Any] | None = None

    def _bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        names = self.signature.input_names
        if len(args) > len(names):
            raise TypeError(f"the ONNX graph takes {len(names)} input(s) {names}, got "
                            f"{len(args)}")
        env = dict(zip(names, args))
        for key, value in kwargs.items():
            if key not in names or key in env:
                raise TypeError(f"unexpected or repeated input {key!r}; inputs: {names}")
            env[key] = value
        missing = [n for n in names if n not in env]
        if missing:
            raise TypeError(f"missing ONNX graph input(s) {missing}")
        return env

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        env = self._bind(args, kwargs)
        for k, name in enumerate(self.constant_outputs):
            env[name] = getattr(self, f"output_constant{k}")
        for step in self.steps:
            result = cast(nn.Module, self._modules[step.module])(*[env[n] for n in step.inputs])
            if not isinstance(result, tuple):
                env[step.outputs[0]] = result
            else:
                for name, value in zip(step.outputs, result):
                    if name:
                        env[name] = value
            for name in step.release:
                env.pop(name, None)
        outputs = [env[n] for n in self.signature.output_names]
        outputs = [o.tensor() if isinstance(o, Ints) else o for o in outputs]
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def node_modules(self) -> dict[str, str]:
        """Submodule name -> the ONNX output names it computes (to find a node by name)."""
        return {s.module: ", ".join(s.outputs) for s in self.steps}
