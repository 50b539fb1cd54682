"""Recovery and automation: layer-wise reconstruction without training, iterate-until-target
with atomic checkpoints, plan composition and multi-process (DDP) fine-tuning. Plots import
matplotlib only when drawn. The allocation names (sensitivity, latency tables, per-group
ratios, budget search) live in :mod:`prunekit.allocate` and are re-exported here."""

# the allocation names keep their import path here (they live in prunekit.allocate)
from ..allocate import (Allocation, BudgetSearch, BudgetTrial, CostModel, DepthWidthChoice,
                        GroupLatency, choose_depth_width,
                        HardwareAware, group_return, hardware_aware,
                        LatencyTable, SensitivityConfig, SensitivityResult, allocate,
                        analyze_sensitivity, median_timer, search_budget, uniform_sensitivity)
from ..plan.compose import compose_plans
from .distributed import (
                          DistributedConfig,
                          DistributedResult,
                          finetune_on_rank,
                          spawn_finetune,
                          weights_digest,
)
from .iterate import IterativeConfig, IterativeResult, StepRecord, iterative_prune
from .plots import save_sensitivity_plot, sensitivity_png
from .reconstruct import LayerFit, ReconstructResult, reconstruct

__all__ = ["Allocation", "BudgetSearch", "BudgetTrial", "CostModel", "DepthWidthChoice",
           "DistributedConfig",
           "DistributedResult", "GroupLatency", "HardwareAware", "IterativeConfig", "IterativeResult",
           "LatencyTable", "LayerFit", "ReconstructResult", "SensitivityConfig",
           "SensitivityResult", "StepRecord", "allocate",
           "analyze_sensitivity", "choose_depth_width", "compose_plans", "finetune_on_rank", "group_return",
           "hardware_aware", "iterative_prune",
           "median_timer", "reconstruct", "save_sensitivity_plot", "search_budget", "sensitivity_png",
           "spawn_finetune", "uniform_sensitivity", "weights_digest"]
