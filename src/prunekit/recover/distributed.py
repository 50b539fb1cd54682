"""Multi-process fine-tuning of a pruned model with DistributedDataParallel.

Every rank builds a fresh model, receives the plan from rank 0 (its JSON text, broadcast as
bytes; no pickle), applies it, and checks that all ranks hold the same plan (SHA-256 of the
canonical JSON, gathered and compared). Rank 0 loads the pruned weights; DDP broadcasts
them to the others. Training uses a :class:`DistributedSampler` and the usual
:func:`prunekit.train.finetune` loop on the DDP-wrapped model; at the end every rank checks
the weight digests agree, rank 0 saves the model (:func:`prunekit.save_pruned`) and each
rank writes ``rank<k>.json`` (digest, losses, metric).

Run :func:`finetune_on_rank` inside an initialised process group (torchrun), or let
:func:`spawn_finetune` start ``world_size`` processes with ``torch.multiprocessing.spawn``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from safetensors.torch import load_model
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ..errors import PlanError
from .._internal.validate import check_choice, check_int
from ..files import atomic_write_text
from ..plan.document import Plan
from ..surgery.serialization import PLAN, WEIGHTS, save_pruned
from ..surgery.apply import apply_plan
from ..train.finetune import FinetuneConfig, evaluate, finetune

__all__ = ["DistributedConfig", "DistributedResult", "finetune_on_rank", "spawn_finetune",
           "weights_digest"]


@dataclass(frozen=True)
class DistributedConfig:
    """``world_size`` processes on ``backend`` (gloo on CPU), ``batch_size`` per rank."""

    world_size: int = 2
    backend: str = "gloo"
    batch_size: int = 64
    seed: int = 0
    threads_per_rank: int = 1

    def __post_init__(self) -> None:
        for name in ("world_size", "batch_size", "threads_per_rank"):
            check_int(getattr(self, name), f"DistributedConfig.{name}", minimum=1)
        check_choice(self.backend, "DistributedConfig.backend", ("gloo", "nccl"),
                     hint="gloo on CPU")

    def settings(self) -> dict[str, Any]:
        """Plain-data view for reports."""
        return asdict(self)


@dataclass(frozen=True)
class DistributedResult:
    """Per-rank reports (rank order) and where rank 0 saved the fine-tuned model."""

    ranks: list[dict[str, Any]]
    out_dir: Path


def weights_digest(model: nn.Module) -> str:
    """SHA-256 over every parameter and buffer (names, shapes and exact bytes)."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes()
                 if t.numel() else b"")
    return h.hexdigest()


def _broadcast_text(text: str | None) -> str:
    size = torch.tensor([len(text.encode()) if text is not None else 0], dtype=torch.int64)
    dist.broadcast(size, src=0)
    buf = torch.zeros(int(size), dtype=torch.uint8)
    if dist.get_rank() == 0:
        buf = torch.frombuffer(bytearray(text.encode()), dtype=torch.uint8)  # type: ignore[union-attr]
    dist.broadcast(buf, src=0)
    return bytes(buf.numpy()).decode()


def _same_everywhere(digest: str, what: str) -> None:
    mine = torch.frombuffer(bytearray(bytes.fromhex(digest)), dtype=torch.uint8)
    gathered = [torch.zeros_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, mine)
    if any(not torch.equal(g, gathered[0]) for g in gathered):
        raise PlanError(f"the {what} differs between ranks (rank {dist.get_rank()}): every "
                        "rank must start from the same plan file and the same architecture")


class _EpochSampled:
    """A loader that tells its DistributedSampler the epoch on every new pass."""

    def __init__(self, loader: DataLoader, sampler: DistributedSampler) -> None:
        self.loader, self.sampler, self.epoch = loader, sampler, 0

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Any]:
        self.sampler.set_epoch(self.epoch)
        self.epoch += 1
        return iter(self.loader)


def _mean_loss(model: nn.Module, loader: DataLoader) -> float:
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for x, y in loader:
            total += float(F.cross_entropy(model(x), y, reduction="sum"))
            count += int(y.numel())
    return total / max(count, 1)


def finetune_on_rank(build_model: Callable[[], nn.Module], checkpoint: str | Path,
                     train_data: Dataset, val_data: Dataset, out_dir: str | Path,
                     finetune_config: FinetuneConfig, config: DistributedConfig) -> dict[str, Any]:
    """Fine-tune the pruned model saved in ``checkpoint`` (``save_pruned`` folder) on this
    rank of an initialised process group; returns this rank's report."""
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(config.seed)
    source = Path(checkpoint)
    text = (source / PLAN).read_text() if rank == 0 else None
    plan = Plan.from_dict(json.loads(_broadcast_text(text)), source="broadcast plan")
    canonical = json.dumps(plan.to_dict(), sort_keys=True)
    plan_digest = hashlib.sha256(canonical.encode()).hexdigest()
    _same_everywhere(plan_digest, "pruning plan")
    model = apply_plan(build_model(), plan)
    if rank == 0:
        load_model(model, str(source / WEIGHTS), strict=True)
    ddp = nn.parallel.DistributedDataParallel(model)  # broadcasts rank 0's weights
    sampler: DistributedSampler[Any] = DistributedSampler(
        train_data, num_replicas=world, rank=rank, shuffle=True, seed=config.seed)
    train = _EpochSampled(DataLoader(train_data, batch_size=config.batch_size,
                                     sampler=sampler), sampler)
    val = DataLoader(val_data, batch_size=256)
    full_train = DataLoader(train_data, batch_size=256)
    loss_before = _mean_loss(model, full_train)
    result = finetune(ddp, train, val, finetune_config)
    loss_after = _mean_loss(model, full_train)
    digest = weights_digest(model)
    _same_everywhere(digest, "fine-tuned weights")
    out = Path(out_dir)
    if rank == 0:
        save_pruned(model, plan, out)
    report = {"rank": rank, "world_size": world, "plan_digest": plan_digest,
              "weights_digest": digest, "loss_before": loss_before, "loss_after": loss_after,
              "metric": evaluate(model, val), "best_epoch": result.best_epoch,
              "epoch_losses": [r.train_loss for r in result.history]}
    atomic_write_text(out / f"rank{rank}.json", json.dumps(report, indent=1))
    dist.barrier()
    return report


def _spawned(rank: int, init_file: str, args: tuple[Any, ...], config: DistributedConfig) -> None:
    torch.set_num_threads(config.threads_per_rank)
    dist.init_process_group(config.backend, init_method=f"file://{init_file}", rank=rank,
                            world_size=config.world_size)
    try:
        run: Callable[..., Any] = finetune_on_rank
        run(*args, config)
    finally:
        dist.destroy_process_group()


def spawn_finetune(build_model: Callable[[], nn.Module], checkpoint: str | Path,
                   train_data: Dataset, val_data: Dataset, out_dir: str | Path,
                   finetune_config: FinetuneConfig | None = None,
                   config: DistributedConfig | None = None) -> DistributedResult:
    """Start ``config.world_size`` processes (spawn), fine-tune on all, return the reports.

    ``build_model`` must be picklable (a class or a module-level function): each process
    calls it to build the unpruned architecture the plan was made for.
    """
    import torch.multiprocessing as mp

    config = config or DistributedConfig()
    finetune_config = finetune_config or FinetuneConfig(epochs=2)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="prunekit-ddp-") as tmp:
        init_file = os.path.join(tmp, "rendezvous")
        args = (build_model, str(checkpoint), train_data, val_data, str(out), finetune_config)
        mp.spawn(_spawned, args=(init_file, args, config), nprocs=config.world_size, join=True)
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in range(config.world_size)]
    return DistributedResult(ranks, out)
