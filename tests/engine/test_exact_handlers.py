"""Zero-then-remove exactness, one small hand-written model per handler / op family.

Every model here is pruned with ``exact_only=True`` (see :func:`prunekit.testing.check_exact`):
the outputs of the model with the planned units zeroed must equal the outputs of the
pruned model, and something must really have been removed.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torchvision

import prunekit
from prunekit.graph import DependencyGraph
from prunekit.errors import VerificationError
from prunekit.testing import (ExactCheck, check_exact, exactness_gap, run_exact_check,
                              zero_planned_units)
from prunekit.testing import randomize_weights as randomize

TOL = 1e-5


def assert_exact(model: nn.Module, x, tol: float = TOL, **options) -> ExactCheck:
    result = run_exact_check(randomize(model), x, **options)
    assert result.plan.tensors, "nothing was pruned"
    assert result.params_after < result.params_before
    assert result.max_diff <= tol, f"max |y0 - y1| = {result.max_diff}"
    return result


def rand(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


# -- convolutions ------------------------------------------------------------------------


def test_conv1d():
    model = nn.Sequential(nn.Conv1d(3, 8, 3), nn.BatchNorm1d(8), nn.ReLU(), nn.Conv1d(8, 4, 3))
    r = assert_exact(model, rand(2, 3, 16))
    assert r.model[0].out_channels == 4 and r.model[3].in_channels == 4
    assert r.model[1].num_features == 4


def test_conv2d_batchnorm2d():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.Conv2d(8, 6, 3), nn.BatchNorm2d(6), nn.ReLU(), nn.Conv2d(6, 2, 1))
    r = assert_exact(model, rand(2, 3, 8, 8))
    assert r.model[0].weight.shape[0] == 4 and r.model[3].weight.shape == (3, 4, 3, 3)
    assert r.model[1].running_mean.shape == (4,)


def test_conv3d():
    model = nn.Sequential(nn.Conv3d(2, 6, 3), nn.ReLU(), nn.Conv3d(6, 3, 1))
    r = assert_exact(model, rand(1, 2, 5, 5, 5))
    assert r.model[0].out_channels == 3 and r.model[2].in_channels == 3


def test_grouped_conv_keeps_group_count():
    model = nn.Sequential(nn.Conv2d(3, 8, 1), nn.ReLU(),
                          nn.Conv2d(8, 8, 3, padding=1, groups=2), nn.ReLU(),
                          nn.Conv2d(8, 3, 1))
    r = assert_exact(model, rand(1, 3, 6, 6))
    grouped = r.model[2]
    assert grouped.groups == 2
    assert grouped.in_channels < 8 and grouped.in_channels % 2 == 0
    assert grouped.weight.shape[1] == grouped.in_channels // 2
    assert grouped.out_channels % 2 == 0


def test_depthwise_conv():
    model = nn.Sequential(nn.Conv2d(3, 8, 1), nn.ReLU(),
                          nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.ReLU(),
                          nn.Conv2d(8, 3, 1))
    r = assert_exact(model, rand(1, 3, 6, 6))
    dw = r.model[2]
    assert dw.groups == dw.in_channels == dw.out_channels < 8


def test_depthwise_conv_with_multiplier_2():
    model = nn.Sequential(nn.Conv2d(3, 8, 1), nn.ReLU(),
                          nn.Conv2d(8, 16, 3, padding=1, groups=8), nn.ReLU(),
                          nn.Conv2d(16, 3, 1))
    r = assert_exact(model, rand(1, 3, 6, 6))
    dw = r.model[2]
    assert dw.groups == dw.in_channels < 8
    assert dw.out_channels % dw.groups == 0


def test_conv_transpose2d():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(),
                          nn.ConvTranspose2d(8, 6, 3, stride=2), nn.ReLU(),
                          nn.Conv2d(6, 2, 1))
    r = assert_exact(model, rand(1, 3, 7, 7))
    ct = r.model[2]
    assert ct.in_channels == 4 and ct.out_channels == 3
    assert ct.weight.shape[:2] == (4, 3)


# -- linear, norms, activations ------------------------------------------------------------


def test_linear_mlp():
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 16), nn.GELU(),
                          nn.Linear(16, 3))
    r = assert_exact(model, rand(4, 10))
    assert [r.model[i].out_features for i in (0, 2, 4)] == [16, 8, 3]


def test_batchnorm1d():
    model = nn.Sequential(nn.Linear(10, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))
    r = assert_exact(model, rand(4, 10))
    assert r.model[1].num_features == 8


def test_layernorm_is_inexact_and_left_out_by_exact_only():
    def make() -> nn.Module:
        return randomize(nn.Sequential(nn.Linear(10, 16), nn.LayerNorm(16), nn.ReLU(),
                                       nn.Linear(16, 3)))

    x = rand(4, 10)
    graph = DependencyGraph.build(make(), x)
    (group,) = graph.groups
    assert not group.exact
    pruned = prunekit.prune(make(), x).model  # default: inexact groups are pruned too
    assert pruned[1].normalized_shape == (8,) and pruned[1].weight.shape == (8,)
    assert pruned(x).shape == (4, 3)
    result = prunekit.prune(make(), x, exact_only=True)
    assert not result.plan.tensors and result.model[1].normalized_shape == (16,)


def test_groupnorm_is_inexact_and_left_out_by_exact_only():
    def make() -> nn.Module:
        return randomize(nn.Sequential(nn.Conv2d(3, 8, 3), nn.GroupNorm(2, 8), nn.ReLU(),
                                       nn.Conv2d(8, 2, 1)))

    x = rand(1, 3, 6, 6)
    pruned = prunekit.prune(make(), x).model
    gn = pruned[1]
    assert gn.num_groups == 2 and gn.num_channels == 4 and gn.weight.shape == (4,)
    assert pruned(x).shape == (1, 2, 4, 4)
    assert not prunekit.prune(make(), x, exact_only=True).plan.tensors


def test_groupnorm_removes_the_same_index_in_every_group():
    model = randomize(nn.Sequential(nn.Conv2d(3, 8, 3), nn.GroupNorm(2, 8), nn.Conv2d(8, 2, 1)))
    graph = DependencyGraph.build(model, rand(1, 3, 6, 6))
    (group,) = graph.groups
    gn = next(m for m in group.members if m.tensor == "1.weight")
    assert gn.index.tolist() == [[0, 4], [1, 5], [2, 6], [3, 7]]


@pytest.mark.parametrize("affine", [True, False])
def test_groupnorm_with_one_channel_per_group_prunes_channels_exactly(affine: bool):
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.GroupNorm(8, 8, affine=affine), nn.ReLU(),
                          nn.Conv2d(8, 2, 1))
    r = assert_exact(model, rand(2, 3, 6, 6))  # exact_only=True: only exact groups go
    assert r.model[1].num_groups == r.model[1].num_channels == 4


def test_instancenorm2d_affine():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.InstanceNorm2d(8, affine=True), nn.ReLU(),
                          nn.Conv2d(8, 2, 1))
    r = assert_exact(model, rand(2, 3, 6, 6))
    assert r.model[1].num_features == 4 and r.model[1].weight.shape == (4,)


def test_prelu_per_channel():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.PReLU(8), nn.Conv2d(8, 2, 1))
    r = assert_exact(model, rand(1, 3, 6, 6))
    assert r.model[1].num_parameters == 4 and r.model[1].weight.shape == (4,)


def test_embedding_then_linear():
    model = nn.Sequential(nn.Embedding(20, 12), nn.ReLU(), nn.Linear(12, 5))
    x = torch.randint(0, 20, (3, 7))
    r = assert_exact(model, x)
    assert r.model[0].embedding_dim == 6 and r.model[0].num_embeddings == 20
    assert r.model[2].in_features == 6


class TiedEmbedding(nn.Module):
    """A language-model head that shares its weight with the input embedding."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(20, 12)
        self.fc = nn.Linear(12, 12)
        self.out = nn.Linear(12, 20, bias=False)
        self.out.weight = self.emb.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.fc(self.emb(x))))


def test_tied_embedding_and_output_weights():
    r = assert_exact(TiedEmbedding(), torch.randint(0, 20, (2, 5)))
    m = r.model
    assert m.out.weight is m.emb.weight and m.emb.weight.shape == (20, m.out.in_features)
    assert m.emb.embedding_dim == m.out.in_features < 12 and m.out.out_features == 20


# -- attention and recurrent layers ----------------------------------------------------------


class AttentionBlock(nn.Module):
    def __init__(self, batch_first: bool, dim: int = 16, heads: int = 4) -> None:
        super().__init__()
        self.batch_first = batch_first
        self.inp = nn.Linear(6, dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=batch_first)
        self.out = nn.Linear(dim, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (batch, seq, 6)
        h = self.inp(x)
        if not self.batch_first:
            h = h.transpose(0, 1)
        h, _ = self.attn(h, h, h)
        if not self.batch_first:
            h = h.transpose(0, 1)
        return self.out(torch.relu(h))


@pytest.mark.parametrize("batch_first", [True, False])
def test_multihead_attention_heads(batch_first: bool):
    r = assert_exact(AttentionBlock(batch_first), rand(2, 5, 6))
    attn = r.model.attn
    assert attn.num_heads == 2 and attn.head_dim == 4 and attn.embed_dim == 8
    assert attn.in_proj_weight.shape == (24, 8) and attn.out_proj.weight.shape == (8, 8)
    assert all(g.exact for g in r.plan.groups)


class Recurrent(nn.Module):
    def __init__(self, kind: type[nn.RNNBase], layers: int, bidirectional: bool) -> None:
        super().__init__()
        self.rnn = kind(6, 10, num_layers=layers, bidirectional=bidirectional, batch_first=True)
        self.head = nn.Linear(10 * (2 if bidirectional else 1), 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out)


@pytest.mark.parametrize("kind", [nn.LSTM, nn.GRU])
@pytest.mark.parametrize("layers,bidirectional", [(1, False), (2, False), (2, True)])
def test_recurrent(kind: type[nn.RNNBase], layers: int, bidirectional: bool):
    r = assert_exact(Recurrent(kind, layers, bidirectional), rand(2, 5, 6))
    rnn = r.model.rnn
    assert rnn.hidden_size == 5
    assert r.model.head.in_features == 5 * (2 if bidirectional else 1)
    assert rnn.weight_hh_l0.shape == (rnn.weight_hh_l0.shape[0], 5)
    assert rnn(rand(2, 5, 6))[0].shape[-1] == r.model.head.in_features


class ProjectedLSTM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.pre = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 6))
        self.rnn = nn.LSTM(6, 10, proj_size=4, batch_first=True)
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(self.pre(x))[0])


def test_lstm_with_projection_keeps_its_hidden_units():
    """proj_size is not supported: the LSTM keeps its units, the rest is still pruned."""
    r = assert_exact(ProjectedLSTM(), rand(2, 5, 5))
    assert r.model.rnn.hidden_size == 10 and r.model.rnn.proj_size == 4
    assert r.model.pre[0].out_features == 4


# -- bare parameters and tensor ops ---------------------------------------------------------


class TinyViT(nn.Module):
    """Patch embedding, a class token concatenated, a position embedding added, a
    layer-scale vector multiplied, then a head on the class token."""

    def __init__(self, dim: int = 12) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 2, stride=2)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 5, dim))
        self.fc = nn.Linear(dim, dim)
        self.gamma = nn.Parameter(torch.ones(dim))
        self.head = nn.Linear(dim, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.patch(x).flatten(2).transpose(1, 2)  # (B, 4, dim)
        t = torch.cat([self.cls_token.expand(t.shape[0], -1, -1), t], dim=1) + self.pos_embed
        t = t + self.gamma * torch.relu(self.fc(t))
        return self.head(t[:, 0])


def test_bare_parameters_class_token_position_embedding_layer_scale():
    r = assert_exact(TinyViT(), rand(2, 3, 4, 4))
    m = r.model
    assert m.cls_token.shape == (1, 1, 6) and m.pos_embed.shape == (1, 5, 6)
    assert m.gamma.shape == (6,) and m.patch.out_channels == 6 and m.head.in_features == 6


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.a = nn.Conv2d(8, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 3, padding=1)
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.stem(x))
        h = h + self.b(torch.relu(self.a(h)))
        return self.head(h)


def test_residual_add_couples_both_sides():
    r = assert_exact(Residual(), rand(1, 3, 6, 6))
    m = r.model
    assert m.stem.out_channels == m.b.out_channels == m.head.in_channels == 4
    assert m.a.out_channels == 4


class Concat(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.b = nn.Conv2d(3, 6, 1)
        self.c = nn.Conv2d(10, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c(torch.relu(torch.cat([self.a(x), self.b(x)], dim=1)))


def test_concat_offsets():
    r = assert_exact(Concat(), rand(1, 3, 5, 5))
    assert r.model.c.in_channels == r.model.a.out_channels + r.model.b.out_channels == 5


class SplitChunk(nn.Module):
    def __init__(self, use_chunk: bool) -> None:
        super().__init__()
        self.use_chunk = use_chunk
        self.stem = nn.Conv2d(3, 8, 1)
        self.left = nn.Conv2d(4, 6, 3, padding=1)
        self.right = nn.Conv2d(4, 6, 1)
        self.head = nn.Conv2d(12, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.stem(x))
        a, b = h.chunk(2, dim=1) if self.use_chunk else torch.split(h, [4, 4], dim=1)
        return self.head(torch.cat([self.left(a), self.right(b)], dim=1))


@pytest.mark.parametrize("use_chunk", [True, False])
def test_split_and_chunk(use_chunk: bool):
    r = assert_exact(SplitChunk(use_chunk), rand(1, 3, 5, 5))
    m = r.model
    assert m.left.out_channels == m.right.out_channels == 3 and m.head.in_channels == 6
    # chunk(2) follows the pruned size (each half loses the same number of channels);
    # split([4, 4]) hard-codes the sizes, so the verifier leaves the stem whole
    assert m.stem.out_channels == (4 if use_chunk else 8)


def test_flatten_then_linear():
    model = nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 3 * 3, 8),
                          nn.ReLU(), nn.Linear(8, 2))
    r = assert_exact(model, rand(2, 3, 5, 5))
    assert r.model[0].out_channels == 3 and r.model[3].in_features == 27


class UnfoldLinear(nn.Module):
    """``nn.Unfold`` turns conv channels into blocks of ``kh*kw`` features per position."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.unfold = nn.Unfold(kernel_size=2, stride=2)
        self.fc = nn.Linear(6 * 4, 5)
        self.out = nn.Linear(5, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        patches = self.unfold(torch.relu(self.conv(x))).transpose(1, 2)  # (B, L, 6*4)
        return self.out(torch.relu(self.fc(patches))).mean(1)


def test_unfold_then_linear():
    r = assert_exact(UnfoldLinear(), rand(2, 3, 6, 6))
    assert r.model.conv.out_channels == 3 and r.model.fc.in_features == 12


class PermuteTranspose(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.fc = nn.Linear(8, 6)
        self.fc2 = nn.Linear(3, 3)
        self.out = nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x).permute(0, 2, 3, 1)  # channels last: (B, H, W, 8)
        h = torch.relu(self.fc(h))  # (B, H, W, 6)
        h = torch.relu(self.fc2(h.transpose(-1, -2)))  # mixes W (size 3), channels on dim 2
        return self.out(h.transpose(-1, -2))


def test_permute_and_transpose():
    r = assert_exact(PermuteTranspose(), rand(1, 3, 5, 5))
    assert r.model.conv.out_channels == 4 and r.model.fc.in_features == 4
    assert r.model.fc.out_features == 3 and r.model.out.in_features == 3


class ChannelsLastLinear(nn.Module):
    """A linear layer over channels moved last by a transpose (a non-contiguous input)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)
        self.inp = nn.Linear(2, 4)
        self.head = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.inp(torch.relu(self.conv(x)).flatten(2).transpose(1, 2))
        return self.head(t.mean(1))


def test_pruning_to_one_channel_before_a_channels_last_linear():
    """With one channel left the transposed input becomes contiguous and ``linear``
    decomposes into other ATen ops; the plan is still right and must not be refused."""
    x = rand(2, 3, 4, 4)
    result = prunekit.prune(randomize(ChannelsLastLinear()), x, ratio=0.5)
    assert result.skipped == []
    r = assert_exact(ChannelsLastLinear(), x)
    assert r.model.conv.out_channels == 1 and r.model.inp.in_features == 1


class SqueezeExcite(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.reduce = nn.Conv2d(8, 4, 1)
        self.expand = nn.Conv2d(4, 8, 1)
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv(x))
        s = h.mean((2, 3), keepdim=True)
        s = torch.sigmoid(self.expand(torch.relu(self.reduce(s))))
        return self.head(h * s)


def test_squeeze_excite_mul():
    r = assert_exact(SqueezeExcite(), rand(2, 3, 5, 5))
    m = r.model
    assert m.conv.out_channels == m.expand.out_channels == m.reduce.in_channels == 4
    assert m.reduce.out_channels == 2


# -- input features ---------------------------------------------------------------------------


def test_input_feature_selection_on_a_tabular_mlp():
    x = rand(16, 10)
    model = randomize(nn.Sequential(nn.Linear(10, 12), nn.ReLU(), nn.Linear(12, 2)))
    reference = nn.Sequential(nn.Linear(10, 12), nn.ReLU(), nn.Linear(12, 2))
    reference.load_state_dict(model.state_dict())
    reference = reference.double().eval()
    r = run_exact_check(model, x, input_features=((0, 1),))
    assert r.max_diff <= TOL
    spec = r.plan.input_features["input0"]
    kept = spec["kept"]
    assert spec["dim"] == 1 and 0 < len(kept) < 10 and kept == sorted(kept)
    assert r.model[0].in_features == len(kept)
    # the pruned model works on just the kept columns, and the removed ones did not matter
    zero_planned_units(reference, r.plan)
    with torch.no_grad():
        assert torch.allclose(r.model(x[:, kept]), reference(x), atol=TOL)


def test_check_exact_accepts_a_factory_and_returns_a_float():
    diff = check_exact(lambda: randomize(nn.Sequential(nn.Linear(4, 8), nn.ReLU(),
                                                       nn.Linear(8, 2))), rand(3, 4))
    assert isinstance(diff, float) and diff <= TOL


def test_exactness_gap_prunes_in_place_and_returns_a_float():
    model = randomize(nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(),
                                    nn.Conv2d(8, 2, 1)))
    gap = exactness_gap(model, rand(1, 3, 6, 6))
    assert isinstance(gap, float) and gap <= TOL
    assert model[0].out_channels == 4 and model[1].num_features == 4


def test_exactness_gap_refuses_a_plan_that_removes_nothing():
    model = randomize(nn.Sequential(nn.Linear(10, 16), nn.LayerNorm(16), nn.Linear(16, 3)))
    with pytest.raises(VerificationError, match="removes nothing"):
        exactness_gap(model, rand(4, 10))


# -- model-zoo modules registered by name ------------------------------------------------

def test_timm_attention_head_size_follows_the_pruned_qkv_and_sdpa_scale_is_inexact():
    timm = pytest.importorskip("timm")
    x = rand(1, 3, 32, 32)

    def make() -> nn.Module:
        torch.manual_seed(0)
        return timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8,
                                 num_classes=10, depth=1)

    graph = DependencyGraph.build(randomize(make()), x)
    qkv = graph.group_named("blocks.0.attn.qkv")
    assert qkv.n_units == 64 and not qkv.exact  # the default scale is 1/sqrt(head size)
    r = assert_exact(make(), x)  # exact groups only: the MLP neurons
    assert r.model.blocks[0].mlp.fc1.out_features == 384
    pruned = prunekit.prune(randomize(make()), x, ratio=0.5).model
    assert pruned.blocks[0].attn.head_dim == 32 and pruned.blocks[0].attn.attn_dim == 96
    assert pruned(x).shape == (1, 10)


def test_torchvision_vit_hidden_size_is_pruned_with_its_reshape_attribute():
    model = torchvision.models.vit_b_32(image_size=64, num_classes=10).eval()
    result = prunekit.prune(model, torch.randn(1, 3, 64, 64), ratio=0.5)
    assert "conv_proj" not in result.skipped
    assert model.hidden_dim == model.conv_proj.out_channels == 384
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 10)
