"""Running the command line in-process, and a model file the CLI tests load."""

from __future__ import annotations

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


def run_cli(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, str, str]:
    """``prunekit ARGS`` in-process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = run(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err
