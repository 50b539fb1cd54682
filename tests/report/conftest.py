"""Shared fixture: a small report (a tiny CNN pruned at 0.5, top-5 accuracy as metric)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import prunekit
from prunekit.report import build_report, collect_stats
from prunekit.report.build import point


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(8, 4))
    example = torch.randn(1, 1, 8, 8)
    before = collect_stats(model, example, threads=1, warmup=0, repeats=2, metric=0.9)
    result = prunekit.prune(model, example, ratio=0.5)
    after = collect_stats(model, example, threads=1, warmup=0, repeats=2, metric=0.85)
    return build_report(model={"name": "tiny", "input_shape": [1, 1, 8, 8]},
                        task={"dataset": "synthetic", "metric": "top-5 accuracy",
                              "metric_spec": "top5", "metric_fraction": True, "split": "val"},
                        before=before, after=after, plan=result.plan,
                        points=[point("dense", "dense", before),
                                point("ratio 0.5", "fine-tuned", after)])
