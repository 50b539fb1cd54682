"""The graph build's internals that its speed rests on give the results of the plain forms."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
import torch.nn as nn

from prunekit.graph import dependency
from prunekit.graph.labels import BlockReason, LabelSpace
from prunekit.graph.trace import meta_copy


@pytest.mark.parametrize("seed", range(4))
def test_classes_match_numpy_unique(seed: int) -> None:
    values = np.random.default_rng(seed).integers(0, 20, size=200, dtype=np.int64)
    sig_of, first = dependency._classes(values)
    _, want_first, want_inverse = np.unique(values, return_index=True, return_inverse=True)
    assert np.array_equal(sig_of, want_inverse.reshape(-1))
    assert np.array_equal(first, want_first)


def test_block_reasons_are_the_first_given_per_component() -> None:
    space = LabelSpace()
    a, b, c = space.fresh(4), space.fresh(4), space.fresh(4)
    space.union(a, b)  # components of a and b merge; c stays apart
    first, second = BlockReason("op first", "m1"), BlockReason("op second", "m2")
    space.block(b[:2], first)
    space.block(np.concatenate([a[:3], c[:1]]), second)
    space.block(c[1:2])  # no reason: blocked, but explains nothing
    comps = space.solve()
    of = comps.of
    assert comps.blocked[of[a[:3]]].all() and comps.blocked[of[c[:2]]].all()
    assert not comps.blocked[of[a[3]]] and not comps.blocked[of[c[3]]]
    assert comps.reasons[int(of[a[0]])] is first and comps.reasons[int(of[a[1]])] is first
    assert comps.reasons[int(of[a[2]])] is second and comps.reasons[int(of[c[0]])] is second
    assert int(of[c[1]]) not in comps.reasons and int(of[a[3]]) not in comps.reasons


def test_meta_copy_is_freed_without_the_cyclic_collector() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Sequential(nn.ReLU(), nn.Conv2d(4, 2, 1)))
    model.shared = model[0]  # a module reachable twice stays one module in the copy
    enabled = gc.isenabled()
    gc.disable()
    try:
        copy = meta_copy(model)
        assert copy.shared is copy[0] and copy[0] is not model[0]
        assert copy[1][1].weight.is_meta and not model[1][1].weight.is_meta
        alive = weakref.ref(copy[1][1])
        del copy
        assert alive() is None  # reference counting alone freed it
    finally:
        if enabled:
            gc.enable()
