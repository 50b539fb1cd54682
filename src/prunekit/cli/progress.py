"""A click progress bar over fine-tuning epochs (stderr; nothing when quiet).

The bar opens at the first finished epoch and closes after the last one, so progress
messages logged before and after fine-tuning never cut through it.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any

import click

__all__ = ["epoch_progress"]


@contextlib.contextmanager
def epoch_progress(epochs: int, *, enabled: bool,
                   label: str = "fine-tuning") -> Iterator[Callable[[Any], None] | None]:
    """Yield an ``on_epoch`` callback that advances a bar of ``epochs`` steps, or ``None``."""
    if not enabled or epochs < 1:
        yield None
        return
    state: dict[str, Any] = {"bar": None, "done": 0}

    def close() -> None:
        if state["bar"] is not None:
            state["bar"].__exit__(None, None, None)
            state["bar"] = None

    def on_epoch(_record: Any) -> None:
        if state["bar"] is None and state["done"] < epochs:
            state["bar"] = click.progressbar(length=epochs, label=label, file=sys.stderr,
                                             show_eta=True, show_pos=True).__enter__()
        state["done"] += 1
        if state["bar"] is not None:
            state["bar"].update(1)
        if state["done"] >= epochs:
            close()

    try:
        yield on_epoch
    finally:
        close()
