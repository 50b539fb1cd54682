"""Calibration data: token-id tensors, from pre-tokenized tensors, a text file or sentences."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError


@dataclass(frozen=True)
class CalibrationData:
    """``input_ids`` ``[num_samples, seq_len]`` (long) and an optional padding mask."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor | None = None

    def __post_init__(self) -> None:
        ids = self.input_ids
        if not isinstance(ids, torch.Tensor) or ids.dim() != 2 or ids.numel() == 0:
            shape = tuple(ids.shape) if isinstance(ids, torch.Tensor) else type(ids).__name__
            raise ConfigError(
                f"calibration input_ids must be a non-empty 2-D tensor [num_samples, seq_len], "
                f"got {shape}"
            )
        if ids.dtype not in (torch.int64, torch.int32):
            raise ConfigError(f"calibration input_ids must hold integer token ids, got {ids.dtype}")
        mask = self.attention_mask
        if mask is not None and (not isinstance(mask, torch.Tensor) or mask.shape != ids.shape):
            got = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
            raise ConfigError(
                f"calibration attention_mask must have the shape of input_ids "
                f"{tuple(ids.shape)}, got {got}"
            )

    @property
    def num_samples(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def seq_len(self) -> int:
        return int(self.input_ids.shape[1])

    def batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        """``(input_ids, attention_mask)`` chunks of at most ``batch_size`` samples."""
        for start in range(0, self.num_samples, batch_size):
            ids = self.input_ids[start:start + batch_size].long()
            mask = None if self.attention_mask is None else \
                self.attention_mask[start:start + batch_size]
            yield ids, mask


def calibration_from_tensors(input_ids: torch.Tensor,
                             attention_mask: torch.Tensor | None = None) -> CalibrationData:
    """Wrap pre-tokenized ids (``[N, T]``, or ``[T]`` for one sequence)."""
    if isinstance(input_ids, torch.Tensor) and input_ids.dim() == 1:
        input_ids = input_ids[None, :]
        attention_mask = None if attention_mask is None else attention_mask[None, :]
    return CalibrationData(input_ids, attention_mask)


def calibration_from_text(text: str | Path, tokenizer: Any, *, num_samples: int,
                          seq_len: int) -> CalibrationData:
    """Tokenize a text (or a text file) and cut ``num_samples`` consecutive windows.

    This is the usual decoder calibration: ``num_samples`` windows of ``seq_len`` tokens
    from the concatenated text. Raises :class:`ConfigError` when the text is too short.
    """
    if num_samples < 1 or seq_len < 1:
        raise ConfigError(f"num_samples and seq_len must be >= 1, got {num_samples}, {seq_len}")
    if isinstance(text, Path):
        if not text.is_file():
            raise ConfigError(f"calibration text file {str(text)!r} does not exist")
        text = text.read_text(encoding="utf-8")
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"][0]
    need = num_samples * seq_len
    if ids.numel() < need:
        raise ConfigError(
            f"calibration text is too short: it has {ids.numel()} tokens but num_samples "
            f"({num_samples}) x seq_len ({seq_len}) = {need} are needed; give more text or "
            f"lower num_samples / seq_len"
        )
    return CalibrationData(ids[:need].reshape(num_samples, seq_len).long())


def calibration_from_sentences(sentences: Sequence[str], tokenizer: Any, *,
                               max_length: int = 128) -> CalibrationData:
    """One padded sequence per sentence (encoder calibration), with its attention mask."""
    sentences = [s for s in sentences if s.strip()]
    if not sentences:
        raise ConfigError("calibration needs at least one non-empty sentence")
    enc = tokenizer(sentences, padding=True, truncation=True, max_length=max_length,
                    return_tensors="pt")
    return CalibrationData(enc["input_ids"].long(), enc["attention_mask"])
