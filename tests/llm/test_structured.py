"""Structured one-shot pruning (FFN neurons, heads) with a least-squares re-fit, on tiny models."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import torch
from helpers.llm import ONESHOT_TYPES, calibration

from prunekit.errors import ConfigError
from prunekit.graph.dependency import DependencyGraph
from prunekit.llm import (
    CalibrationData,
    StructuredOneShotConfig,
    find_layers,
    prune_structured,
    refit_weights,
    relative_error,
)
from prunekit.llm.layers import in_features
from prunekit.llm.refit import UnitProblem, obs_units, wanda_units
from prunekit.llm.units import block_units, units_graph

Factory = Callable[[str], torch.nn.Module]


def _ids(n: int, seed: int, length: int = 16) -> torch.Tensor:
    return torch.randint(0, 100, (n, length), generator=torch.Generator().manual_seed(seed))


def _data(family: str, n: int = 32) -> CalibrationData:
    return calibration(family, n)


def _last_block(model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor | None = None,
                batch_size: int = 8) -> list[torch.Tensor]:
    """What the model's last block returns, batch by batch, in an end-to-end forward."""
    caught: list[torch.Tensor] = []
    hook = find_layers(model)[-1].register_forward_hook(
        lambda _m, _i, out: caught.append(out[0] if isinstance(out, tuple) else out))
    try:
        with torch.no_grad():
            for start in range(0, ids.shape[0], batch_size):
                kwargs: dict[str, Any] = {}
                if mask is not None:
                    kwargs["attention_mask"] = mask[start:start + batch_size]
                model(input_ids=ids[start:start + batch_size], **kwargs)
    finally:
        hook.remove()
    return caught


def _distance(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return float(sum(((x - y) ** 2).sum() for x, y in zip(a, b)))


def test_ratio_zero_changes_nothing(tiny_model: Factory) -> None:
    model = tiny_model("llama")
    before = copy.deepcopy(model)
    result = prune_structured(model, _data("llama"),
                              StructuredOneShotConfig(ffn_ratio=0.0, head_ratio=0.0))
    assert result.plan is None and result.layers == ()
    for (name, p), (_, q) in zip(model.named_parameters(), before.named_parameters()):
        assert torch.equal(p, q), name


@pytest.mark.parametrize("family", ONESHOT_TYPES)
def test_refit_brings_block_outputs_closer_to_dense(tiny_model: Factory, family: str) -> None:
    dense = tiny_model(family)
    data = _data(family)
    held_out = _ids(16, 7)
    pruned = {}
    for refit in (False, True):
        model = copy.deepcopy(dense)
        config = StructuredOneShotConfig(ffn_ratio=0.5, head_ratio=0.5, refit=refit,
                                  bias_correction=refit)
        pruned[refit] = model
        result = prune_structured(model, data, config)
        assert {r.kind for r in result.layers} == {"heads", "ffn"}
        for r in result.layers:
            assert (r.error < r.error_removed) if refit else r.error == r.error_removed
    for ids, mask in ((data.input_ids, data.attention_mask), (held_out, None)):
        ref = _last_block(dense, ids, mask)
        plain = _distance(_last_block(pruned[False], ids, mask), ref)
        refitted = _distance(_last_block(pruned[True], ids, mask), ref)
        assert refitted < 0.9 * plain, (family, refitted, plain)


@pytest.mark.parametrize("family", ONESHOT_TYPES)
@pytest.mark.parametrize("criterion", ["wanda", "obs"])
def test_pruned_model_runs_and_matches_the_sequential_pass(tiny_model: Factory, family: str,
                                                           criterion: str) -> None:
    model = tiny_model(family)
    data = _data(family, n=12)
    ids = _ids(2, 3, length=6)
    with torch.no_grad():
        dense_out = model(input_ids=ids)[0]
    blocks = find_layers(model)
    found = block_units(model, blocks, units_graph(model, ids[:1]))
    config = StructuredOneShotConfig(ffn_ratio=0.5, head_ratio=0.5, importance=criterion,
                              batch_size=4)
    result = prune_structured(model, data, config, return_hidden=True)
    assert result.plan is not None and result.hidden is not None
    for got, want in zip(result.hidden, _last_block(model, data.input_ids, data.attention_mask,
                                                    batch_size=4)):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    for index, block in enumerate(blocks):
        for kind in ("heads", "ffn"):
            units = found[index][kind]
            (kept,) = [r.kept for r in result.layers if r.block == index and r.kind == kind]
            assert len(kept) == units.n_units - units.n_units // 2
            width = in_features(block.get_submodule(units.layer))
            assert width == len(kept) * units.columns.shape[1]
    with torch.no_grad():
        assert model(input_ids=ids)[0].shape == dense_out.shape
    if family != "bert":
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=4,
                             do_sample=False, use_cache=True, pad_token_id=0)
        assert out.shape == (2, 10)


def _zero_unit(model: torch.nn.Module, group: str, unit: int, consumer: str) -> None:
    """Zero every producer slice of one unit (its activations become exactly zero)."""
    graph = DependencyGraph.build(model, _ids(1, 0, 8), split_units="outer")
    (g,) = [g for g in graph.groups if g.name == group]
    params = dict(model.named_parameters())
    with torch.no_grad():
        for m in g.members:
            if m.kind == "param" and not m.tensor.startswith(consumer + "."):
                params[m.tensor].index_fill_(m.dim, torch.from_numpy(m.index[unit]), 0.0)


@pytest.mark.parametrize("family", ONESHOT_TYPES)
@pytest.mark.parametrize("kind", ["ffn", "heads"])
def test_zeroed_unit_goes_first_and_its_removal_is_exact(tiny_model: Factory, family: str,
                                                         kind: str) -> None:
    model = tiny_model(family)
    blocks = find_layers(model)
    names = {id(m): n for n, m in model.named_modules()}
    found = block_units(model, blocks, units_graph(model, _ids(1, 0, 8)))
    for block, units in zip(blocks, found):
        u = units[kind]
        _zero_unit(model, u.group, 1, f"{names[id(block)]}.{u.layer}")
    data = _data(family, n=8)
    ids = _ids(3, 5, length=10)
    with torch.no_grad():
        before = model(input_ids=ids)[0]
    n = found[0][kind].n_units
    for criterion in ("wanda", "obs"):
        pruned = copy.deepcopy(model)
        config = StructuredOneShotConfig(ffn_ratio=1 / n if kind == "ffn" else 0.0,
                                  head_ratio=1 / n if kind == "heads" else 0.0,
                                  importance=criterion)
        result = prune_structured(pruned, data, config)
        assert result.kept(kind) == [tuple(i for i in range(n) if i != 1)] * len(blocks)
        with torch.no_grad():
            torch.testing.assert_close(pruned(input_ids=ids)[0], before, rtol=1e-5, atol=1e-5)


def test_least_squares_recovers_a_projection_exactly() -> None:
    g = torch.Generator().manual_seed(0)
    x_kept = torch.randn(200, 6, generator=g, dtype=torch.float64)
    mix = torch.randn(6, 3, generator=g, dtype=torch.float64)
    x = torch.cat([x_kept, x_kept @ mix], dim=1)[:, [0, 6, 1, 2, 7, 3, 4, 8, 5]]
    removed = torch.tensor([1, 4, 7])
    kept = torch.tensor([0, 2, 3, 5, 6, 8])
    w = torch.randn(5, 9, generator=g, dtype=torch.float64)
    new_w, new_b = refit_weights(w, x.T @ x / x.shape[0], removed, damp=0.0)
    assert new_b is None and torch.all(new_w[:, removed] == 0)
    torch.testing.assert_close(x[:, kept] @ new_w[:, kept].T, x @ w.T, rtol=0, atol=1e-9)
    assert relative_error(w, new_w, x.T @ x / 200, x.mean(0)) < 1e-12
    # affine dependence: exact with an intercept in the bias
    x_aff = x.clone()
    x_aff[:, removed] += torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    b = torch.randn(5, generator=g, dtype=torch.float64)
    new_w, new_b = refit_weights(w, x_aff.T @ x_aff / 200, removed, damp=0.0,
                                 mean=x_aff.mean(0), bias=b)
    assert new_b is not None
    torch.testing.assert_close(x_aff @ new_w.T + new_b, x_aff @ w.T + b, rtol=0, atol=1e-9)
    # without the intercept the affine case is only approximate
    approx, _ = refit_weights(w, x_aff.T @ x_aff / 200, removed, damp=0.0)
    assert (x_aff @ approx.T - x_aff @ w.T).abs().max() > 1e-3


def test_damping_pulls_towards_the_original_weights() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(50, 4, generator=g, dtype=torch.float64)
    x[:, 2] = 0.0
    w = torch.randn(3, 4, generator=g, dtype=torch.float64)
    new_w, _ = refit_weights(w, x.T @ x / 50, torch.tensor([2]), damp=0.1)
    torch.testing.assert_close(new_w[:, [0, 1, 3]], w[:, [0, 1, 3]], rtol=0, atol=0)


def test_obs_removes_the_unit_with_least_error_after_refit() -> None:
    g = torch.Generator().manual_seed(2)
    x = torch.randn(300, 8, generator=g, dtype=torch.float64) @ torch.randn(
        8, 8, generator=g, dtype=torch.float64)
    w = torch.randn(4, 8, generator=g, dtype=torch.float64)
    moment = x.T @ x / 300
    columns = torch.arange(8).reshape(4, 2)  # four "heads" of two columns

    def error(unit: int) -> float:
        new_w, _ = refit_weights(w, moment, columns[unit], damp=1e-9)
        return relative_error(w, new_w, moment, x.mean(0))

    problem = UnitProblem(w, moment, columns, damp=1e-9, rounds=1)
    best = min(range(4), key=error)
    assert obs_units(problem, 1).tolist() == [best]
    three = obs_units(UnitProblem(w, moment, columns, damp=1e-9, rounds=3), 3).tolist()
    assert len(set(three)) == 3 and three[0] == best
    assert len(set(wanda_units(problem, 2).tolist())) == 2


@pytest.mark.parametrize("kwargs,match", [
    ({"ffn_ratio": 1.0}, "every FFN neuron"),
    ({"head_ratio": 1.0}, "every attention head"),
    ({"head_ratio": -0.1}, r"head_ratio must be a number in \[0, 1\)"),
    ({"ffn_ratio": "0.5"}, r"ffn_ratio must be a number in \[0, 1\)"),
    ({"ffn_ratio": True}, r"ffn_ratio must be a number"),
    ({"importance": "taylor"}, "unknown importance"),
    ({"damp": 1.0}, "damp"),
    ({"damp": -0.01}, "damp"),
    ({"refit": 1}, "refit must be True or False"),
    ({"batch_size": 0}, "batch_size"),
    ({"obs_rounds": 0}, "obs_rounds"),
])
def test_bad_config(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        StructuredOneShotConfig(**kwargs)


def test_unsupported_inputs(tiny_model: Factory) -> None:
    with pytest.raises(ConfigError, match="supported Hugging Face model types"):
        prune_structured(torch.nn.Linear(4, 4), _data("llama"), StructuredOneShotConfig())
    with pytest.raises(ConfigError, match="needs CalibrationData"):
        prune_structured(tiny_model("llama"), _ids(2, 0), StructuredOneShotConfig())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="needs a StructuredOneShotConfig"):
        prune_structured(tiny_model("llama"), _data("llama"), {"ffn_ratio": 0.5})  # type: ignore[arg-type]


def test_a_head_ratio_too_small_for_the_groups_warns(tiny_model: Factory) -> None:
    model = tiny_model("llama")  # 2 key/value groups per block
    with pytest.warns(UserWarning, match="head_ratio=0.25 removes no unit"):
        result = prune_structured(model, _data("llama", n=4),
                                  StructuredOneShotConfig(ffn_ratio=0.25, head_ratio=0.25))
    assert result.kept("heads") == [(0, 1), (0, 1)]
    assert find_layers(model)[0].mlp.down_proj.in_features == 72  # 96 - 25%
