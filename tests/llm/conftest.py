"""Tiny Hugging Face models built from configs with random weights, one per family."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from prunekit.llm import CalibrationData

# (family, config class name, config kwargs, model class name); a conformance table.
TINY: dict[str, tuple[str, dict[str, Any], str]] = {
    "llama": ("LlamaConfig", {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                                  "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100,
                                  "max_position_embeddings": 64}, "LlamaForCausalLM"),
    "mistral": ("MistralConfig", {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                                      "num_attention_heads": 4, "num_key_value_heads": 2,
                                      "vocab_size": 100, "max_position_embeddings": 64},
                "MistralForCausalLM"),
    "qwen2": ("Qwen2Config", {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                                  "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100,
                                  "max_position_embeddings": 64}, "Qwen2ForCausalLM"),
    "opt": ("OPTConfig", {"hidden_size": 32, "ffn_dim": 64, "num_hidden_layers": 2,
                              "num_attention_heads": 4, "vocab_size": 100, "word_embed_proj_dim": 32,
                              "max_position_embeddings": 64}, "OPTForCausalLM"),
    "gpt2": ("GPT2Config", {"n_embd": 32, "n_layer": 2, "n_head": 4, "vocab_size": 100, "n_positions": 64,
                                "bos_token_id": 0, "eos_token_id": 0},
             "GPT2LMHeadModel"),
    "bert": ("BertConfig", {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                                "num_attention_heads": 4, "vocab_size": 100,
                                "max_position_embeddings": 64}, "BertModel"),
}


@pytest.fixture
def tiny_model() -> Callable[[str], torch.nn.Module]:
    """Factory: ``tiny_model("llama")`` -> a seeded, eval-mode tiny model of that family."""
    transformers = pytest.importorskip("transformers")

    def build(family: str) -> torch.nn.Module:
        cfg_name, kwargs, model_name = TINY[family]
        config = getattr(transformers, cfg_name)(**kwargs)
        config._attn_implementation = "eager"
        torch.manual_seed(0)
        return getattr(transformers, model_name)(config).eval()

    return build


def calibration(family: str, n: int = 6) -> CalibrationData:
    """``n`` random 16-token sequences (seed 0); BERT gets two padded rows."""
    ids = torch.randint(0, 100, (n, 16), generator=torch.Generator().manual_seed(0))
    if family != "bert":
        return CalibrationData(ids)
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0
    mask[4, 5:] = 0
    return CalibrationData(ids, mask)
