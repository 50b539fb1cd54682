"""More model and data sources: ``timm:NAME``, a local Hugging Face folder (no network), an
image folder; peak memory in ``prunekit measure`` and in report.json."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from prunekit.models.spec import load_model_spec, parse_model_spec
from prunekit.report import load_report

Runner = Callable[[list[str]], tuple[int, str, str]]
FAST = ["--repeats", "2", "--threads", "1"]

CONV_SOURCE = """
import torch.nn as nn


def small_cnn():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))
"""


def test_timm_spec_and_peak_memory_in_measure(cli: Runner) -> None:
    timm = pytest.importorskip("timm")
    assert parse_model_spec("timm:test_resnet").kind == "timm"
    code, stdout, err = cli(["measure", "timm:test_resnet", "--input-shape", "1,3,32,32",
                             "--json", *FAST])
    assert code == 0, err
    result = json.loads(stdout)
    expected = sum(p.numel() for p in timm.create_model("test_resnet").parameters())
    assert result["params"] == expected
    peak = result["peak_memory"]
    assert peak["rss_growth_bytes"] >= 0 and peak["method"]
    code, _, err = cli(["measure", "timm:no_such_net", "--quiet"])
    assert code == 1 and "timm has no model 'no_such_net'" in err
    assert len(err.strip().splitlines()) == 1


def test_local_hugging_face_folder(cli: Runner, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    transformers = pytest.importorskip("transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = transformers.BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=32,
                                     max_position_embeddings=32, num_labels=3)
    bare = tmp_path / "bert-config-only"
    config.save_pretrained(bare)  # config.json only: random weights, AutoModel
    code, stdout, err = cli(["measure", str(bare), "--json", *FAST])
    assert code == 0, err
    built = load_model_spec(str(bare))
    assert type(built).__name__ == "BertModel"
    assert json.loads(stdout)["params"] == sum(p.numel() for p in built.parameters())
    torch.manual_seed(0)
    head = transformers.BertForSequenceClassification(config)
    weighted = tmp_path / "bert-classifier"
    head.save_pretrained(weighted, safe_serialization=True)
    loaded = load_model_spec(str(weighted))
    assert type(loaded).__name__ == "BertForSequenceClassification"
    a, b = head.state_dict(), loaded.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    code, stdout, err = cli(["measure", str(weighted), "--model-arg", "num_labels=3",
                             "--model-arg", "hidden_dropout_prob=0.0", "--json", *FAST])
    assert code == 0, err
    assert json.loads(stdout)["model"] == f"{weighted}?num_labels=3,hidden_dropout_prob=0.0"
    code, _, err = cli(["measure", f"{weighted}?num_labels=5", "--quiet"])
    assert code == 1 and err.strip() == (
        f"prunekit: error: the weights in '{weighted}' (model.safetensors) do not fit "
        f"{weighted}?num_labels=5: 2 tensor(s) differ in shape (file vs model): "
        "classifier.weight [3, 16] vs [5, 16], classifier.bias [3] vs [5]; only the "
        "classification head differs (3 classes in the file, 5 in the model): set "
        f"num_labels=3 instead of 5: {weighted}?num_labels=3, or --model-arg num_labels=3")
    (tmp_path / "empty").mkdir()
    code, _, err = cli(["measure", str(tmp_path / "empty"), "--quiet"])
    assert code == 2 and "unknown model spec" in err


def test_image_folder_data_and_peak_memory_in_report(cli: Runner, tmp_path: Path) -> None:
    pytest.importorskip("torchvision")
    from PIL import Image

    root = tmp_path / "images"
    generator = torch.Generator().manual_seed(0)
    for label, shade in (("cats", 40), ("dogs", 210)):
        (root / label).mkdir(parents=True)
        for i in range(6):
            noise = torch.randint(0, 30, (12, 12, 3), generator=generator)
            pixels = (noise + shade).clamp(0, 255).to(torch.uint8).numpy()
            Image.fromarray(pixels).save(root / label / f"{i}.png")
    source = tmp_path / "cnn.py"
    source.write_text(CONV_SOURCE)
    out = tmp_path / "out"
    code, _, err = cli(["prune", f"{source}:small_cnn", "--data", str(root), "--image-size",
                        "8", "--ratio", "0.5", "--finetune-epochs", "1", "--out", str(out),
                        "--no-html", "--quiet", *FAST])
    assert code == 0, err
    report = load_report(out)
    assert report["task"]["dataset"].startswith("images (2 classes: cats, dogs)")
    assert report["task"]["train_samples"] + report["task"]["val_samples"] == 12
    assert report["model"]["input_shape"] == [1, 3, 8, 8]
    for side in ("before", "after"):
        assert report[side]["peak_memory"]["rss_growth_bytes"] >= 0
