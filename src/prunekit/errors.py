"""One exception hierarchy for everything prunekit raises on purpose.

Every message says what was wrong, where (module name, op, file) and what to do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models.weights import Misfit


class PrunekitError(Exception):
    """Base class of every error prunekit raises deliberately."""


class ConfigError(PrunekitError, ValueError):
    """A setting is out of range, unknown or inconsistent."""


class TraceError(PrunekitError):
    """The model could not be run on the example inputs to record its graph."""

    def __init__(self, message: str, node_index: int | None = None, partial: object = None) -> None:
        super().__init__(message)
        self.node_index = node_index  # index of the op that failed, when known
        self.partial = partial  # the trace recorded up to the failure


class UnsupportedOpError(PrunekitError):
    """Pruning was requested through an op or module the rules do not know."""


class UnreadableOpError(UnsupportedOpError, ValueError):
    """A rule or handler cannot read one recorded op or module call (an argument it needs is
    missing or of another kind); the dependency graph then blocks that op's tensors."""


class PlanError(PrunekitError):
    """A plan cannot be made, read or applied (wrong architecture, bad file)."""


class VerificationError(PrunekitError):
    """The pruned model failed its check (it does not run, or its output shape changed)."""


class RecipeError(ConfigError):
    """A recipe is unreadable, has an unknown key, or a value of the wrong kind."""


class ModelLoadError(PrunekitError):
    """A model could not be built or its weights read (spec, factory, file, folder)."""


class UntrustedPickleError(ModelLoadError):
    """A file needs unpickling (which can run arbitrary code) and was not trusted."""


class WeightsMisfitError(ModelLoadError):
    """Weights that do not fit the model: ``misfit`` says how (a
    :class:`prunekit.models.weights.Misfit`), ``source`` names the file and ``classes`` is
    the model's class count, when known."""

    def __init__(self, message: str, misfit: Misfit, source: str,
                 classes: int | None = None) -> None:
        super().__init__(message)
        self.misfit = misfit
        self.source = source
        self.classes = classes


class ModelInputError(PrunekitError):
    """A model does not run on the data it is given, or its outputs do not fit the task."""


class MetricError(PrunekitError):
    """The task metric failed, or returned something other than a finite number."""


class NumericalError(PrunekitError):
    """A solver met a system it cannot solve (not positive definite, degenerate or
    non-finite): raise the damping or check the calibration data."""


class DeviceMemoryError(PrunekitError, MemoryError):
    """The device ran out of memory; the message says which setting to lower."""


class BudgetError(PrunekitError):
    """No pruning step kept the metric within the budget."""


class ExportError(PrunekitError):
    """Exporting a model failed, or the exported model disagrees with PyTorch."""


class ReportError(PrunekitError):
    """A report file is missing, unreadable, or does not follow the schema."""


class QuantizationError(PrunekitError):
    """A model cannot be quantized as asked (no calibration data, an op the quantizer
    cannot take, calibration inputs that do not fit the model)."""
