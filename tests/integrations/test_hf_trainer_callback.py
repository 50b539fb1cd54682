"""TrainerPruningCallback: steps with the optimizer, saves into checkpoint folders, resumes."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import Dataset

transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")

from prunekit.errors import ConfigError
from prunekit.integrations import STATE_FILE
from prunekit.integrations.hf_trainer import TrainerPruningCallback
from prunekit.mask import get_mask, is_masked, mask_sparsity
from prunekit.schedule import CubicSchedule, GradualPruner, ShrinkingPruner, StepSchedule

SCHEDULE = CubicSchedule(final_sparsity=0.75, start=2, end=10, frequency=2)


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, Any]:
        logits = self.net(x)
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = F.cross_entropy(logits, labels)
        return out


class Pairs(Dataset):
    def __init__(self) -> None:
        gen = torch.Generator().manual_seed(1)
        self.x = torch.randn(64, 16, generator=gen)
        self.y = torch.randint(0, 4, (64,), generator=gen)

    def __len__(self) -> int:
        return 64

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "labels": self.y[i]}


def _train(model: Tiny, callback: TrainerPruningCallback, out: Path, max_steps: int,
           resume: str | bool | None = None, save_steps: int | None = None) -> None:
    args = transformers.TrainingArguments(  # constant lr: a shorter run is a true prefix
        output_dir=str(out), max_steps=max_steps, per_device_train_batch_size=8,
        learning_rate=1e-2, lr_scheduler_type="constant", seed=0, use_cpu=True,
        report_to="none", disable_tqdm=True, logging_strategy="no",
        save_strategy="steps" if save_steps else "no", save_steps=save_steps or 500,
        dataloader_num_workers=0)
    trainer = transformers.Trainer(model=model, args=args, train_dataset=Pairs(),
                                   callbacks=[callback])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.train(resume_from_checkpoint=resume)


def test_reaches_scheduled_sparsity_and_finalises(tmp_path: Path) -> None:
    model = Tiny()
    pruner = GradualPruner(model.net, SCHEDULE)
    _train(model, TrainerPruningCallback(pruner, finalize=True), tmp_path, 12)
    assert pruner.step_count == 12 and pruner.finalized
    assert not is_masked(model.net[0])
    zeros = sum(int((m.weight == 0).sum()) for m in (model.net[0], model.net[2]))
    assert zeros / (32 * 16 + 4 * 32) == pytest.approx(0.75, abs=0.01)


def test_resume_from_trainer_checkpoint_continues_the_schedule(tmp_path: Path) -> None:
    full = Tiny()
    full_pruner = GradualPruner(full.net, SCHEDULE)
    _train(full, TrainerPruningCallback(full_pruner), tmp_path / "full", 12)

    out = tmp_path / "run"
    first = Tiny()
    _train(first, TrainerPruningCallback(GradualPruner(first.net, SCHEDULE)), out, 6,
           save_steps=6)
    assert (out / "checkpoint-6" / STATE_FILE).is_file()

    resumed = Tiny()
    pruner = GradualPruner(resumed.net, SCHEDULE)
    _train(resumed, TrainerPruningCallback(pruner), out, 12, resume=True)
    assert pruner.step_count == full_pruner.step_count == 12
    assert mask_sparsity(resumed.net) == pytest.approx(mask_sparsity(full.net))
    for i in (0, 2):
        assert torch.equal(get_mask(resumed.net[i]), get_mask(full.net[i]))


def test_resume_without_pruner_state_is_refused(tmp_path: Path) -> None:
    first = Tiny()
    _train(first, TrainerPruningCallback(GradualPruner(first.net, SCHEDULE)), tmp_path, 4,
           save_steps=4)
    (tmp_path / "checkpoint-4" / STATE_FILE).unlink()
    again = Tiny()
    with pytest.raises(ConfigError, match="no pruner state"):
        _train(again, TrainerPruningCallback(GradualPruner(again.net, SCHEDULE)), tmp_path, 8,
               resume=str(tmp_path / "checkpoint-4"))


SHRINK = StepSchedule(milestones=((3, 0.25), (9, 0.5)))


def _shrinking(model: Tiny) -> ShrinkingPruner:
    return ShrinkingPruner(model.net, torch.randn(2, 16), SHRINK)


def test_shrinking_pruner_slices_the_trainer_optimizer(tmp_path: Path) -> None:
    model = Tiny()
    pruner = _shrinking(model)
    _train(model, TrainerPruningCallback(pruner), tmp_path, 12)
    assert model.net[0].out_features == model.net[2].in_features == 16
    (opt,) = pruner.optimizers
    assert isinstance(opt, torch.optim.Optimizer) and not hasattr(opt, "optimizer")
    held = [p for g in opt.param_groups for p in g["params"]]
    assert {id(p) for p in held} == {id(p) for p in model.parameters()}
    for p in held:
        assert opt.state[p]["exp_avg"].shape == p.shape


def test_shrunk_trainer_checkpoint_resumes_like_an_uninterrupted_run(tmp_path: Path) -> None:
    full = Tiny()
    _train(full, TrainerPruningCallback(_shrinking(full)), tmp_path / "full", 12)
    out = tmp_path / "run"
    first = Tiny()
    _train(first, TrainerPruningCallback(_shrinking(first)), out, 8, save_steps=8)
    resumed = Tiny()
    callback = TrainerPruningCallback(_shrinking(resumed))
    callback.restore_architecture(out / "checkpoint-8")
    assert resumed.net[0].out_features == 24
    _train(resumed, callback, out, 12, resume=str(out / "checkpoint-8"))
    assert len(callback.pruner.plans) == 2  # type: ignore[attr-defined]
    for a, b in zip(full.state_dict().items(), resumed.state_dict().items()):
        assert a[0] == b[0] and torch.equal(a[1], b[1]), a[0]
