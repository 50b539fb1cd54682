"""Input mixup in fine-tuning: the blend, its loss, repeatability, the teacher seeing the mixed
inputs ("function matching"), and the errors for inputs it cannot blend."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from helpers.train import KeywordModel, blobs, keyword_batches, mlp  # same folder

from prunekit.errors import ConfigError
from prunekit.train import DistillConfig, FinetuneConfig, Mixup, finetune
from prunekit.train.mixup import MixedBatch, mixed_task_loss


def test_blend_is_per_sample_and_stays_nearest_its_own_input() -> None:
    x = torch.randn(64, 1, 8, 8)
    batch = Mixup(0.4, seed=3)(x)
    assert batch.inputs.shape == x.shape and batch.lam.shape == (64,)
    assert float(batch.lam.min()) >= 0.5 and float(batch.lam.max()) <= 1.0
    assert len(set(batch.lam.tolist())) > 1  # one weight per sample, not per batch
    assert sorted(batch.perm.tolist()) == list(range(64))
    lam = batch.lam.view(-1, 1, 1, 1)
    torch.testing.assert_close(batch.inputs, lam * x + (1 - lam) * x[batch.perm])


def test_same_seed_same_draws() -> None:
    x = torch.randn(16, 5)
    a, b = Mixup(1.0, seed=7)(x), Mixup(1.0, seed=7)(x)
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.perm, b.perm)
    assert not torch.equal(a.inputs, Mixup(1.0, seed=8)(x).inputs)


def test_task_loss_weights_each_sample() -> None:
    torch.manual_seed(0)
    out, y = torch.randn(4, 3), torch.tensor([0, 1, 2, 1])
    lam = torch.tensor([1.0, 0.5, 0.75, 0.6])
    perm = torch.tensor([1, 0, 3, 2])
    batch = MixedBatch(torch.zeros(4, 2), lam, perm)
    own = F.cross_entropy(out, y, reduction="none")
    other = F.cross_entropy(out, y[perm], reduction="none")
    expected = (lam * own + (1 - lam) * other).mean()
    torch.testing.assert_close(mixed_task_loss(out, y, batch, None), expected)
    # a custom loss returns one number per batch: weighted by the mean lam
    custom = mixed_task_loss(out, y, batch, F.cross_entropy)
    w = float(lam.mean())
    torch.testing.assert_close(custom, w * F.cross_entropy(out, y)
                               + (1 - w) * F.cross_entropy(out, y[perm]))
    unmixed = MixedBatch(torch.zeros(4, 2), torch.ones(4), perm)
    torch.testing.assert_close(mixed_task_loss(out, y, unmixed, None), F.cross_entropy(out, y))


@pytest.mark.numerics
def test_finetune_with_mixup_learns_and_is_repeatable() -> None:
    runs = []
    for _ in range(2):
        train, val = blobs()  # fresh loaders: the shuffling generator restarts
        model = mlp()
        torch.manual_seed(5)
        result = finetune(model, train, val, FinetuneConfig(epochs=8, lr=1e-2, mixup=0.4))
        runs.append((result.best_metric, [p.detach().clone() for p in model.parameters()]))
    assert runs[0][0] > 0.9
    for a, b in zip(runs[0][1], runs[1][1]):
        assert torch.equal(a, b)
    plain = mlp()
    train, val = blobs()
    torch.manual_seed(5)
    finetune(plain, train, val, FinetuneConfig(epochs=8, lr=1e-2))
    assert any(not torch.equal(a, b) for a, b in zip(runs[0][1], plain.parameters()))


def test_teacher_sees_the_mixed_inputs() -> None:
    train, val = blobs()
    originals = {tuple(row.tolist()) for xb, _ in train for row in xb}
    seen: list[torch.Tensor] = []

    class Spy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = mlp(1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(x.detach().clone())  # the teacher only runs on training batches
            return self.net(x)

    teacher = Spy()
    torch.manual_seed(0)
    finetune(mlp(), train, val, FinetuneConfig(epochs=1, lr=1e-2, mixup=0.4),
             teacher=teacher, distill=DistillConfig(alpha=1.0))
    rows = [tuple(r.tolist()) for x in seen for r in x]
    mixed = [r for r in rows if r not in originals]
    assert len(mixed) > len(originals) // 2  # most teacher inputs are blends, not samples


@pytest.mark.parametrize("value", [-0.1, math.inf, math.nan, True, "0.4"])
def test_config_rejects_bad_mixup(value: object) -> None:
    with pytest.raises(ConfigError, match="mixup"):
        FinetuneConfig(mixup=value)  # type: ignore[arg-type]


def test_bad_alpha_for_the_mixer() -> None:
    with pytest.raises(ConfigError, match="alpha"):
        Mixup(0.0, seed=0)


def test_inputs_it_cannot_blend_are_named() -> None:
    train, val = blobs()
    wrap, wrap_val = keyword_batches(train), keyword_batches(val)
    with pytest.raises(ConfigError, match="mixup=0.0"):
        finetune(KeywordModel(), wrap, wrap_val, FinetuneConfig(epochs=1, mixup=0.4))
    tokens = [(torch.randint(0, 5, (8, 2)), torch.randint(0, 3, (8,)))]
    with pytest.raises(ConfigError, match="floating-point"):
        finetune(nn.Sequential(nn.Embedding(5, 3), nn.Flatten(), nn.Linear(6, 3)), tokens,
                 tokens, FinetuneConfig(epochs=1, mixup=0.4))
