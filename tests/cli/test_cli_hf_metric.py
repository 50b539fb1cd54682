"""``--data`` as a saved Hugging Face dataset, ``--metric`` (accuracy, top-k, a user
function) in prune / measure / analyze / run, and ``--cuda-graph`` refused off CUDA."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from prunekit.workflow.recipe import recipe_from_dict

Runner = Callable[[list[str]], tuple[int, str, str]]
FAST = ["--repeats", "2", "--threads", "1"]

METRIC_SOURCE = """
import torch


def neg_loss(outputs, targets):
    return -torch.nn.functional.cross_entropy(outputs, targets)


def broken(outputs, targets):
    raise ValueError("bad batch")


def words(outputs, targets):
    return "high"
"""


@pytest.fixture
def hf_images(tmp_path: Path) -> Path:
    """A DatasetDict (train 45 / test 15) of 8x8 grayscale stripes in 3 classes."""
    datasets = pytest.importorskip("datasets")
    from PIL import Image

    rng = np.random.default_rng(0)
    images, labels = [], []
    for i in range(60):
        label = i % 3
        pixels = rng.integers(0, 40, (8, 8))
        pixels[:, 2 * label:2 * label + 3] += 200
        images.append(Image.fromarray(pixels.astype(np.uint8), mode="L"))
        labels.append(label)
    features = datasets.Features({"image": datasets.Image(),
                                  "label": datasets.ClassLabel(names=["left", "mid", "right"])})
    full = datasets.Dataset.from_dict({"image": images, "label": labels}, features=features)
    root = tmp_path / "stripes"
    datasets.DatasetDict({"train": full.select(range(45)),
                          "test": full.select(range(45, 60))}).save_to_disk(str(root))
    return root


def test_prune_and_measure_a_saved_hf_dataset(cli: Runner, hf_images: Path,
                                              tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, stdout, err = cli(["prune", "prunekit:digits_cnn", "--model-arg", "num_classes=3",
                             "--data", str(hf_images), "--metric", "top2",
                             "--finetune-epochs", "1", "--out", str(out), "--json", *FAST])
    assert code == 0, err
    report = json.loads(stdout)["report"]
    task = report["task"]
    assert task["metric"] == "top-2 accuracy" and task["metric_spec"] == "top2"
    assert task["metric_fraction"] is True
    assert "Hugging Face dataset, splits train / test" in task["dataset"]
    assert task["train_samples"] == 45 and task["val_samples"] == 15
    assert report["model"]["input_shape"] == [1, 1, 8, 8]
    assert 0.0 <= report["after"]["metric"] <= 1.0
    assert report["settings"]["run"]["data"]["metric"] == "top2"
    page = (out / "report.html").read_text()
    assert "metric: top-2 accuracy" in page and "<th>top-2 accuracy</th>" in page

    code, stdout, err = cli(["measure", "prunekit:digits_cnn?num_classes=3", "--data",
                             str(hf_images), "--metric", "topk:3", "--json", *FAST])
    assert code == 0, err
    result = json.loads(stdout)
    assert result["task"]["metric"] == "top-3 accuracy" and 0.0 <= result["metric"] <= 1.0
    assert result["input_shape"] == [1, 1, 8, 8] and result["latency_ms"]["cuda_graph"] is False

    code, _, err = cli(["measure", "prunekit:digits_cnn?num_classes=3", "--data",
                        str(hf_images), "--split", "validation", "--quiet"])
    assert code == 1 and "its splits are ['train', 'test']: pass --split" in err
    assert len(err.strip().splitlines()) == 1


def test_user_metric_function(cli: Runner, tabular: tuple[Path, Path], tmp_path: Path) -> None:
    table, model = tabular
    metric = tmp_path / "my_metric.py"
    metric.write_text(METRIC_SOURCE)
    out = tmp_path / "out"
    code, stdout, err = cli(["prune", f"{model}:mlp", "--data", str(table), "--metric",
                             f"{metric}:neg_loss", "--out", str(out), "--json", *FAST])
    assert code == 0, err
    report = json.loads(stdout)["report"]
    assert report["task"]["metric"] == "my_metric.py:neg_loss"
    assert report["task"]["metric_fraction"] is False and report["before"]["metric"] < 0
    code, stdout, _ = cli(["measure", f"{model}:mlp", "--data", str(table), "--metric",
                           f"{metric}:neg_loss", *FAST])
    assert code == 0 and "my_metric.py:neg_loss (validation)" in stdout and "%" not in stdout
    for name, message in (("broken", "metric " + f"{metric}:broken(outputs, targets) failed: "
                                     "ValueError: bad batch"),
                          ("words", "returned str, not a number"),
                          ("absent", "defines no callable 'absent'")):
        code, _, err = cli(["measure", f"{model}:mlp", "--data", str(table), "--metric",
                            f"{metric}:{name}", "--quiet"])
        assert code == 1 and message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("args, code, message", [
    (["prune", "prunekit:digits_cnn", "--metric", "f1"], 2, "unknown metric 'f1': use accuracy"),
    (["prune", "prunekit:digits_cnn", "--metric", "top0"], 2, "k must be a positive integer"),
    (["analyze", "prunekit:digits_cnn", "--metric", "topk:x"], 2, "k must be a positive"),
    (["measure", "prunekit:digits_cnn", "--metric", "top5"], 2, "--metric needs --data"),
    (["prune", "prunekit:digits_cnn", "--metric", "top20", *FAST], 1,
     "top-20 accuracy needs at least 20 classes but the model outputs 10 logits"),
    (["prune", "prunekit:digits_cnn", "--metric", "missing.py:f"], 1,
     "metric file 'missing.py' does not exist"),
    (["prune", "prunekit:digits_cnn", "--split", "train"], 1,
     "applies to Hugging Face datasets only"),
    (["measure", "prunekit:digits_cnn", "--cuda-graph"], 2,
     "--cuda-graph needs a CUDA device: pass --device cuda"),
    (["prune", "prunekit:digits_cnn", "--cuda-graph"], 2,
     "CUDA-graph timing needs a CUDA device"),
    (["measure", "prunekit:digits_cnn", "--device", "tpu"], 1, "unknown device 'tpu'"),
])
def test_bad_metric_and_device_options(cli: Runner, tmp_path: Path, args: list[str], code: int,
                                       message: str) -> None:
    out = tmp_path / "out"
    extra = ["--out", str(out)] if args[0] != "measure" else []
    got, stdout, err = cli([*args, *extra, "--quiet"])
    assert got == code and message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err + stdout
    assert not (out / "report.json").exists()


def test_metric_in_recipe_and_analyze(cli: Runner, tmp_path: Path) -> None:
    config = recipe_from_dict({"data": {"metric": "top3"}, "out": {"device": "cpu"}})
    assert config.data.metric == "top3" and config.out.cuda_graph is False
    recipe = tmp_path / "r.yaml"
    recipe.write_text("data:\n  metric: top3\nout:\n  repeats: 2\n  warmup: 0\n  threads: 1\n")
    code, stdout, err = cli(["run", str(recipe), "--out", str(tmp_path / "run"), "--json"])
    assert code == 0, err
    assert json.loads(stdout)["report"]["task"]["metric"] == "top-3 accuracy"
    recipe.write_text("data:\n  metric: f1\n")
    code, _, err = cli(["run", str(recipe), "--out", str(tmp_path / "bad")])
    assert code == 1 and "section 'data': unknown metric 'f1'" in err
    code, stdout, err = cli(["analyze", "prunekit:digits_cnn", "--metric", "top3", "--ratios",
                             "0.5", "--groups", "features.0*", "--out", str(tmp_path / "an")])
    assert code == 0, err
    assert "top-3 accuracy drop in points" in stdout
    saved = json.loads((tmp_path / "an" / "sensitivity.json").read_text())
    assert saved["metric"] == "top-3 accuracy" and saved["metric_spec"] == "top3"
