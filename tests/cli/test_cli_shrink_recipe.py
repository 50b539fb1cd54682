"""``prunekit run`` with a ``shrink`` section: prune while training, training-cost report."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from prunekit import load_pruned
from prunekit.models.digits_cnn import DigitsCNN
from prunekit.workflow.recipe import RecipeError, recipe_from_dict

Runner = Callable[[list[str]], tuple[int, str, str]]

RECIPE = """
model: {spec: "prunekit:digits_cnn"}
data: {spec: digits, batch_size: 128}
prune: {ratio: 0.5, importance: bn_scale}
finetune: {lr: 0.05, optimizer: sgd, weight_decay: 0.0005}
shrink: {epochs: 2, start: 0.5, end: 1.0, every: 0.5, dense_baseline: true}
out: {repeats: 3, warmup: 1}
"""


def test_shrink_recipe_trains_small_and_reports_the_training_cost(cli: Runner,
                                                                  tmp_path: Path) -> None:
    recipe = tmp_path / "shrink.yaml"
    recipe.write_text(RECIPE)
    code, stdout, _ = cli(["run", str(recipe), "--out", str(tmp_path / "o"), "--json"])
    assert code == 0
    report = json.loads(stdout)["report"]
    training = report["training"]
    assert len(training["shrink"]["epochs"]) == len(training["dense"]["epochs"]) == 2
    steps = training["shrink"]["macs_steps"]
    assert steps[0][1] == training["dense"]["macs_steps"][0][1]
    assert steps[-1][1] < steps[0][1] / 3.5  # ratio 0.5 of every channel group
    assert report["after"]["macs"] < report["before"]["macs"] / 3.5
    assert [e["sparsity"] for e in training["events"]][-1] == 0.5
    assert "Training cost" in (tmp_path / "o" / "report.html").read_text()
    model = load_pruned(DigitsCNN(), tmp_path / "o" / "pruned")  # one composed plan
    assert sum(p.numel() for p in model.parameters()) == report["after"]["params"]


@pytest.mark.parametrize("data, message", [
    ({"shrink": {"epochs": 2, "end": 3}}, "shrink.end"),
    ({"shrink": {"epoch": 2}}, "unknown key shrink.epoch"),
    ({"shrink": {}, "iterative": {}}, "not available together with iterative"),
    ({"shrink": {}, "prune": {"flops_reduction": 4.0}}, "shrink.target_macs"),
    ({"shrink": {"schedule": "cosine"}}, "schedule"),
])
def test_bad_shrink_sections(data: dict[str, object], message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        recipe_from_dict(data)


def test_example_shrink_recipe_parses() -> None:
    from prunekit.workflow.recipe import load_recipe

    config = load_recipe(Path(__file__).resolve().parents[2] / "examples" / "shrink_recipe.yaml")
    assert config.shrink is not None and config.shrink.epochs == 12
    assert config.prune.ratio == 0.5 and config.finetune.optimizer == "sgd"


def test_recipe_serving_batch_times_the_shrunk_model(cli: Runner, tmp_path: Path) -> None:
    recipe = tmp_path / "shrink.yaml"
    recipe.write_text(RECIPE.replace("shrink: {epochs: 2, start: 0.5, end: 1.0, every: 0.5, "
                                     "dense_baseline: true}",
                                     "shrink: {epochs: 1, start: 0.0, end: 1.0, every: 0.5}")
                      .replace("out: {repeats: 3, warmup: 1}",
                               "out: {repeats: 3, warmup: 1, serving_batch: 32}"))
    code, stdout, _ = cli(["run", str(recipe), "--out", str(tmp_path / "o"), "--json"])
    assert code == 0
    speed = json.loads(stdout)["report"]["speed"]
    assert speed["serving_batch"] == 32 and [r["batch_size"] for r in speed["rows"]] == [1, 32]
    assert speed["macs_ratio"] > 3.5
