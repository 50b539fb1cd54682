"""One-shot, layer-by-layer pruning of Hugging Face decoders and encoders.

Magnitude, Wanda and SparseGPT, unstructured or N:M, one block at a time on calibration
data. Importing this package does not import ``transformers``.
"""

from .calibration import (
                          CalibrationData,
                          calibration_from_sentences,
                          calibration_from_tensors,
                          calibration_from_text,
)
from .config import METHODS, OneShotConfig
from .evaluate import embedding_fidelity, mean_pooled_embeddings, perplexity
from .families import FAMILIES, Family, find_blocks, supported_model_types
from .pipeline import LayerReport, OneShotResult, prune_sequential
from .sparsegpt import sparsegpt_prune

__all__ = [
                          "FAMILIES",
                          "METHODS",
                          "CalibrationData",
                          "Family",
                          "LayerReport",
                          "OneShotConfig",
                          "OneShotResult",
                          "calibration_from_sentences",
                          "calibration_from_tensors",
                          "calibration_from_text",
                          "embedding_fidelity",
                          "find_blocks",
                          "mean_pooled_embeddings",
                          "perplexity",
                          "prune_sequential",
                          "sparsegpt_prune",
                          "supported_model_types",
]
