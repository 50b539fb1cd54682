"""Files made by other frameworks: a Keras 3 CNN and LSTM (torch backend) and a
scikit-learn MLP through skl2onnx. Skipped when those extras are not installed."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

import prunekit
from prunekit.onnx import example_inputs, export, load, read_signature


@pytest.fixture(scope="module")
def keras():  # type: ignore[no-untyped-def]
    if "keras" not in __import__("sys").modules:
        os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip("these tests export with Keras's torch backend")
    return keras


def _keras_export(model, path: Path) -> Path:  # type: ignore[no-untyped-def]
    import contextlib
    import io
    import warnings

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        model.export(str(path), format="onnx")
    return path


def test_keras_cnn(keras, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
        keras.layers.BatchNormalization(),
        keras.layers.DepthwiseConv2D(3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10)])
    model(np.zeros((1, 8, 8, 1), "float32"))
    path = _keras_export(model, tmp_path / "cnn.onnx")
    converted = load(path)
    assert converted.conversion["onnxruntime"]["max_rel_diff"][0] <= 1e-4
    x = example_inputs(converted.signature)[0]
    result = prunekit.prune(converted, x[:1], ratio=0.5)
    assert result.plan.tensors
    facts = export(converted, tmp_path / "cnn_pruned.onnx")
    assert read_signature(tmp_path / "cnn_pruned.onnx").input_names == \
        read_signature(path).input_names
    assert facts["onnxruntime"]["max_rel_diff"][0] <= 1e-4


def test_keras_lstm(keras, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6, 4)), keras.layers.LSTM(8),
                              keras.layers.Dense(3)])
    model(np.zeros((1, 6, 4), "float32"))
    path = _keras_export(model, tmp_path / "lstm.onnx")
    converted = load(path)
    assert converted.conversion["onnxruntime"]["max_rel_diff"][0] <= 1e-4
    prunekit.prune(converted, example_inputs(converted.signature)[0][:1], ratio=0.5)
    export(converted, tmp_path / "lstm_pruned.onnx")


def test_sklearn_mlp(tmp_path: Path) -> None:
    skl2onnx = pytest.importorskip("skl2onnx")
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier

    data = load_digits()
    clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=30, random_state=0)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(data.data / 16.0, data.target)
    proto = skl2onnx.convert_sklearn(clf, initial_types=[("input", FloatTensorType([None, 64]))],
                                     options={id(clf): {"zipmap": False}})
    path = tmp_path / "mlp.onnx"
    path.write_bytes(proto.SerializeToString())
    converted = load(path, outputs=["probabilities"])
    assert converted.conversion["onnxruntime"]["max_rel_diff"][0] <= 1e-4
    x = torch.tensor(data.data[:8] / 16.0, dtype=torch.float32)
    with torch.no_grad():
        probabilities = converted(x).numpy()
    assert np.allclose(probabilities, clf.predict_proba(data.data[:8] / 16.0), atol=1e-5)
    prunekit.prune(converted, x[:1], ratio=0.5)
    facts = export(converted, tmp_path / "mlp_pruned.onnx")
    assert facts["opset"] == read_signature(path).opset
