"""Writing and reading local files: the one place that knows how to make a write survive a crash.

- ``replace_atomically(path, data)``: the bytes go to a new temporary file beside ``path``, are fsynced,
  renamed over ``path`` with ``os.replace``, and the folder is fsynced so that the rename survives a power
  cut too. A reader (or a crash) sees the old file or the new one, never a torn one; a failed write
  removes its temporary file. ``data`` is bytes or a writer called with the open file. The temporary
  name is unique (``<name>.<random>.tmp``), so writers without a lock never share one; a kill -9 may
  leave one behind, which nothing reads.
- ``create_exclusive(path, data)``: O_CREAT|O_EXCL|O_NOFOLLOW, so an existing file or symlink is never
  written through; FileExistsError says so. Then fsync of the file and of the folder.
- Both create the file with its final ``mode`` from the start (0600 for keys: never readable by others,
  not even briefly); as with ``open``, the umask may only take permissions away. Other OS errors become an
  InputError naming the file.
- ``read_input(data, what)``: bytes as they are, or a path's bytes; ``open_input(path, what)``: the open
  file. A path that cannot be read is an InputError naming the file and ``what`` it was to be.

Imports only errors: attest/ and the CLI use it alike.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from migrator.errors import InputError

Writer = Callable[[BinaryIO], object]
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def read_input(data: bytes | Path, what: str = "file") -> bytes:
    if isinstance(data, bytes | bytearray):
        return bytes(data)
    try:
        return Path(data).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {what}: {exc.strerror}", file=str(data)) from None


def open_input(path: Path, what: str = "file") -> BinaryIO:
    try:
        return open(path, "rb")
    except OSError as exc:
        raise InputError(f"cannot read {what}: {exc.strerror}", file=str(path)) from None


def create_exclusive(path: Path, data: bytes | Writer, *, mode: int = 0o666) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, mode)
    except FileExistsError:
        raise
    except OSError as exc:
        raise InputError(f"cannot create {path}: {exc.strerror}", file=str(path)) from None
    try:
        _write(fd, data)
    except BaseException as exc:
        Path(path).unlink(missing_ok=True)   # a half-written file would block the next try
        if isinstance(exc, OSError):
            raise InputError(f"cannot write {path}: {exc.strerror}", file=str(path)) from None
        raise
    _sync_folder(Path(path).parent)


def replace_atomically(path: Path, data: bytes | Writer, *, mode: int = 0o666) -> None:
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{secrets.token_hex(4)}.tmp")   # unique: writers never share one
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, mode)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror}", file=str(path)) from None
    try:
        _write(fd, data)
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise InputError(f"cannot write {path}: {exc.strerror}", file=str(path)) from None
        raise
    _sync_folder(path.parent)


def _write(fd: int, data: bytes | Writer) -> None:
    with os.fdopen(fd, "wb") as fh:
        if isinstance(data, bytes | bytearray):
            fh.write(data)
        else:
            data(fh)
        fh.flush()
        os.fsync(fh.fileno())


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
