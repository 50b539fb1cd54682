"""Gradual structured pruning of the built-in digits CNN in a plain training loop: the target
channel sparsity is reached, accuracy stays useful, and surgery keeps the outputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from prunekit.data.digits import load_digits_data
from prunekit.models.digits_cnn import DigitsCNN
from prunekit.schedule import CubicSchedule, StructuredConfig, StructuredGradualPruner

EPOCHS = 3
BATCH = 64


def test_digits_cnn_reaches_channel_sparsity_and_finalises_output_identical() -> None:
    data = load_digits_data()
    torch.manual_seed(0)
    model = DigitsCNN(widths=(16, 32, 64))
    steps_per_epoch = -(-len(data.y_train) // BATCH)
    total = EPOCHS * steps_per_epoch
    schedule = CubicSchedule(final_sparsity=0.5, start=steps_per_epoch // 2,
                             end=total - steps_per_epoch // 2, frequency=8)
    pruner = StructuredGradualPruner(model, data.x_train[:2], schedule,
                                     StructuredConfig(regularization="bn_scale", strength=1e-4))
    assert [g.name for g in pruner.groups] == ["features.0.0", "features.1.0", "features.3.0"]
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
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
            pruner.step()
    assert pruner.done
    assert pruner.channel_sparsity() == pytest.approx(0.5)  # 8 + 16 + 32 of 112 channels

    model.eval()
    with torch.no_grad():
        soft = model(data.x_val)
    accuracy = (soft.argmax(1) == data.y_val).float().mean().item()
    print(f"digits CNN, 50% of channels masked after {total} steps: "
          f"val accuracy {accuracy:.3f}")
    assert accuracy > 0.85

    before = sum(p.numel() for p in model.parameters())
    result = pruner.finalize()
    after = sum(p.numel() for p in model.parameters())
    assert [m.out_channels for m in (model.features[0][0], model.features[1][0],
                                      model.features[3][0])] == [8, 16, 32]
    assert model.classifier.in_features == 32
    assert after < before / 3  # conv weights shrink on both sides: about a quarter is left
    assert result.plan.removed_units == 56
    with torch.no_grad():
        torch.testing.assert_close(model(data.x_val), soft, atol=1e-5, rtol=0)
