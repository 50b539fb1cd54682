"""LightningPruningCallback: steps with the optimizer, rides in checkpoints, finalises."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

pl = pytest.importorskip("lightning.pytorch")

from prunekit.errors import ConfigError
from prunekit.integrations.lightning import LightningPruningCallback
from prunekit.mask import get_mask, is_masked, mask_sparsity
from prunekit.schedule import (
    CubicSchedule,
    GradualPruner,
    ShrinkingPruner,
    StepSchedule,
    StructuredGradualPruner,
)

SCHEDULE = CubicSchedule(final_sparsity=0.75, start=2, end=10, frequency=2)


class Tiny(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(self.net(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def _loader() -> DataLoader:
    gen = torch.Generator().manual_seed(1)
    data = TensorDataset(torch.randn(64, 16, generator=gen), torch.randint(0, 4, (64,),
                                                                            generator=gen))
    return DataLoader(data, batch_size=8, shuffle=False)  # 8 steps per epoch


def _fit(module: Tiny, callback: LightningPruningCallback, root: Path, max_steps: int,
         ckpt_path: str | None = None, saver: pl.Callback | None = None) -> pl.Trainer:
    trainer = pl.Trainer(max_steps=max_steps, accelerator="cpu", devices=1, logger=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         enable_checkpointing=saver is not None, default_root_dir=root,
                         callbacks=[callback] + ([saver] if saver is not None else []))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, _loader(), ckpt_path=ckpt_path)
    return trainer


def test_reaches_scheduled_sparsity_and_finalises(tmp_path: Path) -> None:
    module = Tiny()
    pruner = GradualPruner(module.net, SCHEDULE)
    _fit(module, LightningPruningCallback(pruner, finalize=True), tmp_path, 12)
    assert pruner.step_count == 12 and pruner.finalized
    assert not is_masked(module.net[0])  # masks baked into the weights
    zeros = sum(int((m.weight == 0).sum()) for m in (module.net[0], module.net[2]))
    assert zeros / (32 * 16 + 4 * 32) == pytest.approx(0.75, abs=0.01)


def test_resume_from_lightning_checkpoint_continues_the_schedule(tmp_path: Path) -> None:
    full = Tiny()
    full_pruner = GradualPruner(full.net, SCHEDULE)
    _fit(full, LightningPruningCallback(full_pruner), tmp_path / "full", 12)

    first = Tiny()
    saver = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=8,
                                         save_top_k=-1)
    _fit(first, LightningPruningCallback(GradualPruner(first.net, SCHEDULE)),
         tmp_path / "first", 8, saver=saver)
    ckpt = next((tmp_path / "ckpt").glob("*step=8*.ckpt"))

    resumed = Tiny()
    pruner = GradualPruner(resumed.net, SCHEDULE)
    _fit(resumed, LightningPruningCallback(pruner), tmp_path / "resumed", 12,
         ckpt_path=str(ckpt))
    assert pruner.step_count == full_pruner.step_count == 12
    assert mask_sparsity(resumed.net) == pytest.approx(mask_sparsity(full.net))
    for i in (0, 2):
        assert torch.equal(get_mask(resumed.net[i]), get_mask(full.net[i]))


def test_refuses_a_pruner_that_is_not_in_step(tmp_path: Path) -> None:
    module = Tiny()
    pruner = GradualPruner(module.net, SCHEDULE)
    pruner.step()
    with pytest.raises(ConfigError, match="counted 1 optimizer steps"):
        _fit(module, LightningPruningCallback(pruner), tmp_path, 4)
    other = GradualPruner(nn.Sequential(nn.Linear(2, 2)), SCHEDULE)
    with pytest.raises(ConfigError, match="not part of the LightningModule"):
        _fit(Tiny(), LightningPruningCallback(other), tmp_path, 4)


def test_structured_pruner_removes_channels_at_train_end(tmp_path: Path) -> None:
    module = Tiny()
    pruner = StructuredGradualPruner(module.net, torch.randn(2, 16), SCHEDULE)
    _fit(module, LightningPruningCallback(pruner, finalize=True), tmp_path, 12)
    assert pruner.finalized and pruner.channel_sparsity() == pytest.approx(0.75)
    assert module.net[0].out_features == module.net[2].in_features == 8


SHRINK = StepSchedule(milestones=((3, 0.25), (9, 0.5)))


def _shrinking(module: Tiny) -> ShrinkingPruner:
    return ShrinkingPruner(module.net, torch.randn(2, 16), SHRINK)


def test_shrinking_pruner_shrinks_model_and_optimizer_during_fit(tmp_path: Path) -> None:
    module = Tiny()
    pruner = _shrinking(module)
    trainer = _fit(module, LightningPruningCallback(pruner), tmp_path, 12)
    assert module.net[0].out_features == module.net[2].in_features == 16
    opt = trainer.optimizers[0]
    held = [p for g in opt.param_groups for p in g["params"]]
    assert {id(p) for p in held} == {id(p) for p in module.parameters()}
    for p in held:
        assert opt.state[p]["exp_avg"].shape == p.shape


def test_shrunk_lightning_checkpoint_resumes_like_an_uninterrupted_run(tmp_path: Path) -> None:
    full = Tiny()
    _fit(full, LightningPruningCallback(_shrinking(full)), tmp_path / "full", 12)

    first = Tiny()
    saver = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=8,
                                         save_top_k=-1)  # at an epoch's end, between shrinks
    _fit(first, LightningPruningCallback(_shrinking(first)), tmp_path / "first", 8,
         saver=saver)
    ckpt = next((tmp_path / "ckpt").glob("*step=8*.ckpt"))

    resumed = Tiny()  # dense again: the checkpoint's plans are replayed before its weights
    pruner = _shrinking(resumed)
    _fit(resumed, LightningPruningCallback(pruner), tmp_path / "resumed", 12,
         ckpt_path=str(ckpt))
    assert pruner.step_count == 12 and len(pruner.plans) == 2
    for a, b in zip(full.state_dict().items(), resumed.state_dict().items()):
        assert a[0] == b[0] and torch.equal(a[1], b[1]), a[0]
