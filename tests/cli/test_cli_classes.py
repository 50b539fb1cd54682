"""The command-line story of a fine-tuned model with its own classes: constructor arguments
(``--model-arg``, ``SPEC?KEY=VALUE``, a recipe's ``model.args``), the class count inferred
from ``--weights``, and data whose classes the model's outputs do not match."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from prunekit.report import load_report

Runner = Callable[[list[str]], tuple[int, str, str]]
FAST = ["--repeats", "2", "--threads", "1", "--no-html"]


@pytest.fixture
def digit_images(tmp_path: Path) -> Path:
    """An image folder of real digits written as PNGs: classes 0, 1 and 2, six each."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    root = tmp_path / "imgs"
    for label in range(3):
        (root / str(label)).mkdir(parents=True)
        for i, image in enumerate(digits.images[digits.target == label][:6]):
            pixels = (image * 255 / 16).astype(np.uint8)
            Image.fromarray(pixels).save(root / str(label) / f"{i}.png")
    return root


def test_resnet18_with_its_own_classes(cli: Runner, digit_images: Path, tmp_path: Path) -> None:
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    weights = tmp_path / "r18.pt"
    torch.save(torchvision.models.resnet18(num_classes=3).state_dict(), weights)
    data = ["--data", str(digit_images), "--image-size", "32"]

    code, _, err = cli(["prune", "torchvision:resnet18", *data, "--out", str(tmp_path / "x"),
                        *FAST])
    assert code == 1 and err.strip().splitlines() == [
        "model: torchvision:resnet18",
        "prunekit: error: imgs (3 classes: 0, 1, 2) has 3 classes but torchvision:resnet18 "
        "outputs 1000 logits: build it with num_classes=3: torchvision:resnet18?num_classes=3, "
        "or --model-arg num_classes=3"]

    out = tmp_path / "run1"
    code, _, err = cli(["prune", "torchvision:resnet18", "--weights", str(weights), *data,
                        "--flops-reduction", "2", "--out", str(out), *FAST])
    assert code == 0, err
    assert (f"num_classes=3 inferred from the weights in '{weights}' (fc.weight [3, 512]): "
            "the model is torchvision:resnet18?num_classes=3") in err.splitlines()
    report = load_report(out)
    assert report["model"]["spec"] == "torchvision:resnet18?num_classes=3"
    assert report["model"]["input_shape"] == [1, 3, 32, 32]
    # the recorded spec rebuilds the architecture the pruned weights belong to
    code, _, err = cli(["measure", "--pruned", str(out / "pruned"),
                        report["model"]["spec"], "--input-shape", "1,3,32,32", "--json",
                        "--repeats", "1", "--threads", "1"])
    assert code == 0, err

    code, _, err = cli(["prune", "torchvision:resnet18", "--model-arg", "num_classes=5",
                        "--weights", str(weights), *data, "--out", str(tmp_path / "y"), *FAST])
    assert code == 1 and err.strip().splitlines()[-1] == (
        f"prunekit: error: the weights in '{weights}' do not fit "
        "torchvision:resnet18?num_classes=5: 2 tensor(s) differ in shape (file vs model): "
        "fc.weight [3, 512] vs [5, 512], fc.bias [3] vs [5]; only the classification head "
        "differs (3 classes in the file, 5 in the model): set num_classes=3 instead of 5: "
        "torchvision:resnet18?num_classes=3, or --model-arg num_classes=3")


def test_model_args_on_the_command_line(cli: Runner, digit_images: Path,
                                        tmp_path: Path) -> None:
    data = ["--data", str(digit_images), "--image-size", "8"]
    out = tmp_path / "run"
    code, stdout, err = cli(["prune", "prunekit:digits_cnn", "--model-arg", "in_channels=3",
                             "--model-arg", "num_classes=3", *data, "--out", str(out),
                             "--json", *FAST])
    assert code == 0, err
    report = json.loads(stdout)["report"]
    assert report["model"]["spec"] == "prunekit:digits_cnn?in_channels=3,num_classes=3"
    assert report["settings"]["run"]["model"]["args"] == {"in_channels": 3, "num_classes": 3}
    code, stdout, err = cli(["measure", "prunekit:digits_cnn?in_channels=3,num_classes=3",
                             *data, "--json", "--repeats", "1", "--threads", "1"])
    assert code == 0, err
    assert json.loads(stdout)["model"] == "prunekit:digits_cnn?in_channels=3,num_classes=3"

    code, _, err = cli(["measure", "prunekit:digits_cnn?in_channels=3", *data, "--quiet"])
    assert code == 1 and err.strip() == (
        "prunekit: error: imgs (3 classes: 0, 1, 2) has 3 classes but "
        "prunekit:digits_cnn?in_channels=3 outputs 10 logits: build it with num_classes=3: "
        "prunekit:digits_cnn?in_channels=3,num_classes=3, or --model-arg num_classes=3")
    code, _, err = cli(["analyze", "prunekit:digits_cnn", "--model-arg", "num_class=3",
                        "--quiet", "--out", str(tmp_path / "an")])
    assert code == 1 and err.strip() == (
        "prunekit: error: prunekit:digits_cnn?num_class=3: unknown argument 'num_class' (did "
        "you mean num_classes?); prunekit's DigitsCNN accepts: widths, num_classes, "
        "in_channels")
    code, _, err = cli(["prune", "prunekit:digits_cnn", "--model-arg", "num_classes"])
    assert code == 2 and "--model-arg 'num_classes' is not KEY=VALUE" in err
    code, _, err = cli(["prune", "prunekit:digits_cnn?num_classes=4", "--model-arg",
                        "num_classes=3"])
    assert code == 2 and "argument 'num_classes' is given twice (4 and 3); keep one" in err
    assert len(err.strip().splitlines()) == 1


def test_recipe_model_args_and_inferred_classes(cli: Runner, digit_images: Path,
                                                tmp_path: Path) -> None:
    from prunekit.models import DigitsCNN

    torch.manual_seed(0)
    weights = tmp_path / "cnn3.pt"
    torch.save(DigitsCNN(num_classes=3, in_channels=3).state_dict(), weights)
    recipe = tmp_path / "r.yaml"
    base = (f"data:\n  spec: {digit_images}\n  image_size: 8\n"
            "out:\n  repeats: 1\n  warmup: 0\n  threads: 1\n  html: false\n")
    recipe.write_text(f"model:\n  spec: prunekit:digits_cnn\n  weights: {weights}\n"
                      f"  args: {{in_channels: 3}}\n{base}")
    code, stdout, err = cli(["run", str(recipe), "--out", str(tmp_path / "a"), "--json"])
    assert code == 0, err
    assert json.loads(stdout)["report"]["model"]["spec"] == (
        "prunekit:digits_cnn?in_channels=3,num_classes=3")
    recipe.write_text(f"model:\n  spec: prunekit:digits_cnn?num_classes=4\n"
                      f"  weights: {weights}\n  args: {{in_channels: 3}}\n{base}")
    code, _, err = cli(["run", str(recipe), "--out", str(tmp_path / "b"), "--quiet"])
    assert code == 1 and err.strip().endswith(
        "only the classification head differs (3 classes in the file, 4 in the model): set "
        "num_classes=3 instead of 4: prunekit:digits_cnn?num_classes=3,in_channels=3, or "
        "--model-arg num_classes=3")
    recipe.write_text(f"model:\n  spec: prunekit:digits_cnn\n  args: [3]\n{base}")
    code, _, err = cli(["run", str(recipe), "--quiet"])
    assert code == 1 and "section 'model': model args must be a mapping of names to values" \
        in err
