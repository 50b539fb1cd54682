"""DDP fine-tuning on 2 CPU processes (gloo, torch.multiprocessing.spawn): every rank holds
the same plan and ends with identical weights, the loss decreases, and rank 0's saved
model replays on a fresh copy."""

from __future__ import annotations

import copy
import functools

import pytest
from torch.utils.data import TensorDataset

import prunekit
from prunekit.errors import ConfigError
from prunekit.models.digits_cnn import DigitsCNN
from prunekit.recover import DistributedConfig, spawn_finetune, weights_digest
from prunekit.train import FinetuneConfig


@pytest.mark.numerics
def test_two_ranks_end_identical_and_learn(trained, digits, tmp_path) -> None:
    pruned = copy.deepcopy(trained)
    plan = prunekit.prune(pruned, digits.x_val[:1], ratio=0.6).plan
    prunekit.save_pruned(pruned, plan, tmp_path / "pruned")
    build = functools.partial(DigitsCNN, trained.widths)
    result = spawn_finetune(build, tmp_path / "pruned",
                            TensorDataset(digits.x_train, digits.y_train),
                            TensorDataset(digits.x_val, digits.y_val), tmp_path / "out",
                            FinetuneConfig(epochs=2, lr=3e-3),
                            DistributedConfig(world_size=2, batch_size=32))
    r0, r1 = result.ranks
    assert (r0["rank"], r1["rank"]) == (0, 1) and r0["world_size"] == 2
    assert r0["plan_digest"] == r1["plan_digest"]
    assert r0["weights_digest"] == r1["weights_digest"]
    assert r0["loss_after"] < r0["loss_before"]
    assert r0["loss_before"] == r1["loss_before"]  # same starting weights on both ranks
    final = prunekit.load_pruned(build(), tmp_path / "out")
    assert weights_digest(final) == r0["weights_digest"]
    assert prunekit.Plan.load(tmp_path / "out" / "plan.json").to_dict() == plan.to_dict()


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="world_size"):
        DistributedConfig(world_size=0)
    with pytest.raises(ConfigError, match="backend"):
        DistributedConfig(backend="mpi")
