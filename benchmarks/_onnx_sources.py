"""ONNX files from several frameworks for the ONNX benchmarks: torchvision classifiers
(``torch.onnx``, dynamo exporter), Keras 3 models (torch backend, ``model.export``), a
scikit-learn MLP (skl2onnx) and a Hugging Face BERT (``torch.onnx``). Random weights except
where a model is trained here; batch axes stay dynamic (exported at batch 2)."""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from pathlib import Path
from typing import Any
from collections.abc import Callable

os.environ.setdefault("KERAS_BACKEND", "torch")  # Keras 3 without TensorFlow

TORCHVISION = ["shufflenet_v2_x1_0", "swin_t", "maxvit_t", "squeezenet1_1", "densenet121",
               "regnet_y_400mf", "convnext_tiny", "vit_b_16", "efficientnet_b0",
               "mobilenet_v3_large", "googlenet", "resnext50_32x4d", "mnasnet1_0", "resnet50"]
SIZE = {"swin_t": 224, "maxvit_t": 224, "vit_b_16": 224}  # the others run at 64 x 64
FULL_SIZE_PREFIXES = ("swin", "maxvit", "vit_")  # architectures tied to 224 x 224


def input_size(name: str) -> int:
    """64 x 64 where the architecture allows it; 224 for ViT, Swin, MaxViT; 299 Inception."""
    if name == "inception_v3":
        return 299
    return 224 if name in SIZE or name.startswith(FULL_SIZE_PREFIXES) else 64
OTHERS = ["keras_cnn", "keras_lstm", "sklearn_mlp", "hf_bert"]


@contextlib.contextmanager
def quiet() -> Any:
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _randomize_zeros(model: Any) -> None:
    """Give weights initialised to zero (ViT heads) random values, so outputs are not 0."""
    import torch

    with torch.no_grad():
        for p in model.parameters():
            if p.ndim >= 2 and not p.any():
                p.normal_(0, 0.02)


def torchvision_file(name: str, path: Path, legacy_opset: int | None = None
                     ) -> tuple[Any, ...]:
    """``legacy_opset``: use the TorchScript exporter (``dynamo=False``) at that opset."""
    import torch
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.get_model(name, weights=None).eval()
    _randomize_zeros(model)
    size = input_size(name)
    x = torch.randn(2, 3, size, size)
    with quiet():
        torch.onnx.export(model, (x,), str(path), input_names=["images"],
                          output_names=["logits"], dynamo=legacy_opset is None,
                          opset_version=legacy_opset,
                          dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}})
    return (x,)


def keras_cnn_model(seed: int = 0) -> Any:
    """The digits CNN of docs/keras.md (8 x 8 x 1 input, 10 classes)."""
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        keras.layers.BatchNormalization(),
        keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10)])


def keras_export(model: Any, path: Path) -> None:
    with quiet():
        model.export(str(path), format="onnx")


def keras_cnn_file(path: Path) -> tuple[Any, ...]:
    import numpy as np
    import torch

    model = keras_cnn_model()
    model(np.zeros((1, 8, 8, 1), "float32"))
    keras_export(model, path)
    return (torch.randn(2, 8, 8, 1),)


def keras_lstm_file(path: Path) -> tuple[Any, ...]:
    import keras
    import numpy as np
    import torch

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8)), keras.layers.LSTM(32),
                              keras.layers.Dense(10)])
    model(np.zeros((1, 8, 8), "float32"))
    keras_export(model, path)
    return (torch.randn(2, 8, 8),)


def sklearn_mlp_file(path: Path) -> tuple[Any, ...]:
    import torch
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier

    data = load_digits()
    clf = MLPClassifier(hidden_layer_sizes=(128, 64), max_iter=200, random_state=0)
    with quiet():
        clf.fit(data.data / 16.0, data.target)
    proto = convert_sklearn(clf, initial_types=[("input", FloatTensorType([None, 64]))],
                            options={id(clf): {"zipmap": False}})
    path.write_bytes(proto.SerializeToString())
    return (torch.tensor(data.data[:2] / 16.0, dtype=torch.float32),)


def hf_bert_file(path: Path) -> tuple[Any, ...]:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=2000, hidden_size=128, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=512, num_labels=3,
                        max_position_embeddings=64)
    bert = BertForSequenceClassification(config).eval()

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor
                    ) -> torch.Tensor:
            return self.bert(input_ids=input_ids, attention_mask=attention_mask).logits

    ids = torch.randint(0, 2000, (2, 16), generator=torch.Generator().manual_seed(0))
    mask = torch.ones(2, 16, dtype=torch.long)
    axes = {"batch": 0, "sequence": 1}
    with quiet():
        torch.onnx.export(Logits().eval(), (ids, mask), str(path),
                          input_names=["input_ids", "attention_mask"], output_names=["logits"],
                          dynamo=True,
                          dynamic_axes={"input_ids": {v: k for k, v in axes.items()},
                                        "attention_mask": {v: k for k, v in axes.items()},
                                        "logits": {0: "batch"}})
    return ids, mask


BUILDERS: dict[str, Callable[[Path], tuple[Any, ...]]] = {
    "keras_cnn": keras_cnn_file, "keras_lstm": keras_lstm_file,
    "sklearn_mlp": sklearn_mlp_file, "hf_bert": hf_bert_file}
OUTPUTS = {"sklearn_mlp": ["probabilities"]}  # the float output (the other is the label)


def build_file(case: str, path: Path, legacy_opset: int | None = None) -> tuple[Any, ...]:
    """Write the ONNX file of ``case`` to ``path``; return example inputs (batch 2).
    ``legacy_opset``: torchvision models through the TorchScript exporter at that opset."""
    if case in BUILDERS:
        return BUILDERS[case](path)
    return torchvision_file(case, path, legacy_opset)
