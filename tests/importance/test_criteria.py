"""Importance criteria checked against straightforward reference computations."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from prunekit.errors import ConfigError, PrunekitError
from prunekit.importance import (
    ActivationStats,
    GroupSlices,
    Importance,
    MemberSlice,
    available_importances,
    get_importance,
    normalize_scores,
    reduce_scores,
    register_importance,
)

N = 6


def _conv_group(
    *, grads: bool = False, buffer: bool = False, seed: int = 0
) -> tuple[GroupSlices, torch.Tensor, torch.Tensor]:
    """A conv producing 6 channels [6,3,3,3] (dim 0) and its consumer [4,6,3,3] (dim 1)."""
    gen = torch.Generator().manual_seed(seed)
    w1 = torch.randn(6, 3, 3, 3, generator=gen)
    w2 = torch.randn(4, 6, 3, 3, generator=gen)
    index = torch.arange(N).view(N, 1)
    g1 = torch.randn(w1.shape, generator=gen) if grads else None
    g2 = torch.randn(w2.shape, generator=gen) if grads else None
    members = [
        MemberSlice("conv1.weight", w1, 0, index, grad=g1),
        MemberSlice("conv2.weight", w2, 1, index, grad=g2),
    ]
    if buffer:
        members.append(
            MemberSlice("bn.running_var", torch.full((N,), 1e6), 0, index, is_buffer=True)
        )
    return GroupSlices("conv1", N, tuple(members)), w1, w2


def _ref_units(w1: torch.Tensor, w2: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Each unit's slice in each member, written out by hand."""
    return [w1[u].flatten() for u in range(N)], [w2[:, u].flatten() for u in range(N)]


# --- magnitude -----------------------------------------------------------------------


def test_l1_and_l2_match_reference_sum_over_members() -> None:
    group, w1, w2 = _conv_group()
    a, b = _ref_units(w1, w2)
    expected_l1 = torch.tensor([a[u].abs().sum() + b[u].abs().sum() for u in range(N)])
    expected_l2 = torch.tensor([a[u].norm() + b[u].norm() for u in range(N)])
    torch.testing.assert_close(get_importance("l1")(group), expected_l1)
    torch.testing.assert_close(get_importance("l2")(group), expected_l2)


@pytest.mark.parametrize("reduce", ["mean", "max"])
def test_l2_reductions_across_members(reduce: str) -> None:
    group, w1, w2 = _conv_group()
    a, b = _ref_units(w1, w2)
    pair = torch.tensor([[a[u].norm(), b[u].norm()] for u in range(N)])
    expected = pair.mean(dim=1) if reduce == "mean" else pair.amax(dim=1)
    torch.testing.assert_close(get_importance("l2", reduce=reduce)(group), expected)


def test_group_l2_is_the_norm_of_each_units_whole_weight_vector_without_biases() -> None:
    group, w1, w2 = _conv_group()
    a, b = _ref_units(w1, w2)
    bias = torch.tensor([1e3, 0.0, 0.0, 0.0, 0.0, 0.0])  # a huge offset on unit 0
    with_bias = GroupSlices(group.name, N, (*group.members,
                                            MemberSlice("conv1.bias", bias, 0, group.members[0].index)))
    expected = torch.tensor([torch.cat([a[u], b[u]]).norm() ** 2 for u in range(N)])
    torch.testing.assert_close(get_importance("group_l2")(with_bias), expected)
    # the squared sum is not the sum of norms: the two criteria can rank units differently
    assert not torch.allclose(expected.sqrt(), get_importance("l2")(group))


def test_group_l2_chooses_torch_prunings_l2_channels() -> None:
    tp = pytest.importorskip("torch_pruning")
    import prunekit
    from prunekit.models.digits_cnn import DigitsCNN

    torch.manual_seed(0)
    dense = DigitsCNN()
    for p in dense.parameters():  # trained-looking spread of norms, biases included
        p.data.normal_(0.0, 1.0)
    x = torch.randn(2, 1, 8, 8)
    ours, theirs = copy.deepcopy(dense), copy.deepcopy(dense)
    counts = {"features.0.0": 4, "features.1.0": 9, "features.3.0": 19}  # TP's kept at 85%
    prunekit.prune(ours, x, config=prunekit.PruneConfig(
        importance="group_l2",
        overrides={n: (ours.get_submodule(n).out_channels - k) / ours.get_submodule(n).out_channels
                   for n, k in counts.items()}))
    pruner = tp.pruner.MetaPruner(theirs, x, importance=tp.importance.MagnitudeImportance(p=2),
                                  pruning_ratio=0.85, ignored_layers=[theirs.classifier])
    pruner.step()
    for name, tensor in theirs.state_dict().items():
        assert torch.equal(tensor, ours.state_dict()[name]), name


def test_magnitude_ignores_buffers() -> None:
    plain, _, _ = _conv_group()
    with_buffer, _, _ = _conv_group(buffer=True)
    torch.testing.assert_close(get_importance("l1")(with_buffer), get_importance("l1")(plain))


def test_block_units_k_greater_than_one() -> None:
    # 3 channels, each flattened into 4 features of a Linear [5, 12] (dim 1).
    gen = torch.Generator().manual_seed(1)
    conv = torch.randn(3, 2, 3, 3, generator=gen)
    linear = torch.randn(5, 12, generator=gen)
    group = GroupSlices(
        "conv",
        3,
        (
            MemberSlice("conv.weight", conv, 0, torch.arange(3).view(3, 1)),
            MemberSlice("fc.weight", linear, 1, torch.arange(12).view(3, 4)),
        ),
    )
    expected_l1 = torch.tensor(
        [conv[u].abs().sum() + linear[:, 4 * u : 4 * u + 4].abs().sum() for u in range(3)]
    )
    expected_l2 = torch.tensor(
        [conv[u].norm() + linear[:, 4 * u : 4 * u + 4].norm() for u in range(3)]
    )
    torch.testing.assert_close(get_importance("l1")(group), expected_l1)
    torch.testing.assert_close(get_importance("l2")(group), expected_l2)


def test_permuted_index_scores_follow_the_index() -> None:
    group, w1, _ = _conv_group()
    perm = torch.tensor([3, 0, 5, 1, 4, 2]).view(N, 1)
    single = GroupSlices("g", N, (MemberSlice("conv1.weight", w1, 0, perm),))
    expected = torch.tensor([w1[int(p)].abs().sum() for p in perm.flatten()])
    torch.testing.assert_close(get_importance("l1")(single), expected)


def test_half_precision_weights_score_in_float32() -> None:
    w = torch.full((3, 4), 300.0, dtype=torch.float16)  # squares overflow float16
    group = GroupSlices("g", 3, (MemberSlice("w", w, 0, torch.arange(3).view(3, 1)),))
    scores = get_importance("l2")(group)
    assert scores.dtype == torch.float32
    torch.testing.assert_close(scores, torch.full((3,), 600.0))


# --- random --------------------------------------------------------------------------


def test_random_is_reproducible_seed_dependent_and_leaves_global_rng() -> None:
    group, _, _ = _conv_group()
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    first = get_importance("random", seed=7)(group)
    again = get_importance("random", seed=7)(group)
    other = get_importance("random", seed=8)(group)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert first.shape == (N,)
    assert bool(((first >= 0) & (first < 1)).all())


def test_random_differs_between_groups_and_ignores_call_order() -> None:
    group, _, _ = _conv_group()
    renamed = GroupSlices("conv2", group.n_units, group.members)
    crit = get_importance("random", seed=0)
    a1, b1 = crit(group), crit(renamed)
    b2, a2 = crit(renamed), crit(group)
    assert torch.equal(a1, a2) and torch.equal(b1, b2)
    assert not torch.equal(a1, b1)


def test_random_rejects_non_integer_seed() -> None:
    with pytest.raises(ConfigError, match="seed"):
        get_importance("random", seed=1.5)


# --- gradient and taylor ------------------------------------------------------------


def test_gradient_mean_and_sum_of_abs_grad() -> None:
    group, _, _ = _conv_group(grads=True)
    g1, g2 = group.members[0].grad, group.members[1].grad
    assert g1 is not None and g2 is not None
    a, b = _ref_units(g1, g2)
    expected_mean = torch.tensor([a[u].abs().mean() + b[u].abs().mean() for u in range(N)])
    expected_sum = torch.tensor([a[u].abs().sum() + b[u].abs().sum() for u in range(N)])
    crit = get_importance("gradient")
    assert crit.needs_gradients
    torch.testing.assert_close(crit(group), expected_mean)
    torch.testing.assert_close(get_importance("gradient", unit_reduce="sum")(group), expected_sum)


def test_taylor_whole_unit_and_per_element() -> None:
    group, w1, w2 = _conv_group(grads=True)
    g1, g2 = group.members[0].grad, group.members[1].grad
    assert g1 is not None and g2 is not None
    wa, wb = _ref_units(w1, w2)
    ga, gb = _ref_units(g1, g2)
    pa = [wa[u] * ga[u] for u in range(N)]
    pb = [wb[u] * gb[u] for u in range(N)]
    whole = torch.tensor([pa[u].sum().abs() + pb[u].sum().abs() for u in range(N)])
    elem = torch.tensor([pa[u].abs().sum() + pb[u].abs().sum() for u in range(N)])
    assert get_importance("taylor").needs_gradients
    torch.testing.assert_close(get_importance("taylor")(group), whole)
    torch.testing.assert_close(get_importance("taylor", per_element=True)(group), elem)
    assert bool((elem >= whole - 1e-5).all())  # triangle inequality: a sanity check of the data


@pytest.mark.parametrize("name", ["gradient", "taylor"])
def test_gradient_criteria_without_grads_raise_config_error(name: str) -> None:
    group, _, _ = _conv_group(grads=False)
    with pytest.raises(ConfigError, match="calibration data and a loss") as info:
        get_importance(name)(group)
    assert "conv1.weight" in str(info.value)


def test_gradient_criteria_ignore_buffers_without_grads() -> None:
    group, _, _ = _conv_group(grads=True)
    index = torch.arange(N).view(N, 1)
    buf = MemberSlice("bn.running_mean", torch.ones(N), 0, index, is_buffer=True)
    with_buffer = GroupSlices(group.name, N, group.members + (buf,))
    taylor = get_importance("taylor")
    torch.testing.assert_close(taylor(with_buffer), taylor(group))


# --- activation statistics ----------------------------------------------------------


def test_activation_and_apoz_read_statistics() -> None:
    group, _, _ = _conv_group()
    mean_abs = torch.tensor([0.5, 2.0, 0.0, 1.0, 3.0, 0.25])
    zeros = torch.tensor([0.9, 0.0, 1.0, 0.5, 0.1, 0.25])
    stats_group = GroupSlices(group.name, N, group.members, ActivationStats(mean_abs, zeros))
    act, apoz = get_importance("activation"), get_importance("apoz")
    assert act.needs_activations and apoz.needs_activations
    torch.testing.assert_close(act(stats_group), mean_abs)
    scores = apoz(stats_group)
    torch.testing.assert_close(scores, 1 - zeros)
    # more zeros -> less important
    assert int(scores.argmin()) == int(zeros.argmax())
    assert int(scores.argmax()) == int(zeros.argmin())


@pytest.mark.parametrize("name", ["activation", "apoz"])
def test_activation_criteria_without_stats_raise(name: str) -> None:
    group, _, _ = _conv_group()
    with pytest.raises(ConfigError, match="calibration data"):
        get_importance(name)(group)


# --- bn_scale -----------------------------------------------------------------------


def test_bn_scale_uses_abs_of_extras_scale() -> None:
    group, _, _ = _conv_group()
    gamma = torch.tensor([0.5, -2.0, 0.1, -0.3, 1.0, 0.0])
    with_scale = GroupSlices(group.name, N, group.members, extras={"scale": gamma})
    torch.testing.assert_close(get_importance("bn_scale")(with_scale), gamma.abs())


def test_bn_scale_reduces_several_normalization_layers() -> None:
    group, _, _ = _conv_group()
    gammas = torch.tensor([[0.5, -2.0, 0.1, -0.3, 1.0, 0.0], [1.0, 1.0, -1.0, 0.2, -4.0, 0.5]])
    with_scale = GroupSlices(group.name, N, group.members, extras={"scale": gammas})
    torch.testing.assert_close(get_importance("bn_scale")(with_scale), gammas.abs().sum(0))
    torch.testing.assert_close(
        get_importance("bn_scale", reduce="max")(with_scale), gammas.abs().amax(0)
    )


def test_bn_scale_without_scale_suggests_l2() -> None:
    group, _, _ = _conv_group()
    with pytest.raises(ConfigError, match="no BatchNorm") as info:
        get_importance("bn_scale")(group)
    assert "'l2'" in str(info.value)


def test_bn_scale_wrong_shape_raises() -> None:
    group, _, _ = _conv_group()
    bad = GroupSlices(group.name, N, group.members, extras={"scale": torch.ones(N + 1)})
    with pytest.raises(ConfigError, match="shape"):
        get_importance("bn_scale")(bad)


# --- redundancy ---------------------------------------------------------------------


def test_redundancy_matches_reference_and_flags_duplicate() -> None:
    group, w1, w2 = _conv_group()
    w1 = w1.clone()
    w2 = w2.clone()
    w1[4] = w1[1] * 3.0  # unit 4 points the same way as unit 1 ...
    w2[:, 4] = w2[:, 1] * 3.0  # ... in every member
    index = torch.arange(N).view(N, 1)
    dup = GroupSlices(
        "g", N, (MemberSlice("a", w1, 0, index), MemberSlice("b", w2, 1, index))
    )
    vectors = torch.stack([torch.cat([w1[u].flatten(), w2[:, u].flatten()]) for u in range(N)])
    expected = torch.empty(N)
    for u in range(N):
        sims = [
            torch.nn.functional.cosine_similarity(vectors[u], vectors[v], dim=0)
            for v in range(N)
            if v != u
        ]
        expected[u] = 1 - max(sims)
    scores = get_importance("redundancy")(dup)
    torch.testing.assert_close(scores, expected, atol=1e-5, rtol=1e-5)
    lowest = set(torch.topk(scores, 2, largest=False).indices.tolist())
    assert lowest == {1, 4}
    assert scores[1].abs() < 1e-5 and scores[4].abs() < 1e-5
    assert bool((scores[[0, 2, 3, 5]] > 1e-2).all())


def test_redundancy_zero_unit_and_single_unit() -> None:
    w = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]])
    group = GroupSlices("g", 3, (MemberSlice("w", w, 0, torch.arange(3).view(3, 1)),))
    torch.testing.assert_close(get_importance("redundancy")(group), torch.tensor([1.0, 0.0, 1.0]))
    one = GroupSlices("g", 1, (MemberSlice("w", w[:1], 0, torch.zeros(1, 1, dtype=torch.long)),))
    torch.testing.assert_close(get_importance("redundancy")(one), torch.tensor([1.0]))


def test_geometric_median_picks_central_filter() -> None:
    # four filters at the corners of a square and one at its centre
    points = torch.tensor([[1.0, 1.0], [-1.0, 1.0], [0.1, 0.0], [1.0, -1.0], [-1.0, -1.0]])
    w = points.view(5, 2, 1, 1)
    group = GroupSlices("g", 5, (MemberSlice("w", w, 0, torch.arange(5).view(5, 1)),))
    scores = get_importance("geometric_median")(group)
    expected = torch.tensor([sum(float((p - q).norm()) for q in points) for p in points])
    torch.testing.assert_close(scores, expected)
    assert int(scores.argmin()) == 2


# --- reduction, normalization, registry ---------------------------------------------


def test_reduce_scores_values() -> None:
    parts = [torch.tensor([1.0, 5.0]), torch.tensor([3.0, 2.0])]
    assert reduce_scores(parts, "sum").tolist() == [4.0, 7.0]
    assert reduce_scores(parts, "mean").tolist() == [2.0, 3.5]
    assert reduce_scores(parts, "max").tolist() == [3.0, 5.0]


def test_normalization_properties() -> None:
    x = torch.tensor([1.0, 2.0, 3.0, 6.0])
    assert math.isclose(float(normalize_scores(x, "mean").mean()), 1.0, rel_tol=1e-6)
    assert math.isclose(float(normalize_scores(x, "max").amax()), 1.0, rel_tol=1e-6)
    assert math.isclose(float(normalize_scores(x, "sum").sum()), 1.0, rel_tol=1e-6)
    z = normalize_scores(x, "standard")
    assert abs(float(z.mean())) < 1e-6
    assert math.isclose(float(z.std(unbiased=False)), 1.0, rel_tol=1e-5)
    assert torch.equal(normalize_scores(x, "none"), x)
    for how in ("mean", "max", "sum", "standard"):
        assert torch.equal(normalize_scores(x, how).argsort(), x.argsort())  # order kept
        # scale invariance: the reason normalization makes groups comparable
        torch.testing.assert_close(normalize_scores(10 * x, how), normalize_scores(x, how))
        negative = torch.tensor([-3.0, -1.0, -2.0])  # e.g. a user criterion's log-scores
        assert torch.equal(normalize_scores(negative, how).argsort(), negative.argsort())
        scaled = normalize_scores(5 * negative, how)
        torch.testing.assert_close(scaled, normalize_scores(negative, how))


def test_normalization_of_degenerate_groups_is_finite() -> None:
    for how in ("mean", "max", "sum", "standard"):
        assert bool(torch.isfinite(normalize_scores(torch.zeros(4), how)).all())
        assert bool(torch.isfinite(normalize_scores(torch.full((3,), 2.0), how)).all())
        assert bool(torch.isfinite(normalize_scores(torch.ones(1), how)).all())


def test_criterion_applies_normalization() -> None:
    group, _, _ = _conv_group()
    raw = get_importance("l2")(group)
    torch.testing.assert_close(get_importance("l2", normalize="max")(group), raw / raw.max())
    torch.testing.assert_close(get_importance("l2", normalize="sum")(group), raw / raw.sum())


def test_bad_options_raise_config_error_listing_choices() -> None:
    with pytest.raises(ConfigError, match="'sum'"):
        get_importance("l1", reduce="median")
    with pytest.raises(ConfigError, match="'standard'"):
        get_importance("l1", normalize="zscore")


def test_unknown_name_lists_available() -> None:
    with pytest.raises(ConfigError) as info:
        get_importance("magnitude")
    message = str(info.value)
    assert "'magnitude'" in message
    for name in ("l1", "l2", "taylor", "bn_scale", "geometric_median"):
        assert name in message
    assert isinstance(info.value, PrunekitError)


def test_all_criteria_registered_and_instances_pass_through() -> None:
    expected = {
        "l1", "l2", "group_l2", "random", "gradient", "taylor", "activation", "apoz",
        "bn_scale", "redundancy", "geometric_median",
    }
    assert expected <= set(available_importances())
    crit = get_importance("l1")
    assert get_importance(crit) is crit
    assert crit.name == "l1"


def test_duplicate_registration_is_rejected() -> None:
    with pytest.raises(ConfigError, match="already registered"):

        @register_importance("l1")
        class Other(Importance):
            def __call__(self, group: GroupSlices) -> torch.Tensor:
                return torch.zeros(group.n_units)


def test_group_of_only_buffers_raises() -> None:
    index = torch.arange(N).view(N, 1)
    buf = MemberSlice("bn.running_var", torch.ones(N), 0, index, is_buffer=True)
    group = GroupSlices("bn", N, (buf,))
    for name in ("l1", "redundancy"):
        with pytest.raises(ConfigError, match="no parameter members"):
            get_importance(name)(group)


def test_member_unit_count_mismatch_raises() -> None:
    group, w1, _ = _conv_group()
    bad = GroupSlices("g", N + 1, (MemberSlice("conv1.weight", w1, 0, torch.arange(N).view(N, 1)),))
    with pytest.raises(ConfigError, match="indexes 6 units"):
        get_importance("l2")(bad)


def test_criteria_do_not_modify_weights_or_track_autograd() -> None:
    group, w1, w2 = _conv_group(grads=True)
    w1.requires_grad_(True)
    before = (w1.detach().clone(), w2.clone())
    for name in ("l1", "l2", "gradient", "taylor", "redundancy", "geometric_median"):
        scores = get_importance(name)(group)
        assert not scores.requires_grad
        assert scores.shape == (N,)
    assert torch.equal(w1.detach(), before[0]) and torch.equal(w2, before[1])
