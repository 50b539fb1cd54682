"""One-shot, layer-by-layer pruning of Hugging Face decoders and encoders.

Magnitude, Wanda and SparseGPT, unstructured or N:M, one block at a time on calibration
data; and structured removal of FFN neurons and attention heads with a least-squares
re-fit of the following projection (:func:`prune_structured`). Importing this package
does not import ``transformers``.
"""

from .calibration import (
                          CalibrationData,
                          calibration_from_sentences,
                          calibration_from_tensors,
                          calibration_from_text,
)
from .checkpoint import load_offloaded, save_offloaded
from .config import OneShotConfig
from .evaluate import embedding_fidelity, mean_pooled_embeddings, perplexity
from ..hf.families import FAMILIES, Family, find_layers, supported_model_types
from .methods import (
                          MaskOptions,
                          OneShotMethod,
                          SparseGPTOptions,
                          available_oneshot_methods,
                          get_oneshot_method,
                          register_oneshot_method,
)
from .pipeline import LayerReport, OneShotResult, prune_sequential
from .refit import UNIT_CRITERIA, refit_weights, relative_error
from .sparsegpt import sparsegpt_prune
from .structured import (
                          StructuredConfig,
                          StructuredOneShotConfig,
                          StructuredResult,
                          UnitReport,
                          prune_structured,
)

__all__ = [
                          "FAMILIES",
                          "MaskOptions",
                          "OneShotMethod",
                          "SparseGPTOptions",
                          "available_oneshot_methods",
                          "get_oneshot_method",
                          "register_oneshot_method",
                          "UNIT_CRITERIA",
                          "CalibrationData",
                          "Family",
                          "LayerReport",
                          "OneShotConfig",
                          "OneShotResult",
                          "StructuredConfig",
                          "StructuredOneShotConfig",
                          "StructuredResult",
                          "UnitReport",
                          "calibration_from_sentences",
                          "calibration_from_tensors",
                          "calibration_from_text",
                          "embedding_fidelity",
                          "find_layers",
                          "load_offloaded",
                          "mean_pooled_embeddings",
                          "perplexity",
                          "prune_sequential",
                          "prune_structured",
                          "refit_weights",
                          "relative_error",
                          "save_offloaded",
                          "sparsegpt_prune",
                          "supported_model_types",
]
