"""Decomposition in runs: the recipe section and the report's rows (the ``--decompose``
option is tested in ``tests/cli/test_cli_decompose.py``)."""

from __future__ import annotations

import json
import pytest
import torch

import prunekit
from prunekit.models.digits_cnn import DigitsCNN
from prunekit.report.schema import ReportError, validate_report
from prunekit.workflow.recipe import RecipeError, recipe_from_dict


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


def test_the_report_checks_decomposition_rows() -> None:
    model = DigitsCNN().eval()
    result = prunekit.decompose(model, torch.randn(1, 1, 8, 8), rank_ratio=0.25)
    from prunekit.report.build import build_report
    from prunekit.report.stats import collect_stats

    stats = collect_stats(model, torch.randn(1, 1, 8, 8), threads=1, warmup=1, repeats=2)
    report = build_report(model={"name": "digits"}, task={"dataset": "none"}, before=stats,
                          after=stats, decomposition=result.to_dict())
    assert report["decomposition"]["layers"][0]["name"] == "features.0.0"
    from prunekit.report.html import render_html

    page = render_html(report)
    assert "Low-rank decomposition" in page and "features.3.0" in page
    assert all(r["reason"] is None or r["reason"][:20] in page
               for r in report["decomposition"]["layers"])
    bad = json.loads(json.dumps(report))
    del bad["decomposition"]["layers"][0]["rank"]
    with pytest.raises(ReportError, match=r"decomposition.layers\[0\] lacks \['rank'\]"):
        validate_report(bad)
    bad = json.loads(json.dumps(report))
    bad["decomposition"]["layers"][0].update(kind=None, reason=None)
    with pytest.raises(ReportError, match="neither factorized nor has a reason"):
        validate_report(bad)
