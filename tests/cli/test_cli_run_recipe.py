"""``prunekit run RECIPE``: the shipped example recipe runs; bad keys name themselves."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from prunekit.workflow.recipe import RecipeError, load_recipe, recipe_from_dict

Runner = Callable[[list[str]], tuple[int, str, str]]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "recipe.yaml"


def test_example_recipe_runs(cli: Runner, tmp_path: Path) -> None:
    config = load_recipe(EXAMPLE)
    assert config.prune.ratio == 0.5 and config.finetune.epochs == 2
    code, stdout, _ = cli(["run", str(EXAMPLE), "--out", str(tmp_path / "o"), "--json"])
    assert code == 0
    report = json.loads(stdout)["report"]
    assert report["settings"]["run"]["finetune"]["epochs"] == 2
    assert report["settings"]["run"]["distill"] == {"temperature": 2.0, "alpha": 0.9,
                                                    "features": [], "feature_weight": 1.0}
    assert report["after"]["macs"] < report["before"]["macs"]
    assert (tmp_path / "o" / "pruned" / "model.safetensors").is_file()


def test_recipe_maps_onto_config_objects() -> None:
    config = recipe_from_dict({"prune": {"ratio": 0.3, "ignore": ["fc*"],
                                         "input_features": [[0, 1]]},
                               "distill": None, "model": {"input_shape": [1, 64]}})
    assert config.prune.ignore == ("fc*",) and config.prune.input_features == ((0, 1),)
    assert config.distill is None and config.model.input_shape == (1, 64)
    assert config.finetune.epochs == 0  # RunConfig's default, not FinetuneConfig's
    assert config.reconstruct is None
    config = recipe_from_dict({"reconstruct": {}})
    assert config.reconstruct is not None and config.reconstruct.batches == 8
    config = recipe_from_dict({"distill": {"features": ["features.1", "features.3"]}})
    assert config.distill is not None and config.distill.features == ("features.1", "features.3")


@pytest.mark.parametrize("text, message", [
    ("prune:\n  ratioo: 0.5\n", "unknown key prune.ratioo; valid keys of 'prune': ratio, "),
    ("pruning:\n  ratio: 0.5\n", "unknown key 'pruning'; valid top-level keys: model, data"),
    ("prune:\n  ratio: 2\n", "ratio must be a number in [0, 1)"),
    ("prune: [1, 2]\n", "section 'prune' must be a mapping"),
    ("prune: {ratio: [\n", "is not valid YAML"),
    ("reconstruct:\n  batches: 0\n", "reconstruct batches must be an integer >= 1"),
    ("reconstruct: {}\nprune: {input_features: [[0, 1]]}\n",
     "reconstruction is not available together with input-feature pruning"),
])
def test_bad_recipes_fail_with_one_line(text: str, message: str, cli: Runner,
                                        tmp_path: Path) -> None:
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(text)
    with pytest.raises(RecipeError, match="recipe"):
        load_recipe(recipe)
    code, stdout, err = cli(["run", str(recipe), "--out", str(tmp_path / "o")])
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err + stdout and not (tmp_path / "o").exists()
