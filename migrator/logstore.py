"""Where an attestation log lives: the back-ends of ``attest.tlog.LogStorage``.

- ``DirectoryLog``: a local folder. Entries are created exclusively (an existing one is never written
  through), the checkpoint is replaced atomically (``files.py``), and appends by this host are serialised
  with an flock on ``.lock``.
- ``ObjectStoreLog``: a prefix of a bucket, ``oci://namespace/bucket[/prefix]``. Entries are put with
  if-none-match: *, so two writers racing for one sequence number cannot both succeed; there is no lock.

The log's format and verifier stay in attest/, which reaches a log only through the port; this module is
the one that knows about stores.
"""

from __future__ import annotations

import fcntl
import io
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

from migrator.attest.tlog import LogStorage
from migrator.errors import InputError, NotFound, PreconditionFailed, StateError
from migrator.files import create_exclusive, replace_atomically
from migrator.stores.base import ObjectStore, PutRequest
from migrator.uri import ObjectURI


class DirectoryLog:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def describe(self) -> str:
        return str(self.path)

    def read(self, name: str) -> bytes | None:
        try:
            return (self.path / name).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"cannot read {self.path / name}: {exc.strerror}") from None

    def create(self, name: str, data: bytes) -> None:
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            create_exclusive(target, data, mode=0o644)
        except FileExistsError:
            raise StateError(f"{target} exists already; log entries are never replaced") from None

    def replace(self, name: str, data: bytes) -> None:
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        replace_atomically(target, data)

    def names(self, prefix: str) -> list[str]:
        folder = self.path / prefix
        if not folder.is_dir():
            return []
        return sorted(prefix + p.name for p in folder.iterdir() if p.is_file())

    @contextmanager
    def lock(self) -> Iterator[None]:
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / ".lock", "a+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


class ObjectStoreLog:
    """A log under a prefix of a bucket. Entries are written with if-none-match: *, so two writers racing
    for the same sequence number cannot both succeed (the loser's append fails; nothing is overwritten)."""

    def __init__(self, store: ObjectStore, location: ObjectURI) -> None:
        self.store = store
        self.location = location  # key = the prefix ("" for the bucket's root)

    def _uri(self, name: str) -> ObjectURI:
        prefix = self.location.key.rstrip("/")
        key = f"{prefix}/{name}" if prefix else name
        return ObjectURI(self.location.scheme, self.location.bucket, key, self.location.namespace)

    def describe(self) -> str:
        return str(self.location)

    def read(self, name: str) -> bytes | None:
        try:
            stream = self.store.open_read(self._uri(name))
        except NotFound:
            return None
        try:
            chunks = []
            while chunk := stream.read(1 << 20):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            stream.close()

    def create(self, name: str, data: bytes) -> None:
        try:
            self.store.put(self._uri(name), io.BytesIO(data), PutRequest(size=len(data), if_none_match=True))
        except PreconditionFailed:
            raise StateError(f"{self._uri(name)} exists already; log entries are never replaced") from None

    def replace(self, name: str, data: bytes) -> None:
        self.store.put(self._uri(name), io.BytesIO(data), PutRequest(size=len(data), if_none_match=False))

    def names(self, prefix: str) -> list[str]:
        base = self._uri(prefix).key
        strip = len(base) - len(prefix)
        out = {e.key[strip:] for e in self.store.list_versions(self.location.bucket, base)
               if e.is_latest and not e.is_delete_marker}
        return sorted(n for n in out if "/" not in n[len(prefix):])

    def lock(self) -> AbstractContextManager[None]:
        return nullcontext()


def parse_location(loc: str) -> ObjectURI:
    """``oci://namespace/bucket[/prefix]`` (the prefix may be empty)."""
    scheme, sep, rest = loc.partition("://")
    if not sep or scheme != "oci":
        raise InputError(f"a log in a bucket is named oci://namespace/bucket[/prefix], not {loc!r}")
    parts = rest.split("/", 2)
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise InputError(f"a log in a bucket is named oci://namespace/bucket[/prefix], not {loc!r}")
    return ObjectURI("oci", parts[1], parts[2] if len(parts) == 3 else "", parts[0])


def open_log(loc: Path | str, store: ObjectStore | None = None) -> LogStorage:
    """A log from a directory path, or from an ``oci://`` location with the OCI store that reaches it."""
    if isinstance(loc, str) and "://" in loc:
        location = parse_location(loc)
        if store is None:
            raise InputError(f"{loc}: a log in a bucket needs the OCI store to reach it")
        return ObjectStoreLog(store, location)
    return DirectoryLog(loc)
