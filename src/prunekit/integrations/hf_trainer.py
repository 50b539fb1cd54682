"""Hugging Face ``Trainer`` callback around a prunekit pruner (``pip install 'prunekit[trainer]'``).

::

    from prunekit.integrations.hf_trainer import TrainerPruningCallback

    pruner = GradualPruner(model, CubicSchedule(final_sparsity=0.9, end=1000))
    trainer = Trainer(model=model, args=args, train_dataset=ds,
                      callbacks=[TrainerPruningCallback(pruner, finalize=True)])
    trainer.train()                          # or train(resume_from_checkpoint=True)

The pruner steps after each optimizer step (``on_step_end``; gradient accumulation counts
right). On every save the pruner state is written into the checkpoint folder as
``prunekit_pruner.safetensors`` (tensors plus JSON metadata, nothing pickled); on resume
it is read back from ``args.resume_from_checkpoint`` if that is a folder holding the file,
else from ``<output_dir>/checkpoint-<global step>``, the folder the Trainer resumed from.
With ``load_best_model_at_end`` the pruner state of the best checkpoint is restored with
its weights. Create model, pruner and callback the same way when resuming.

A :class:`~prunekit.schedule.ShrinkingPruner` gets the Trainer's optimizer at the start of
training (its state is sliced at each shrink). The Trainer loads a checkpoint's weights
before any callback runs, so resuming a shrunk run takes one more call, before
``trainer.train(resume_from_checkpoint=folder)``: ``callback.restore_architecture(folder)``
replays the plans saved there on the (fresh, dense) model.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, cast

from ..errors import ConfigError
from ._state import (
    STATE_FILE,
    SteppedPruner,
    attach_optimizers,
    catch_up,
    check_in_step,
    check_pruner,
    load_pruner_state,
    save_pruner_state,
)

try:
    from transformers import (
        TrainerCallback,
        TrainerControl,
        TrainerState,
        TrainingArguments,
    )
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
except ImportError:  # pragma: no cover - depends on the installed extra
    raise ImportError("prunekit.integrations.hf_trainer needs transformers and accelerate: "
                      "pip install 'prunekit[trainer]'") from None

__all__ = ["STATE_FILE", "TrainerPruningCallback"]


class TrainerPruningCallback(TrainerCallback):
    """Step ``pruner`` after each optimizer step, save it with each checkpoint, finalise at
    the end (``finalize=True``: ``pruner.finalize()`` when training ends)."""

    def __init__(self, pruner: SteppedPruner, *, finalize: bool = False) -> None:
        self.pruner = check_pruner(pruner)
        self.finalize = bool(finalize)

    def _resume_folder(self, args: TrainingArguments, step: int) -> Path:
        candidates = []
        if isinstance(args.resume_from_checkpoint, (str, os.PathLike)):
            candidates.append(Path(args.resume_from_checkpoint))
        candidates.append(Path(cast(str, args.output_dir)) / f"{PREFIX_CHECKPOINT_DIR}-{step}")
        for folder in candidates:
            if (folder / STATE_FILE).is_file():
                return folder
        raise ConfigError(
            f"the Trainer resumed at step {step}, but no pruner state ({STATE_FILE}) was "
            f"found in {[str(c) for c in candidates]}; resume from a checkpoint saved with "
            "TrainerPruningCallback, and set TrainingArguments(resume_from_checkpoint=...) "
            "to its folder if it lies outside output_dir")

    def restore_architecture(self, checkpoint: str | os.PathLike[str]) -> None:
        """Load the pruner state saved in ``checkpoint`` (a folder) now: a shrinking pruner
        replays its plans, so the model has the checkpoint's shapes when the Trainer loads
        the weights. Call before ``trainer.train(resume_from_checkpoint=checkpoint)``."""
        self.pruner.load_state_dict(load_pruner_state(checkpoint))

    def on_train_begin(self, args: TrainingArguments, state: TrainerState,
                       control: TrainerControl, **kwargs: Any) -> None:
        attach_optimizers(self.pruner, kwargs.get("optimizer"))
        model = getattr(self.pruner, "model", None)
        trained = kwargs.get("model")
        if model is not None and trained is not None and \
                not any(m is model for m in trained.modules()):
            raise ConfigError(
                f"the pruner prunes a {type(model).__name__} that is not part of the model "
                f"the Trainer trains ({type(trained).__name__}); create the pruner on that "
                "model (or a submodule)")
        step = int(state.global_step)
        if step > 0 and self.pruner.step_count != step:
            self.pruner.load_state_dict(load_pruner_state(self._resume_folder(args, step)))
        check_in_step(self.pruner, step, "Hugging Face Trainer")

    def on_step_end(self, args: TrainingArguments, state: TrainerState,
                    control: TrainerControl, **kwargs: Any) -> None:
        catch_up(self.pruner, int(state.global_step))

    def on_save(self, args: TrainingArguments, state: TrainerState,
                control: TrainerControl, **kwargs: Any) -> None:
        if not args.should_save:
            return
        folder = Path(cast(str, args.output_dir)) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        if not folder.is_dir():
            raise ConfigError(f"the Trainer saved a checkpoint, but {str(folder)!r} does not "
                              "exist; TrainerPruningCallback supports checkpoints in "
                              "args.output_dir (not hyper-parameter search run folders)")
        save_pruner_state(self.pruner, folder)

    def on_train_end(self, args: TrainingArguments, state: TrainerState,
                     control: TrainerControl, **kwargs: Any) -> None:
        best = state.best_model_checkpoint
        if args.load_best_model_at_end and best and (Path(best) / STATE_FILE).is_file():
            self.pruner.load_state_dict(load_pruner_state(best))  # masks of the loaded weights
        if self.finalize:
            self.pruner.finalize()
