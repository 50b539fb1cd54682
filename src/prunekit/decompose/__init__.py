"""Low-rank decomposition beside pruning: Linear layers by truncated SVD (optionally
activation-aware), convolutions by spatial SVD or Tucker-2; ranks chosen per layer (energy,
error budget) or for the whole model (parameters, MACs, measured latency).

``prunekit.decompose(model, example_inputs, ...)`` (:func:`prunekit.decompose.api.decompose`)
runs it; the factorizations are recorded in the plan, so :func:`prunekit.apply_plan`,
:func:`prunekit.save_pruned` / :func:`prunekit.load_pruned` and the Hugging Face loader
replay them. This package's ``__init__`` imports only the light modules (``surgery`` imports
it for the replay); :func:`decompose` loads the rest when called.
"""

from .config import DecomposeConfig
from .entry import decompose
from .kinds import (FACTORIZATIONS, Factorization, Fitted, InputMoments, LayerShapes, describe,
                    factorization, register_factorization)
from .modules import LowRankLinear, SpatialConv2d, Tucker2Conv2d
from .records import FactorizationRecord, replay_factorizations
from .result import DecomposeResult, LayerDecision

__all__ = ["DecomposeConfig", "DecomposeResult", "FACTORIZATIONS", "Factorization",
           "FactorizationRecord", "LayerDecision", "decompose",
           "Fitted", "InputMoments", "LayerShapes", "LowRankLinear", "SpatialConv2d",
           "Tucker2Conv2d", "describe", "factorization", "register_factorization",
           "replay_factorizations"]
