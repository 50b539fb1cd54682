"""Discovery on hand-written models, and clear errors for impossible requests."""

from __future__ import annotations

import pytest
import torch
from torch import nn

pytest.importorskip("torchvision")

from helpers.depth import FAMILIES, IMAGES  # noqa: E402

from prunekit import ConfigError, TraceError, VerificationError  # noqa: E402
from prunekit.depth import find_blocks, prune_depth, remove_blocks  # noqa: E402
from prunekit.depth.remove import check_removal  # noqa: E402

X = torch.randn(4, 8, generator=torch.Generator().manual_seed(0))


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.tanh(self.fc(x))


class Net(nn.Module):
    """Residual blocks as attributes and in a ModuleList; shape-preserving layers that are not
    residual (a Linear in a Sequential, a stage wrapping blocks) are not blocks."""

    def __init__(self) -> None:
        super().__init__()
        self.first = Residual()
        self.plain = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 8))
        self.stage = nn.ModuleList([Residual(), Residual()])
        self.scaled = Residual()
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.plain(self.first(x))
        for block in self.stage:
            x = block(x)
        return self.head(torch.relu(self.scaled(x)))


def test_blocks_of_a_hand_written_model():
    blocks = find_blocks(Net(), X)
    assert [b.name for b in blocks] == ["first", "stage.0", "stage.1", "scaled"]
    assert all(b.removal == "identity" and b.exact and b.shape == (4, 8) for b in blocks)


def test_post_norm_layers_are_found_but_not_exact():
    fam = FAMILIES["bert"]
    blocks = find_blocks(fam.build(), fam.inputs)
    assert [b.name for b in blocks] == [f"encoder.layer.{i}" for i in range(3)]
    assert all(b.removal == "delete" and b.tail == "layer_norm" and not b.exact for b in blocks)


def test_a_model_without_blocks_is_refused():
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))
    with pytest.raises(ConfigError, match="no removable blocks"):
        prune_depth(model, X, n_blocks=1)
    with pytest.raises(ConfigError, match="no removable blocks"):
        remove_blocks(model, ["0"], X)


def test_removing_too_many_or_all_blocks_is_refused():
    with pytest.raises(ConfigError, match=r"cannot remove 4 blocks: the model has 4 removable"):
        prune_depth(Net(), X, n_blocks=4)
    with pytest.raises(ConfigError, match="cannot remove all 4 removable blocks"):
        remove_blocks(Net(), ["first", "stage.0", "stage.1", "scaled"], X)
    with pytest.raises(ConfigError, match="only 1 candidate blocks"):
        prune_depth(Net(), X, n_blocks=2, blocks=["first"])


def test_unknown_names_are_reported_with_the_removable_ones():
    with pytest.raises(ConfigError, match=r"\['layer9.9'\] are not removable") as info:
        remove_blocks(FAMILIES["resnet18"].build(), ["layer1.1", "layer9.9"], IMAGES)
    assert "'layer1.0', 'layer1.1', 'layer2.1', 'layer3.1', 'layer4.1'" in str(info.value)
    with pytest.raises(ConfigError, match=r"\['plain'\] are not removable"):
        prune_depth(Net(), X, n_blocks=1, blocks=["plain"])


@pytest.mark.parametrize("kwargs, message", [
    ({}, "exactly one of n_blocks"),
    ({"n_blocks": 1, "ratio": 0.5}, "exactly one of n_blocks"),
    ({"n_blocks": -1}, "non-negative integer"),
    ({"ratio": 1.0}, r"ratio must be a number in \[0, 1\)"),
    ({"n_blocks": 1, "criterion": "nope"}, "unknown depth criterion 'nope'"),
    ({"n_blocks": 1, "criterion": "metric"}, "needs metric="),
])
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        prune_depth(Net(), X, **kwargs)


def test_bad_calibration_data_is_refused():
    with pytest.raises(ConfigError, match="yielded no batches"):
        prune_depth(Net(), [], n_blocks=1)
    with pytest.raises(ConfigError, match="iterable of batches"):
        prune_depth(Net(), 3.0, n_blocks=1)
    with pytest.raises(TraceError, match="failed on the example inputs"):
        prune_depth(Net(), torch.randn(2, 5), n_blocks=1)


def test_a_changed_output_shape_fails_the_check():
    message = r"changed the output shape from \(9, 9\) to \(4, 3\)"
    with pytest.raises(VerificationError, match=message):
        check_removal(Net(), X, (9, 9))


class Fails(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("not on this input")


class Tolerant(Net):
    """A submodule that raises inside the forward (caught by the model) leaves the probe sound."""

    def __init__(self) -> None:
        super().__init__()
        self.optional = Fails()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        try:
            x = self.optional(x)
        except RuntimeError:
            pass
        return super().forward(x)


def test_a_submodule_that_raises_inside_the_forward_does_not_confuse_discovery():
    names = [b.name for b in find_blocks(Tolerant(), X)]
    assert names == ["first", "stage.0", "stage.1", "scaled"]
