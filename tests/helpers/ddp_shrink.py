"""Two CPU ranks (gloo) train a DDP model with a ShrinkingPruner; each rank writes its plans
and final weights. Run as ``python ddp_shrink.py FOLDER [local]``; ``local`` turns the
score all-reduce off, to show that the ranks then disagree."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file
from torch.nn.parallel import DistributedDataParallel as DDP

import prunekit.schedule.shrink as shrink
from prunekit.schedule import ShrinkConfig, ShrinkingPruner, StepSchedule, rewrap_ddp


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 12, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(12)
        self.conv2 = nn.Conv2d(12, 16, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(16)
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return self.head(x.mean((2, 3)))


def worker(rank: int, world: int, folder: str, port: int, local: bool) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    if local:
        shrink.all_reduce_scores = lambda scores: scores  # type: ignore[assignment]
    torch.manual_seed(0)
    model = Net()
    wrapped: dict[str, Any] = {"ddp": DDP(model)}
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    gen = torch.Generator().manual_seed(100 + rank)  # every rank sees its own data
    batches = [(torch.randn(8, 1, 6, 6, generator=gen), torch.randint(0, 3, (8,), generator=gen))
               for _ in range(6)]

    def rewrap(pruner: ShrinkingPruner, plan: object) -> None:
        wrapped["ddp"] = rewrap_ddp(wrapped["ddp"])

    pruner = ShrinkingPruner(model, batches[0][0][:2],
                             StepSchedule(milestones=((2, 0.25), (4, 0.5))),
                             ShrinkConfig(importance="taylor"), optimizers=[opt],
                             calibration=batches[:2], on_shrink=[rewrap])
    try:
        for x, y in batches:
            opt.zero_grad()
            F.cross_entropy(wrapped["ddp"](x), y).backward()
            opt.step()
            pruner.step()
    except Exception as exc:  # noqa: BLE001 - ranks that disagree on shapes fail inside DDP
        Path(folder, f"rank{rank}.error").write_text(f"{type(exc).__name__}: {exc}")
    out = Path(folder)
    (out / f"rank{rank}.json").write_text(json.dumps(
        [{g.name: g.removed for g in p.groups} for p in pruner.plans]))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(out / f"rank{rank}.safetensors"))
    try:
        dist.destroy_process_group()
    except Exception:  # noqa: BLE001 - a peer that failed may have closed the group already
        pass


def main() -> None:
    folder = sys.argv[1]
    local = len(sys.argv) > 2 and sys.argv[2] == "local"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(worker, args=(2, folder, port, local), nprocs=2, join=True)


if __name__ == "__main__":
    main()
