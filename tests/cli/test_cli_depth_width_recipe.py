"""The recipe's ``depth_width`` section: parsed, checked, and refused where it does not
combine with other sections."""

from __future__ import annotations

import pytest

from prunekit.workflow.config import DepthWidthRun
from prunekit.workflow.recipe import RecipeError, recipe_from_dict


def test_the_section_parses_with_defaults_and_values() -> None:
    config = recipe_from_dict({"depth_width": {"macs_reduction": 1.8, "budget": 0.02,
                                               "rank_by": "time"}})
    assert config.depth_width == DepthWidthRun(macs_reduction=1.8, budget=0.02, rank_by="time")
    assert recipe_from_dict({"depth_width": {}}).depth_width == DepthWidthRun()
    assert recipe_from_dict({"depth_width": None}).depth_width is None
    assert config.settings()["depth_width"]["macs_reduction"] == 1.8


@pytest.mark.parametrize(("data", "message"), [
    ({"depth_width": {"target": 2}}, "unknown key depth_width.target"),
    ({"depth_width": {"macs_reduction": 1.0}}, "macs_reduction must be a number > 1"),
    ({"depth_width": {"budget": -1}}, "budget must be a number >= 0"),
    ({"depth_width": {"steps": 0}}, "steps must be an integer >= 1"),
    ({"depth_width": {"rank_by": "speed"}}, "rank_by must be"),
    ({"depth_width": {"width": "wide"}}, "width must be"),
    ({"depth_width": {}, "iterative": {}}, "not available together with iterative"),
    ({"depth_width": {}, "prune": {"flops_reduction": 2}}, "has its own target"),
])
def test_bad_depth_width_sections(data: dict[str, object], message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        recipe_from_dict(data)
