"""Constructor arguments in model specs, checked against the constructor; weights that do
not fit say which tensors differ; a head built for another class count is inferred."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from safetensors.torch import save_model
from torch import nn

from prunekit.errors import ConfigError, PrunekitError
from prunekit.models.args import format_value, parse_assignment, parse_value
from prunekit.models.build import build_with_weights
from prunekit.models.spec import build_model_spec, load_model_spec, parse_model_spec
from prunekit.models.weights import Misfit, WeightsMisfitError, load_weights

NET_SOURCE = """
import torch.nn as nn


def make(width=4, num_classes=2, bias=True):
    return nn.Sequential(nn.Linear(3, width, bias=bias), nn.ReLU(),
                         nn.Linear(width, num_classes))


def fixed():
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
"""


@pytest.fixture
def net(tmp_path: Path) -> Path:
    source = tmp_path / "net.py"
    source.write_text(NET_SOURCE)
    return source


@pytest.mark.parametrize(("text", "value"), [
    ("10", 10), ("-3", -3), ("0.5", 0.5), ("1e-3", 1e-3), (".5", 0.5), ("true", True),
    ("False", False), ("avg", "avg"), ("'10'", "10"), ('"a,b"', "a,b"), ("-inf", float("-inf")),
    ("'nan'", "nan"),
    ("", ""),
])
def test_values_are_int_float_bool_or_str(text: str, value: object) -> None:
    parsed = parse_value(text)
    assert parsed == value and type(parsed) is type(value)


@given(st.one_of(st.booleans(), st.integers(), st.floats(allow_nan=False), st.text()))
def test_formatted_values_read_back(value: bool | int | float | str) -> None:
    parsed = parse_value(format_value(value))
    assert parsed == value and type(parsed) is type(value)


def test_specs_carry_arguments_and_print_back() -> None:
    spec = parse_model_spec("torchvision:resnet18?num_classes=10,zero_init_residual=true")
    assert (spec.kind, spec.name) == ("torchvision", "resnet18")
    assert spec.kwargs == {"num_classes": 10, "zero_init_residual": True}
    assert parse_model_spec(spec.text) == spec
    timm = parse_model_spec("timm:resnet18", {"num_classes": 3, "global_pool": "max"})
    assert timm.text == "timm:resnet18?num_classes=3,global_pool=max"
    file = parse_model_spec("models/net.py:make?width=8", {"num_classes": 3})
    assert (file.kind, file.target, file.name) == ("file", "models/net.py", "make")
    assert file.text == "models/net.py:make?width=8,num_classes=3"
    same = parse_model_spec("prunekit:digits_cnn?num_classes=3", {"num_classes": 3})
    assert same.kwargs == {"num_classes": 3}
    assert parse_assignment("drop_rate=0.1") == ("drop_rate", 0.1)


@pytest.mark.parametrize(("spec", "args", "message"), [
    ("torchvision:resnet18?", {}, "model spec 'torchvision:resnet18?' ends in '?' without "
                                  "arguments; write e.g. torchvision:resnet18?num_classes=10"),
    ("torchvision:resnet18?num_classes", {},
     "argument in model spec 'torchvision:resnet18?num_classes': 'num_classes' is not "
     "KEY=VALUE with a Python name as KEY, e.g. num_classes=10"),
    ("torchvision:resnet18?num_classes=5", {"num_classes": 10},
     "model spec 'torchvision:resnet18?num_classes=5': argument 'num_classes' is given twice "
     "(5 and 10); keep one"),
    ("model.pt?num_classes=5", {}, "'model.pt?num_classes=5' is a pickled model, which takes "
                                   "no constructor arguments"),
])
def test_malformed_arguments_are_config_errors(spec: str, args: dict[str, object],
                                               message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_model_spec(spec, args)
    assert str(caught.value) == message


def test_arguments_reach_every_kind_of_constructor(net: Path) -> None:
    pytest.importorskip("torchvision")
    resnet = load_model_spec("torchvision:resnet18?num_classes=10")
    assert resnet.fc.out_features == 10 and not resnet.training
    cnn = load_model_spec("prunekit:digits_cnn?num_classes=3,in_channels=3")
    assert cnn.classifier.out_features == 3 and cnn.features[0][0].in_channels == 3
    model, params = build_model_spec(f"{net}:make?width=5,bias=false")
    assert model[0].out_features == 5 and model[0].bias is None
    assert params is not None and params.names == ("width", "num_classes", "bias")
    timm = pytest.importorskip("timm")
    built = load_model_spec("timm:test_resnet?num_classes=7,drop_rate=0.1")
    assert built.num_classes == 7 and isinstance(built, timm.models.ResNet)


def test_unknown_arguments_name_the_accepted_parameters(net: Path) -> None:
    pytest.importorskip("torchvision")
    with pytest.raises(ConfigError) as caught:
        load_model_spec("torchvision:resnet18?num_class=10")
    assert str(caught.value) == (
        "torchvision:resnet18?num_class=10: unknown argument 'num_class' (did you mean "
        "num_classes?); torchvision's resnet18 (ResNet) accepts: block, layers, num_classes, "
        "zero_init_residual, groups, width_per_group, replace_stride_with_dilation, "
        "norm_layer")
    with pytest.raises(ConfigError) as caught:
        load_model_spec("prunekit:digits_cnn?depth=4")
    assert str(caught.value) == ("prunekit:digits_cnn?depth=4: unknown argument 'depth'; "
                                 "prunekit's DigitsCNN accepts: widths, num_classes, "
                                 "in_channels")
    with pytest.raises(ConfigError) as caught:
        load_model_spec(f"{net}:make?widht=3")
    assert str(caught.value) == (f"{net}:make?widht=3: unknown argument 'widht' (did you "
                                 f"mean width?); {net}:make() accepts: width, num_classes, bias")
    with pytest.raises(ConfigError) as caught:
        load_model_spec(f"{net}:fixed?num_classes=3")
    assert str(caught.value).endswith(f"{net}:fixed() accepts: no arguments")
    pytest.importorskip("timm")
    with pytest.raises(ConfigError, match=r"unknown argument 'num_clases' \(did you mean "
                                          r"num_classes\?\); timm's test_resnet \(ResNet\) "
                                          r"accepts: .*num_classes, in_chans"):
        load_model_spec("timm:test_resnet?num_clases=3")


def test_argument_values_of_the_wrong_kind_and_reserved_names() -> None:
    pytest.importorskip("torchvision")
    with pytest.raises(ConfigError) as caught:
        load_model_spec("torchvision:resnet18?num_classes=ten")
    assert str(caught.value) == ("torchvision:resnet18?num_classes=ten: argument "
                                 "num_classes=ten must be int (the default is 1000)")
    with pytest.raises(ConfigError, match="num_classes=2.5 must be int"):
        load_model_spec("prunekit:digits_cnn?num_classes=2.5")
    with pytest.raises(ConfigError) as caught:
        load_model_spec("torchvision:resnet18?weights=DEFAULT")
    assert str(caught.value) == (
        "torchvision:resnet18?weights=DEFAULT: argument 'weights' is set by prunekit: prunekit "
        "builds the architecture only (weights=None); load trained weights with --weights "
        "FILE (a recipe's model.weights)")
    pytest.importorskip("timm")
    with pytest.raises(ConfigError, match="argument 'checkpoint_path' is set by prunekit"):
        load_model_spec("timm:test_resnet?checkpoint_path=w.pth")


def test_weights_that_do_not_fit_name_the_tensors(tmp_path: Path) -> None:
    from prunekit.models import DigitsCNN

    torch.save(DigitsCNN(widths=(8, 16, 32)).state_dict(), tmp_path / "narrow.pt")
    with pytest.raises(WeightsMisfitError) as caught:
        load_weights(DigitsCNN(), tmp_path / "narrow.pt")
    assert str(caught.value) == (
        f"the weights in '{tmp_path / 'narrow.pt'}' do not fit the model: 16 tensor(s) differ "
        "in shape (file vs model): features.0.0.weight [8, 1, 3, 3] vs [32, 1, 3, 3], "
        "features.0.1.weight [8] vs [32], features.0.1.bias [8] vs [32] and 13 more")
    assert caught.value.misfit.head_classes(10) is None
    wrapped = nn.Sequential(nn.Linear(3, 2))
    torch.save({f"module.{k}": v for k, v in wrapped.state_dict().items()}, tmp_path / "dp.pt")
    with pytest.raises(WeightsMisfitError) as caught:
        load_weights(wrapped, tmp_path / "dp.pt")
    assert str(caught.value).endswith(
        "2 tensor(s) of the model are missing from the file: 0.weight, 0.bias; 2 tensor(s) of "
        "the file are not in the model: module.0.weight, module.0.bias; every key of the file "
        "starts with 'module.' (e.g. module.0.weight): save the inner model's state_dict, or "
        "strip 'module.' from the keys")
    torch.save({"state_dict": wrapped.state_dict(), "epoch": 3}, tmp_path / "ckpt.pt")
    with pytest.raises(ConfigError) as caught:
        load_weights(wrapped, tmp_path / "ckpt.pt")
    assert str(caught.value) == (
        f"'{tmp_path / 'ckpt.pt'}' holds a checkpoint, not a state dict of tensors (entries "
        "that are no tensors: state_dict, epoch): save the entry that holds the weights "
        "alone, e.g. torch.save(checkpoint['state_dict'], ...)")


def test_misfit_lists_a_few_of_each_kind_then_counts() -> None:
    model = {f"layer{i}.weight": (4, 4) for i in range(6)}
    found = {f"layer{i}.weight": (4, 4) for i in range(1)} | {"extra": (1,)}
    misfit = Misfit.between(model, found)
    assert misfit.describe() == (
        "5 tensor(s) of the model are missing from the file: layer1.weight, layer2.weight, "
        "layer3.weight and 2 more; 1 tensor(s) of the file are not in the model: extra")
    head = Misfit.between({"body": (8, 3), "fc.weight": (1000, 8), "fc.bias": (1000,)},
                          {"body": (8, 3), "fc.weight": (10, 8), "fc.bias": (10,)})
    assert head.head_classes(1000) == 10 and head.head_classes(10) is None
    mixed = Misfit.between({"a": (1000, 8), "b": (1000,)}, {"a": (10, 8), "b": (12,)})
    assert mixed.head_classes(1000) is None
    assert not Misfit.between({"a": (2,)}, {"a": (2,)})
    wrapped = Misfit.between({"model.a": (2,), "model.b": (2,)}, {"a": (2,), "b": (2,)})
    assert wrapped.prefix_hint() == ("the model's keys start with 'model.' (e.g. model.a) and "
                                     "the file's do not: add 'model.' to the keys, or load the "
                                     "file into the inner model")


def test_tied_weights_load_from_safetensors(tmp_path: Path) -> None:
    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(5, 3)
            self.out = nn.Linear(3, 5, bias=False)
            self.out.weight = self.embed.weight

    source = Tied()
    save_model(source, str(tmp_path / "tied.safetensors"))  # stores one copy
    loaded = load_weights(Tied(), tmp_path / "tied.safetensors")
    assert torch.equal(loaded.out.weight, source.embed.weight)


def test_head_class_count_is_inferred_from_the_weights(tmp_path: Path, net: Path) -> None:
    torch.manual_seed(0)
    trained = load_model_spec(f"{net}:make?num_classes=7")
    torch.save(trained.state_dict(), tmp_path / "seven.pt")
    built = build_with_weights(f"{net}:make", weights=tmp_path / "seven.pt")
    assert built.spec.text == f"{net}:make?num_classes=7"
    assert built.inferred == (f"num_classes=7 inferred from the weights in "
                              f"'{tmp_path / 'seven.pt'}' (2.weight [7, 4]): the model is "
                              f"{net}:make?num_classes=7",)
    x = torch.randn(2, 3)
    torch.testing.assert_close(built.model(x), trained(x))
    with pytest.raises(WeightsMisfitError) as caught:
        build_with_weights(f"{net}:make?num_classes=5", weights=tmp_path / "seven.pt")
    assert str(caught.value) == (
        f"the weights in '{tmp_path / 'seven.pt'}' do not fit {net}:make?num_classes=5: 2 "
        "tensor(s) differ in shape (file vs model): 2.weight [7, 4] vs [5, 4], 2.bias [7] vs "
        "[5]; only the classification head differs (7 classes in the file, 5 in the model): "
        f"set num_classes=7 instead of 5: {net}:make?num_classes=7, or --model-arg "
        "num_classes=7")
    with pytest.raises(WeightsMisfitError) as caught:
        build_with_weights(f"{net}:fixed", weights=tmp_path / "seven.pt")
    assert str(caught.value).endswith(
        "only the classification head differs (7 classes in the file, 2 in the model): build "
        f"the model with 7 outputs (give fixed() a num_classes parameter, then pass "
        f"{net}:fixed?num_classes=7)")
    with pytest.raises(WeightsMisfitError, match="differ in shape"):  # the body differs too
        build_with_weights(f"{net}:make?width=6", weights=tmp_path / "seven.pt")


def test_torchvision_head_inferred_from_a_state_dict(tmp_path: Path) -> None:
    torchvision = pytest.importorskip("torchvision")
    torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), tmp_path / "r18.pt")
    built = build_with_weights("torchvision:resnet18", weights=tmp_path / "r18.pt")
    assert built.spec.text == "torchvision:resnet18?num_classes=10"
    assert built.model.fc.out_features == 10 and built.class_argument == "num_classes"


@pytest.fixture
def bert_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A BERT classifier with 3 labels saved with save_pretrained (safetensors)."""
    transformers = pytest.importorskip("transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = transformers.BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=16,
                                     max_position_embeddings=16, num_labels=3)
    torch.manual_seed(0)
    folder = tmp_path / "bert"
    transformers.BertForSequenceClassification(config).save_pretrained(folder)
    return folder


def test_hugging_face_folder_num_labels(bert_folder: Path, tmp_path: Path) -> None:
    import json

    with pytest.raises(WeightsMisfitError) as caught:
        build_with_weights(f"{bert_folder}?num_labels=5")
    assert str(caught.value) == (
        f"the weights in '{bert_folder}' (model.safetensors) do not fit {bert_folder}?"
        "num_labels=5: 2 tensor(s) differ in shape (file vs model): classifier.weight [3, 8] vs "
        "[5, 8], classifier.bias [3] vs [5]; only the classification head differs (3 classes "
        f"in the file, 5 in the model): set num_labels=3 instead of 5: {bert_folder}?"
        "num_labels=3, or --model-arg num_labels=3")
    with pytest.raises(ConfigError, match=r"unknown argument 'num_label' \(did you mean "
                                          r"num_labels\?\); the config in .* \(BertConfig\) "
                                          r"accepts: .*hidden_size"):
        build_with_weights(f"{bert_folder}?num_label=5")
    config = json.loads((bert_folder / "config.json").read_text())
    config["id2label"] = {"0": "no", "1": "yes"}  # a config that says 2 labels
    config["label2id"] = {"no": 0, "yes": 1}
    (bert_folder / "config.json").write_text(json.dumps(config))
    built = build_with_weights(str(bert_folder))
    assert built.spec.text == f"{bert_folder}?num_labels=3"
    assert built.model.config.num_labels == 3 and built.model.classifier.out_features == 3
    assert built.inferred[0].startswith("num_labels=3 inferred from the weights in "
                                        f"'{bert_folder}' (model.safetensors)")


def test_num_labels_needs_a_classification_head(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    transformers = pytest.importorskip("transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = tmp_path / "base"
    transformers.BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1,
                            num_attention_heads=2, intermediate_size=16,
                            architectures=["BertModel"]).save_pretrained(folder)
    with pytest.raises(ConfigError) as caught:
        load_model_spec(f"{folder}?num_labels=4")
    assert str(caught.value) == (
        f"{folder}?num_labels=4: num_labels sets the classes of a classification head, and the "
        f"config in '{folder}' names none (architectures: ['BertModel']); point at a folder "
        "saved from a ...ForSequenceClassification model")
    small = load_model_spec(f"{folder}?hidden_dropout_prob=0.0,num_hidden_layers=2")
    assert small.config.num_hidden_layers == 2 and len(small.encoder.layer) == 2
    # a first dimension of 2 (token types) in a model without a head is not a class count
    other = transformers.BertModel(transformers.BertConfig(
        vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=16, type_vocab_size=3))
    save_model(other, str(tmp_path / "types.safetensors"))
    with pytest.raises(WeightsMisfitError) as caught:
        build_with_weights(str(folder), weights=tmp_path / "types.safetensors")
    assert str(caught.value).endswith(
        "1 tensor(s) differ in shape (file vs model): embeddings.token_type_embeddings.weight "
        "[3, 8] vs [2, 8]")


def test_construction_failures_are_one_line() -> None:
    with pytest.raises(PrunekitError) as caught:
        load_model_spec("prunekit:digits_cnn?widths=3")
    assert str(caught.value) == ("building prunekit:digits_cnn?widths=3 failed: TypeError: "
                                 "'int' object is not iterable")


def test_an_onnx_file_takes_no_constructor_arguments(tmp_path: Path) -> None:
    path = tmp_path / "net.onnx"
    path.write_bytes(b"")  # parsing only checks that the file exists
    with pytest.raises(ConfigError) as caught:
        parse_model_spec(str(path), {"num_classes": 3})
    assert str(caught.value) == (f"{str(path)!r} is an ONNX file, which takes no constructor "
                                 "arguments")
