"""The fine-tuned-model story for a Hugging Face classifier folder: token-id data trains and
scores through the head's logits, the pruned model exports to ONNX, and data that does not
fit (another class count, features that are not token ids) is one clear line."""

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
def bert_classifier(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A small BERT with a 3-label head, saved with save_pretrained (safetensors)."""
    transformers = pytest.importorskip("transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=4, intermediate_size=64,
                                     max_position_embeddings=32, num_labels=3)
    torch.manual_seed(0)
    folder = tmp_path / "bert3"
    transformers.BertForSequenceClassification(config).save_pretrained(folder)
    return folder


def _token_data(path: Path, classes: int, integers: bool = True) -> Path:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 100, size=(60, 12))
    y = x[:, 0] % classes  # the first token decides the label
    np.savez(path, x=x if integers else x.astype(np.float32) + 0.5, y=y)
    return path


def test_classifier_folder_prunes_trains_and_exports(cli: Runner, bert_classifier: Path,
                                                     tmp_path: Path) -> None:
    data = _token_data(tmp_path / "tokens.npz", 3)
    out = tmp_path / "run"
    code, _, err = cli(["prune", str(bert_classifier), "--data", str(data), "--ratio", "0.5",
                        "--finetune-epochs", "1", "--out", str(out), "--quiet", *FAST])
    assert code == 0, err
    report = load_report(out)
    assert report["model"]["input_shape"] == [1, 12]
    assert report["after"]["params"] < report["before"]["params"]
    for side in ("before", "after"):  # scored on the head's logits
        assert 0.0 <= report[side]["metric"] <= 1.0
    code, stdout, err = cli(["export", str(out), "--json"])
    assert code == 0, err
    check = json.loads(stdout)["onnx_check"]  # onnxruntime against the pruned module
    assert check["max_abs_diff"] < 1e-4 and check["output_shape"] == [1, 3]


def test_data_that_does_not_fit_the_classifier(cli: Runner, bert_classifier: Path,
                                               tmp_path: Path) -> None:
    five = _token_data(tmp_path / "five.npz", 5)
    code, _, err = cli(["prune", str(bert_classifier), "--data", str(five), "--out",
                        str(tmp_path / "a"), "--quiet", *FAST])
    assert code == 1 and err.strip().splitlines()[-1] == (
        f"prunekit: error: five.npz has 5 classes but {bert_classifier} outputs 3 logits, and "
        "its trained weights fix the head at 3 classes: use data with 3 classes, or weights "
        "trained for 5 (num_labels=5 would leave the weights' head unloadable)")
    floats = _token_data(tmp_path / "floats.npz", 3, integers=False)
    code, _, err = cli(["prune", str(bert_classifier), "--data", str(floats), "--out",
                        str(tmp_path / "b"), "--quiet", *FAST])
    assert code == 1 and "reads token ids, but floats.npz holds features that are not whole" \
        in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
