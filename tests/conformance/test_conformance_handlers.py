"""Every registered module handler, on an example model that uses its module: zeroed units
removed leave the outputs unchanged (or, for inexact modules, the pruned model runs with
its output shapes), the saved plan and weights replay on a fresh model, and a plan does not
apply to a model of another shape."""

from __future__ import annotations

import copy
import importlib

import pytest
import torch

import prunekit
from helpers.conformance import HANDLERS, HandlerExample
from prunekit.errors import PlanError
from prunekit.graph.handlers import registered_handlers
from prunekit.testing import randomize_weights, run_exact_check

#: the handlers prunekit registers (tests may register their own for test modules)
NAMES = sorted(name for name, handler in registered_handlers().items()
               if type(handler).__module__.startswith("prunekit."))


def _example(name: str) -> HandlerExample:
    example = HANDLERS[name]
    if example.needs:
        pytest.importorskip(example.needs)
    module, _, cls = name.rpartition(".")
    try:
        importlib.import_module(module).__dict__[cls]
    except (ImportError, KeyError):
        pytest.skip(f"{name} does not exist in the installed version")
    return example


def _outputs(model: torch.nn.Module, inputs: torch.Tensor) -> list[torch.Tensor]:
    with torch.no_grad():
        out = model(inputs)
    out = getattr(out, "logits", getattr(out, "last_hidden_state", out))
    return [out] if isinstance(out, torch.Tensor) else list(out)


def _uses(model: torch.nn.Module, name: str) -> bool:
    return any(f"{c.__module__}.{c.__qualname__}" == name
               for m in model.modules() for c in type(m).__mro__)


def test_every_registered_handler_has_an_example():
    missing = sorted(set(NAMES) - set(HANDLERS))
    assert not missing, f"add an example to tests/helpers/conformance.py HANDLERS for {missing}"


@pytest.mark.parametrize("name", NAMES)
def test_zeroed_units_are_removed_exactly(name: str):
    example = _example(name)
    model = randomize_weights(example.build())
    assert _uses(model, name), f"the example of {name} does not use that module"
    inputs = example.inputs()
    inputs = inputs.double() if inputs.is_floating_point() else inputs
    if example.exact:
        check = run_exact_check(model, inputs, **example.options)
        assert check.params_after < check.params_before, "the example prunes nothing"
        assert check.max_diff <= 1e-8 * max(1.0, float(_outputs(model, inputs)[0].abs().max()))
    else:
        before = [t.shape for t in _outputs(model, inputs)]
        result = prunekit.prune(model, inputs, ratio=0.5, **example.options)
        assert result.plan.removed_units > 0, "the example prunes nothing"
        assert [t.shape for t in _outputs(model, inputs)] == before


@pytest.mark.parametrize("name", NAMES)
def test_saved_plan_and_weights_replay_on_a_fresh_model(name: str, tmp_path):
    example = _example(name)
    fresh = example.build().eval()
    model = copy.deepcopy(fresh)
    inputs = example.inputs()
    result = prunekit.prune(model, inputs, ratio=0.5, **example.options)
    prunekit.save_pruned(model, result.plan, tmp_path / "pruned")
    replayed = prunekit.load_pruned(fresh, tmp_path / "pruned").eval()
    for a, b in zip(_outputs(model.eval(), inputs), _outputs(replayed, inputs)):
        assert torch.equal(a, b)
    with pytest.raises(PlanError, match="another architecture|already pruned"):
        prunekit.apply_plan(replayed, result.plan)  # already pruned: the plan does not fit
