"""A whole pruning run (model + data → prune → fine-tune → measure → files), its settings,
and YAML recipes that map one-to-one onto those settings. ``yaml`` is imported only when a
recipe is read."""

from .config import DataSource, ModelSource, OutputConfig, RunConfig
from .pipeline import RunResult, run_pruning

__all__ = ["DataSource", "ModelSource", "OutputConfig", "RunConfig", "RunResult",
           "run_pruning"]
