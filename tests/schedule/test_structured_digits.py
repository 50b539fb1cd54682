"""Gradual structured pruning of the built-in digits CNN in a plain training loop: the target
channel sparsity is reached, surgery keeps the outputs, and accuracy stays useful."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F

from prunekit.data.digits import load_digits_data
from prunekit.models.digits_cnn import DigitsCNN
from prunekit.schedule import CubicSchedule, StructuredConfig, StructuredGradualPruner

EPOCHS = 8
BATCH = 64
LR = 3e-3


@dataclass
class Run:
    model: DigitsCNN
    pruner: StructuredGradualPruner
    x_val: torch.Tensor
    soft_outputs: torch.Tensor   # the soft-masked model's outputs before surgery
    accuracy: float


@pytest.fixture(scope="module")
def run() -> Run:
    """One training run: channels masked on a cubic schedule over the first 60% of the steps,
    one-cycle learning rate, so the last epochs train the masked model to convergence."""
    data = load_digits_data()
    torch.manual_seed(0)
    model = DigitsCNN(widths=(16, 32, 64))
    steps_per_epoch = -(-len(data.y_train) // BATCH)
    total = EPOCHS * steps_per_epoch
    schedule = CubicSchedule(final_sparsity=0.5, start=steps_per_epoch,
                             end=int(0.6 * total), frequency=8)
    pruner = StructuredGradualPruner(model, data.x_train[:2], schedule,
                                     StructuredConfig(regularization="bn_scale", strength=1e-4))
    assert [g.name for g in pruner.groups] == ["features.0.0", "features.1.0", "features.3.0"]
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    lr_schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=LR, total_steps=total)
    order = torch.Generator().manual_seed(0)
    for _ in range(EPOCHS):
        model.train()
        perm = torch.randperm(len(data.y_train), generator=order)
        for b in range(steps_per_epoch):
            idx = perm[b * BATCH:(b + 1) * BATCH]
            optimizer.zero_grad()
            loss = F.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
            (loss + pruner.regularization_loss()).backward()
            optimizer.step()
            lr_schedule.step()
            pruner.step()
    model.eval()
    with torch.no_grad():
        soft = model(data.x_val)
    accuracy = (soft.argmax(1) == data.y_val).float().mean().item()
    return Run(model, pruner, data.x_val, soft, accuracy)


def test_digits_cnn_reaches_channel_sparsity_and_finalises_output_identical(run: Run) -> None:
    model, pruner = run.model, run.pruner
    assert pruner.done
    assert pruner.channel_sparsity() == pytest.approx(0.5)  # 8 + 16 + 32 of 112 channels
    before = sum(p.numel() for p in model.parameters())
    result = pruner.finalize()
    after = sum(p.numel() for p in model.parameters())
    assert [m.out_channels for m in (model.features[0][0], model.features[1][0],
                                      model.features[3][0])] == [8, 16, 32]
    assert model.classifier.in_features == 32
    assert after < before / 3  # conv weights shrink on both sides: about a quarter is left
    assert result.plan.removed_units == 56
    with torch.no_grad():
        torch.testing.assert_close(model(run.x_val), run.soft_outputs, atol=1e-5, rtol=0)


@pytest.mark.numerics
def test_half_the_channels_masked_during_training_keep_a_useful_model(run: Run) -> None:
    # Measured for this recipe over model seeds 0-7 under ATEN_CPU_CAPABILITY=default, avx2 and
    # avx512 (24 runs): 0.964-0.975. The floor leaves more than 2 points of margin.
    print(f"digits CNN, 50% of channels masked during {EPOCHS} epochs: "
          f"val accuracy {run.accuracy:.3f}")
    assert run.accuracy > 0.94
