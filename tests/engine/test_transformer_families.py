"""Every transformer family the transformers issue names, built from a config with random
weights: pruned at 30% and 50% they run with outputs of the original shape and fewer MACs,
and zeroed heads/neurons removed leave the outputs unchanged. Plus the clear errors."""

from __future__ import annotations

import warnings

import pytest
import torch

import prunekit
from prunekit.measure import count_macs
from prunekit.testing import run_exact_check

transformers = pytest.importorskip("transformers")
timm = pytest.importorskip("timm")
torchvision = pytest.importorskip("torchvision")

from helpers.families import CASES as FAMILIES  # noqa: E402
from helpers.families import IDS, IMAGE, build, first_output  # noqa: E402
from prunekit.testing import randomize_weights as randomize  # noqa: E402

@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("ratio", [0.3, 0.5])
def test_family_prunes_to_fewer_macs_with_outputs_of_the_same_shape(family: str, ratio: float):
    x, split = FAMILIES[family].inputs, FAMILIES[family].split_units
    model = build(family)
    with torch.no_grad():
        dense_shape = first_output(model(x)).shape
    macs = count_macs(model, x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing may be left whole
        prunekit.prune(model, x, ratio=ratio, split_units=split)
    with torch.no_grad():
        assert first_output(model(x)).shape == dense_shape
    assert count_macs(model, x) < macs * (0.7 if ratio == 0.3 else 0.5)


@pytest.mark.parametrize("family", sorted(f for f in FAMILIES if not f.startswith("hf-") or
                                          f == "hf-vit"))
@pytest.mark.parametrize("split_units", ["inner", "outer"])
def test_vision_family_zeroed_units_are_removed_exactly(family: str, split_units: str):
    check = run_exact_check(randomize(build(family)), FAMILIES[family].inputs.double(),
                            split_units=split_units)
    assert check.max_diff <= 1e-9
    assert check.params_after < check.params_before


def test_hf_vit_head_size_follows_the_pruned_projections():
    model = build("hf-vit")
    prunekit.prune(model, IMAGE, ratio=0.5, split_units="inner")
    encoder = model.vit.encoder.layer if hasattr(model.vit, "encoder") else model.vit.layers
    attention = encoder[0].attention
    inner = getattr(attention, "attention", attention)  # older versions nest the projections
    head_size = getattr(inner, "head_dim", None) or inner.attention_head_size
    assert head_size == 8  # 16 per head before


def test_swin_prunes_stage_widths_with_its_heads():
    model = build("torchvision-swin")
    prunekit.prune(model, IMAGE, ratio=0.5, split_units="outer")
    attention = model.features[3][0].attn
    assert (attention.num_heads, attention.qkv.in_features, attention.qkv.out_features) == \
        (2, 32, 96)  # 4 heads of 16 on a 64-wide stage before


class HeadsByAttribute(torch.nn.Module):
    """Attention whose forward reshapes by its own head attributes (no handler known)."""

    def __init__(self) -> None:
        super().__init__()
        self.heads, self.size = 4, 8
        self.qkv, self.out = torch.nn.Linear(16, 96), torch.nn.Linear(32, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).view(*x.shape[:2], 3, self.heads, self.size).unbind(2)
        y = torch.nn.functional.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return self.out(y.transpose(1, 2).reshape(*x.shape[:2], -1))


def test_a_skipped_group_says_why_and_an_override_for_it_is_refused():
    x = torch.randn(2, 5, 16)
    with pytest.warns(UserWarning, match="left 1 group.* whole, e.g. 'qkv'"):
        result = prunekit.prune(HeadsByAttribute(), x, ratio=0.5)
    assert result.skipped == ["qkv"]
    assert "HeadsByAttribute" in result.skip_reasons["qkv"]
    with pytest.raises(prunekit.UnsupportedOpError, match="asked for by override 'qkv'.*handler"):
        prunekit.prune(HeadsByAttribute(), x, ratio=0.0, overrides={"qkv": 0.5})


def test_an_attention_kernel_that_cannot_be_traced_is_refused_with_the_fix():
    model = build("hf-llama")
    model.config._attn_implementation = "flex_attention"
    with pytest.raises(prunekit.TraceError, match="set_attn_implementation\\('sdpa'\\)"):
        prunekit.prune(model, IDS, ratio=0.5)


class FlexAttention(torch.nn.Module):
    """Attention through a higher-order operator, outside any Hugging Face config."""

    def __init__(self) -> None:
        super().__init__()
        self.q = torch.nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from torch.nn.attention.flex_attention import flex_attention

        q = self.q(x).view(1, 2, 4, 4)
        return flex_attention(q, q, q)


def test_a_higher_order_operator_is_refused_with_the_fix():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # flex_attention's own advice to compile it
        with pytest.raises(prunekit.TraceError, match="higher-order operator"):
            prunekit.prune(FlexAttention(), torch.randn(1, 4, 8))


@pytest.mark.parametrize("split_units", ["inner", "outer"])
def test_swin_v2_window_attention_prunes_exactly(split_units: str):
    from torchvision.models.swin_transformer import PatchMergingV2, SwinTransformerBlockV2

    def make() -> torch.nn.Module:
        torch.manual_seed(0)
        return torchvision.models.SwinTransformer(
            patch_size=[4, 4], embed_dim=32, depths=[2, 2], num_heads=[2, 4],
            window_size=[4, 4], num_classes=10, block=SwinTransformerBlockV2,
            downsample_layer=PatchMergingV2).eval()

    check = run_exact_check(randomize(make()), IMAGE.double(), split_units=split_units)
    assert check.max_diff <= 1e-9 and check.params_after < check.params_before
    model = make()
    macs = count_macs(model, IMAGE)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing may be left whole
        prunekit.prune(model, IMAGE, ratio=0.5, split_units=split_units)
    assert model(IMAGE).shape == (1, 10) and count_macs(model, IMAGE) < macs * 0.5
