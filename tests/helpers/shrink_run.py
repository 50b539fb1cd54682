"""A shrinking training run that checkpoints every 2 steps and can kill itself (SIGKILL)
after a given step: ``python shrink_run.py FOLDER KILL_AFTER``. :func:`train` resumes from
the folder's checkpoint when ``resume`` is set. Data order and dropout draw from the global
random generator, which the checkpoint restores."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from prunekit.schedule import (
    ShrinkConfig,
    ShrinkingPruner,
    StepSchedule,
    load_training_checkpoint,
    save_training_checkpoint,
)

STEPS = 10
SCHEDULE = StepSchedule(milestones=((3, 0.25), (7, 0.5)))


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 12, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(12)
        self.conv2 = nn.Conv2d(12, 16, 3, padding=1)
        self.drop = nn.Dropout(0.2)
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.drop(F.relu(self.conv2(x)))
        return self.head(x.mean((2, 3)))


def data() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(7)
    return torch.randn(64, 1, 6, 6, generator=gen), torch.randint(0, 3, (64,), generator=gen)


def train(folder: Path | None, *, resume: bool = False,
          kill_after: int | None = None) -> ShrinkingPruner:
    torch.manual_seed(0)
    model = Net()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    pruner = ShrinkingPruner(model, torch.zeros(2, 1, 6, 6), SCHEDULE,
                             ShrinkConfig(importance="l1"), optimizers=[opt])
    if resume and folder is not None:
        load_training_checkpoint(folder / "ckpt", pruner)
    x, y = data()
    while pruner.step_count < STEPS:
        idx = torch.randperm(64)[:16]
        opt.zero_grad()
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
        pruner.step()
        if folder is not None and pruner.step_count % 2 == 0:
            save_training_checkpoint(folder / "ckpt", pruner)
        if kill_after is not None and pruner.step_count == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
    return pruner


if __name__ == "__main__":
    train(Path(sys.argv[1]), kill_after=int(sys.argv[2]))
