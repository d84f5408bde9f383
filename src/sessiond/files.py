"""Reading and writing the JSON files that hold secrets (keysets, credentials)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import TypeVar

import msgspec

from sessiond.errors import ConfigError

T = TypeVar("T")


def read_json(path: str | os.PathLike[str], kind: type[T], what: str) -> T:
    """Decode ``path`` as ``kind``; any problem is a one-line :class:`ConfigError`."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what}: {exc.strerror}") from None
    try:
        return msgspec.json.decode(data, type=kind)
    except msgspec.MsgspecError as exc:
        raise ConfigError(f"{path}: not a valid {what}: {exc}") from None


def write_json(path: str | os.PathLike[str], value: object, what: str) -> None:
    """Write ``value`` as indented JSON with :func:`write_private`."""
    data = msgspec.json.format(msgspec.json.encode(value), indent=2) + b"\n"
    try:
        write_private(Path(path), data)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write {what}: {exc.strerror}") from None


def write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically and durably by a file of mode 0600 holding ``data``.

    A crash leaves either the old file or the new one, never half of either.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
