"""Grouping components by their signature: exact, also when hashes collide."""

from __future__ import annotations

import numpy as np
import pytest

from prunekit.graph import dependency


def naive_classes(rows: list[tuple[int, ...]]) -> list[int]:
    """Class id per row, classes numbered by first appearance."""
    seen: dict[tuple[int, ...], int] = {}
    return [seen.setdefault(r, len(seen)) for r in rows]


def layout(rows: list[tuple[int, ...]]):
    pair_key = np.array([k for r in rows for k in r], dtype=np.int64)
    pair_comp = np.array([c for c, r in enumerate(rows) for _ in r], dtype=np.int64)
    pair_count = np.array([len(r) for r in rows], dtype=np.int64)
    first_pair = np.r_[0, np.cumsum(pair_count)[:-1]]
    slot = np.arange(pair_key.size) - first_pair[pair_comp]
    return pair_key, pair_comp, slot, pair_count, first_pair


def same_partition(a: np.ndarray, b: list[int]) -> bool:
    return len(set(zip(a.tolist(), b))) == len(set(b)) == len(set(a.tolist()))


@pytest.mark.parametrize("seed", range(5))
def test_classes_match_a_naive_grouping(seed: int):
    rng = np.random.default_rng(seed)
    pool = [tuple(rng.integers(0, 4, size=rng.integers(1, 4)).tolist()) for _ in range(6)]
    rows = [pool[i] for i in rng.integers(0, len(pool), size=200)]
    sig_of, rep = dependency._same_signatures(*layout(rows))
    assert same_partition(sig_of, naive_classes(rows))
    assert all(rows[rep[c]] == rows[c] for c in range(len(rows)))


def test_colliding_hashes_fall_back_to_exact_comparison(monkeypatch):
    class ZeroWeights:
        def integers(self, low, high, size, dtype):
            return np.zeros(size, dtype=dtype)  # every row hashes alike

    monkeypatch.setattr(dependency.np.random, "default_rng", lambda seed: ZeroWeights())
    rows = [(1, 2), (2, 1), (1, 2), (3,), (2, 1)]
    sig_of, rep = dependency._same_signatures(*layout(rows))
    assert same_partition(sig_of, naive_classes(rows))
    assert all(rows[rep[c]] == rows[c] for c in range(len(rows)))
