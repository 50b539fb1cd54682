"""The meta-device shortcuts give what PyTorch's own meta kernels give: every shortcut is run
beside the real kernel on the ops of several models, and on cases it must hand back."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import torch
import torchvision
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from prunekit.graph import meta_shapes
from prunekit.graph.trace import meta_copy, to_meta

aten = torch.ops.aten


class _Audit(TorchDispatchMode):
    """Runs each op's shortcut and its real kernel; records every disagreement."""

    def __init__(self) -> None:
        super().__init__()
        self.used: Counter[str] = Counter()
        self.wrong: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        fast = meta_shapes.meta_outputs(func, args, kwargs)
        real = func(*args, **kwargs)
        if fast is not None:
            self.used[str(func)] += 1
            got, want = _compared(func, fast, real)
            same = len(got) == len(want) and all(
                (g is w) if w is args[0] else  # in place: the input itself
                (g is not args[0] and _meta_of(g) == _meta_of(w)) for g, w in zip(got, want))
            if not same:
                self.wrong.append(f"{func}: {[_meta_of(g) for g in got]} != "
                                  f"{[_meta_of(w) for w in want]}")
        return real


_BATCH_NORMS = (aten.native_batch_norm.default, aten._native_batch_norm_legit_no_training.default)


def _compared(func: Any, fast: Any, real: Any) -> tuple[list[Any], list[Any]]:
    """The outputs to compare; batch norm's saved statistics (unused in eval mode) come back
    empty from the shortcut, so only its output is."""
    got, want = tree_flatten(fast)[0], tree_flatten(real)[0]
    return (got[:1], want[:1]) if func in _BATCH_NORMS else (got, want)


def _meta_of(t: Any) -> Any:
    return (tuple(t.shape), t.stride(), t.dtype, t.device.type) if isinstance(t, torch.Tensor) else t


def _audit(model: nn.Module, x: torch.Tensor) -> _Audit:
    audit = _Audit()
    with torch.no_grad(), audit:
        meta_copy(model.eval())(to_meta(x))
    return audit


def _small_vit() -> nn.Module:
    return torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=2,
                                                num_heads=2, hidden_dim=16, mlp_dim=32)


MODELS = {
    "vit": (_small_vit, (1, 3, 32, 32)),
    "convnext": (lambda: torchvision.models.convnext_tiny(), (1, 3, 64, 64)),
    "efficientnet": (lambda: torchvision.models.efficientnet_b0(), (2, 3, 64, 64)),
    "resnet": (lambda: torchvision.models.resnet18(), (1, 3, 64, 64)),
    "mobilenet_v3": (lambda: torchvision.models.mobilenet_v3_small(), (1, 3, 64, 64)),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_shortcuts_agree_with_the_meta_kernels_on_real_models(name: str) -> None:
    build, shape = MODELS[name]
    with torch.device("meta"):
        model = build()
    audit = _audit(model, torch.empty(shape, device="meta"))
    assert not audit.wrong
    assert sum(audit.used.values()) > 10  # the shortcuts ran


def test_shortcuts_agree_on_broadcasts_layouts_and_dtypes() -> None:
    m = lambda *s, dtype=torch.float32: torch.empty(s, device="meta", dtype=dtype)  # noqa: E731
    cases = [
        (aten.add.Tensor, (m(3, 1), m(1, 4)), {}),
        (aten.mul.Tensor, (m(2, 5, 7, 7), m(1, 5, 1, 1)), {}),
        (aten.mul.Tensor, (m(5, 1, 1), m(2, 5, 7, 7)), {}),
        (aten.sub.Tensor, (m(4, dtype=torch.float64), m(3, 4, dtype=torch.float64)), {}),
        (aten.add_.Tensor, (m(2, 3, 4), m(3, 4)), {"alpha": 2}),
        (aten.mul.Scalar, (m(2, 3), 0.5), {}),
        (aten.addmm.default, (m(6), m(4, 5), m(6, 5).t()), {}),
        (aten.addmm.default, (m(4, 6), m(4, 5), m(5, 6)), {"beta": 0.5}),
        (aten.convolution.default, (m(2, 4, 9, 9), m(6, 2, 3, 3), m(6), [2, 2], [1, 1], [1, 1],
                                    False, [0, 0], 2), {}),
        (aten.convolution.default, (m(1, 3, 20), m(5, 3, 4), None, [3], [0], [2], False, [0], 1),
         {}),
        (aten.native_layer_norm.default, (m(2, 3, 8), [3, 8], m(3, 8), None, 1e-5), {}),
        (aten.native_layer_norm.default, (m(2, 3, 8, dtype=torch.float64), [8], None, None, 1e-5),
         {}),
        (aten.mean.dim, (m(2, 5, 7, 7), [-1, -2], True), {}),
        (aten.mean.dim, (m(2, 5, 7, 7), [1]), {}),
        (aten._safe_softmax.default, (m(2, 4, 6), -1), {}),
        (aten._softmax.default, (m(2, 4, 6), 1, False), {}),
        (aten.gelu.default, (m(2, 3),), {"approximate": "tanh"}),
        (aten.hardswish_.default, (m(2, 3, dtype=torch.bfloat16),), {}),
        (aten.native_batch_norm.default, (m(2, 4, 3, 3), m(4), m(4), m(4), m(4), False, 0.1, 1e-5),
         {}),
    ]
    nhwc = m(2, 6, 5, 4).permute(0, 2, 3, 1)  # a dense layout that is not contiguous
    cases += [
        (aten.add.Tensor, (nhwc, m(6)), {}),
        (aten.mul.Tensor, (m(6), nhwc), {}),
        (aten.add.Tensor, (m(2, 5, 4, 6), nhwc), {}),
        (aten.mul.Tensor, (m(2, 4, 5, 6).transpose(1, 2), nhwc), {}),
        (aten.add_.Tensor, (nhwc, m(6)), {}),
        (aten.gelu.default, (nhwc,), {}),
        (aten.native_layer_norm.default, (nhwc, [6], m(6), m(6), 1e-6), {}),
        (aten.convolution.default, (nhwc.permute(0, 3, 1, 2), m(6, 1, 3, 3), m(6), [1, 1], [1, 1],
                                    [1, 1], False, [0, 0], 6), {}),
    ]
    for func, args, kwargs in cases:
        fast = meta_shapes.meta_outputs(func, args, kwargs)
        assert fast is not None, func
        real = func(*args, **kwargs)
        got, want = _compared(func, fast, real)
        assert [_meta_of(g) for g in got] == [_meta_of(w) for w in want], func


def test_cases_a_shortcut_cannot_vouch_for_run_the_real_kernel() -> None:
    m = lambda *s: torch.empty(s, device="meta")  # noqa: E731
    handed_back = [
        (aten.add.Tensor, (m(3, 4), m(5, 4))),  # sizes that do not fit: PyTorch's error
        (aten.add.Tensor, (m(3, 4), m(3, 8)[:, ::2])),  # a layout with gaps
        (aten.add.Tensor, (m(3, 4), torch.empty(4, device="meta", dtype=torch.float64))),
        (aten.add.Tensor, (m(3, 4), torch.empty((), device="meta"))),  # a wrapped scalar
        (aten.mul.Tensor, (m(3, 4), torch.empty(3, 4))),  # a real tensor
        (aten.addmm.default, (m(6), m(4, 5), m(4, 6))),
        (aten.convolution.default, (m(1, 4, 9, 9), m(6, 3, 3, 3), None, [1, 1], [0, 0], [1, 1],
                                    False, [0, 0], 1)),
        (aten.convolution.default, (m(1, 4, 2, 2), m(6, 4, 3, 3), None, [1, 1], [0, 0], [1, 1],
                                    False, [0, 0], 1)),  # output would be empty
        (aten.native_layer_norm.default, (m(2, 3, 8), [7], None, None, 1e-5)),
        (aten.native_layer_norm.default, (m(2, 3, 8), [8], m(7), None, 1e-5)),
        (aten.mean.dim, (m(2, 5), [3])),
        (aten._softmax.default, (m(2, 4), 1, True)),
        (aten.relu.default, (torch.empty(3, device="meta", dtype=torch.int64),)),
    ]
    for func, args in handed_back:
        assert meta_shapes.meta_outputs(func, args, {}) is None, (func, args)
    assert meta_shapes.meta_outputs(aten.relu.default, (torch.empty(3),), {}) is None  # not meta


def test_batch_norm_with_parameters_of_another_width_raises() -> None:
    x, w = torch.empty(2, 4, 3, 3, device="meta"), torch.empty(3, device="meta")
    with pytest.raises(RuntimeError, match="batch norm over 4 channels"):
        meta_shapes.meta_outputs(aten.native_batch_norm.default, (x, w, w, w, w, False, 0.1, 1e-5),
                                 {})
