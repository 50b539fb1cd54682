"""StructuredGradualPruner: soft channel masks on a schedule, regularisation, surgery, resume."""

from __future__ import annotations

import math
from itertools import pairwise

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from prunekit.errors import ConfigError
from prunekit.schedule import (
    CubicSchedule,
    LinearSchedule,
    OneShotSchedule,
    StructuredConfig,
    StructuredGradualPruner,
)


class ResidualNet(nn.Module):
    """conv-bn → residual conv-bn block (its output channels coupled to the stem's) → head."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, width, 3, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(width)
        self.conv1 = nn.Conv2d(width, 12, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(12)
        self.conv2 = nn.Conv2d(12, width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.head = nn.Linear(width, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn0(self.stem(x)))
        x = F.relu(x + self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
        return self.head(x.mean((2, 3)))


def _net(width: int = 8) -> ResidualNet:
    torch.manual_seed(0)
    return ResidualNet(width)


def _batches(n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(1)
    return [(torch.randn(8, 1, 6, 6, generator=gen), torch.randint(0, 3, (8,), generator=gen))
            for _ in range(n)]


EXAMPLE = torch.randn(2, 1, 6, 6, generator=torch.Generator().manual_seed(2))


def _train(model: nn.Module, opt: torch.optim.Optimizer, pruner: StructuredGradualPruner,
           batches: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    for x, y in batches:
        opt.zero_grad()
        (F.cross_entropy(model(x), y) + pruner.regularization_loss()).backward()
        opt.step()
        pruner.step()


def test_groups_are_coupled_and_masked_units_are_zero_in_every_slice() -> None:
    model = _net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    schedule = LinearSchedule(final_sparsity=0.5, start=1, end=5, frequency=2)
    pruner = StructuredGradualPruner(model, EXAMPLE, schedule)
    sizes = sorted(g.n_units for g in pruner.groups)
    assert sizes == [8, 12]  # stem+block output (coupled by the add), and conv1's channels
    seen: list[dict[str, torch.Tensor]] = []
    for x, y in _batches(8):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        if pruner.step() is not None:
            seen.append(pruner.masks())
        for keep in pruner.masks().values():  # local scope: floor(s * n) per group
            assert int((~keep).sum()) == math.floor(pruner.sparsity * keep.numel() + 1e-9)
    for before, after in pairwise(seen):
        for name in before:
            assert not (after[name] & ~before[name]).any()  # masked units stay masked
    residual = pruner.masks()["stem"]
    gone = torch.nonzero(~residual).flatten()
    assert gone.numel() == 4
    for tensor, dim in ((model.stem.weight, 0), (model.bn0.weight, 0), (model.bn0.bias, 0),
                        (model.conv2.weight, 0), (model.bn2.weight, 0), (model.bn2.bias, 0),
                        (model.conv1.weight, 1), (model.head.weight, 1)):
        assert tensor.detach().index_select(dim, gone).abs().max() == 0
    assert pruner.channel_sparsity() == pytest.approx((4 + 6) / 20)


def test_finalize_removes_exactly_the_masked_units_and_keeps_outputs() -> None:
    model = _net()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    pruner = StructuredGradualPruner(model, EXAMPLE,
                                     CubicSchedule(final_sparsity=0.5, start=2, end=6,
                                                   frequency=2))
    _train(model, opt, pruner, _batches(8))
    keep = pruner.masks()
    x = torch.randn(16, 1, 6, 6)
    model.eval()
    with torch.no_grad():
        soft = model(x)
    before = sum(p.numel() for p in model.parameters())
    result = pruner.finalize()
    assert result.model is model and pruner.finalized
    assert model.stem.out_channels == int(keep["stem"].sum()) == model.head.in_features
    assert model.conv1.out_channels == int(keep["conv1"].sum()) == model.conv2.in_channels
    assert sum(p.numel() for p in model.parameters()) < before
    with torch.no_grad():
        torch.testing.assert_close(model(x), soft, atol=1e-5, rtol=0)
    assert pruner.max_output_change is not None and pruner.max_output_change <= 1e-5
    with pytest.raises(ConfigError, match="finalised"):
        pruner.step()


def test_group_lasso_is_the_sum_of_unit_norms_over_coupled_slices() -> None:
    model = _net()
    pruner = StructuredGradualPruner(model, EXAMPLE, LinearSchedule(final_sparsity=0.5, end=4),
                                     StructuredConfig(regularization="group_lasso",
                                                      strength=0.5))
    m = model
    inner = (m.conv1.weight.pow(2).sum((1, 2, 3)) + m.bn1.weight.pow(2) + m.bn1.bias.pow(2)
             + m.conv2.weight.pow(2).sum((0, 2, 3)))
    outer = (m.stem.weight.pow(2).sum((1, 2, 3)) + m.bn0.weight.pow(2) + m.bn0.bias.pow(2)
             + m.conv1.weight.pow(2).sum((0, 2, 3)) + m.conv2.weight.pow(2).sum((1, 2, 3))
             + m.bn2.weight.pow(2) + m.bn2.bias.pow(2) + m.head.weight.pow(2).sum(0))
    expected = 0.5 * (inner.sqrt().sum() + outer.sqrt().sum())
    loss = pruner.regularization_loss()
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    loss.backward()
    assert model.stem.weight.grad is not None and torch.isfinite(model.stem.weight.grad).all()


def test_bn_scale_penalty_is_l1_of_batchnorm_scales() -> None:
    model = _net()
    pruner = StructuredGradualPruner(model, EXAMPLE, LinearSchedule(final_sparsity=0.5, end=4),
                                     StructuredConfig(regularization="bn_scale", strength=0.1))
    loss = pruner.regularization_loss()
    expected = 0.1 * sum(bn.weight.abs().sum() for bn in (model.bn0, model.bn1, model.bn2))
    torch.testing.assert_close(loss, expected)
    loss.backward()
    torch.testing.assert_close(model.bn1.weight.grad, 0.1 * model.bn1.weight.detach().sign())
    assert model.stem.weight.grad is None
    none = StructuredGradualPruner(model, EXAMPLE, LinearSchedule(final_sparsity=0.5, end=4))
    assert float(none.regularization_loss()) == 0.0


def test_global_scope_and_one_shot_at_step_zero() -> None:
    model = _net()
    pruner = StructuredGradualPruner(model, EXAMPLE, OneShotSchedule(sparsity=0.5),
                                     StructuredConfig(scope="global", max_ratio=0.75))
    assert pruner.updates == 1  # one shot at step 0 prunes at construction
    masked = sum(int((~k).sum()) for k in pruner.masks().values())
    assert masked == 10  # half of the 20 units, shared out by normalised score
    assert all((~k).float().mean() <= 0.75 for k in pruner.masks().values())
    pruner.finalize()  # allowed right away: the masks were computed


def test_resume_equals_uninterrupted_run() -> None:
    schedule = CubicSchedule(final_sparsity=0.6, start=2, end=10, frequency=2)
    config = StructuredConfig(regularization="group_lasso", strength=1e-3)
    batches = _batches(12)

    model = _net()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    pruner = StructuredGradualPruner(model, EXAMPLE, schedule, config)
    _train(model, opt, pruner, batches)

    first = _net()
    opt1 = torch.optim.Adam(first.parameters(), lr=1e-2)
    p1 = StructuredGradualPruner(first, EXAMPLE, schedule, config)
    _train(first, opt1, p1, batches[:5])
    saved = ({k: v.clone() for k, v in first.state_dict().items()}, opt1.state_dict(),
             p1.state_dict())

    second = _net()
    opt2 = torch.optim.Adam(second.parameters(), lr=1e-2)
    p2 = StructuredGradualPruner(second, EXAMPLE, schedule, config)
    second.load_state_dict(saved[0])
    opt2.load_state_dict(saved[1])
    p2.load_state_dict(saved[2])
    assert p2.step_count == 5
    _train(second, opt2, p2, batches[5:])
    assert p2.sparsity == pruner.sparsity == pytest.approx(0.6)
    for name, keep in pruner.masks().items():
        assert torch.equal(p2.masks()[name], keep)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(second.state_dict()[key], value)


def test_clear_errors() -> None:
    with pytest.raises(ConfigError, match=r"\[0, 1\)"):
        CubicSchedule(final_sparsity=1.0, end=10)
    with pytest.raises(ConfigError, match=r"\[0, 1\)"):
        StructuredGradualPruner(_net(), EXAMPLE,
                                {"name": "linear", "final_sparsity": -0.1, "end": 5})
    with pytest.raises(ConfigError, match="is not after start"):
        LinearSchedule(final_sparsity=0.5, start=10, end=5)
    with pytest.raises(ConfigError, match="Schedule"):
        StructuredGradualPruner(_net(), EXAMPLE, 0.5)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="regularization"):
        StructuredConfig(regularization="l0")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown importance"):
        StructuredConfig(importance="nope")
    with pytest.raises(ConfigError, match="calibration"):
        StructuredGradualPruner(_net(), EXAMPLE, LinearSchedule(final_sparsity=0.5, end=4),
                                StructuredConfig(importance="taylor"))
    with pytest.raises(ConfigError, match="BatchNorm"):
        plain = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        StructuredGradualPruner(plain, torch.randn(1, 4), LinearSchedule(final_sparsity=0.5,
                                                                         end=4),
                                StructuredConfig(regularization="bn_scale"))

    pruner = StructuredGradualPruner(_net(), EXAMPLE,
                                     LinearSchedule(final_sparsity=0.5, start=3, end=6))
    pruner.step()
    with pytest.raises(ConfigError, match="before any pruning step"):
        pruner.finalize()
    for _ in range(3):
        pruner.step()
    wider = StructuredGradualPruner(_net(width=10), EXAMPLE,
                                    LinearSchedule(final_sparsity=0.5, start=3, end=6))
    with pytest.raises(ConfigError, match="does not fit this model"):
        wider.load_state_dict(pruner.state_dict())
    other = StructuredGradualPruner(_net(), EXAMPLE,
                                    LinearSchedule(final_sparsity=0.4, start=3, end=6))
    with pytest.raises(ConfigError, match="schedule"):
        other.load_state_dict(pruner.state_dict())


def test_taylor_criterion_uses_calibration_batches() -> None:
    model = _net()
    batches = _batches(6)
    pruner = StructuredGradualPruner(model, EXAMPLE, OneShotSchedule(sparsity=0.5, step=2),
                                     StructuredConfig(importance="taylor"),
                                     calibration=batches[:2])
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    _train(model, opt, pruner, batches[2:])
    assert pruner.channel_sparsity() == pytest.approx(0.5)
