"""Static and dynamic int8 of transformer layers: a small BERT-style encoder and a small
LLaMA-style decoder (Hugging Face, random weights) export, quantize every Linear layer and
stay close to fp32. Exporting them takes a while: marked slow."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from prunekit.export import calibration_from_batches, convert_onnx, export_onnx
from prunekit.measure.onnxrt import OnnxModule

transformers = pytest.importorskip("transformers")


class Logits(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=ids).logits


def _llama() -> nn.Module:
    return transformers.LlamaForCausalLM(transformers.LlamaConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=500, use_cache=False))


def _bert() -> nn.Module:
    return transformers.BertForSequenceClassification(transformers.BertConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        vocab_size=500))


@pytest.mark.slow
@pytest.mark.parametrize("build, linears", [(_llama, 2 * 7 + 1), (_bert, 2 * 6 + 2)])
def test_transformer_linears_quantize(build, linears: int, tmp_path: Path) -> None:  # noqa: ANN001
    torch.manual_seed(0)
    model = Logits(build()).eval()
    ids = torch.randint(0, 500, (2, 16))
    path = tmp_path / "model.onnx"
    export_onnx(model, ids, path, dynamic_batch=True)
    calibration = calibration_from_batches([torch.randint(0, 500, (2, 16)) for _ in range(4)])
    with torch.no_grad():
        expected = model(ids)
    for fmt in ("int8-qdq", "int8-qoperator", "int8-dynamic"):
        out = convert_onnx(path, tmp_path / f"model.{fmt}.onnx", fmt, calibration=calibration)
        assert len(out.quantized) == linears and out.float_nodes == ()
        got = OnnxModule(out.path)(ids)
        cosine = nn.functional.cosine_similarity(got.flatten(), expected.flatten(), dim=0)
        assert cosine > 0.99
