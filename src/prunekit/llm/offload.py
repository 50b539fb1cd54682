"""Where blocks wait while another block is pruned: in memory, or on disk (offloaded).

:class:`InMemory` moves a block to the compute device and back. :class:`DiskStore` keeps
every block as one safetensors file under its full parameter names (``model.layers.3.…``) and
the block itself on the ``meta`` device, so only the block being pruned takes memory: a
model's blocks can then be larger than RAM together. Block files are written atomically;
since they carry the model's own tensor names they are also valid checkpoint shards.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ..errors import ConfigError
from ..files import atomic_path

__all__ = ["DiskStore", "InMemory", "block_file", "block_prefixes", "on_meta",
           "write_block"]


def block_file(directory: str | os.PathLike[str], index: int) -> Path:
    """The file that holds block ``index`` in an offload folder."""
    return Path(directory) / f"block-{index:05d}.safetensors"


def block_prefixes(model: nn.Module, blocks: nn.ModuleList) -> list[str]:
    """Each block's parameter-name prefix in ``model`` (``"model.layers.3."``)."""
    names = {id(m): name for name, m in model.named_modules()}
    return [f"{names[id(b)]}." for b in blocks]


def write_block(path: Path, prefix: str, block: nn.Module, index: int) -> None:
    """Save ``block``'s parameters and buffers under ``prefix`` + their names, atomically."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    named: list[tuple[str, torch.Tensor]] = list(block.named_parameters(remove_duplicate=False))
    named += list(block.named_buffers(remove_duplicate=False))
    for name, tensor in named:
        data = tensor.detach().cpu().contiguous()
        if data.untyped_storage().data_ptr() in seen:  # files cannot share storage
            data = data.clone()
        seen.add(data.untyped_storage().data_ptr())
        tensors[prefix + name] = data
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt", "prunekit": "block",
                                               "index": str(index)})


class InMemory:
    """Blocks stay where they are; the one being pruned visits the compute device."""

    def __init__(self) -> None:
        self._home: dict[int, torch.device] = {}

    def fetch(self, index: int, block: nn.Module, device: torch.device) -> None:
        self._home[index] = next(block.parameters()).device
        block.to(device)

    def put_back(self, index: int, block: nn.Module, *, changed: bool = True) -> None:
        block.to(self._home.pop(index))


class DiskStore:
    """Blocks as safetensors files in ``directory``; at most one block in memory at a time."""

    def __init__(self, directory: str | os.PathLike[str], model: nn.Module,
                 blocks: nn.ModuleList) -> None:
        self.directory = Path(directory)
        self.prefixes = block_prefixes(model, blocks)
        self.blocks = blocks
        self.directory.mkdir(parents=True, exist_ok=True)
        for index, block in enumerate(blocks):
            if on_meta(block):
                if not self.path(index).exists():
                    raise ConfigError(
                        f"block {index} ({self.prefixes[index][:-1]}) has no weights in memory "
                        f"and no file {str(self.path(index))!r}: offload it from a loaded "
                        "model first")
            else:
                self._write(index, block)
                block.to_empty(device="meta")

    def path(self, index: int) -> Path:
        return block_file(self.directory, index)

    def fetch(self, index: int, block: nn.Module, device: torch.device) -> None:
        """Materialise block ``index`` on ``device`` from its file."""
        from safetensors.torch import load_file

        tensors = load_file(self.path(index), device=str(device))
        prefix = self.prefixes[index]
        for full, tensor in tensors.items():
            owner, _, leaf = full[len(prefix):].rpartition(".")
            module = block.get_submodule(owner) if owner else block
            if leaf in module._parameters:
                old = module._parameters[leaf]
                module._parameters[leaf] = nn.Parameter(
                    tensor, requires_grad=bool(old is not None and old.requires_grad))
            else:
                module._buffers[leaf] = tensor

    def put_back(self, index: int, block: nn.Module, *, changed: bool = True) -> None:
        """Write block ``index`` to its file if ``changed`` (pruned), then free its memory."""
        if changed:
            self._write(index, block)
        block.to_empty(device="meta")

    def restore(self, device: torch.device | str = "cpu") -> None:
        """Bring every block back into memory on ``device``."""
        for index, block in enumerate(self.blocks):
            self.fetch(index, block, torch.device(device))

    def _write(self, index: int, block: nn.Module) -> None:
        write_block(self.path(index), self.prefixes[index], block, index)


def on_meta(block: nn.Module) -> bool:
    """Whether ``block``'s weights are offloaded (its parameters on the ``meta`` device)."""
    first = next(block.parameters(), None)
    return first is not None and first.is_meta
