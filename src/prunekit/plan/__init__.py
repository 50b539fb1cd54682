"""Plan: the decision of what goes, as plain data.

- :mod:`.config` — :class:`PruneConfig`, the validated settings of a run;
- :mod:`.selection` — which units go, from scores, a target and constraints (local/global
  scopes, rounding, predicted MACs and parameters) and the plan built from them;
- :mod:`.document` — :class:`Plan` itself: tensor names, dims and indices, saved as JSON;
- :mod:`.verify` — a plan checked on a shape-only copy before it touches the model;
- :mod:`.compose` — a chain of plans as one plan against the first architecture.

This package exports the plan document and the config; the selection and verification
stages are imported from their modules (or from :mod:`prunekit`).
"""

from .compose import compose_plans
from .config import PruneConfig
from .document import GroupDecision, Plan, architecture_fingerprint

__all__ = ["GroupDecision", "Plan", "PruneConfig", "architecture_fingerprint", "compose_plans"]
