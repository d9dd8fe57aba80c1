"""Pieces the adapters share: reading a write's body exactly, a raw response body as a ReadStream,
per-target deletes for clouds whose batch delete cannot name versions, and a failed delete's outcome from
the adapter's own table of codes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, BinaryIO, Self

from migrator.errors import InputError, MigratorError, StoreError
from migrator.stores.base import DeleteOutcome, DeleteResult, DeleteTarget, ObjectInfo
from migrator.uri import ObjectURI


def read_exactly(body: BinaryIO, n: int, what: str) -> bytes:
    """Exactly ``n`` bytes of ``body``, in as few reads as it allows: a buffered copy's BytesIO then hands
    over its own bytes, uncopied."""
    chunks: list[bytes] = []
    left = n
    while left > 0:
        chunk = body.read(left)
        if not chunk:
            raise InputError(f"{what}: body ended {left} bytes before the declared size {n}")
        chunks.append(chunk if type(chunk) is bytes else bytes(chunk))
        left -= len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def expect_eof(body: BinaryIO, size: int, what: str) -> None:
    if body.read(1):
        raise InputError(f"{what}: body is longer than the declared size {size}")


class RawBodyStream:
    """The raw body of one GET, read without decoding; a body shorter than announced raises a retryable
    error instead of ending quietly."""

    def __init__(self, response: Any, info: ObjectInfo, expected: int | None,
                 translate: Callable[[BaseException, str], MigratorError]) -> None:
        self.info = info
        self._resp = response
        self._raw = response.raw
        self._expected = expected
        self._translate = translate
        self._count = 0
        self._where = str(info.uri)

    def read(self, n: int = -1) -> bytes:
        whole = n is None or n < 0
        try:
            data: bytes = self._raw.read(None if whole else n, decode_content=False)
        except Exception as exc:
            raise self._translate(exc, self._where) from exc
        self._count += len(data)
        at_end = whole or (not data and n != 0)
        if at_end and self._expected is not None and self._count != self._expected:
            raise StoreError(f"short read of {self._where}: {self._count} of {self._expected} bytes",
                             code="IncompleteBody", retryable=True)
        return data

    def close(self) -> None:
        self._resp.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def outcome_of(code: str | None, gone: frozenset[str], changed: frozenset[str]) -> DeleteOutcome:
    """A failed delete's outcome from the cloud's code: ``gone`` codes mean nothing was there, ``changed``
    codes that a precondition failed; anything else is a refusal (never taken as deleted)."""
    if code in gone:
        return DeleteOutcome.ABSENT
    if code in changed:
        return DeleteOutcome.CHANGED
    return DeleteOutcome.REFUSED


def delete_each(targets: Sequence[DeleteTarget], uri_of: Callable[[str], ObjectURI],
                delete: Callable[[ObjectURI, str | None, str | None], None], *,
                gone: frozenset[str], changed: frozenset[str]) -> list[DeleteResult]:
    """One pinned delete per target, each with its own result, in the order given."""
    out: list[DeleteResult] = []
    for target in targets:
        try:
            delete(uri_of(target.key), target.version, target.if_match)
        except (StoreError, InputError) as exc:
            code = exc.code if isinstance(exc, StoreError) else "InvalidTarget"
            out.append(DeleteResult(target, outcome_of(code, gone, changed), code=code, message=str(exc)))
        else:
            out.append(DeleteResult(target, DeleteOutcome.DELETED))
    return out
