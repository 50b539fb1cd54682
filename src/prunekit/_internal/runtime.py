"""How the engine runs around the user's model: modes restored exactly, collector paused."""

from __future__ import annotations

import gc
from contextlib import contextmanager
from collections.abc import Iterator

import torch
import torch.nn as nn


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule in eval mode and restore each one's own ``training`` flag after
    (``model.train(flag)`` would overwrite submodules the user had put in a different mode)."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, flag in flags:
            m.training = flag


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector (reference counting still frees everything).

    The engine allocates many short-lived objects, which triggers full collections; with
    torch loaded a process holds ~300k tracked objects and one full collection costs about
    as much as pruning a small model. The collector's previous state is restored on exit.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Use ``count`` torch CPU threads inside the block (``None``: leave the setting), then
    restore the previous setting."""
    previous = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
