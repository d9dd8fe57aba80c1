"""The ObjectStore protocol every cloud adapter implements, and the values it speaks in.

Required calls are few (stat, open_read, put, list_versions, delete_version, delete_versions,
list_uploads, abort_upload). Optional behaviour is discovered once into ``Capabilities``; callers
ask it and never catch NotImplementedError.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO, Protocol, runtime_checkable

from migrator.checksum import Checksum
from migrator.uri import ObjectURI


@dataclass(frozen=True)
class Capabilities:
    """What a bucket on a store can do, discovered once."""

    versioning: bool = False             # the bucket keeps versions / generations
    conditional_write: bool = False      # if-none-match: * on put
    conditional_delete: bool = False     # if-match (ETag) or generation precondition on delete
    additional_checksums: bool = False   # the store reports checksums beyond MD5/ETag
    batch_delete: bool = False           # delete_versions is one request per batch
    batch_delete_max: int = 1
    soft_delete: bool = False            # deleted objects stay restorable for a while (GCS)
    soft_delete_seconds: int | None = None  # None = unknown
    retention: bool = False              # the bucket has retention rules / lock configured
    server_side_copy: bool = False


@dataclass(frozen=True)
class ObjectInfo:
    """What the cloud says about one object version."""

    uri: ObjectURI
    size: int
    version: str | None          # S3 VersionId, GCS generation, OCI version id; None when unversioned
    etag: str | None
    checksums: tuple[Checksum, ...] = ()   # every checksum the cloud reports, provenance set by the caller's role
    storage_class: str | None = None
    encryption: str | None = None          # e.g. "AES256", "aws:kms", "SSE-C", "CSEK"; None = plaintext
    content_type: str | None = None
    content_encoding: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    last_modified: datetime | None = None
    is_latest: bool = True
    multipart_parts: int | None = None     # part count when the object was uploaded in parts
    metageneration: str | None = None      # GCS
    extra: Mapping[str, str] = field(default_factory=dict)  # cloud-specific facts (holds, retention, ...)


@dataclass(frozen=True)
class VersionEntry:
    """One row of a version listing: a version or a delete marker."""

    key: str
    version: str | None
    is_delete_marker: bool
    is_latest: bool
    size: int = 0
    etag: str | None = None
    last_modified: datetime | None = None
    storage_class: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)  # holds/retention where the listing says (GCS)


@dataclass(frozen=True)
class UploadInfo:
    key: str
    upload_id: str
    initiated: datetime | None = None


@dataclass(frozen=True)
class PutRequest:
    """How to write: metadata to keep and the conditions of the write."""

    size: int
    content_type: str | None = None
    content_encoding: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    if_none_match: bool = True   # never overwrite a different object
    if_match: str | None = None  # overwrite only this exact current object (a further version of our own)
    if_match_version: str | None = None  # the same object's version or generation (GCS conditions on it)
    # Digests of the whole body, computed over the very bytes being sent (a buffered copy hashed as it was
    # read), so a one-request write need not hash them again. The destination still checks them.
    body_digests: tuple[Checksum, ...] = ()


@dataclass(frozen=True)
class PutResult:
    """What the destination reports about the bytes it stored."""

    version: str | None
    etag: str | None
    checksums: tuple[Checksum, ...]
    size: int
    parts: int | None = None


@dataclass(frozen=True)
class DeleteTarget:
    """One pinned delete: a version id/generation, or an ETag precondition on an unversioned object."""

    key: str
    version: str | None
    if_match: str | None = None
    bypass_governance: bool = False   # S3 Object Lock GOVERNANCE, only under an explicit wave policy


@dataclass(frozen=True)
class DeleteResult:
    target: DeleteTarget
    ok: bool
    code: str | None = None       # cloud's error code when not ok
    message: str | None = None


@runtime_checkable
class PartSizeReporter(Protocol):
    """Stores that can say the part sizes of a multipart object (S3 HEAD with PartNumber)."""

    def part_sizes(self, uri: ObjectURI, version: str | None, parts: int) -> list[int]: ...


@runtime_checkable
class ReplicationReporter(Protocol):
    """Stores whose buckets can replicate elsewhere by configuration (S3 CRR/SRR, OCI replication policies)."""

    def replication_targets(self, bucket: str) -> list[str]:
        """Locations (``s3://bucket``, ``oci://namespace/bucket``) this bucket replicates to."""
        ...


@runtime_checkable
class SoftDeleteLister(Protocol):
    """Stores that keep deleted objects restorable for a while (GCS soft delete)."""

    def list_soft_deleted(self, bucket: str, prefix: str) -> Iterator[VersionEntry]: ...


class ReadStream(Protocol):
    """A streaming read: ``info`` is what the GET response said; ``read(n)`` returns up to n bytes."""

    info: ObjectInfo

    def read(self, n: int = -1) -> bytes: ...

    def close(self) -> None: ...


@runtime_checkable
class ObjectStore(Protocol):
    scheme: str

    def capabilities(self, bucket: str) -> Capabilities: ...

    def stat(self, uri: ObjectURI, version: str | None = None) -> ObjectInfo: ...

    def open_read(self, uri: ObjectURI, version: str | None = None,
                  byte_range: tuple[int, int] | None = None) -> ReadStream:
        """Stream the raw stored bytes (no decompression). ``byte_range`` is inclusive (first, last)."""
        ...

    def put(self, uri: ObjectURI, body: BinaryIO, request: PutRequest) -> PutResult:
        """Stream ``request.size`` bytes from ``body``. Multipart above the store's threshold, parts
        overlapped, memory bounded by part size x parts in flight. Raises PreconditionFailed when
        ``if_none_match`` and an object already exists."""
        ...

    def list_versions(self, bucket: str, prefix: str, start: str | None = None) -> Iterator[VersionEntry]:
        """Every version and delete marker under ``prefix``, keys in the cloud's (UTF-8 byte) order, oldest
        first within a key. ``start``: begin at this key (inclusive) or the first key after it; a store may
        return earlier keys too, which callers skip. Pages are fetched lazily, so a caller may stop early."""
        ...

    def delete_version(self, uri: ObjectURI, version: str | None, *, if_match: str | None = None) -> None: ...

    def delete_versions(self, bucket: str, targets: Sequence[DeleteTarget]) -> list[DeleteResult]: ...

    def list_uploads(self, bucket: str, prefix: str) -> Iterator[UploadInfo]: ...

    def abort_upload(self, bucket: str, key: str, upload_id: str) -> None: ...
