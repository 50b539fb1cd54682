"""One exception hierarchy for everything prunekit raises on purpose.

Every message says what was wrong, where (module name, op, file) and what to do.
"""

from __future__ import annotations


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


class PlanError(PrunekitError):
    """A plan cannot be made, read or applied (wrong architecture, bad file)."""


class VerificationError(PrunekitError):
    """The pruned model failed its check (it does not run, or its output shape changed)."""


class QuantizationError(PrunekitError):
    """A model cannot be quantized as asked (no calibration data, an op the quantizer
    cannot take, calibration inputs that do not fit the model)."""
