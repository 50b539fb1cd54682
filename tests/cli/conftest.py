"""Helpers for the command-line tests: run the CLI in-process and capture its output."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from prunekit.cli.main import run

MLP_SOURCE = """
import torch
import torch.nn as nn


def mlp():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    with torch.no_grad():
        model[0].weight[:, 3:] *= 1e-3   # columns d, e, f barely matter
    return model
"""


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[[list[str]], tuple[int, str, str]]:
    """Run ``prunekit ARGS`` in-process; return (exit code, stdout, stderr)."""
    def invoke(args: list[str]) -> tuple[int, str, str]:
        capsys.readouterr()
        code = run(args)
        captured = capsys.readouterr()
        return code, captured.out, captured.err
    return invoke


@pytest.fixture
def tabular(tmp_path: Path) -> tuple[Path, Path]:
    """A 6-feature, 3-class CSV (columns a..f + label) and a factory file for a small MLP."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(90, 6)).astype(np.float32)
    y = np.argmax(x[:, :3], axis=1)
    lines = ["a,b,c,d,e,f,label"] + [",".join(f"{v:.4f}" for v in row) + f",{c}"
                                     for row, c in zip(x, y)]
    table = tmp_path / "table.csv"
    table.write_text("\n".join(lines) + "\n")
    source = tmp_path / "mlp.py"
    source.write_text(MLP_SOURCE)
    np.savez(tmp_path / "arrays.npz", x=x, y=y)
    return table, source
