"""Mask patterns: exact counts, local vs global levels, N:M and blocks, bad input."""

from __future__ import annotations

import pytest
import torch

from prunekit.errors import ConfigError
from prunekit.mask import NM, Block, Unstructured, nm_mask, prune_lowest


def _scores(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 0.9, 0.95])
def test_unstructured_local_prunes_exact_count_of_lowest(sparsity: float) -> None:
    scores = _scores(16, 24)
    keep = Unstructured().masks({"a": scores}, sparsity)["a"]
    assert keep.dtype == torch.bool and keep.shape == scores.shape
    pruned = int((~keep).sum())
    assert pruned == round(sparsity * scores.numel())
    if 0 < pruned < scores.numel():
        assert scores[~keep].max() <= scores[keep].min()


def test_global_ranks_across_layers_local_does_not() -> None:
    small = _scores(10, 10, seed=1) * 0.1  # layer with small scores
    large = _scores(30, 10, seed=2)
    scores = {"small": small, "large": large}
    local = Unstructured("local").masks(scores, 0.5)
    glob = Unstructured("global").masks(scores, 0.5)
    for name in scores:  # local: every layer at exactly 50%
        assert (~local[name]).float().mean().item() == 0.5
    total = sum(int((~m).sum()) for m in glob.values())
    assert total == 200  # global: 50% of all 400 scores
    assert (~glob["small"]).all()  # ... all taken from the low-scoring layer first
    assert (~glob["large"]).sum() == 100
    threshold = torch.cat([s.reshape(-1) for s in scores.values()]).sort().values[199]
    for name, s in scores.items():
        assert (s[~glob[name]] <= threshold).all()


@pytest.mark.parametrize("n,m", [(2, 4), (1, 4), (4, 8), (3, 8), (1, 2)])
def test_nm_linear_exact_pattern(n: int, m: int) -> None:
    scores = _scores(12, 32)
    keep = NM(n, m).masks({"w": scores}, (m - n) / m)["w"]
    per_group = keep.reshape(12, 32 // m, m).sum(-1)
    assert (per_group == n).all()
    # the kept ones are the n highest of each group
    groups = scores.reshape(12, -1, m)
    kth = groups.sort(dim=-1).values[..., m - n]
    kept_min = torch.where(keep.reshape(12, -1, m), groups, torch.inf).amin(-1)
    assert torch.equal(kept_min, kth)


def test_nm_conv_runs_along_input_channels() -> None:
    scores = _scores(6, 8, 3, 3)  # [out, in, kh, kw]
    keep = NM(2, 4).masks({"conv": scores}, 0.5)["conv"]
    # for every output channel and kernel position, input channels 0-3 and 4-7 keep 2 each
    runs = keep.permute(0, 2, 3, 1).reshape(6, 3, 3, 2, 4).sum(-1)
    assert (runs == 2).all()
    assert int(keep.sum()) == scores.numel() // 2


def test_nm_below_its_maximum_prunes_only_candidates() -> None:
    scores = _scores(8, 64)
    keep = nm_mask(scores, 2, 4, 0.25)
    assert int((~keep).sum()) == round(0.25 * scores.numel())
    assert (keep.reshape(8, 16, 4).sum(-1) >= 2).all()  # never more than m-n pruned per run


def test_block_masks_whole_tiles_including_partial_edges() -> None:
    scores = _scores(10, 18)  # 3x5 tiles of 4x4, last row/col partial
    keep = Block((4, 4)).masks({"w": scores}, 0.5)["w"]
    pruned_tiles = 0
    for r in range(0, 10, 4):
        for c in range(0, 18, 4):
            cells = keep[r:r + 4, c:c + 4]
            assert cells.all() or not cells.any(), f"tile at {r},{c} is mixed"
            pruned_tiles += int(not cells.any())
    assert pruned_tiles == round(0.5 * 15)


def test_block_on_conv_views_weight_as_out_by_rest() -> None:
    scores = _scores(8, 4, 3, 3)
    keep = Block((2, 4)).masks({"c": scores}, 0.75)["c"]
    flat = keep.reshape(8, 36)
    for r in range(0, 8, 2):
        for c in range(0, 36, 4):
            tile = flat[r:r + 2, c:c + 4]
            assert tile.all() or not tile.any()


def test_global_block_scope() -> None:
    scores = {"a": _scores(8, 8, seed=3) * 0.01, "b": _scores(8, 8, seed=4)}
    keep = Block((4, 4), scope="global").masks(scores, 0.5)
    assert (~keep["a"]).all() and keep["b"].all()


def test_ties_are_broken_deterministically() -> None:
    scores = torch.zeros(4, 8)
    a = prune_lowest(scores, 0.5)
    b = prune_lowest(scores.clone(), 0.5)
    assert torch.equal(a, b) and int((~a).sum()) == 16


@pytest.mark.parametrize("bad", [1.0, -0.1, 1.5, float("nan"), "0.5", True])
def test_sparsity_outside_unit_interval_is_a_config_error(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"\[0, 1\)"):
        Unstructured().masks({"w": _scores(4, 4)}, bad)  # type: ignore[arg-type]


def test_nm_on_indivisible_input_dimension_names_the_layer() -> None:
    with pytest.raises(ConfigError, match=r"'fc1'.*not divisible by 4.*ignore"):
        NM(2, 4).masks({"fc1": _scores(8, 10)}, 0.5)


def test_nm_sparsity_above_its_maximum_is_refused() -> None:
    with pytest.raises(ConfigError, match="maximum is 0.5"):
        NM(2, 4).masks({"w": _scores(8, 8)}, 0.75)


@pytest.mark.parametrize("kwargs", [dict(n=4, m=4), dict(n=0, m=4), dict(n=2, m=2.5)])
def test_bad_nm_config(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        NM(**kwargs)


@pytest.mark.parametrize("shape", [(4,), (0, 4), (4, 4, 4), [4, 4]])
def test_bad_block_config(shape: object) -> None:
    with pytest.raises(ConfigError, match="Block"):
        Block(shape)  # type: ignore[arg-type]


def test_bad_scope() -> None:
    with pytest.raises(ConfigError, match="scope"):
        Unstructured("everywhere")  # type: ignore[arg-type]
