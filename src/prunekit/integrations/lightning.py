"""PyTorch Lightning callback around a prunekit pruner (``pip install 'prunekit[lightning]'``).

::

    from prunekit.integrations.lightning import LightningPruningCallback

    pruner = GradualPruner(lit_module.net, CubicSchedule(final_sparsity=0.9, end=1000))
    trainer = L.Trainer(callbacks=[LightningPruningCallback(pruner, finalize=True)])
    trainer.fit(lit_module)                       # or fit(..., ckpt_path="last.ckpt")

The pruner steps once per optimizer step (``trainer.global_step``, so gradient
accumulation and manual optimisation count right), its state travels in every Lightning
checkpoint (``checkpoint["callbacks"][callback.state_key]``) and comes back with
``fit(ckpt_path=...)``. Create model, pruner and callback the same way when resuming.
A :class:`~prunekit.schedule.ShrinkingPruner` gets the trainer's optimizers at the start
of training (their state is sliced at each shrink); on ``fit(ckpt_path=...)`` the plans
saved in the checkpoint are replayed on the model before Lightning loads the (shrunk)
weights, so the checkpoint reloads into the shrunk architecture.
Built on ``lightning.pytorch``, or on the older ``pytorch_lightning`` package when only
that one is installed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError
import torch

from ._state import SteppedPruner, attach_optimizers, catch_up, check_in_step, check_pruner

try:
    import lightning.pytorch as pl
except ImportError:  # pragma: no cover - depends on the installed extra
    try:
        import pytorch_lightning as pl  # type: ignore[no-redef]
    except ImportError:
        raise ImportError("prunekit.integrations.lightning needs PyTorch Lightning: "
                          "pip install 'prunekit[lightning]'") from None

__all__ = ["LightningPruningCallback"]


class LightningPruningCallback(pl.Callback):
    """Step ``pruner`` after each optimizer step, checkpoint its state, finalise at the end.

    - ``finalize``: call ``pruner.finalize()`` when training ends (bakes masks into weights;
      a :class:`~prunekit.schedule.StructuredGradualPruner` removes the masked channels);
    - ``name``: distinguishes the checkpoint entries of several pruning callbacks.
    """

    def __init__(self, pruner: SteppedPruner, *, finalize: bool = False,
                 name: str = "pruner") -> None:
        super().__init__()
        self.pruner = check_pruner(pruner)
        self.finalize = bool(finalize)
        self.name = str(name)
        self._replay_hook: Any = None  # replays a checkpoint's plans before its weights load

    @property
    def state_key(self) -> str:
        return self._generate_state_key(name=self.name)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if getattr(self.pruner, "plans", None) is None:
            return  # only pruners that change the architecture need the plans first
        callback = self

        def replay_plans(module: Any, state_dict: Any, *args: Any) -> None:
            path = trainer.ckpt_path
            if path is None:
                return
            try:  # plain data and tensors only: nothing is unpickled
                checkpoint = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:
                raise ConfigError(
                    f"cannot read the pruner's plans from checkpoint {str(path)!r} without "
                    f"unpickling ({type(exc).__name__}: {str(exc)[:200]}); the shrunk "
                    "weights cannot load into the dense model without them") from None
            entry = checkpoint.get("callbacks", {}).get(callback.state_key)
            if entry is not None and "pruner" in entry:
                callback.pruner.load_state_dict(entry["pruner"])

        self._replay_hook = pl_module.register_load_state_dict_pre_hook(replay_plans)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        model = getattr(self.pruner, "model", None)
        if model is not None and not any(m is model for m in pl_module.modules()):
            raise ConfigError(
                f"the pruner prunes a {type(model).__name__} that is not part of the "
                f"LightningModule {type(pl_module).__name__} being fitted; create the pruner "
                "on the module (or a submodule) you pass to trainer.fit")

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._replay_hook is not None:  # the checkpoint (if any) is restored by now
            self._replay_hook.remove()
            self._replay_hook = None
        attach_optimizers(self.pruner, trainer.optimizers)
        check_in_step(self.pruner, int(trainer.global_step), "Lightning Trainer")

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        catch_up(self.pruner, int(trainer.global_step))

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self._replay_hook is not None:
            self._replay_hook.remove()
            self._replay_hook = None

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.finalize:
            self.pruner.finalize()

    def state_dict(self) -> dict[str, Any]:
        return {"pruner": self.pruner.state_dict()}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        if "pruner" not in state_dict:
            raise ConfigError(f"checkpoint entry {self.state_key!r} holds no pruner state")
        self.pruner.load_state_dict(state_dict["pruner"])
