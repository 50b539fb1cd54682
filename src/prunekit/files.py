"""Crash-safe file writes: a temporary file in the target's folder, then one rename; and JSON
documents read back with an error that names the file.

A reader sees the old file or the new one, never half of one; a failed write leaves no
temporary file behind. New files get the usual permissions (0666 less the umask).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from .errors import PlanError, PrunekitError

if TYPE_CHECKING:
    import torch


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a fresh temporary path next to ``path``; on success it replaces ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (flushed to disk before the rename)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


@contextmanager
def atomic_directory(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a fresh temporary folder next to ``path``; on success it becomes ``path``.

    ``path`` must not exist or be an empty folder. On failure the temporary folder is
    removed and ``path`` is left as it was.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    tmp.mkdir()
    try:
        yield tmp
        if target.exists():
            target.rmdir()  # empty by contract; a non-empty folder raises and is kept
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_json(path: str | os.PathLike[str], data: Any) -> Path:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(data, indent=1))
    return Path(path)


def read_json(path: str | os.PathLike[str], what: str,
              error: type[PrunekitError] = PlanError) -> Any:
    """The JSON document at ``path``; a missing or unparsable file raises ``error`` naming
    ``what`` (e.g. ``"plan file"``) and the path."""
    target = Path(path)
    try:
        return json.loads(target.read_text())
    except FileNotFoundError:
        raise error(f"{what} {str(target)!r} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{what} {str(target)!r} is not valid JSON: {exc}") from None


def read_safetensors_document(path: str | os.PathLike[str], what: str, fmt: str, version: str
                              ) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file whose metadata names ``fmt`` and
    ``version`` (a prunekit state file); anything else raises :class:`PlanError` naming
    ``what`` (e.g. ``"optimizer state"``) and the path."""
    from safetensors import SafetensorError, safe_open

    where = repr(str(path))
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            if metadata.get("format") != fmt or metadata.get("version") != version:
                raise PlanError(f"{where} is not a prunekit {what} of version {version} "
                                f"(format {metadata.get('format')!r}, version "
                                f"{metadata.get('version')!r})")
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except FileNotFoundError:
        raise PlanError(f"no {what} at {where}") from None
    except SafetensorError as exc:
        raise PlanError(f"{where} is not a valid safetensors file: {exc}") from None
    return tensors, metadata


D = TypeVar("D", bound="JsonDocument")


class JsonDocument:
    """``save`` / ``load`` for a plain-data class with ``to_dict`` and ``from_dict``: one JSON
    file, written atomically, read back with an error that names it."""

    #: what the file is, in error messages
    document: ClassVar[str] = "JSON file"

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_dict(cls: type[D], data: Any) -> D:
        raise NotImplementedError

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the document as JSON atomically (temporary file, then rename)."""
        return write_json(path, self.to_dict())

    @classmethod
    def load(cls: type[D], path: str | os.PathLike[str]) -> D:
        """Read a document written by :meth:`save`."""
        return cls.from_dict(read_json(path, cls.document))
