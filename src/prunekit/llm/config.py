"""Settings of a one-shot, layer-by-layer pruning run, as a frozen, validated dataclass."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from ..errors import ConfigError
from ..mask.patterns import NM, Pattern, Unstructured, pattern_from_text
from .._internal.validate import check_fraction, check_int, check_names, check_number, settings_of
from .methods import OneShotMethod, available_oneshot_methods, get_oneshot_method, method_options

__all__ = ["OneShotConfig"]


def method_fields(method: str) -> set[str]:
    """The option names of one-shot method ``method``."""
    return {f.name for f in fields(method_options(method))}

_WHERE = "OneShotConfig"


@dataclass(frozen=True)
class OneShotConfig:
    """How to prune the linear layers of each block.

    ``method`` is a registered one-shot method (``"magnitude"``, ``"wanda"``,
    ``"sparsegpt"``, see :func:`prunekit.llm.available_oneshot_methods`) and ``options``
    its options (its ``Options`` dataclass, a mapping of its fields, or ``None`` for the
    defaults; e.g. ``SparseGPTOptions(blocksize=64, damp=0.02)``). ``swap_rounds`` is a
    shortcut for the ``swap_rounds`` option of magnitude and Wanda (refine each layer's mask
    by up to that many error-lowering swaps per row, :mod:`prunekit.llm.swaps`).

    ``sparsity`` is the fraction of weights zeroed in every output row (unstructured) and
    must equal ``(M - N) / M`` for an N:M ``pattern``. ``ignore`` lists substrings of
    linear-layer names inside a block (e.g. ``"mlp.down_proj"``) to leave dense. ``device``
    is where each block is pruned (default: where it already is).

    ``outlier_weighted`` (unstructured only) makes the sparsity non-uniform across blocks
    (OWL): blocks with more outlier weights (Wanda score above ``outlier_threshold`` times
    its layer's mean) are pruned less, within ``sparsity ± outlier_spread``, and the mean
    over blocks stays ``sparsity``.
    """

    method: str = "wanda"
    sparsity: float = 0.5
    pattern: str = "unstructured"
    options: Any = None
    batch_size: int = 8
    device: str | None = None
    ignore: tuple[str, ...] = ()
    outlier_weighted: bool = False
    outlier_threshold: float = 5.0
    outlier_spread: float = 0.08
    swap_rounds: int | None = None

    def __post_init__(self) -> None:
        if self.method not in available_oneshot_methods():
            raise ConfigError(f"{_WHERE}: unknown method {self.method!r}; choose one of "
                              f"{available_oneshot_methods()}")
        s = check_fraction(self.sparsity, f"{_WHERE}: sparsity",
                           hint="0.5 means half the weights of every layer are zeroed")
        nm = self.nm
        if nm is not None and abs(s - (nm[1] - nm[0]) / nm[1]) > 1e-9:
            raise ConfigError(
                f"{_WHERE}: pattern {self.pattern!r} keeps {nm[0]} of every {nm[1]} "
                f"weights, so sparsity must be {(nm[1] - nm[0]) / nm[1]:g}, got {s!r}"
            )
        check_int(self.batch_size, f"{_WHERE}: batch_size", minimum=1)
        if self.swap_rounds is not None:  # the shortcut joins the method's options
            options = dict(self.options) if isinstance(self.options, Mapping) else (
                {} if self.options is None else settings_of(self.options))
            if options.setdefault("swap_rounds", self.swap_rounds) != self.swap_rounds:
                raise ConfigError(f"{_WHERE}: swap_rounds is given twice (shortcut "
                                  f"{self.swap_rounds!r}, option {options['swap_rounds']!r})")
            if not self.swap_rounds and "swap_rounds" not in method_fields(self.method):
                del options["swap_rounds"]  # 0 (off) is every method's default
            object.__setattr__(self, "options", options)
        try:
            method = get_oneshot_method(self.method, self.options)
        except ConfigError as exc:
            raise ConfigError(f"{_WHERE}: {exc}") from None
        method.check(self.mask_pattern)
        object.__setattr__(self, "options", method.options)
        if self.outlier_weighted and nm is not None:
            raise ConfigError(
                f"{_WHERE}: outlier_weighted sparsity varies per block, which an N:M "
                f"pattern ({self.pattern!r}) cannot; use pattern='unstructured'"
            )
        check_number(self.outlier_threshold, f"{_WHERE}: outlier_threshold", above=0.0,
                     hint="5 is typical")
        bound = min(s, 1.0 - s)
        check_number(self.outlier_spread, f"{_WHERE}: outlier_spread", minimum=0.0,
                     maximum=bound, hint="it must lie in [0, min(sparsity, 1 - sparsity)]")
        if not isinstance(self.ignore, tuple):
            raise ConfigError(f"{_WHERE}: ignore must be a tuple of strings, got "
                              f"{self.ignore!r}")
        check_names(self.ignore, f"{_WHERE}: ignore")

    def method_impl(self) -> OneShotMethod:
        """The configured method with its options."""
        return get_oneshot_method(self.method, self.options)

    @property
    def needs_hessian(self) -> bool:
        """Whether the run gathers each layer's ``X^T X`` (SparseGPT, or mask swaps)."""
        return self.method_impl().needs_hessian

    @property
    def mask_pattern(self) -> Pattern:
        """The pattern as a mask pattern: :class:`NM`, or row-wise :class:`Unstructured`."""
        return pattern_from_text(self.pattern, _WHERE, unstructured=Unstructured("row"))

    @property
    def nm(self) -> tuple[int, int] | None:
        """``(N, M)`` for an N:M pattern, ``None`` for unstructured."""
        pattern = self.mask_pattern
        return (pattern.n, pattern.m) if isinstance(pattern, NM) else None
