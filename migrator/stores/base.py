"""The ObjectStore protocol every cloud adapter implements, and the values it speaks in.

Rules of the boundary:
- Required calls are few (stat, open_read, put, list_versions, delete_version, delete_versions, bucket_facts),
  and none is a no-op: a store that cannot do something leaves it out of its ``Features``.
- Object calls take an ``ObjectURI``; bucket-level calls (and feature ports) take a ``Location``, the whole
  bucket address (OCI's namespace included), never a bare bucket name. A store refuses, with InputError, a
  URI or location of another scheme than its own.
- Optional behaviour is discovered once per store into ``Features`` (rclone's ``Features.Fill``): absent
  features are None, and callers test ``store.features.x is not None``; they never catch NotImplementedError
  nor probe types with ``isinstance``.
- What a bucket is set to (versioning, retention, soft delete) is a ``BucketFacts``, read when asked and
  never cached by the store: settings can change during a wave, so callers read them again before deleting.
- Adapters report in migrator's terms, not their cloud's: a delete answers a ``DeleteOutcome``; locks, holds
  and retention come as one ``Protection``; an unversioned object has ``version=None`` (S3's "null" version id
  never leaves the S3 adapter). Cloud fields stay available in ``extra`` as raw evidence for the records.
- A store carries the ``StoreLimits`` of its location (``migrator.limits``; ``NO_LIMITS`` when uncapped): a
  cloud adapter takes one request token per HTTP request it sends, at its HTTP layer; the bytes gate is
  for the callers that read object bytes (``migrator.transfer``), which know both ends of a copy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import BinaryIO, Protocol, runtime_checkable

from migrator.checksum import Checksum
from migrator.limits import StoreLimits
from migrator.records import Reason
from migrator.uri import Location, ObjectURI

# A retention date that could not be read counts as this one: still retained (fail closed).
FOREVER = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Protection:
    """What stops one version from being deleted now, as its store reported it.

    Each field is one mechanism; a store fills those it has and leaves the rest at "none". A retention date
    the store sent but that could not be parsed is ``FOREVER``. ``blocking_reason`` names the first that
    applies, in a fixed order, in the words operators know from their cloud's console.
    """

    legal_hold: bool = False                       # S3 Object Lock legal hold: until someone removes it
    retention_mode: str | None = None              # S3 Object Lock: "GOVERNANCE" or "COMPLIANCE"
    retain_until: datetime | None = None           # S3 Object Lock: applies while in the future, with a mode
    temporary_hold: bool = False                   # GCS temporary hold
    event_based_hold: bool = False                 # GCS event-based hold
    object_retain_until: datetime | None = None    # GCS object retention (retention.retainUntilTime)
    bucket_retain_until: datetime | None = None    # GCS bucket retention policy, as of this object
    replication_pending: bool = False              # S3 replication not done yet: the replica does not exist

    def under_governance(self, now: datetime | None = None) -> bool:
        """S3 Object Lock GOVERNANCE retention in force: the one lock a wave policy may bypass."""
        return (str(self.retention_mode or "").upper() == "GOVERNANCE"
                and _in_future(self.retain_until, now))

    def blocking_reason(self, now: datetime | None = None, *, bypass_governance: bool = False) -> Reason | None:
        """Why the version cannot be deleted now; None when nothing blocks. With ``bypass_governance``, a
        GOVERNANCE retention does not block (a legal hold, COMPLIANCE or anything else still does). A
        retention mode other than GOVERNANCE counts as COMPLIANCE: nothing may bypass it."""
        if self.legal_hold:
            return Reason.S3_LEGAL_HOLD
        if self.retention_mode and _in_future(self.retain_until, now):
            if not self.under_governance(now):
                return Reason.S3_COMPLIANCE_RETENTION
            if not bypass_governance:
                return Reason.S3_GOVERNANCE_RETENTION
        if self.temporary_hold:
            return Reason.GCS_TEMPORARY_HOLD
        if self.event_based_hold:
            return Reason.GCS_EVENT_BASED_HOLD
        if _in_future(self.bucket_retain_until, now):
            return Reason.GCS_BUCKET_RETENTION
        if _in_future(self.object_retain_until, now):
            return Reason.GCS_OBJECT_RETENTION
        if self.replication_pending:
            return Reason.S3_REPLICATION_PENDING
        return None


def _in_future(when: datetime | None, now: datetime | None) -> bool:
    if when is None:
        return False
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when > (now or datetime.now(UTC))


NO_PROTECTION = Protection()


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
    protection: Protection = NO_PROTECTION  # locks, holds, retention as this response reported them
    extra: Mapping[str, str] = field(default_factory=dict)  # the cloud's own fields, kept as raw evidence


@dataclass(frozen=True)
class BucketIdentity:
    """Who holds a bucket and where, as the cloud's own API (or official endpoint) says it."""

    region: str | None        # None: the cloud cannot say (a custom endpoint's OCI, for one)
    region_source: str        # "GetBucketLocation", "x-amz-bucket-region", "bucket location", "endpoint hostname"
    owner: str | None         # s3: the ExpectedBucketOwner every request carried; gs: projectNumber; oci: namespace
    owner_source: str         # "ExpectedBucketOwner", "bucket projectNumber", "bucket namespace", "none"
    official_endpoint: bool   # the answer came from the cloud's own endpoint, so the region counts as verified


@dataclass(frozen=True)
class VersionEntry:
    """One row of a version listing: a version or a delete marker."""

    key: str
    version: str | None                    # None: an unversioned object (pin it by its ETag)
    is_delete_marker: bool
    is_latest: bool
    size: int = 0
    etag: str | None = None
    last_modified: datetime | None = None
    storage_class: str | None = None
    protection: Protection = NO_PROTECTION  # where the listing says (GCS); otherwise ask ``stat``
    extra: Mapping[str, str] = field(default_factory=dict)


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
    """One pinned delete: a version id/generation, or (``version=None``) an ETag precondition on an
    unversioned object. A delete never adds a delete marker in place of removing the pinned bytes."""

    key: str
    version: str | None
    if_match: str | None = None
    bypass_governance: bool = False   # S3 Object Lock GOVERNANCE, only under an explicit wave policy
    delete_marker: bool = False       # the target is a delete marker (S3 may list one with no version id)

    @classmethod
    def pinned(cls, entry: VersionEntry) -> DeleteTarget:
        """The delete of exactly this listed entry: its version, or its ETag when it has none."""
        if entry.is_delete_marker:
            return cls(entry.key, entry.version, delete_marker=True)
        if entry.version is None:
            return cls(entry.key, None, if_match=entry.etag)
        return cls(entry.key, entry.version)


class DeleteOutcome(StrEnum):
    """What one pinned delete did, in migrator's terms (each adapter maps its cloud's answers)."""

    DELETED = "deleted"    # the pinned version is gone
    ABSENT = "absent"      # it was not there (deleted before, e.g. by an interrupted earlier attempt)
    CHANGED = "changed"    # the object no longer is what the target pinned (a precondition failed)
    REFUSED = "refused"    # the store refused: lock, hold, retention, permission, or an invalid target


@dataclass(frozen=True)
class DeleteResult:
    target: DeleteTarget
    outcome: DeleteOutcome
    code: str | None = None       # the cloud's own code, kept as detail for records and hold reasons
    message: str | None = None

    @property
    def ok(self) -> bool:
        """The pinned version was deleted by this request."""
        return self.outcome is DeleteOutcome.DELETED


@dataclass(frozen=True)
class Uploads:
    """Incomplete multipart uploads: listed by key prefix, aborted one by one."""

    list: Callable[[Location, str], Iterator[UploadInfo]]     # (location, prefix)
    abort: Callable[[Location, str, str], None]               # (location, key, upload_id)


@dataclass(frozen=True)
class Features:
    """What one store can do beyond the required calls, filled once when the store is built.

    Flags are claims the conformance suite checks against the store; ports are None when absent.
    """

    conditional_write: bool              # put honours if_none_match (and if_match / if_match_version)
    conditional_delete: bool             # a target's if_match is a precondition: a mismatch is CHANGED
    batch_delete_max: int                # targets one delete request takes (1: one request per target)
    reports_protection: bool             # stat reports each version's locks, holds and retention, so a
                                         # bucket's retention setting alone does not block its deletes
    one_request_limit: int | None = None  # objects up to this size are written in one request
    uploads: Uploads | None = None
    soft_deleted: Callable[[Location, str], Iterator[VersionEntry]] | None = None   # (location, prefix); the
                                         # store's buckets may keep deleted objects restorable for a while
    part_sizes: Callable[[ObjectURI, str | None, int], list[int]] | None = None  # (uri, version, parts)
    replication_targets: Callable[[Location], list[Location]] | None = None  # buckets it replicates to


@dataclass(frozen=True)
class BucketFacts:
    """What one bucket is set to now. Read when asked; callers that delete read it again first."""

    versioning: bool                     # keeps versions / generations (a suspended bucket still holds some)
    retention: bool                      # retention rules, a retention policy or Object Lock are configured
    soft_delete_seconds: int | None      # how long deleted objects stay restorable; 0 = never, None = unknown


class ReadStream(Protocol):
    """A streaming read: ``info`` is what the GET response said; ``read(n)`` returns up to n bytes."""

    info: ObjectInfo

    def read(self, n: int = -1) -> bytes: ...

    def close(self) -> None: ...


@runtime_checkable
class ObjectStore(Protocol):
    scheme: str
    features: Features
    limits: StoreLimits   # its location's caps (requests at its HTTP layer; bytes for readers)

    def bucket_facts(self, location: Location) -> BucketFacts: ...

    def identify(self, location: Location) -> BucketIdentity: ...

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

    def list_versions(self, location: Location, prefix: str, start: str | None = None) -> Iterator[VersionEntry]:
        """Every version and delete marker under ``prefix``, keys in the cloud's (UTF-8 byte) order, oldest
        first within a key. ``start``: begin at this key (inclusive) or the first key after it; a store may
        return earlier keys too, which callers skip. Pages are fetched lazily, so a caller may stop early."""
        ...

    def delete_version(self, uri: ObjectURI, version: str | None, *, if_match: str | None = None) -> None:
        """Delete exactly this version (``version=None``: the unversioned object with ETag ``if_match``).
        Raises like any call; a delete naming neither is refused with InputError."""
        ...

    def delete_versions(self, location: Location, targets: Sequence[DeleteTarget]) -> list[DeleteResult]:
        """One result per target, in the order given, in as many requests as ``batch_delete_max`` needs."""
        ...
