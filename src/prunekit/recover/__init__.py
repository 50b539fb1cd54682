"""Recovery and automation: sensitivity analysis, automatic per-group ratios for a MACs or
parameter target or a metric budget, iterate-until-target with atomic checkpoints, and
multi-process (DDP) fine-tuning. Plots import matplotlib only when drawn."""

from .allocate import Allocation, CostModel, allocate
from .budget import BudgetSearch, BudgetTrial, search_budget
from .compose import compose_plans
from .distributed import (
                          DistributedConfig,
                          DistributedResult,
                          finetune_on_rank,
                          spawn_finetune,
                          weights_digest,
)
from .iterate import IterativeConfig, IterativeResult, StepRecord, iterative_prune
from .plots import save_sensitivity_plot, sensitivity_png
from .sensitivity import SensitivityConfig, SensitivityResult, analyze_sensitivity

__all__ = ["Allocation", "BudgetSearch", "BudgetTrial", "CostModel", "DistributedConfig",
           "DistributedResult", "IterativeConfig", "IterativeResult", "SensitivityConfig",
           "SensitivityResult", "StepRecord", "allocate", "analyze_sensitivity",
           "compose_plans", "finetune_on_rank", "iterative_prune", "save_sensitivity_plot",
           "search_budget", "sensitivity_png", "spawn_finetune", "weights_digest"]
