"""Constructor arguments of a model spec: ``KEY=VALUE`` text, parsed and checked.

A spec carries them after a ``?``, separated by commas (``torchvision:resnet18?num_classes=10,
dropout=0.2``); on the command line ``--model-arg KEY=VALUE`` (repeatable) adds them, and a
recipe's ``model.args`` mapping does the same. Values are ``true``/``false`` (bool), integers,
floats (``inf`` and ``nan`` too), else strings; quotes (``'10'``) keep a value a string.

Before a model is built, every argument is checked against the keyword parameters its
constructor accepts (:class:`Parameters`): an unknown name is an error that lists them, and a
value whose kind differs from an int/float/bool default is refused.
"""

from __future__ import annotations

import difflib
import inspect
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError

__all__ = ["Args", "Parameters", "Scalar", "format_args", "merge_args", "parse_assignment",
           "parse_query", "parse_value"]

Scalar = bool | int | float | str
#: arguments in the order given, as ``((key, value), ...)`` (hashable, for frozen specs)
Args = tuple[tuple[str, Scalar], ...]

_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|inf|nan)", re.IGNORECASE)
_QUOTES = ("'", '"')


def parse_value(text: str) -> Scalar:
    """``"10"`` → 10, ``"0.5"`` → 0.5, ``"true"`` → True, ``"'10'"`` → ``"10"``, else the
    text."""
    value = text.strip()
    if len(value) >= 2 and value[0] in _QUOTES and value[-1] == value[0]:
        return value[1:-1]
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    if _INT.fullmatch(value):
        return int(value)
    if _FLOAT.fullmatch(value):
        return float(value)
    return value


def format_value(value: Scalar) -> str:
    """The text :func:`parse_value` reads back as ``value``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if parse_value(value) == value and value == value.strip() and not set(value) & set(",?'\""):
        return value
    quote = '"' if "'" in value else "'"
    return f"{quote}{value}{quote}"


def parse_assignment(text: str, *, where: str = "model argument") -> tuple[str, Scalar]:
    """``"num_classes=10"`` → ``("num_classes", 10)``; raise :class:`ConfigError` if malformed."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise ConfigError(f"{where} {text!r} is not KEY=VALUE with a Python name as KEY, "
                          "e.g. num_classes=10")
    return key, parse_value(value)


def _split(query: str) -> list[str]:
    """Split at commas outside quotes."""
    parts: list[str] = []
    current: list[str] = []
    quote = ""
    for char in query:
        if quote:
            quote = "" if char == quote else quote
        elif char in _QUOTES:
            quote = char
        elif char == ",":
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def parse_query(query: str, *, spec: str) -> Args:
    """The arguments after a spec's ``?``: ``"a=1,b=x"`` → ``(("a", 1), ("b", "x"))``."""
    if not query.strip():
        raise ConfigError(f"model spec {spec!r} ends in '?' without arguments; write e.g. "
                          "torchvision:resnet18?num_classes=10")
    pairs = [parse_assignment(part, where=f"argument in model spec {spec!r}:")
             for part in _split(query)]
    return merge_args((), pairs, where=f"model spec {spec!r}")


def merge_args(base: Args, extra: Iterable[tuple[str, Scalar]] | Mapping[str, Scalar], *,
               where: str) -> Args:
    """``base`` plus ``extra``; a key given twice with different values is an error."""
    merged = dict(base)
    items = extra.items() if isinstance(extra, Mapping) else extra
    for key, value in items:
        if key in merged and (merged[key] != value or type(merged[key]) is not type(value)):
            raise ConfigError(f"{where}: argument {key!r} is given twice "
                              f"({format_value(merged[key])} and {format_value(value)}); "
                              "keep one")
        merged[key] = value
    return tuple(merged.items())


def format_args(args: Args) -> str:
    """``(("a", 1), ("b", "x"))`` → ``"a=1,b=x"``."""
    return ",".join(f"{key}={format_value(value)}" for key, value in args)


@dataclass(frozen=True)
class Parameters:
    """The keyword parameters a model constructor accepts: ``names`` in signature order,
    their ``defaults`` (where they have one), and whether it also takes any other name
    (``open``: a ``**kwargs`` that is not forwarded to a known signature)."""

    owner: str
    names: tuple[str, ...]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    open: bool = False

    @classmethod
    def of(cls, owner: str, *functions: Callable[..., Any],
           skip: Iterable[str] = ()) -> Parameters:
        """The keyword parameters of ``functions`` together (a builder and the class it
        forwards ``**kwargs`` to); ``open`` only if the last one takes ``**kwargs`` too."""
        names: dict[str, Any] = {}
        opened = False
        skipped = set(skip)
        for fn in functions:
            try:
                signature = inspect.signature(fn)
            except (TypeError, ValueError):
                opened = True
                continue
            opened = False
            for param in signature.parameters.values():
                if param.kind is param.VAR_KEYWORD:
                    opened = True
                elif param.kind is not param.VAR_POSITIONAL and param.name != "self" \
                        and param.name not in skipped:
                    names.setdefault(param.name, param.default)
        defaults = {k: v for k, v in names.items() if v is not inspect.Parameter.empty}
        return cls(owner, tuple(names), defaults, opened)

    def check(self, args: Args, spec: str) -> None:
        """Raise :class:`ConfigError` for an argument the constructor does not accept, or a
        value of another kind than an int/float/bool default."""
        for key, value in args:
            if key not in self.names:
                if self.open:
                    continue
                close = difflib.get_close_matches(key, self.names, n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                accepted = ", ".join(self.names) or "no arguments"
                raise ConfigError(f"{spec}: unknown argument {key!r}{hint}; {self.owner} "
                                  f"accepts: {accepted}")
            default = self.defaults.get(key)
            expected = _kind(default)
            if expected is not None and not _fits(value, expected):
                raise ConfigError(f"{spec}: argument {key}={format_value(value)} must be "
                                  f"{expected.__name__} (the default is {default!r})")


def _kind(default: Any) -> type | None:
    for kind in (bool, int, float):
        if isinstance(default, kind):
            return kind
    return None


def _fits(value: Scalar, expected: type) -> bool:
    if expected is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    return isinstance(value, int) if expected is int else isinstance(value, (int, float))
