"""What a classifier's forward returns, read as logits: a tensor as it is, or the ``logits``
of a Hugging Face ``ModelOutput`` (``...ForSequenceClassification`` models). The built-in
loss, metrics and distillation read outputs through :func:`logits_of`; a user's own loss or
metric gets the model's output unchanged."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["logits_of"]


def logits_of(outputs: Any) -> Any:
    """``outputs.logits`` when ``outputs`` is not a tensor but carries a logits tensor;
    otherwise ``outputs`` itself."""
    if isinstance(outputs, torch.Tensor):
        return outputs
    logits = getattr(outputs, "logits", None)
    return logits if isinstance(logits, torch.Tensor) else outputs
