"""Unit labels: the bookkeeping that turns op rules into coupled groups.

Every position along every dimension of every recorded tensor gets an integer *label*.
Op rules say which labels must be removed together (``union``), which may never be
removed (``block``: an op the rules do not know, a model output, a hard-coded slice) and
which removals change the output slightly (``mark_inexact``: a normalisation or a
softmax over that dimension). Connected components of the union graph are the units of
pruning; components that touch a parameter become the groups the planner works with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import TraceError


LABEL_DTYPE = np.int32  # half the memory of int64; graphs stay far below the limit
LABEL_LIMIT = int(np.iinfo(LABEL_DTYPE).max)


@dataclass(frozen=True)
class Dim:
    """Labels of one tensor dimension, and whether it carries parameter-derived channels."""

    ids: np.ndarray
    channel: bool

    @property
    def size(self) -> int:
        return int(self.ids.shape[0])


@dataclass(frozen=True)
class BlockReason:
    """Why a set of labels may not be removed (used in error messages)."""

    what: str
    module: str


class LabelSpace:
    """Allocates labels and collects unions, blocks and inexact marks."""

    def __init__(self) -> None:
        self.count = 0
        self._edges_a: list[np.ndarray] = []
        self._edges_b: list[np.ndarray] = []
        self._blocked: list[np.ndarray] = []
        self._block_reasons: list[BlockReason] = []
        self._inexact: list[np.ndarray] = []

    def fresh(self, n: int) -> np.ndarray:
        if self.count + n > LABEL_LIMIT:
            raise TraceError(f"more than {LABEL_LIMIT} labels: the traced graph is too large "
                             "to analyse; trace with a smaller example input")
        ids = np.arange(self.count, self.count + n, dtype=LABEL_DTYPE)
        self.count += n
        return ids

    def fresh_dim(self, n: int, channel: bool = False, blocked: bool = True,
                  reason: BlockReason | None = None) -> Dim:
        dim = Dim(self.fresh(n), channel)
        if blocked:
            self.block(dim.ids, reason)
        return dim

    def union(self, a: np.ndarray, b: np.ndarray) -> None:
        if a.shape != b.shape:
            raise ValueError(f"label arrays differ in shape: {a.shape} vs {b.shape}")
        if a.size:
            self._edges_a.append(a.reshape(-1))
            self._edges_b.append(b.reshape(-1))

    def union_rows(self, table: np.ndarray) -> None:
        """Union every row of a 2-D label table with its first row."""
        for row in table[1:]:
            self.union(table[0], row)

    def block(self, ids: np.ndarray, reason: BlockReason | None = None) -> None:
        if ids.size:
            self._blocked.append(ids.reshape(-1))
            self._block_reasons.append(reason or BlockReason("", ""))

    def mark_inexact(self, ids: np.ndarray) -> None:
        if ids.size:
            self._inexact.append(ids.reshape(-1))

    def solve(self) -> Components:
        """Connected components of the union graph."""
        n = self.count
        if self._edges_a:
            a = np.concatenate(self._edges_a)
            b = np.concatenate(self._edges_b)
        else:
            a = b = np.zeros(0, dtype=LABEL_DTYPE)
        n_comp, comp = connected_components(n, a, b)
        blocked = np.zeros(n_comp, dtype=bool)
        if self._blocked:
            blocked[comp[np.concatenate(self._blocked)]] = True
        inexact = np.zeros(n_comp, dtype=bool)
        if self._inexact:
            inexact[comp[np.concatenate(self._inexact)]] = True
        blocks = [(ids, reason) for ids, reason in zip(self._blocked, self._block_reasons)
                  if reason.what]
        return Components(comp, blocked, inexact, blocks)


class Components:
    """Result of :meth:`LabelSpace.solve`: component of each label and its flags.

    ``reasons`` (component id -> why it is blocked) is only read to explain an error, so it
    is worked out from the blocked labels when first asked for.
    """

    def __init__(self, of: np.ndarray, blocked: np.ndarray, inexact: np.ndarray,
                 blocks: list[tuple[np.ndarray, BlockReason]]) -> None:
        self.of = of  # label -> component id
        self.blocked = blocked  # component id -> bool
        self.inexact = inexact  # component id -> bool
        self._blocks = blocks  # (labels, reason) of every block that has a reason
        self._reasons: dict[int, BlockReason] | None = None

    @property
    def reasons(self) -> dict[int, BlockReason]:
        """The first reason given for each blocked component (up to 10,000 per block)."""
        if self._reasons is None:
            reasons: dict[int, BlockReason] = {}
            for ids, reason in self._blocks:
                comps = np.sort(self.of[ids])
                comps = comps[np.r_[True, comps[1:] != comps[:-1]]]
                for c in comps[:10_000].tolist():
                    reasons.setdefault(c, reason)
            self._reasons = reasons
        return self._reasons


def connected_components(n: int, a: np.ndarray, b: np.ndarray) -> tuple[int, np.ndarray]:
    """Components of the undirected graph on ``n`` nodes with edges ``a[i] -- b[i]``.

    Returns the number of components and each node's component id (``0 .. count - 1``).
    Vectorised hook-and-compress: every round
    hooks each root onto a smaller root it shares an edge with, then compresses paths
    until every node points at its root; parents only ever decrease, so it terminates.
    """
    parent = np.arange(n, dtype=LABEL_DTYPE)
    a = np.asarray(a, dtype=LABEL_DTYPE)
    b = np.asarray(b, dtype=LABEL_DTYPE)
    keep = a != b
    a, b = a[keep], b[keep]
    while a.size:
        ra, rb = parent[a], parent[b]
        differ = ra != rb
        if not differ.any():
            break
        a, b, ra, rb = a[differ], b[differ], ra[differ], rb[differ]
        low, high = np.minimum(ra, rb), np.maximum(ra, rb)
        parent[high] = low  # any smaller root will do; the others hook in later rounds
        while True:
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand
    is_root = parent == np.arange(n, dtype=LABEL_DTYPE)
    del a, b
    root_id = (np.cumsum(is_root, dtype=LABEL_DTYPE) - 1)
    return int(is_root.sum()), root_id[parent]

