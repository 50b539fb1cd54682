"""Allocate: how much to prune where. Sensitivity curves per group (:mod:`.sensitivity`),
measured latency lookup tables (:mod:`.latency`), per-group ratios for a MACs, parameter or
latency target under a sensitivity model (:mod:`.ratios`), and a search for the largest
reduction within a metric budget (:mod:`.budget`), a uniform ratio made to pay off on a
measured latency table (:mod:`.hardware`), and a MACs target split between removed blocks
and thinned channels, the fastest measured split kept (:mod:`.depth`)."""

from .budget import BudgetSearch, BudgetTrial, search_budget
from .depth import DepthWidthCandidate, DepthWidthChoice, choose_depth_width
from .hardware import HardwareAware, group_return, hardware_aware
from .latency import GroupLatency, LatencyTable, Timer, median_timer, record_calls
from .ratios import Allocation, CostModel, allocate, loss_curve, uniform_sensitivity
from .sensitivity import SensitivityConfig, SensitivityResult, analyze_sensitivity, group_keys

__all__ = ["Allocation", "BudgetSearch", "BudgetTrial", "CostModel", "DepthWidthCandidate",
           "DepthWidthChoice", "GroupLatency",
           "HardwareAware", "LatencyTable", "SensitivityConfig", "SensitivityResult", "Timer",
           "allocate", "analyze_sensitivity", "choose_depth_width", "group_keys", "group_return",
           "hardware_aware",
           "loss_curve", "median_timer", "record_calls", "search_budget", "uniform_sensitivity"]
