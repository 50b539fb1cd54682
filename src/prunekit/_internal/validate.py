"""The checks behind every config's ``__post_init__``, and the plain-data view of a config.

Each check returns the value (as ``int`` / ``float`` / ``tuple`` where it normalises) or
raises :class:`~prunekit.ConfigError` saying what was expected and what was given, e.g.
``"ratio must be a number in [0, 1), got 1.5"``; ``hint`` adds what to do. Booleans are
never accepted as numbers.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Mapping
from typing import Any

from ..errors import ConfigError

__all__ = ["check_bool", "check_choice", "check_fraction", "check_int", "check_names",
           "check_number", "settings_of"]


def _fail(what: str, expected: str, value: Any, hint: str) -> ConfigError:
    return ConfigError(f"{what} must be {expected}, got {value!r}" + (f"; {hint}" if hint else ""))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_int(value: Any, what: str, *, minimum: int | None = None,
              maximum: int | None = None, optional: bool = False, hint: str = "") -> Any:
    """An integer within ``[minimum, maximum]`` (``None`` too when ``optional``)."""
    if optional and value is None:
        return None
    ok = isinstance(value, int) and not isinstance(value, bool)
    if ok and ((minimum is not None and value < minimum)
               or (maximum is not None and value > maximum)):
        ok = False
    if not ok:
        if minimum is not None and maximum is not None:
            expected = f"an integer in [{minimum}, {maximum}]"
        elif minimum is not None:
            expected = f"an integer >= {minimum}"
        else:
            expected = "an integer" if maximum is None else f"an integer <= {maximum}"
        raise _fail(what, expected + (" or None" if optional else ""), value, hint)
    return value


def check_number(value: Any, what: str, *, minimum: float | None = None,
                 above: float | None = None, below: float | None = None,
                 maximum: float | None = None, optional: bool = False,
                 hint: str = "") -> Any:
    """A finite number with the given bounds (``minimum``/``maximum`` inclusive,
    ``above``/``below`` exclusive), returned as ``float`` (``None`` too when ``optional``)."""
    if optional and value is None:
        return None
    ok = _is_number(value) and math.isfinite(value)
    if ok:
        ok = not ((minimum is not None and value < minimum) or
                  (above is not None and value <= above) or
                  (below is not None and value >= below) or
                  (maximum is not None and value > maximum))
    if not ok:
        low = f"[{minimum:g}" if minimum is not None else (f"({above:g}" if above is not None
                                                          else None)
        high = f"{maximum:g}]" if maximum is not None else (f"{below:g})" if below is not None
                                                           else None)
        if low and high:
            expected = f"a number in {low}, {high}"
        elif low:
            expected = f"a finite number {'>=' if low[0] == '[' else '>'} {low[1:]}"
        elif high:
            expected = f"a finite number {'<=' if high[-1] == ']' else '<'} {high[:-1]}"
        else:
            expected = "a finite number"
        raise _fail(what, expected + (" or None" if optional else ""), value, hint)
    return float(value)


def check_fraction(value: Any, what: str, hint: str = "") -> float:
    """A number in ``[0, 1)`` (a ratio or a sparsity)."""
    return check_number(value, what, minimum=0.0, below=1.0, hint=hint)


def check_choice(value: Any, what: str, choices: Collection[Any], hint: str = "") -> Any:
    """One of ``choices``."""
    if value not in choices:
        raise _fail(what, " or ".join(repr(c) for c in choices), value, hint)
    return value


def check_bool(value: Any, what: str) -> bool:
    """``True`` or ``False``."""
    if not isinstance(value, bool):
        raise _fail(what, "True or False", value, "")
    return value


def check_names(value: Any, what: str) -> tuple[str, ...]:
    """A tuple (or list) of strings, e.g. module-name patterns; a lone string is refused."""
    if isinstance(value, str) or not isinstance(value, (tuple, list)) or \
            not all(isinstance(v, str) for v in value):
        raise _fail(what, "a tuple of strings (e.g. module-name patterns)", value, "")
    return tuple(value)


def settings_of(config: Any) -> dict[str, Any]:
    """Plain data (JSON-able) for a config dataclass, field by field.

    Tuples become lists, mappings dicts, nested configs their own settings, classes and
    other objects (an importance criterion instance, a layer type) their class name.
    """
    return {f.name: _plain(getattr(config, f.name)) for f in dataclasses.fields(config)}


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return settings_of(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, type):
        return value.__name__
    return type(value).__name__
