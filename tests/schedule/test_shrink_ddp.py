"""ShrinkingPruner under DistributedDataParallel: two gloo ranks on CPU, each with its own
data, remove the same units (scores are all-reduced) and stay in sync after re-wrapping."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from safetensors.torch import load_file

HELPER = Path(__file__).resolve().parents[1] / "helpers" / "ddp_shrink.py"

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                reason="torch.distributed with gloo is not available")


def _run(folder: Path, *extra: str) -> tuple[list[object], list[dict[str, torch.Tensor]]]:
    done = subprocess.run([sys.executable, str(HELPER), str(folder), *extra], timeout=240,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    plans = [json.loads((folder / f"rank{r}.json").read_text()) for r in (0, 1)]
    weights = [load_file(str(folder / f"rank{r}.safetensors")) for r in (0, 1)]
    return plans, weights


def test_ranks_take_the_same_decisions_and_stay_in_sync(tmp_path: Path) -> None:
    plans, weights = _run(tmp_path)
    assert len(plans[0]) == 2 and plans[0] == plans[1]
    assert not list(tmp_path.glob("*.error"))
    assert weights[0]["conv1.weight"].shape[0] == 6
    for key in weights[0]:  # parameters (BatchNorm statistics are per rank until the next
        if "running" not in key and "num_batches" not in key:  # forward broadcasts them)
            assert torch.equal(weights[0][key], weights[1][key]), key


def test_without_the_all_reduce_ranks_would_disagree(tmp_path: Path) -> None:
    plans, _ = _run(tmp_path, "local")
    assert plans[0] != plans[1]  # the same check above is not vacuous
