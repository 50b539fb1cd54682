"""Feature distillation: adapters fitted exactly on removable channels, hooks cleaned up,
training through the features, and clear errors for names and shapes."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import prunekit
from prunekit.errors import ConfigError
from prunekit.models.digits_cnn import DigitsCNN
from prunekit.testing import lossless_pair
from prunekit.train import DistillConfig, FinetuneConfig, finetune
from prunekit.train.features import FeatureMatcher

BLOCKS = ("features.0", "features.1", "features.3")


def _hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


def _run(x: torch.Tensor) -> Callable[[nn.Module], torch.Tensor]:
    """A probe runner: the model on ``x``."""
    return lambda m: m(x)


def test_adapters_reproduce_the_teacher_when_the_pruned_channels_were_zero() -> None:
    # channels whose outputs are exactly zero carry nothing, so the least-squares adapter
    # must reconstruct the teacher's features from the kept ones without error
    torch.manual_seed(0)
    teacher, student, _ = lossless_pair(DigitsCNN(widths=(8, 12, 16)).eval(),
                                        torch.randn(1, 1, 8, 8), ratio=0.4)
    x = torch.rand(32, 1, 8, 8)
    matcher = FeatureMatcher(student, teacher, BLOCKS)
    matcher.attach(_run(x))
    assert sorted(matcher.adapters) == ["features/0", "features/1", "features/3"]
    with torch.no_grad():
        student(x)
        teacher(x)
        assert matcher.loss().item() < 1e-4
    matcher.detach()
    assert _hooks(student) == 0 and _hooks(teacher) == 0


def test_same_shapes_are_compared_directly_and_the_loss_is_relative() -> None:
    teacher = DigitsCNN().eval()
    student = copy.deepcopy(teacher)
    matcher = FeatureMatcher(student, teacher, ["features.3"])
    x = torch.rand(4, 1, 8, 8)
    matcher.attach(_run(x))
    assert len(matcher.adapters) == 0 and matcher.parameters() == []
    with torch.no_grad():
        student(x)
        teacher(x)
        assert matcher.loss().item() == pytest.approx(0.0, abs=1e-12)
        student.get_submodule("features.3.1").weight.zero_()
        student.get_submodule("features.3.1").bias.zero_()
        student(x)
        teacher(x)
        assert matcher.loss().item() == pytest.approx(1.0, rel=1e-5)  # all of the energy
    matcher.detach()


def test_probe_leaves_batchnorm_statistics_and_training_mode_alone() -> None:
    teacher = DigitsCNN().eval()
    student = copy.deepcopy(teacher).train()
    before = {k: v.clone() for k, v in student.state_dict().items()}
    FeatureMatcher(student, teacher, ["features.1"]).attach(_run(torch.rand(8, 1, 8, 8) * 3))
    assert student.training
    assert all(torch.equal(before[k], v) for k, v in student.state_dict().items())


def test_tuple_outputs_and_a_pruned_last_dimension() -> None:
    class Block(nn.Module):
        def __init__(self, width: int) -> None:
            super().__init__()
            self.proj = nn.Linear(6, width)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
            return self.proj(x), None  # as Hugging Face layers return

    class Net(nn.Module):
        def __init__(self, width: int) -> None:
            super().__init__()
            self.block = Block(width)
            self.head = nn.Linear(width, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.block(x)[0]).mean(dim=1)

    torch.manual_seed(0)
    teacher, student = Net(10), Net(4)
    x = torch.randn(5, 7, 6)  # (batch, tokens, features): the pruned width is last
    matcher = FeatureMatcher(student, teacher, ["block"])
    matcher.attach(_run(x))
    adapter = matcher.adapters["block"]
    assert adapter.dim == 2 and tuple(adapter.weight.shape) == (10, 4)
    student(x)
    teacher(x)
    loss = matcher.loss()
    loss.backward()
    assert student.block.proj.weight.grad is not None and adapter.weight.grad is not None
    matcher.detach()


def _linear_mismatch(student: nn.Module, teacher: nn.Module, x: torch.Tensor) -> float:
    """Feature loss after a fresh least-squares fit: how far the features are from being a
    linear function of each other."""
    matcher = FeatureMatcher(student, teacher, BLOCKS)
    matcher.attach(_run(x))
    student.eval()
    with torch.no_grad():
        student(x)
        teacher(x)
        loss = matcher.loss().item()
    matcher.detach()
    return loss


@pytest.mark.numerics
def test_finetune_with_features_follows_the_teacher_and_removes_its_hooks() -> None:
    torch.manual_seed(0)
    teacher = DigitsCNN(widths=(8, 12, 16))
    x, y = torch.rand(64, 1, 8, 8), torch.randint(0, 10, (64,))
    for bn in teacher.modules():  # statistics of the data, as a trained teacher has
        if isinstance(bn, nn.BatchNorm2d):
            bn.momentum = None
    with torch.no_grad():
        teacher.train()(x)
    teacher.eval()
    pruned = copy.deepcopy(teacher)
    prunekit.prune(pruned, torch.randn(1, 1, 8, 8), ratio=0.5)
    val = DataLoader(TensorDataset(x[:16], y[:16]), batch_size=16)
    mismatch = {}
    for weight in (0.0, 1.0):
        student = copy.deepcopy(pruned)
        config = DistillConfig(alpha=1.0, features=list(BLOCKS) if weight else [],
                               feature_weight=weight)
        torch.manual_seed(0)
        finetune(student, DataLoader(TensorDataset(x, y), batch_size=16), val,
                 FinetuneConfig(epochs=20, lr=3e-3, restore_best=False), teacher=teacher,
                 distill=config)
        assert _hooks(student) == 0 and _hooks(teacher) == 0
        mismatch[weight] = _linear_mismatch(student, teacher, x)
    assert mismatch[1.0] < 0.9 * mismatch[0.0]


def test_failed_attach_leaves_no_hooks() -> None:
    class Skips(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.used, self.unused = nn.Linear(4, 4), nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.used(x)

    student, teacher = Skips(), Skips()
    matcher = FeatureMatcher(student, teacher, ["used", "unused"])
    with pytest.raises(ConfigError, match="'unused' did not run in the forward pass"):
        matcher.attach(_run(torch.randn(2, 4)))
    assert _hooks(student) == 0 and _hooks(teacher) == 0


def test_unknown_names_and_incompatible_shapes_are_clear_errors() -> None:
    teacher = DigitsCNN()
    with pytest.raises(ConfigError, match="not in the student model; close names: features.1"):
        FeatureMatcher(copy.deepcopy(teacher), teacher, ["feature.1"])
    with pytest.raises(ConfigError, match="needs at least one module name"):
        FeatureMatcher(teacher, teacher, [])
    student = DigitsCNN()
    with pytest.raises(ConfigError, match="differ in more than the channel dimension"):
        FeatureMatcher(student, teacher, ["features.1"]).attach(  # 6x6 against 8x8 maps
            lambda m: m(torch.rand(2, 1, 8, 8) if m is teacher else torch.rand(2, 1, 6, 6)))
    linear_s, linear_t = nn.Sequential(nn.Linear(4, 3)), nn.Sequential(nn.Linear(4, 3))
    with pytest.raises(ConfigError, match="different ranks"):
        FeatureMatcher(linear_s, linear_t, ["0"]).attach(
            lambda m: m(torch.rand(2, 4) if m is linear_t else torch.rand(2, 5, 4)))

    class Dict(nn.Module):
        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"x": x}

    student, teacher = nn.Sequential(Dict()), nn.Sequential(Dict())
    with pytest.raises(ConfigError, match="returns dict, not a tensor"):
        FeatureMatcher(student, teacher, ["0"]).attach(_run(torch.randn(2, 3)))


def test_finetune_rejects_features_the_models_lack() -> None:
    teacher = DigitsCNN().eval()
    x, y = torch.rand(8, 1, 8, 8), torch.randint(0, 10, (8,))
    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    with pytest.raises(ConfigError, match="'classifer' is not in the student"):
        finetune(copy.deepcopy(teacher), loader, loader, FinetuneConfig(epochs=1),
                 teacher=teacher, distill=DistillConfig(features=["classifer"]))
    assert _hooks(teacher) == 0


@pytest.mark.parametrize("kwargs, message", [
    ({"features": [""]}, "list of module names"),
    ({"features": [3]}, "list of module names"),
    ({"features": ["a", "a"]}, "name a module twice"),
    ({"feature_weight": -1.0}, "feature_weight must be a finite number >= 0"),
    ({"feature_weight": float("inf")}, "feature_weight must be a finite number >= 0"),
])
def test_config_validation(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        DistillConfig(**kwargs)


def test_config_accepts_one_name_or_a_list() -> None:
    assert DistillConfig(features="features.1").features == ("features.1",)
    assert DistillConfig(features=["a", "b"]).features == ("a", "b")
    assert DistillConfig().settings()["features"] == ()
