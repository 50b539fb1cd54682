"""Discover the blocks a model can lose whole: residual, shape-preserving modules.

A block is a module whose output has the shape of its input and which adds its input back
(``x + f(x)``), so the model still runs when it is gone. One probe forward pass
(:mod:`.probe`) finds them; no names or class lists are needed:

- the layers of a Hugging Face transformer (``model.layers``, ``transformer.h``,
  ``encoder.layer``, ``model.decoder.layers``, ...), which are *deleted* from their
  ``ModuleList`` (the config's layer count follows);
- the residual blocks of CNNs and vision transformers (torchvision / timm ResNet blocks
  without ``downsample``, ConvNeXt, MobileNet inverted residuals, ViT and Swin blocks, your
  own), which are *replaced* by :class:`torch.nn.Identity`.

Among nested candidates the members of a ``ModuleList`` / ``nn.Sequential`` win, innermost
first (a ResNet stage is not a block, its blocks are; a BERT layer is, its attention is not).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from torch import nn

from .probe import CallRecord, probe_modules

__all__ = ["RemovableBlock", "find_blocks", "layer_count"]

#: config attributes that count the layers of a list, tried in order (the value must match)
COUNT_ATTRS = {"decoder": ("decoder_layers", "num_decoder_layers"),
               "encoder": ("encoder_layers",),
               "": ("num_hidden_layers", "num_layers", "n_layer")}


@dataclass(frozen=True)
class RemovableBlock:
    """A removable block.

    - ``name``: module path (``"model.layers.3"``, ``"layer2.1"``).
    - ``removal``: ``"delete"`` (entry of a Hugging Face layer list) or ``"identity"``.
    - ``tail``: first op after the block's last residual add (``"add"``: none).
    - ``nonnegative_input``: the block's input was >= 0 on the example inputs.
    """

    name: str
    removal: Literal["delete", "identity"]
    shape: tuple[int, ...]
    tail: str
    nonnegative_input: bool
    params: int

    @property
    def exact(self) -> bool:
        """Whether removal equals the block once its residual branches output zero.

        True for pre-norm transformer layers and ConvNeXt / ViT / Swin blocks (``x + f(x)``)
        and for ResNet blocks (``relu(x + f(x))``) whose input is non-negative, as it is
        after a ReLU. False for post-norm layers (BERT: ``norm(x + f(x))``): removing them
        is an approximation even when ``f`` is zero, unless ``x`` is already normalized.
        """
        return self.tail == "add" or (self.tail in ("relu", "relu_") and self.nonnegative_input)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "shape": list(self.shape), "exact": self.exact}


def _config_of(model: nn.Module, modules: dict[str, nn.Module], path: str) -> Any:
    """The Hugging Face config of the nearest module above ``path`` that has one."""
    parts = path.split(".")
    for i in range(len(parts) - 1, -1, -1):
        config = getattr(modules[".".join(parts[:i])], "config", None)
        if config is not None and callable(getattr(config, "to_dict", None)):
            return config
    return None


def layer_count(model: nn.Module, container: str,
                modules: dict[str, nn.Module] | None = None) -> tuple[Any, str] | None:
    """``(config, attribute)`` that counts the layers of the ``ModuleList`` at ``container``
    in a Hugging Face model, or ``None`` when it is not such a list."""
    modules = modules if modules is not None else dict(model.named_modules())
    layers = modules.get(container)
    if not isinstance(layers, nn.ModuleList) or not container:
        return None
    config = _config_of(model, modules, container)
    if config is None:
        return None
    segments = container.split(".")
    for side in ("decoder", "encoder", ""):
        if side and side not in segments:
            continue
        for attr in COUNT_ATTRS[side]:
            value = getattr(config, attr, None)
            if isinstance(value, int) and not isinstance(value, bool) and value == len(layers):
                return config, attr
    return None


def _is_candidate(rec: CallRecord | None) -> bool:
    return (rec is not None and rec.calls == 1 and rec.residual and rec.in_shape is not None
            and rec.in_shape == rec.out_shape)


def _inside(name: str, other: str) -> bool:
    return name.startswith(other + ".")


def find_blocks(model: nn.Module, example_inputs: Any) -> list[RemovableBlock]:
    """Every removable block of ``model``, in module order (one forward pass on
    ``example_inputs``: a tensor, a tuple of positional inputs or a dict of kwargs)."""
    records = probe_modules(model, example_inputs)
    modules = dict(model.named_modules())
    candidates = [n for n in modules if n and _is_candidate(records.get(n))]
    stacked = [n for n in candidates
               if isinstance(modules[n.rpartition(".")[0]], (nn.ModuleList, nn.Sequential))]
    chosen = [n for n in stacked if not any(_inside(o, n) for o in stacked)]
    chosen += [n for n in candidates if n not in chosen
               and not any(_inside(n, c) or _inside(c, n) for c in chosen)
               and not any(_inside(o, n) for o in candidates)]
    keep = set(chosen)
    blocks = []
    for name in (n for n in modules if n in keep):
        rec = records[name]
        params = sum(p.numel() for p in modules[name].parameters())
        removal: Literal["delete", "identity"] = \
            "delete" if layer_count(model, name.rpartition(".")[0], modules) else "identity"
        if params == 0 or (removal == "identity" and not rec.plain):
            continue  # nothing to gain, or Identity would not accept its call
        if rec.in_shape is None:  # a candidate always has one: _is_candidate checks it
            continue
        blocks.append(RemovableBlock(name, removal, rec.in_shape, rec.tail,
                                     rec.nonnegative_input, params))
    return blocks
