"""Examples the conformance tests run for every registered extension.

Each registry of prunekit (module handlers, importance criteria, one-shot methods,
schedules) has a table here; ``tests/conformance`` checks that every registered name has a
row, so registering a handler, criterion, method or schedule without an example fails a
test that says what to add. Rows are small builders: a model and its example inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from prunekit.testing import hf_example


def rand(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(1))


@dataclass(frozen=True)
class HandlerExample:
    """A model using the handled module, its example inputs, and what pruning must do.

    ``exact``: the handled module's groups are exact (zeroed units removed leave the outputs
    unchanged); otherwise the check is that the pruned model runs with its output shapes.
    ``needs``: a package to import first (the test skips without it).
    """

    build: Callable[[], nn.Module]
    inputs: Callable[[], Any]
    exact: bool = True
    options: dict[str, Any] = field(default_factory=dict)
    needs: str | None = None


class _Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(12, 16)
        self.attn = nn.MultiheadAttention(16, 4, batch_first=True)
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.proj(x))
        y, _ = self.attn(h, h, h, need_weights=False)
        return self.head(y + h)


class _Recurrent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.pre = nn.Linear(5, 8)
        self.rnn = nn.LSTM(8, 12, batch_first=True)
        self.head = nn.Linear(12, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.rnn(torch.relu(self.pre(x)))
        return self.head(y[:, -1])


def _conv_t(dims: int) -> Callable[[], nn.Module]:
    conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[dims]
    conv_t = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}[dims]
    return lambda: nn.Sequential(conv(3, 8, 3), nn.ReLU(), conv_t(8, 6, 3), nn.ReLU(),
                                 conv(6, 2, 1))


def _torchvision(name: str, **settings: Any) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import torchvision

        return getattr(torchvision.models, name)(**settings)
    return build


def _swin_v2() -> nn.Module:
    import torchvision
    from torchvision.models.swin_transformer import PatchMergingV2, SwinTransformerBlockV2

    return torchvision.models.SwinTransformer(
        patch_size=[4, 4], embed_dim=32, depths=[2, 2], num_heads=[2, 4], window_size=[4, 4],
        num_classes=10, block=SwinTransformerBlockV2, downsample_layer=PatchMergingV2)


def _maxvit() -> nn.Module:
    from torchvision.models.maxvit import MaxVit

    return MaxVit(input_size=(32, 32), stem_channels=8, partition_size=2,
                  block_channels=[16, 32], block_layers=[1, 1], head_dim=8,
                  stochastic_depth_prob=0.0, num_classes=10)


def _timm_vit() -> nn.Module:
    import timm

    return timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=2,
                             num_classes=10)


def _image() -> torch.Tensor:
    return rand(1, 3, 32, 32)


def _ids() -> torch.Tensor:
    return torch.randint(0, 100, (1, 8), generator=torch.Generator().manual_seed(0))


_TORCH = "torch.nn.modules"
#: qualified class name of the handled module -> example
HANDLERS: dict[str, HandlerExample] = {
    f"{_TORCH}.conv.Conv1d": HandlerExample(
        lambda: nn.Sequential(nn.Conv1d(3, 8, 3), nn.BatchNorm1d(8), nn.ReLU(), nn.Conv1d(8, 4, 3)),
        lambda: rand(2, 3, 16)),
    f"{_TORCH}.conv.Conv2d": HandlerExample(
        lambda: nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, groups=8),
             nn.ReLU(), nn.Conv2d(8, 4, 1)), lambda: rand(1, 3, 8, 8)),
    f"{_TORCH}.conv.Conv3d": HandlerExample(
        lambda: nn.Sequential(nn.Conv3d(2, 6, 3), nn.ReLU(), nn.Conv3d(6, 3, 1)),
        lambda: rand(1, 2, 5, 5, 5)),
    f"{_TORCH}.conv.ConvTranspose1d": HandlerExample(_conv_t(1), lambda: rand(1, 3, 9)),
    f"{_TORCH}.conv.ConvTranspose2d": HandlerExample(_conv_t(2), lambda: rand(1, 3, 7, 7)),
    f"{_TORCH}.conv.ConvTranspose3d": HandlerExample(_conv_t(3), lambda: rand(1, 3, 5, 5, 5)),
    f"{_TORCH}.linear.Linear": HandlerExample(
        lambda: nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 16), nn.GELU(), nn.Linear(16, 3)),
        lambda: rand(4, 10)),
    f"{_TORCH}.batchnorm._NormBase": HandlerExample(
        lambda: nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 2, 1)),
        lambda: rand(2, 3, 6, 6)),
    f"{_TORCH}.normalization.GroupNorm": HandlerExample(
        lambda: nn.Sequential(nn.Conv2d(3, 8, 3), nn.GroupNorm(8, 8), nn.ReLU(), nn.Conv2d(8, 2, 1)),
        lambda: rand(2, 3, 6, 6)),
    f"{_TORCH}.normalization.LayerNorm": HandlerExample(
        lambda: nn.Sequential(nn.Linear(10, 16), nn.LayerNorm(16), nn.ReLU(), nn.Linear(16, 3)),
        lambda: rand(4, 10), exact=False),
    f"{_TORCH}.normalization.RMSNorm": HandlerExample(
        lambda: nn.Sequential(nn.Linear(10, 16), nn.RMSNorm(16), nn.ReLU(), nn.Linear(16, 3)),
        lambda: rand(4, 10), exact=False),
    f"{_TORCH}.activation.PReLU": HandlerExample(
        lambda: nn.Sequential(nn.Conv2d(3, 8, 3), nn.PReLU(8), nn.Conv2d(8, 2, 1)), lambda: rand(1, 3, 6, 6)),
    f"{_TORCH}.sparse.Embedding": HandlerExample(
        lambda: nn.Sequential(nn.Embedding(20, 12), nn.ReLU(), nn.Linear(12, 5)),
        lambda: torch.randint(0, 20, (3, 7), generator=torch.Generator().manual_seed(0))),
    f"{_TORCH}.sparse.EmbeddingBag": HandlerExample(
        lambda: nn.Sequential(nn.EmbeddingBag(20, 12), nn.ReLU(), nn.Linear(12, 5)),
        lambda: torch.randint(0, 20, (3, 7), generator=torch.Generator().manual_seed(0))),
    f"{_TORCH}.flatten.Unflatten": HandlerExample(
        lambda: nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(2), nn.Unflatten(2, (4, 4)),
             nn.Conv2d(8, 2, 1)), lambda: rand(1, 3, 6, 6)),
    f"{_TORCH}.activation.MultiheadAttention": HandlerExample(_Attention, lambda: rand(2, 5, 12)),
    f"{_TORCH}.rnn.RNNBase": HandlerExample(_Recurrent, lambda: rand(2, 4, 5)),
    "torchvision.models.swin_transformer.ShiftedWindowAttention": HandlerExample(
        _torchvision("SwinTransformer", patch_size=[4, 4], embed_dim=32, depths=[2, 2],
                     num_heads=[2, 4], window_size=[4, 4], num_classes=10),
        _image, options={"split_units": "outer"}, needs="torchvision"),
    "torchvision.models.swin_transformer.ShiftedWindowAttentionV2": HandlerExample(
        _swin_v2, _image, options={"split_units": "outer"}, needs="torchvision"),
    "torchvision.models.vision_transformer.VisionTransformer": HandlerExample(
        _torchvision("VisionTransformer", image_size=32, patch_size=8, num_layers=2,
                     num_heads=4, hidden_dim=64, mlp_dim=96, num_classes=10),
        _image, needs="torchvision"),
    "torchvision.models.maxvit.RelativePositionalMultiHeadAttention": HandlerExample(
        _maxvit, _image, exact=False, needs="torchvision"),
    "timm.layers.attention.Attention": HandlerExample(_timm_vit, _image, needs="timm"),
    "transformers.models.opt.modeling_opt.OPTAttention": HandlerExample(
        lambda: hf_example("opt"), _ids, needs="transformers"),
    "transformers.pytorch_utils.Conv1D": HandlerExample(
        lambda: hf_example("gpt2"), _ids, needs="transformers"),
    "transformers.models.gpt2.modeling_gpt2.GPT2Attention": HandlerExample(
        lambda: hf_example("gpt2"), _ids, options={"split_units": "outer"},
        needs="transformers"),
    "transformers.models.bert.modeling_bert.BertSelfAttention": HandlerExample(
        lambda: hf_example("bert"), _ids, needs="transformers"),
    "transformers.models.vit.modeling_vit.ViTAttention": HandlerExample(
        lambda: hf_example("vit", "image-classifier"), _image, needs="transformers"),
    "transformers.models.vit.modeling_vit.ViTSelfAttention": HandlerExample(
        lambda: hf_example("vit", "image-classifier"), _image, needs="transformers"),
    "transformers.modeling_utils.PreTrainedModel": HandlerExample(
        lambda: hf_example("llama", "causal"), _ids, options={"split_units": "outer"},
        needs="transformers"),
}


class Classifier(nn.Module):
    """Conv → BatchNorm → ReLU twice, then a linear head: every criterion can score it."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(),
                                      nn.Conv2d(8, 8, 3), nn.BatchNorm2d(8), nn.ReLU())
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


def classifier_batches(n: int = 3) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``n`` labelled batches for :class:`Classifier` (calibration, gradients)."""
    g = torch.Generator().manual_seed(2)
    return [(torch.randn(4, 3, 8, 8, generator=g, dtype=torch.float64),
             torch.randint(0, 4, (4,), generator=g)) for _ in range(n)]


#: schedule name -> its settings for a run of 12 optimizer steps
SCHEDULES: dict[str, dict[str, Any]] = {
    "one_shot": {"sparsity": 0.5, "step": 4},
    "cubic": {"final_sparsity": 0.5, "start": 2, "end": 10, "frequency": 2},
    "linear": {"final_sparsity": 0.5, "start": 2, "end": 10, "frequency": 2},
    "exponential": {"final_sparsity": 0.5, "start": 2, "end": 10, "frequency": 2},
    "steps": {"milestones": [[3, 0.25], [8, 0.5]]},
}
