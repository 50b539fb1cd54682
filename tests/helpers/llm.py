"""Tiny Hugging Face models of the family table and calibration batches for the LLM tests."""

from __future__ import annotations

import torch

from prunekit.hf.families import FAMILIES, family_of_config
from prunekit.llm import CalibrationData
from prunekit.testing import hf_example

#: every model type layer-by-layer pruning supports that has an example config
ONESHOT_TYPES: tuple[str, ...] = tuple(t for fam in FAMILIES if fam.oneshot
                                       for t in fam.model_types if t in fam.examples)


def tiny_hf_model(model_type: str) -> torch.nn.Module:
    """The table's example of ``model_type`` (eager attention): a causal LM for decoders,
    the bare encoder otherwise."""
    from types import SimpleNamespace

    decoder = family_of_config(SimpleNamespace(model_type=model_type)).decoder
    return hf_example(model_type, "causal" if decoder else "base", attn_implementation="eager")


def calibration(family: str, n: int = 6) -> CalibrationData:
    """``n`` random 16-token sequences (seed 0); encoders get two padded rows."""
    ids = torch.randint(0, 100, (n, 16), generator=torch.Generator().manual_seed(0))
    if family not in ("bert", "roberta"):
        return CalibrationData(ids)
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0
    mask[4, 5:] = 0
    return CalibrationData(ids, mask)
