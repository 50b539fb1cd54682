"""Calibration inputs for static int8: batches of the run's data as arrays that ONNX Runtime's
calibrator reads, checked against the model's input before anything is quantized."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import QuantizationError

__all__ = ["Calibration", "calibration_from_batches"]


def _inputs_of(batch: Any) -> torch.Tensor:
    """The input tensor of a batch: the tensor itself or the first item of ``(x, y)``."""
    if isinstance(batch, (tuple, list)) and batch:
        batch = batch[0]
    if isinstance(batch, np.ndarray):
        batch = torch.from_numpy(batch)
    if not isinstance(batch, torch.Tensor):
        raise QuantizationError(f"calibration batches must be tensors or (inputs, targets) "
                                f"pairs of tensors, got {type(batch).__name__}; models with "
                                "several inputs are not supported for ONNX int8 yet")
    return batch.detach().cpu()


@dataclass(frozen=True)
class Calibration:
    """Calibration batches (first dimension = batch) for a one-input model."""

    batches: tuple[np.ndarray, ...]
    source: str

    @property
    def samples(self) -> int:
        return sum(int(b.shape[0]) for b in self.batches)

    def check_fits(self, name: str, shape: Sequence[Any], elem_dtype: np.dtype) -> None:
        """Raise :class:`QuantizationError` when the batches do not fit input ``name`` of
        ``shape`` (ints fixed, strings symbolic) and element type ``elem_dtype``."""
        for i, batch in enumerate(self.batches):
            if batch.ndim != len(shape) or any(
                    isinstance(d, int) and d > 0 and d != s for d, s in zip(shape, batch.shape)):
                raise QuantizationError(
                    f"calibration batch {i} from {self.source} has shape {tuple(batch.shape)}, "
                    f"but the model's input {name!r} is {list(shape)}: pass calibration data "
                    "shaped like the model's input (e.g. the data the model was pruned with)")
            if batch.dtype != elem_dtype:
                raise QuantizationError(
                    f"calibration batch {i} from {self.source} is {batch.dtype}, but the "
                    f"model's input {name!r} takes {np.dtype(elem_dtype)}")

    def reader(self, input_name: str, *, per_sample: bool = False) -> Any:
        """An ``onnxruntime.quantization.CalibrationDataReader`` over the batches;
        ``per_sample``: one sample at a time (ONNX Runtime's histogram calibrators stack
        the outputs of every run, so the runs must have one shape)."""
        from onnxruntime.quantization import CalibrationDataReader

        batches = self.batches
        if per_sample:
            batches = tuple(b[i:i + 1] for b in self.batches for i in range(b.shape[0]))

        class _Reader(CalibrationDataReader):
            def __init__(self) -> None:
                self._next = iter(batches)

            def get_next(self) -> dict[str, np.ndarray] | None:
                batch = next(self._next, None)
                return None if batch is None else {input_name: batch}

            def rewind(self) -> None:
                self._next = iter(batches)

        return _Reader()


def calibration_from_batches(batches: Iterable[Any], *, samples: int | None = None,
                             source: str = "calibration data") -> Calibration:
    """Collect input batches (tensors, or ``(inputs, targets)`` pairs) up to ``samples``
    samples (``None``: all); raise :class:`QuantizationError` when there are none."""
    if samples is not None and samples < 1:
        raise QuantizationError(f"calibration samples must be >= 1, got {samples}")
    arrays: list[np.ndarray] = []
    count = 0
    for batch in batches:
        x = _inputs_of(batch)
        if samples is not None and count + x.shape[0] > samples:
            x = x[:samples - count]
        if x.shape[0] == 0:
            break
        arrays.append(np.ascontiguousarray(x.numpy()))
        count += int(x.shape[0])
        if samples is not None and count >= samples:
            break
    if not arrays:
        raise QuantizationError(f"{source} yielded no batches: static int8 needs calibration "
                                "inputs (pass --calibration DATA, or calibration batches)")
    return Calibration(tuple(arrays), source)
