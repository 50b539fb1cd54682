"""Recovery and automation: sensitivity analysis, latency lookup tables, automatic per-group
ratios for a MACs, parameter or latency target or a metric budget, layer-wise reconstruction
without training, iterate-until-target with
atomic checkpoints, and multi-process (DDP) fine-tuning. Plots import matplotlib only when
drawn."""

from .allocate import Allocation, CostModel, allocate, uniform_sensitivity
from .budget import BudgetSearch, BudgetTrial, search_budget
from .compose import compose_plans
from .distributed import (
                          DistributedConfig,
                          DistributedResult,
                          finetune_on_rank,
                          spawn_finetune,
                          weights_digest,
)
from .hardware import HardwareAware, group_return, hardware_aware
from .iterate import IterativeConfig, IterativeResult, StepRecord, iterative_prune
from .latency import GroupLatency, LatencyTable, median_timer
from .plots import save_sensitivity_plot, sensitivity_png
from .reconstruct import LayerFit, ReconstructResult, reconstruct
from .sensitivity import SensitivityConfig, SensitivityResult, analyze_sensitivity

__all__ = ["Allocation", "BudgetSearch", "BudgetTrial", "CostModel", "DistributedConfig",
           "DistributedResult", "GroupLatency", "HardwareAware", "IterativeConfig", "IterativeResult",
           "LatencyTable", "LayerFit", "ReconstructResult", "SensitivityConfig",
           "SensitivityResult", "StepRecord", "allocate",
           "analyze_sensitivity", "compose_plans", "finetune_on_rank", "group_return",
           "hardware_aware", "iterative_prune",
           "median_timer", "reconstruct", "save_sensitivity_plot", "search_budget", "sensitivity_png",
           "spawn_finetune", "uniform_sensitivity", "weights_digest"]
