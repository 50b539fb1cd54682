"""Decomposition in runs: the recipe section, the ``--decompose`` option, report rows and
the saved folder that reloads."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import prunekit
from prunekit.cli.main import run
from prunekit.decompose import LowRankLinear, SpatialConv2d, Tucker2Conv2d
from prunekit.models.digits_cnn import DigitsCNN
from prunekit.report.schema import ReportError, validate_report
from prunekit.workflow.recipe import RecipeError, recipe_from_dict

Runner = Callable[[list[str]], tuple[int, str, str]]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Runner:
    def invoke(args: list[str]) -> tuple[int, str, str]:
        capsys.readouterr()
        code = run(args)
        captured = capsys.readouterr()
        return code, captured.out, captured.err
    return invoke


def test_recipe_section_maps_onto_the_config() -> None:
    config = recipe_from_dict({"decompose": {"energy": 0.9, "layers": "features.*",
                                             "conv": "tucker2", "ranks": {"classifier": 4,
                                                                         "features.0.0": [1, 2]}}})
    d = config.decompose
    assert d is not None and d.energy == 0.9 and d.layers == ("features.*",)
    assert d.conv == ("tucker2",) and dict(d.ranks) == {"classifier": 4, "features.0.0": (1, 2)}
    assert recipe_from_dict({"decompose": None}).decompose is None
    assert recipe_from_dict({}).decompose is None


@pytest.mark.parametrize("section, message", [
    ({"decompose": {}}, "say how to choose ranks"),
    ({"decompose": {"energyy": 0.9}}, "unknown key decompose.energyy; valid keys"),
    ({"decompose": {"energy": 0.9}, "iterative": {}}, "not available together"),
])
def test_bad_recipe_sections_are_refused(section: dict, message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        recipe_from_dict(section)


def test_prune_then_decompose_from_the_command_line(cli: Runner, tmp_path: Path) -> None:
    out = tmp_path / "run"
    code, stdout, err = cli(["prune", "prunekit:digits_cnn", "--ratio", "0.5", "--decompose",
                             "rank_ratio=0.25", "--decompose", "time_layers=true",
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
    assert [p["stage"] for p in report["points"]] == ["dense", "pruned", "decomposed"]
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


def test_the_report_checks_decomposition_rows() -> None:
    model = DigitsCNN().eval()
    result = prunekit.decompose(model, torch.randn(1, 1, 8, 8), rank_ratio=0.25)
    from prunekit.report.build import build_report
    from prunekit.report.stats import collect_stats

    stats = collect_stats(model, torch.randn(1, 1, 8, 8), threads=1, warmup=1, repeats=2)
    report = build_report(model={"name": "digits"}, task={"dataset": "none"}, before=stats,
                          after=stats, decomposition=result.to_dict())
    assert report["decomposition"]["layers"][0]["name"] == "features.0.0"
    bad = json.loads(json.dumps(report))
    del bad["decomposition"]["layers"][0]["rank"]
    with pytest.raises(ReportError, match=r"decomposition.layers\[0\] lacks \['rank'\]"):
        validate_report(bad)
    bad = json.loads(json.dumps(report))
    bad["decomposition"]["layers"][0].update(kind=None, reason=None)
    with pytest.raises(ReportError, match="neither factorized nor has a reason"):
        validate_report(bad)
