"""Hugging Face checkpoints straight to and from offloaded blocks, for models larger than RAM.

:func:`load_offloaded` builds the model from its ``config.json`` without allocating weights
(``accelerate.init_empty_weights``; buffers such as rotary frequencies are still computed),
loads the weights outside the blocks into memory, and copies each block's weights from the
safetensors checkpoint into its own file in the offload folder, one block at a time. The
blocks stay on the ``meta`` device, ready for ``prune_sequential(offload_dir=...)``.
:func:`save_offloaded` writes the result back as a sharded checkpoint that plain
``from_pretrained`` loads, again one block in memory at a time.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..files import atomic_directory, atomic_write_text
from ..hf.families import family_of, find_layers
from .offload import block_file, block_prefixes, on_meta, write_block

INDEX_NAME = "model.safetensors.index.json"


def _imports() -> tuple[Any, Any]:
    try:
        import accelerate
        import transformers
    except ImportError as exc:
        raise ConfigError(
            f"loading a checkpoint into offloaded blocks needs transformers and accelerate "
            f"({exc.name} is missing): pip install 'prunekit[llm]'"
        ) from exc
    return transformers, accelerate


def _checkpoint_files(model_dir: Path) -> dict[str, Path]:
    """Tensor name -> the safetensors file that holds it."""
    index = model_dir / INDEX_NAME
    if index.is_file():
        weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {})
        return {name: model_dir / file for name, file in weight_map.items()}
    single = model_dir / "model.safetensors"
    if single.is_file():
        from safetensors import safe_open

        with safe_open(str(single), "pt") as fh:
            return dict.fromkeys(fh.keys(), single)
    raise ConfigError(
        f"{model_dir}: no model.safetensors or {INDEX_NAME}; prunekit reads safetensors only "
        "(pickled .bin files are never loaded): re-save the model with "
        "save_pretrained(..., safe_serialization=True)"
    )


def _config_and_class(model_dir: Path) -> tuple[Any, Any]:  # a transformers model class
    """The folder's config and the model class its ``architectures`` names."""
    transformers, _ = _imports()
    if not (model_dir / "config.json").is_file():
        raise ConfigError(f"{model_dir}: no config.json; point at a save_pretrained folder")
    config = transformers.AutoConfig.from_pretrained(model_dir, local_files_only=True)
    archs = list(getattr(config, "architectures", None) or [])
    cls = getattr(transformers, archs[0], None) if archs else None
    if cls is None:
        raise ConfigError(
            f"{model_dir}/config.json names no model class this transformers has "
            f"(architectures={archs!r}); save the model with save_pretrained so the config "
            "records its class"
        )
    return config, cls


@contextmanager
def _reader(files: dict[str, Path]) -> Iterator[Any]:
    """``read(name) -> tensor``, opening each shard once and reading tensors lazily."""
    from safetensors import safe_open

    with ExitStack() as stack:
        handles: dict[Path, Any] = {}

        def read(name: str) -> torch.Tensor:
            path = files[name]
            if path not in handles:
                handles[path] = stack.enter_context(safe_open(str(path), "pt"))
            return handles[path].get_tensor(name)

        yield read


def _set(accelerate: Any, model: nn.Module, name: str, value: torch.Tensor,
         dtype: torch.dtype | None) -> None:
    if dtype is not None and value.is_floating_point():
        value = value.to(dtype)
    # the value's dtype wins (the checkpoint's, or ``dtype``), not the empty model's default
    accelerate.utils.set_module_tensor_to_device(model, name, "cpu", value=value,
                                                 dtype=value.dtype)


def _meta_names(module: nn.Module, prefix: str = "") -> list[str]:
    return [prefix + n for n, p in module.named_parameters(remove_duplicate=False) if p.is_meta]


def load_checkpoint(model_dir: str | os.PathLike[str], *,
                    dtype: torch.dtype | None = None) -> nn.Module:
    """A supported Hugging Face model from a local ``save_pretrained`` folder, in memory.

    The class comes from ``config.json`` (``architectures``); weights from safetensors only.
    """
    model_dir = Path(model_dir)
    _, cls = _config_and_class(model_dir)
    _checkpoint_files(model_dir)  # safetensors present, or a clear error
    model = cls.from_pretrained(model_dir, local_files_only=True, use_safetensors=True,
                                **({"dtype": dtype} if dtype is not None else {}))
    family_of(model)
    return model.eval()


def load_offloaded(model_dir: str | os.PathLike[str], offload_dir: str | os.PathLike[str], *,
                   dtype: torch.dtype | None = None) -> nn.Module:
    """A supported Hugging Face model from ``model_dir`` with its blocks on disk.

    Weights outside the blocks (embeddings, final norm, head) are loaded into CPU memory;
    each block is read from the checkpoint, written to ``offload_dir`` (the format
    :class:`prunekit.llm.offload.DiskStore` uses) and freed before the next, so peak memory
    is about one block plus the rest. Weights keep the checkpoint's dtype unless ``dtype``
    is given (floating-point weights are then cast as they load).
    """
    _, accelerate = _imports()
    model_dir = Path(model_dir)
    config, cls = _config_and_class(model_dir)
    files = _checkpoint_files(model_dir)
    with accelerate.init_empty_weights(include_buffers=False):
        model = cls(config)
    model.eval()
    family_of(model)
    blocks = find_layers(model)
    prefixes = block_prefixes(model, blocks)
    expected = set(model.state_dict().keys())
    # older checkpoints also store buffers the model now computes itself (position_ids)
    computed = {name for name, _ in model.named_buffers()} - expected
    files = {name: path for name, path in files.items() if name not in computed}
    unknown = sorted(set(files) - expected)
    if unknown:
        raise ConfigError(
            f"{model_dir}: {len(unknown)} checkpoint tensors have no place in {cls.__name__} "
            f"(e.g. {unknown[:3]}); the checkpoint was saved from another class or an older "
            "naming: load it with from_pretrained once and save_pretrained it again"
        )
    in_block = {name for name in files if name.startswith(tuple(prefixes))}
    with _reader(files) as read:
        for name in sorted(set(files) - in_block):
            _set(accelerate, model, name, read(name), dtype)
    model.tie_weights()
    missing = [n for n in _meta_names(model) if not n.startswith(tuple(prefixes))]
    if missing:
        raise ConfigError(f"{model_dir}: the checkpoint lacks {missing[:3]}; "
                          "it is not a complete save_pretrained folder")
    for index, (block, prefix) in enumerate(zip(blocks, prefixes)):
        with _reader(files) as read:  # shards are mapped only while their block is read
            for name in sorted(n for n in in_block if n.startswith(prefix)):
                _set(accelerate, model, name, read(name), dtype)
        absent = _meta_names(block, prefix)
        if absent:
            raise ConfigError(f"{model_dir}: the checkpoint lacks {absent[:3]} of block "
                              f"{index}; it is not a complete save_pretrained folder")
        write_block(block_file(offload_dir, index), prefix, block, index)
        block.to_empty(device="meta")
    return model


def _write_shard(path: Path, tensors: dict[str, torch.Tensor],
                 weight_map: dict[str, str]) -> int:
    """Save one shard, record its tensors in ``weight_map``; return its size in bytes."""
    from safetensors.torch import save_file

    save_file(tensors, str(path), metadata={"format": "pt"})
    weight_map.update(dict.fromkeys(tensors, path.name))
    return sum(t.numel() * t.element_size() for t in tensors.values())


def save_offloaded(model: Any, offload_dir: str | os.PathLike[str],
                   out_dir: str | os.PathLike[str]) -> Path:
    """Write ``model`` (blocks kept offloaded in ``offload_dir``) as a sharded checkpoint.

    ``out_dir`` gets ``config.json``, one shard for the weights outside the blocks, one per
    block, and ``model.safetensors.index.json``; it is assembled in a temporary folder and
    renamed into place, so it must not exist yet (or be empty).
    """
    from safetensors.torch import load_file

    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out}: already exists and is not an empty folder; "
                          "choose a new folder for the pruned checkpoint")
    blocks = find_layers(model)
    prefixes = block_prefixes(model, blocks)
    keep = set(model.state_dict().keys())
    with atomic_directory(out) as tmp:
        weight_map: dict[str, str] = {}
        rest: dict[str, torch.Tensor] = {}
        seen: set[int] = set()
        for name, tensor in model.state_dict().items():
            if name.startswith(tuple(prefixes)):
                continue
            if tensor.is_meta:
                raise ConfigError(f"{name} is not in memory; save_offloaded keeps only the "
                                  "blocks on disk")
            if tensor.untyped_storage().data_ptr() in seen:  # tied: from_pretrained re-ties
                continue
            seen.add(tensor.untyped_storage().data_ptr())
            rest[name] = tensor.detach().cpu().contiguous()
        total = _write_shard(tmp / "rest.safetensors", rest, weight_map)
        for index, (block, prefix) in enumerate(zip(blocks, prefixes)):
            path = block_file(offload_dir, index)
            if not on_meta(block):  # in memory: the model's own weights are the truth
                tensors = {prefix + k: v.detach().cpu().contiguous()
                           for k, v in block.state_dict().items()}
            elif path.is_file():
                tensors = load_file(path)
            else:
                raise ConfigError(f"block {index} is offloaded but {path} is missing; pass "
                                  "the offload_dir the model was pruned with")
            tensors = {k: v for k, v in tensors.items() if k in keep}
            total += _write_shard(tmp / path.name, tensors, weight_map)
        model.config.save_pretrained(tmp)
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.save_pretrained(tmp)
        atomic_write_text(tmp / INDEX_NAME, json.dumps(
            {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))},
            indent=2))
    return out
