"""Element-wise importance from the registry, Wanda-style scores, calibration."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from prunekit.errors import ConfigError
from prunekit.mask import (
    NM,
    InputNormRecorder,
    InputNormWeightedImportance,
    MaskConfig,
    element_scores,
    get_mask,
    layer_scores,
    resolve_element_importance,
    sparsify,
)


def test_registry_criteria_score_single_weights() -> None:
    gen = torch.Generator().manual_seed(0)
    w, g = torch.randn(5, 6, generator=gen), torch.randn(5, 6, generator=gen)
    l1 = element_scores(resolve_element_importance("l1"), "w", w)
    grad = element_scores(resolve_element_importance("gradient"), "w", w, grad=g)
    taylor = element_scores(resolve_element_importance("taylor"), "w", w, grad=g)
    assert torch.allclose(l1, w.abs())
    assert torch.allclose(grad, g.abs())
    assert torch.allclose(taylor, (w * g).abs())


def test_criteria_that_compare_units_are_refused() -> None:
    for name in ("redundancy", "bn_scale", "activation"):
        with pytest.raises(ConfigError, match="cannot score single weights"):
            MaskConfig(importance=name)
    with pytest.raises(ConfigError, match="unknown importance"):
        MaskConfig(importance="nope")


def test_input_norm_recorder_and_wanda_scores_linear_and_conv() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(4, 8, 3, groups=2), nn.Flatten(), nn.Linear(8 * 4, 3))
    xs = [torch.randn(2, 4, 4, 4) for _ in range(3)]
    with InputNormRecorder({"0": model[0], "2": model[2]}) as rec:
        for x in xs:
            model(x)
    norms = rec.norms()
    x_all = torch.cat(xs)
    assert torch.allclose(norms["0"], x_all.pow(2).sum(dim=(0, 2, 3)).sqrt())
    lin_in = torch.flatten(model[0](x_all), 1)
    assert torch.allclose(norms["2"], lin_in.pow(2).sum(0).sqrt(), rtol=1e-5)

    def calibrate(m: nn.Module) -> None:
        for x in xs:
            m(x)

    crit = InputNormWeightedImportance()
    scores = layer_scores(model, MaskConfig().targets(model), crit, calibrate)
    assert set(scores) == {"0.weight", "2.weight"}
    assert torch.allclose(scores["2.weight"], model[2].weight.abs() * norms["2"], rtol=1e-5)
    # grouped conv: output channels 0-3 read inputs 0-1, outputs 4-7 read inputs 2-3
    w0 = model[0].weight.detach().abs()
    expect = torch.cat([w0[:4] * norms["0"][:2].view(1, 2, 1, 1),
                        w0[4:] * norms["0"][2:].view(1, 2, 1, 1)])
    assert torch.allclose(scores["0.weight"], expect, rtol=1e-5)


def test_wanda_without_calibration_is_a_clear_error() -> None:
    model = nn.Sequential(nn.Linear(8, 4))
    with pytest.raises(ConfigError, match="calibrate"):
        sparsify(model, 0.5, MaskConfig(importance=InputNormWeightedImportance()))


def test_gradient_criteria_read_accumulated_grad_and_restore_it() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    x, y = torch.randn(32, 8), torch.randint(0, 2, (32,))
    marker = torch.full((8, 8), 7.0)
    model[0].weight.grad = marker.clone()

    def calibrate(m: nn.Module) -> None:
        for i in range(0, 32, 8):  # several batches: .grad accumulates
            F.cross_entropy(m(x[i:i + 8]), y[i:i + 8]).backward()

    reference = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    reference.load_state_dict(model.state_dict())
    calibrate(reference)
    expect = (reference[0].weight * reference[0].weight.grad).abs()
    masks = sparsify(model, 0.5, MaskConfig(importance="taylor", ignore=("2",)), calibrate)
    assert torch.equal(model[0].parametrizations.weight.original.grad, marker)  # restored
    keep = masks["0.weight"]
    assert expect[~keep].max() <= expect[keep].min()


def test_gradient_criterion_without_grad_says_what_to_do() -> None:
    model = nn.Sequential(nn.Linear(8, 4))
    with pytest.raises(ConfigError, match="needs gradients"):
        sparsify(model, 0.5, MaskConfig(importance="gradient"))


def test_explicit_score_tensors_drive_masks() -> None:
    model = nn.Sequential(nn.Linear(8, 4))
    scores = {"0.weight": torch.arange(32, dtype=torch.float32).reshape(4, 8)}
    sparsify(model, 0.5, MaskConfig(pattern=NM(2, 4)), scores=scores)
    mask = get_mask(model[0])
    assert mask is not None
    assert torch.equal(mask.reshape(4, 2, 4), torch.tensor([False, False, True, True])
                       .expand(4, 2, 4))
    with pytest.raises(ConfigError, match="weight's shape"):
        sparsify(nn.Sequential(nn.Linear(8, 4)), 0.5, scores={"0.weight": torch.ones(3)})
