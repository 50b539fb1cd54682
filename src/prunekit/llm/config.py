"""Settings of a one-shot, layer-by-layer pruning run, as a frozen, validated dataclass."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError

METHODS: tuple[str, ...] = ("magnitude", "wanda", "sparsegpt")


def parse_pattern(pattern: str) -> tuple[int, int] | None:
    """``"unstructured"`` -> ``None``; ``"2:4"`` -> ``(2, 4)``; anything else -> ConfigError."""
    if pattern == "unstructured":
        return None
    parts = pattern.split(":") if isinstance(pattern, str) else []
    if len(parts) == 2 and all(p.strip().isdigit() for p in parts):
        n, m = int(parts[0]), int(parts[1])
        if 1 <= n < m:
            return n, m
    raise ConfigError(
        f"OneShotConfig: pattern must be 'unstructured' or 'N:M' with 1 <= N < M "
        f"(e.g. '2:4', '4:8'), got {pattern!r}"
    )


@dataclass(frozen=True)
class OneShotConfig:
    """How to prune the linear layers of each block.

    ``sparsity`` is the fraction of weights zeroed in every output row (unstructured) and
    must equal ``(M - N) / M`` for an N:M pattern. ``blocksize`` and ``damp`` (fraction of
    the mean Hessian diagonal added to it) only matter for SparseGPT. ``ignore`` lists
    substrings of linear-layer names inside a block (e.g. ``"mlp.down_proj"``) to leave
    dense. ``device`` is where each block is pruned (default: where it already is).

    ``outlier_weighted`` (unstructured only) makes the sparsity non-uniform across blocks
    (OWL): blocks with more outlier weights (Wanda score above ``outlier_threshold`` times
    its layer's mean) are pruned less, within ``sparsity ± outlier_spread``, and the mean
    over blocks stays ``sparsity``.

    ``swap_rounds`` (magnitude and Wanda only) refines each layer's mask afterwards with up to
    that many swaps per output row, each lowering the layer's reconstruction error on the
    calibration inputs (:mod:`prunekit.llm.swaps`); weights keep their values. It needs the
    layer's ``in x in`` input Hessian, like SparseGPT. 0 (the default) keeps the plain method.
    """

    method: str = "wanda"
    sparsity: float = 0.5
    pattern: str = "unstructured"
    blocksize: int = 128
    damp: float = 0.01
    batch_size: int = 8
    device: str | None = None
    ignore: tuple[str, ...] = ()
    outlier_weighted: bool = False
    outlier_threshold: float = 5.0
    outlier_spread: float = 0.08
    swap_rounds: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(
                f"OneShotConfig: unknown method {self.method!r}; choose one of {list(METHODS)}"
            )
        s = self.sparsity
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not 0.0 <= s < 1.0:
            raise ConfigError(
                f"OneShotConfig: sparsity must be a number in [0, 1), got {s!r}; "
                "0.5 means half the weights of every layer are zeroed"
            )
        nm = parse_pattern(self.pattern)
        if nm is not None and abs(s - (nm[1] - nm[0]) / nm[1]) > 1e-9:
            raise ConfigError(
                f"OneShotConfig: pattern {self.pattern!r} keeps {nm[0]} of every {nm[1]} "
                f"weights, so sparsity must be {(nm[1] - nm[0]) / nm[1]:g}, got {s!r}"
            )
        for name in ("blocksize", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"OneShotConfig: {name} must be a positive integer, got {v!r}")
        if nm is not None and self.blocksize % nm[1]:
            raise ConfigError(
                f"OneShotConfig: blocksize ({self.blocksize}) must be a multiple of M "
                f"({nm[1]}) so N:M groups do not straddle SparseGPT blocks"
            )
        if isinstance(self.damp, bool) or not isinstance(self.damp, (int, float)) \
                or not 0.0 < self.damp < 1.0:
            raise ConfigError(
                f"OneShotConfig: damp must be in (0, 1), got {self.damp!r}; 0.01 is typical"
            )
        if self.outlier_weighted and nm is not None:
            raise ConfigError(
                f"OneShotConfig: outlier_weighted sparsity varies per block, which an N:M "
                f"pattern ({self.pattern!r}) cannot; use pattern='unstructured'"
            )
        if not (isinstance(self.outlier_threshold, (int, float)) and self.outlier_threshold > 0):
            raise ConfigError(f"OneShotConfig: outlier_threshold must be > 0, got "
                              f"{self.outlier_threshold!r}; 5 is typical")
        spread = self.outlier_spread
        if not (isinstance(spread, (int, float)) and 0.0 <= spread <= min(s, 1.0 - s)):
            raise ConfigError(f"OneShotConfig: outlier_spread must be in [0, min(sparsity, "
                              f"1 - sparsity)] = [0, {min(s, 1.0 - s):g}], got {spread!r}")
        rounds = self.swap_rounds
        if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 0:
            raise ConfigError(f"OneShotConfig: swap_rounds must be an integer >= 0, got "
                              f"{rounds!r}; 100 is plenty for most layers")
        if rounds and self.method == "sparsegpt":
            raise ConfigError(
                "OneShotConfig: swap_rounds refines the masks of 'magnitude' and 'wanda'; "
                "SparseGPT already chooses its mask while it re-fits the kept weights, so "
                "set swap_rounds=0 or pick another method"
            )
        if not isinstance(self.ignore, tuple) or not all(isinstance(i, str) for i in self.ignore):
            raise ConfigError(
                f"OneShotConfig: ignore must be a tuple of strings, got {self.ignore!r}"
            )

    @property
    def needs_hessian(self) -> bool:
        """Whether the run gathers each layer's ``X^T X`` (SparseGPT, or mask swaps)."""
        return self.method == "sparsegpt" or self.swap_rounds > 0

    @property
    def nm(self) -> tuple[int, int] | None:
        """``(N, M)`` for an N:M pattern, ``None`` for unstructured."""
        return parse_pattern(self.pattern)
