"""Every registered one-shot method: the exact pattern (per-row counts, N:M), nothing
changed at sparsity 0, a pruned model that saves and reloads the same, clear errors."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from helpers.llm import calibration, tiny_hf_model
from prunekit.errors import ConfigError
from prunekit.llm import OneShotConfig, prune_sequential
from prunekit.llm.methods import available_oneshot_methods, get_oneshot_method
from prunekit.mask import NM, Unstructured
from prunekit.mask.calibration import InputStats
from prunekit.mask.compute import pruned_count

NAMES = available_oneshot_methods()


def _layer(rows: int = 24, cols: int = 64) -> tuple[torch.Tensor, InputStats]:
    g = torch.Generator().manual_seed(0)
    w = torch.randn(rows, cols, generator=g)
    stats = InputStats(cols, hessian=True, mean=True)
    stats.add(torch.randn(256, cols, generator=g) @ torch.randn(cols, cols, generator=g))
    return w, stats


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("pattern", [Unstructured("row"), NM(2, 4), NM(1, 4)],
                         ids=["rows", "2:4", "1:4"])
def test_the_pattern_is_exact(name: str, pattern):
    w, stats = _layer()
    sparsity = 0.5 if isinstance(pattern, Unstructured) else pattern.max_sparsity
    method = get_oneshot_method(name)
    method.check(pattern)
    out = method.prune(w, stats, sparsity, pattern)
    assert out.shape == w.shape and torch.isfinite(out).all()
    if isinstance(pattern, NM):
        assert ((out != 0).reshape(w.shape[0], -1, pattern.m).sum(-1) == pattern.n).all()
    else:
        assert ((out == 0).sum(1) == pruned_count(w.shape[1], sparsity)).all()


@pytest.mark.parametrize("name", NAMES)
def test_sparsity_zero_keeps_the_weights(name: str):
    w, stats = _layer()
    out = get_oneshot_method(name).prune(w, stats, 0.0, Unstructured("row"))
    torch.testing.assert_close(out, w, rtol=0, atol=1e-5)
    assert torch.equal(w, _layer()[0])  # the input weight is not modified


@pytest.mark.parametrize("name", NAMES)
def test_a_pruned_model_saves_and_reloads_the_same(name: str, tmp_path):
    transformers = pytest.importorskip("transformers")
    model = tiny_hf_model("llama")
    result = prune_sequential(model, calibration("llama"), OneShotConfig(method=name))
    assert result.layers and abs(result.sparsity - 0.5) < 1e-9
    model.save_pretrained(tmp_path / "pruned")
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(
        tmp_path / "pruned", attn_implementation="eager").eval()
    ids = calibration("llama").input_ids[:2]
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, reloaded(input_ids=ids).logits)


@pytest.mark.parametrize("name", NAMES)
def test_options_are_checked(name: str):
    defaults = get_oneshot_method(name).options
    assert dataclasses.is_dataclass(defaults)
    assert OneShotConfig(method=name, options=dataclasses.asdict(defaults)).options == defaults
    with pytest.raises(ConfigError, match=f"'{name}' has no option 'not_an_option'"):
        OneShotConfig(method=name, options={"not_an_option": 1})
    with pytest.raises(ConfigError, match="mapping of its fields"):
        OneShotConfig(method=name, options=[1])
