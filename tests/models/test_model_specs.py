"""The digits CNN prunes cleanly; model specs parse and build; weights load without pickle."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_model
from torch import nn

import prunekit
from prunekit.errors import ConfigError, PrunekitError
from prunekit.measure import count_macs
from prunekit.models import DigitsCNN, load_model_spec
from prunekit.models.spec import parse_model_spec
from prunekit.models.weights import load_weights


def test_digits_cnn_prunes_every_conv_group() -> None:
    model = DigitsCNN().eval()
    x = torch.randn(2, 1, 8, 8)
    dense_macs = count_macs(model, x[:1])
    result = prunekit.prune(model, x[:1], ratio=0.5)
    assert [g.units - len(g.removed) for g in result.plan.groups] == [16, 32, 64]
    assert result.skipped == []
    assert model(x).shape == (2, 10)
    assert count_macs(model, x[:1]) < dense_macs / 3.5


def test_parse_specs() -> None:
    assert parse_model_spec("torchvision:resnet18").default_input_shape == (1, 3, 224, 224)
    assert parse_model_spec("prunekit:digits_cnn").default_input_shape == (1, 1, 8, 8)
    spec = parse_model_spec("models/net.py:build")
    assert (spec.kind, spec.target, spec.name) == ("file", "models/net.py", "build")
    for bad in ("resnet18", "timmy:x", "torchvision:", "net.py:", "prunekit:nope"):
        with pytest.raises(ConfigError):
            parse_model_spec(bad)


def test_file_factory_with_dataclass(tmp_path: Path) -> None:
    source = tmp_path / "net.py"
    source.write_text("from dataclasses import dataclass\nimport torch.nn as nn\n\n"
                      "@dataclass\nclass Cfg:\n    width: int = 3\n\n"
                      "def build():\n    return nn.Linear(2, Cfg().width)\n")
    model = load_model_spec(f"{source}:build")
    assert isinstance(model, nn.Linear) and model.out_features == 3 and not model.training


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_weights_load_safetensors_and_refuse_pickles(tmp_path: Path) -> None:
    model = nn.Linear(3, 2)
    save_model(model, str(tmp_path / "w.safetensors"))
    fresh = load_weights(nn.Linear(3, 2), tmp_path / "w.safetensors")
    torch.testing.assert_close(fresh.weight, model.weight)
    torch.save(model.state_dict(), tmp_path / "w.pt")
    load_weights(nn.Linear(3, 2), tmp_path / "w.pt")
    with pytest.raises(PrunekitError, match="do not fit"):
        load_weights(nn.Linear(4, 2), tmp_path / "w.pt")

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (print, ("executed",))

    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"weight": Evil()}))
    with pytest.raises(PrunekitError, match="refused"):
        load_weights(nn.Linear(3, 2), tmp_path / "evil.pt")
    (tmp_path / "bad.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(PrunekitError, match="safetensors"):
        load_weights(nn.Linear(3, 2), tmp_path / "bad.safetensors")
