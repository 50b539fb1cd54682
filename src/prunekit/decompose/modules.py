"""The layers a factorization puts in place of a dense one: small ``nn.Sequential`` chains.

Each keeps the attributes of the layer it replaces (``in_features`` / ``out_features``,
``in_channels`` / ``out_channels`` / ``kernel_size`` / ``stride`` / ``padding`` /
``dilation``), so code that reads them keeps working, and its children are plain
``nn.Linear`` / ``nn.Conv2d`` layers, so ``state_dict`` keys, ONNX export and the dependency
graph need nothing new:

- :class:`LowRankLinear`: ``Linear(in, r, bias=False)`` then ``Linear(r, out)``;
- :class:`SpatialConv2d`: ``Conv2d(in, r, (kh, 1))`` then ``Conv2d(r, out, (1, kw))``: the
  vertical part of the kernel (stride, padding, dilation) in the first, the horizontal part
  in the second;
- :class:`Tucker2Conv2d`: ``Conv2d(in, r_in, 1)`` then ``Conv2d(r_in, r_out, (kh, kw))``
  (the original stride, padding, dilation) then ``Conv2d(r_out, out, 1)``.

The bias, if any, sits on the last layer. Padding is separable (zeros, reflect, replicate
and circular all pad each spatial dimension on its own), so each chain computes exactly the
product of its factors.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["LowRankLinear", "SpatialConv2d", "Tucker2Conv2d", "FACTORIZED"]


def _vertical(value: Any, other: int) -> Any:
    """The vertical part of a (h, w) setting; ``other`` for the horizontal one."""
    return value if isinstance(value, str) else (value[0], other)


def _horizontal(value: Any, other: int) -> Any:
    return value if isinstance(value, str) else (other, value[1])


class LowRankLinear(nn.Sequential):
    """``Linear(in, r, bias=False)`` → ``Linear(r, out, bias)``: a rank-``r`` weight."""

    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool = True, *,
                 device: Any = None, dtype: torch.dtype | None = None) -> None:
        kw = {"device": device, "dtype": dtype}
        super().__init__(nn.Linear(in_features, rank, bias=False, **kw),
                         nn.Linear(rank, out_features, bias=bias, **kw))
        self.in_features, self.out_features, self.rank = in_features, out_features, rank

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"rank={self.rank}")


class _FactorizedConv2d(nn.Sequential):
    """Shared attributes of the convolution chains (those of the replaced ``Conv2d``)."""

    def _keep(self, conv: dict[str, Any], ranks: tuple[int, ...]) -> None:
        self.in_channels, self.out_channels = conv["in_channels"], conv["out_channels"]
        self.kernel_size, self.stride = tuple(conv["kernel_size"]), tuple(conv["stride"])
        padding = conv["padding"]
        self.padding = padding if isinstance(padding, str) else tuple(padding)
        self.dilation, self.padding_mode = tuple(conv["dilation"]), conv["padding_mode"]
        self.groups, self.ranks = 1, ranks

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, ranks={self.ranks}")


class SpatialConv2d(_FactorizedConv2d):
    """``Conv2d(in, r, (kh, 1))`` → ``Conv2d(r, out, (1, kw))`` (spatial SVD)."""

    def __init__(self, conv: dict[str, Any], rank: int, *, device: Any = None,
                 dtype: torch.dtype | None = None) -> None:
        kh, kw = conv["kernel_size"]
        kwargs = {"padding_mode": conv["padding_mode"], "device": device, "dtype": dtype}
        super().__init__(
            nn.Conv2d(conv["in_channels"], rank, (kh, 1), stride=_vertical(conv["stride"], 1),
                      padding=_vertical(conv["padding"], 0),
                      dilation=_vertical(conv["dilation"], 1), bias=False, **kwargs),
            nn.Conv2d(rank, conv["out_channels"], (1, kw),
                      stride=_horizontal(conv["stride"], 1),
                      padding=_horizontal(conv["padding"], 0),
                      dilation=_horizontal(conv["dilation"], 1), bias=conv["bias"], **kwargs))
        self._keep(conv, (rank,))


class Tucker2Conv2d(_FactorizedConv2d):
    """``Conv2d(in, r_in, 1)`` → ``Conv2d(r_in, r_out, k)`` → ``Conv2d(r_out, out, 1)``."""

    def __init__(self, conv: dict[str, Any], ranks: tuple[int, int], *, device: Any = None,
                 dtype: torch.dtype | None = None) -> None:
        r_in, r_out = ranks
        kw = {"device": device, "dtype": dtype}
        super().__init__(
            nn.Conv2d(conv["in_channels"], r_in, 1, bias=False, **kw),
            nn.Conv2d(r_in, r_out, tuple(conv["kernel_size"]), stride=tuple(conv["stride"]),
                      padding=conv["padding"] if isinstance(conv["padding"], str)
                      else tuple(conv["padding"]),
                      dilation=tuple(conv["dilation"]), padding_mode=conv["padding_mode"],
                      bias=False, **kw),
            nn.Conv2d(r_out, conv["out_channels"], 1, bias=conv["bias"], **kw))
        self._keep(conv, (r_in, r_out))


#: every factorized layer class (to recognise layers that were already factorized)
FACTORIZED = (LowRankLinear, SpatialConv2d, Tucker2Conv2d)
