"""Stream one object version from a store to another, hashing every byte once on the way.

Byte caps (``migrator.limits``): a copy's reads take byte tokens from the bytes gates of both its stores
(each location's bucket and the wave's, the wave's once), an independent read (``sha256_of``) from its
store's. Tokens are paid before the bytes are read, in acquires of at most ``READ_PIECE`` (1 MiB), and
the read itself stays one call of the caller's size: splitting it would cost a join, that is a copy of
a buffered object (see ``_read_exactly``).
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from migrator.checksum import Algorithm, Checksum, MultiHasher
from migrator.errors import ChecksumError, SourceChanged
from migrator.limits import Gate, Limiter, acquire_in_pieces
from migrator.stores.base import ObjectInfo, ObjectStore, PutRequest, PutResult, ReadStream
from migrator.uri import ObjectURI

READ_CHUNK = 1024 * 1024
META_SOURCE = "migrator-source"
META_SOURCE_VERSION = "migrator-source-version"
META_SHA256 = "migrator-sha256"


class BufferBudget:
    """Bytes that copies may hold in memory at once, shared by every worker of a wave.

    An object the destination takes in one request is read whole before it is written (so the write
    carries its digests and the destination's metadata its SHA-256). Without a budget, sixteen workers
    on 64 MiB objects would hold a gigabyte; with it, workers wait for room and memory stays flat.
    ``total`` is the wave's ``TransferSettings.buffer_memory`` (its docstring has the whole memory formula).
    """

    def __init__(self, total: int) -> None:
        self.total = total
        self._free = total
        self._cond = threading.Condition()

    @contextmanager
    def hold(self, size: int) -> Iterator[None]:
        want = min(size, self.total)   # an object larger than the budget goes alone
        with self._cond:
            self._cond.wait_for(lambda: self._free >= want)
            self._free -= want
        try:
            yield
        finally:
            with self._cond:
                self._free += want
                self._cond.notify_all()


class ByteMeter:
    """Byte tokens for a stream's reads, paid before each read for the bytes it can return (at most what is
    left of the object), in acquires of at most ``READ_PIECE``. A short read leaves tokens paid, which count
    toward the next read; bytes beyond the announced size (an error the reader reports) are paid for after.
    So no byte is read unpaid, and no more is paid than is read plus one read's worth."""

    def __init__(self, limiter: Limiter) -> None:
        self._limiter = limiter
        self._paid = 0

    def before(self, n: int) -> None:
        need = n - self._paid
        if need > 0:
            acquire_in_pieces(self._limiter, need)
            self._paid += need

    def after(self, got: int) -> None:
        self._paid -= got
        if self._paid < 0:
            acquire_in_pieces(self._limiter, -self._paid)
            self._paid = 0


def _meter(gate: Gate) -> ByteMeter | None:
    return ByteMeter(gate) if gate else None


class HashingReader:
    """A file-like view of a ReadStream that feeds every byte read to a MultiHasher, and pays ``meter`` (a
    byte cap; None: none) for the bytes before reading them."""

    def __init__(self, stream: ReadStream, hasher: MultiHasher, expected_size: int,
                 meter: ByteMeter | None = None, check: Callable[[], None] | None = None) -> None:
        self._stream = stream
        self._check = check
        self._hasher = hasher
        self._expected = expected_size
        self._meter = meter
        self.bytes_read = 0

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = max(self._expected - self.bytes_read, 0) or READ_CHUNK
        if self._check is not None:
            self._check()   # a stop asked for: raised here, the store aborts the upload this read feeds
        if self._meter is not None:
            self._meter.before(min(n, max(self._expected - self.bytes_read, 0)))
        data = self._stream.read(n)
        if data:
            self._hasher.update(data)
            self.bytes_read += len(data)
            if self._meter is not None:
                self._meter.after(len(data))
        return data

    def readable(self) -> bool:
        return True


@dataclass(frozen=True)
class CopyOutcome:
    source: ObjectInfo           # what the GET response said about the bytes read
    computed: tuple[Checksum, ...]
    put: PutResult


def copy_version(src: ObjectStore, src_uri: ObjectURI, version: str | None, dst: ObjectStore,
                 dst_uri: ObjectURI, *, expected_size: int, expected_etag: str | None = None,
                 overwrite_etag: str | None = None, overwrite_version: str | None = None,
                 budget: BufferBudget, check: Callable[[], None] | None = None) -> CopyOutcome:
    """Copy the pinned source version to the destination.

    The write never overwrites a different object: it uses if-none-match: * (``overwrite_etag`` is only
    for writing a further version over this wave's own verified previous version, with if-match).
    Objects the destination takes in one request are read whole first, within the shared ``budget``, so
    the write carries digests hashed once and the destination's metadata their SHA-256; larger ones
    stream through a multipart upload and carry the SHA-256 only when the source reports it. ``check`` is
    called before every read of the source (a stop raises there).
    """
    limit = dst.features.one_request_limit
    buffered = expected_size <= (limit if limit is not None else 0)
    with budget.hold(expected_size) if buffered else nullcontext():
        return _copy(src, src_uri, version, dst, dst_uri, expected_size=expected_size, expected_etag=expected_etag,
                     overwrite_etag=overwrite_etag, overwrite_version=overwrite_version, buffered=buffered,
                     check=check)


def _copy(src: ObjectStore, src_uri: ObjectURI, version: str | None, dst: ObjectStore, dst_uri: ObjectURI, *,
          expected_size: int, expected_etag: str | None, overwrite_etag: str | None,
          overwrite_version: str | None, buffered: bool, check: Callable[[], None] | None) -> CopyOutcome:
    stream = src.open_read(src_uri, version)
    try:
        info = stream.info
        if version is not None and info.version is not None and info.version != version:
            raise SourceChanged(f"{src_uri}: read returned version {info.version}, asked for {version}")
        if info.size != expected_size:
            raise SourceChanged(f"{src_uri}: size changed between listing ({expected_size}) and read ({info.size})")
        # A version id pins the bytes by itself; an unversioned object is pinned by its ETag.
        if version is None and expected_etag is not None and info.etag != expected_etag:
            raise SourceChanged(f"{src_uri}: ETag {info.etag} != listed {expected_etag}")
        part_sizes = None
        sizes_of = src.features.part_sizes
        if info.multipart_parts and sizes_of is not None and any(
                c.algorithm == Algorithm.MULTIPART_MD5 for c in info.checksums):
            part_sizes = sizes_of(src_uri, info.version, info.multipart_parts)
        crc64 = any(c.algorithm == Algorithm.CRC64NVME for c in info.checksums)
        hasher = MultiHasher(crc64nvme=crc64, part_sizes=part_sizes)
        metadata: dict[str, str] = dict(user_metadata(info))
        # Metadata travels in HTTP headers, which carry ASCII only: the URI is percent-encoded (RFC 3986).
        metadata[META_SOURCE] = quote(str(src_uri), safe="/:")
        metadata[META_SOURCE_VERSION] = info.version or ""
        # Bytes read are bytes written: a copy counts against both locations' byte caps, and the wave's once.
        reader = HashingReader(stream, hasher, info.size, _meter(Gate.join(src.limits.bytes, dst.limits.bytes)),
                               check)
        body: Any = reader
        known: tuple[Checksum, ...] = ()
        if buffered:
            data = _read_exactly(reader, info.size, src_uri)
            known = tuple(c for c in hasher.digests() if c.is_whole_object)
            metadata[META_SHA256] = next(c.hex for c in known if c.algorithm == Algorithm.SHA256)
            body = io.BytesIO(data)
        else:
            sha = next((c for c in info.checksums if c.algorithm == Algorithm.SHA256 and c.is_whole_object), None)
            if sha is not None:
                metadata[META_SHA256] = sha.hex
        request = PutRequest(size=info.size, content_type=info.content_type,
                             content_encoding=info.content_encoding, metadata=metadata,
                             if_none_match=overwrite_etag is None, if_match=overwrite_etag,
                             if_match_version=overwrite_version, body_digests=known)
        put = dst.put(dst_uri, body, request)
        if reader.bytes_read != info.size:
            raise ChecksumError(f"{src_uri}: read {reader.bytes_read} bytes, the source said {info.size}")
    finally:
        stream.close()
    return CopyOutcome(source=info, computed=tuple(hasher.digests()), put=put)


def _read_exactly(reader: HashingReader, size: int, uri: ObjectURI) -> bytes:
    chunks = []
    left = size
    while left > 0:
        chunk = reader.read(left)   # as few pieces as the stream allows: joining them is a copy
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    if left or reader.read(1):
        raise ChecksumError(f"{uri}: the read did not return exactly {size} bytes")
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def sha256_of(store: ObjectStore, uri: ObjectURI, version: str | None) -> tuple[Checksum, int]:
    """An independent read's SHA-256 (evidence tier 4, replica checks)."""
    hasher = MultiHasher()
    meter = _meter(store.limits.bytes)
    stream = store.open_read(uri, version)
    try:
        while True:
            if meter is not None:
                meter.before(min(READ_CHUNK, max(stream.info.size - hasher.size, 0)))
            data = stream.read(READ_CHUNK)
            if not data:
                break
            hasher.update(data)
            if meter is not None:
                meter.after(len(data))
    finally:
        stream.close()
    sha = next(c for c in hasher.digests() if c.algorithm == Algorithm.SHA256)
    return sha, hasher.size


def user_metadata(info: ObjectInfo) -> Mapping[str, str]:
    """The source's user metadata, kept; a non-ASCII value (GCS allows UTF-8) is percent-encoded because
    S3 and OCI metadata travel in HTTP headers."""
    return {k: v if v.isascii() else quote(v, safe="") for k, v in info.metadata.items()
            if not k.startswith("migrator-")}
