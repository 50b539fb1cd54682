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
        ids = np.arange(self.count, self.count + n, dtype=np.int64)
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

    def solve(self) -> "Components":
        """Connected components of the union graph."""
        from scipy.sparse import coo_matrix  # imported here to keep `import prunekit` light
        from scipy.sparse.csgraph import connected_components

        n = self.count
        if self._edges_a:
            a = np.concatenate(self._edges_a)
            b = np.concatenate(self._edges_b)
        else:
            a = b = np.zeros(0, dtype=np.int64)
        graph = coo_matrix((np.ones(a.shape[0], dtype=np.int8), (a, b)), shape=(n, n))
        n_comp, comp = connected_components(graph, directed=False)
        blocked = np.zeros(n_comp, dtype=bool)
        reasons: dict[int, BlockReason] = {}
        for ids, reason in zip(self._blocked, self._block_reasons):
            comps = np.unique(comp[ids])
            blocked[comps] = True
            if reason.what:
                for c in comps[:10_000].tolist():
                    reasons.setdefault(c, reason)
        inexact = np.zeros(n_comp, dtype=bool)
        for ids in self._inexact:
            inexact[comp[ids]] = True
        return Components(comp.astype(np.int64), blocked, inexact, reasons)


@dataclass
class Components:
    """Result of :meth:`LabelSpace.solve`: component of each label and its flags."""

    of: np.ndarray  # label -> component id
    blocked: np.ndarray  # component id -> bool
    inexact: np.ndarray  # component id -> bool
    reasons: dict[int, BlockReason]
