"""``prunekit prune --decompose KEY=VALUE``: prune, factorize, fine-tune with distillation,
report per layer, and a saved folder that reloads."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import prunekit
from prunekit.decompose import LowRankLinear, SpatialConv2d, Tucker2Conv2d
from prunekit.models.digits_cnn import DigitsCNN
from prunekit.report.schema import validate_report

Runner = Callable[[list[str]], tuple[int, str, str]]


def test_prune_then_decompose_from_the_command_line(cli: Runner, tmp_path: Path) -> None:
    out = tmp_path / "run"
    code, stdout, err = cli(["prune", "prunekit:digits_cnn", "--ratio", "0.5", "--decompose",
                             "rank_ratio=0.25", "--decompose", "time_layers=true",
                             "--finetune-epochs", "1", "--distill-feature", "features.3",
                             "--threads", "1", "--repeats", "2", "--no-html", "--json",
                             "--out", str(out)])
    assert code == 0, err
    report = json.loads(stdout)["report"]
    validate_report(report)
    rows = report["decomposition"]["layers"]
    assert [r["name"] for r in rows] == ["features.0.0", "features.1.0", "features.3.0",
                                         "classifier"]
    factorized = [r for r in rows if r["kind"]]
    assert factorized and all(r["params_after"] < r["params_before"] for r in factorized)
    assert all(r["ms"] is not None and r["ms_dense"] is not None for r in factorized)
    assert all(r["reason"] for r in rows if not r["kind"])
    assert [p["stage"] for p in report["points"]] == ["dense", "pruned", "decomposed",
                                                      "fine-tuned"]
    assert report["after"]["params"] == report["points"][-1]["params"]
    plan = json.loads((out / "pruned" / "plan.json").read_text())
    assert plan["version"] == 2 and len(plan["decompositions"]) == len(factorized)
    model = prunekit.load_pruned(DigitsCNN(), out / "pruned")
    kinds = (LowRankLinear, SpatialConv2d, Tucker2Conv2d)
    assert sum(isinstance(m, kinds) for m in model.modules()) == len(factorized)
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)


@pytest.mark.parametrize("option, message", [
    ("energy", "KEY=VALUE"),
    ("bogus=1", "unknown key decompose.bogus"),
    ("energy=2", "energy must be a number"),
])
def test_bad_decompose_options_are_usage_errors(cli: Runner, tmp_path: Path, option: str,
                                                message: str) -> None:
    code, _, err = cli(["prune", "prunekit:digits_cnn", "--decompose", option,
                        "--out", str(tmp_path / "o")])
    assert code == 2 and message in err
    assert not (tmp_path / "o").exists()
