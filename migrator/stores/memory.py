"""An in-memory ObjectStore: the reference store every rule of the protocol can be tested on (as rclone's
backend/memory), with no sockets, no disk and no emulator.

It keeps what the clouds keep and reports it as they do:
- versions and delete markers per key, oldest first; an unversioned bucket holds one object per key with
  ``version=None``; version ids are opaque, unique and grow;
- ETags (``"<md5>"``, or ``"<md5 of part md5s>-N"`` for a multipart write, as S3 and OCI compute them) and
  the checksums it reports (MD5, CRC32C and SHA-256 of the whole object, as chosen by ``reports``; never
  a whole-object MD5 for a multipart write, whose ETag stands for it);
- conditional puts (if-none-match, if-match on the ETag, on the version) and pinned, conditional deletes;
  a delete never adds a marker: markers come only from ``delete_current``, a user's plain delete;
- a body's declared digests checked before anything is stored (``BadDigest``);
- incomplete multipart uploads (a failed multipart write is aborted; ``begin_upload`` leaves one behind);
- protections: a version's legal hold, retention and holds refuse its delete (``AccessDenied``), except a
  GOVERNANCE retention for a target that bypasses it; replication PENDING is reported, not enforced;
- soft delete: a bucket with ``soft_delete_seconds`` keeps deleted versions restorable until then.

Bucket-level calls take a ``Location`` of the store's scheme (another is refused with InputError, as the
adapters refuse it). Buckets are known by name alone: the store is one tenancy, so an OCI location's
namespace selects nothing here.

Setup calls that a cloud's console or another client would make (``create_bucket``, ``protect``,
``delete_current``, ``begin_upload``, ...) are plain methods; ``requests`` counts the protocol's requests by
API name (a listing page, a delete batch), so tests can check how many were made.

Thread-safe: one lock guards the state; listings take it once per page, so a long listing never blocks
writers, and each page is consistent.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import BinaryIO

from migrator.checksum import Algorithm, Checksum, Provenance, crc32c_bytes, multipart_md5
from migrator.errors import AccessDenied, ChecksumError, InputError, NotFound, PreconditionFailed, StoreError
from migrator.limits import NO_LIMITS, StoreLimits
from migrator.stores.base import (
    NO_PROTECTION,
    BucketFacts,
    BucketIdentity,
    DeleteOutcome,
    DeleteResult,
    DeleteTarget,
    Features,
    ObjectInfo,
    Protection,
    PutRequest,
    PutResult,
    UploadInfo,
    Uploads,
    VersionEntry,
)
from migrator.stores.common import expect_eof, own_bucket, read_exactly
from migrator.stores.protection import protection_extra
from migrator.stores.settings import StoreTransfer
from migrator.uri import Location, ObjectURI

WHOLE_OBJECT = frozenset({Algorithm.MD5, Algorithm.CRC32C, Algorithm.SHA256})
BATCH_DELETE_MAX = 1000


@dataclass
class _Version:
    version: str | None
    data: bytes | None                      # None: a delete marker
    etag: str | None
    digests: dict[Algorithm, bytes]
    last_modified: datetime
    part_sizes: tuple[int, ...] | None = None
    content_type: str | None = None
    content_encoding: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    protection: Protection = NO_PROTECTION
    storage_class: str = "STANDARD"

    @property
    def is_marker(self) -> bool:
        return self.data is None


@dataclass
class _Upload:
    key: str
    upload_id: str
    initiated: datetime


@dataclass
class _Bucket:
    versioned: bool
    retention: bool
    soft_delete_seconds: int | None     # None: the bucket cannot tell (kept nothing soft-deleted)
    replicates_to: list[Location]
    objects: dict[str, list[_Version]] = field(default_factory=dict)          # oldest first
    soft_deleted: dict[str, list[tuple[_Version, datetime]]] = field(default_factory=dict)  # until
    uploads: dict[str, _Upload] = field(default_factory=dict)


class MemoryStore:
    """ObjectStore held in memory. ``scheme`` lets it stand in for a cloud's URIs (``s3``, ``gs``, ``oci``).

    Takes the same ``StoreTransfer`` as every adapter and uses ``part_size`` and ``multipart_threshold``
    (a multipart write's parts are cut in order; there is no connection pool).
    """

    def __init__(self, scheme: str = "memory", *, transfer: StoreTransfer, list_page_size: int = 1000,
                 batch_delete_max: int = BATCH_DELETE_MAX, reports: frozenset[Algorithm] = WHOLE_OBJECT,
                 clock: Callable[[], datetime] | None = None, region: str | None = None,
                 owner: str | None = None, limits: StoreLimits | None = None) -> None:
        """``limits``: carried for the callers that meter bytes (there is no HTTP layer to meter requests)."""
        part_size, multipart_threshold = transfer.part_size, transfer.multipart_threshold
        if part_size < 1 or list_page_size < 1 or batch_delete_max < 1 or multipart_threshold < 0:
            raise InputError("memory store sizes must be positive")
        self.scheme = scheme
        self.limits = limits or NO_LIMITS
        self.region, self.owner = region, owner   # what identify() answers: as declared, never verified
        self.part_size = part_size
        self.multipart_threshold = multipart_threshold
        self.list_page_size = list_page_size
        self.reports = reports
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._buckets: dict[str, _Bucket] = {}
        self._ids = itertools.count(1)
        self.requests: Counter[str] = Counter()
        self.features = Features(
            conditional_write=True, conditional_delete=True, batch_delete_max=batch_delete_max,
            reports_protection=True, one_request_limit=multipart_threshold,
            uploads=Uploads(list=self.list_uploads, abort=self.abort_upload),
            soft_deleted=self.list_soft_deleted, part_sizes=self.part_sizes,
            replication_targets=self.replication_targets)

    # --- setup, as a console or another client would do it ---------------------------------------------

    def create_bucket(self, name: str, *, versioned: bool = False, retention: bool = False,
                      soft_delete_seconds: int | None = 0, replicates_to: Sequence[Location] = ()) -> None:
        """A bucket; ``soft_delete_seconds=None`` reports its soft delete as unknown (as a GCS bucket
        resource without a policy does), ``retention`` that it has retention rules."""
        with self._lock:
            if name in self._buckets:
                raise StoreError(f"bucket {name} exists", status=409, code="BucketAlreadyExists")
            self._buckets[name] = _Bucket(versioned, retention, soft_delete_seconds, list(replicates_to))

    def configure_bucket(self, name: str, *, versioned: bool | None = None, retention: bool | None = None,
                         soft_delete_seconds: int | None = None,
                         replicates_to: Sequence[Location] | None = None) -> None:
        """Change a bucket's settings (versions written before versioning keep ``version=None``)."""
        with self._lock:
            b = self._bucket(name)
            if versioned is not None:
                b.versioned = versioned
            if retention is not None:
                b.retention = retention
            if soft_delete_seconds is not None:
                b.soft_delete_seconds = soft_delete_seconds
            if replicates_to is not None:
                b.replicates_to = list(replicates_to)

    def protect(self, uri: ObjectURI, version: str | None, protection: Protection) -> None:
        """Set one version's locks and holds (``NO_PROTECTION`` releases them)."""
        with self._lock:
            self._find(uri, version).protection = protection

    def set_storage_class(self, uri: ObjectURI, version: str | None, storage_class: str) -> None:
        with self._lock:
            self._find(uri, version).storage_class = storage_class

    def delete_current(self, uri: ObjectURI) -> str | None:
        """A user's plain delete: a marker on a versioned bucket (its id returned), the object elsewhere."""
        with self._lock:
            b = self._bucket(uri.bucket)
            if b.versioned:
                marker = _Version(self._new_id(), None, None, {}, self._clock())
                b.objects.setdefault(uri.key, []).append(marker)
                return marker.version
            current = self._current(b, uri)
            if current is not None:
                self._remove(b, uri.key, current)
            return None

    def begin_upload(self, bucket: str, key: str) -> str:
        """Start a multipart upload and leave it incomplete, as a crashed writer would."""
        with self._lock:
            return self._begin(self._bucket(bucket), key).upload_id

    # --- bucket facts ----------------------------------------------------------------------------------

    def bucket_facts(self, location: Location) -> BucketFacts:
        bucket = own_bucket(location, self.scheme)
        with self._lock:
            self.requests["GetBucket"] += 1
            b = self._bucket(bucket)
            return BucketFacts(versioning=b.versioned, retention=b.retention,
                               soft_delete_seconds=b.soft_delete_seconds)

    def identify(self, location: Location) -> BucketIdentity:
        bucket = own_bucket(location, self.scheme)
        with self._lock:
            self.requests["GetBucket"] += 1
            self._bucket(bucket)
        return BucketIdentity(region=self.region, region_source="memory" if self.region else "none",
                              owner=self.owner, owner_source="memory" if self.owner else "none",
                              official_endpoint=False)

    def replication_targets(self, location: Location) -> list[Location]:
        bucket = own_bucket(location, self.scheme)
        with self._lock:
            self.requests["GetReplication"] += 1
            return sorted(set(self._bucket(bucket).replicates_to), key=str)

    # --- reads -----------------------------------------------------------------------------------------

    def stat(self, uri: ObjectURI, version: str | None = None) -> ObjectInfo:
        with self._lock:
            self.requests["HeadObject"] += 1
            b = self._bucket(uri.bucket)
            return self._info(uri, b, self._readable(b, uri, version), Provenance.SOURCE)

    def open_read(self, uri: ObjectURI, version: str | None = None,
                  byte_range: tuple[int, int] | None = None) -> MemoryReadStream:
        """The stored bytes; with a range, ``info`` still describes the whole object (size, checksums)."""
        if byte_range is not None and (byte_range[0] < 0 or byte_range[1] < byte_range[0]):
            raise InputError(f"invalid byte range {byte_range!r}")
        with self._lock:
            self.requests["GetObject"] += 1
            b = self._bucket(uri.bucket)
            v = self._readable(b, uri, version)
            info = self._info(uri, b, v, Provenance.SOURCE)
            data = v.data or b""
        if byte_range is not None:
            data = data[byte_range[0]:byte_range[1] + 1]
        return MemoryReadStream(info, data)

    def part_sizes(self, uri: ObjectURI, version: str | None, parts: int) -> list[int]:
        if parts < 1:
            raise InputError(f"part count must be positive, got {parts}")
        with self._lock:
            self.requests["HeadObject"] += parts
            v = self._readable(self._bucket(uri.bucket), uri, version)
            sizes = list(v.part_sizes or (len(v.data or b""),))
        if len(sizes) != parts:
            raise ChecksumError(f"{uri} has {len(sizes)} parts, expected {parts}")
        return sizes

    # --- writes ----------------------------------------------------------------------------------------

    def put(self, uri: ObjectURI, body: BinaryIO, request: PutRequest) -> PutResult:
        if request.size < 0:
            raise InputError(f"negative size for {uri}")
        if request.size <= self.multipart_threshold:
            data = read_exactly(body, request.size, str(uri))
            expect_eof(body, request.size, str(uri))
            self._check_digests(uri, data, request.body_digests)
            with self._lock:
                self.requests["PutObject"] += 1
                return self._store(uri, data, None, request)
        with self._lock:
            upload = self._begin(self._bucket(uri.bucket), uri.key)
        try:
            sizes, chunks = [], []
            left = request.size
            while left > 0:
                chunk = read_exactly(body, min(self.part_size, left), str(uri))
                with self._lock:
                    self.requests["UploadPart"] += 1
                chunks.append(chunk)
                sizes.append(len(chunk))
                left -= len(chunk)
            expect_eof(body, request.size, str(uri))
            with self._lock:
                self.requests["CompleteMultipartUpload"] += 1
                b = self._bucket(uri.bucket)
                if b.uploads.pop(upload.upload_id, None) is None:
                    raise NotFound(f"{uri}: upload {upload.upload_id} was aborted", status=404, code="NoSuchUpload")
                return self._store(uri, b"".join(chunks), tuple(sizes), request)
        except BaseException:
            with self._lock:   # aborted, as the adapters abort a multipart write that failed
                bucket = self._buckets.get(uri.bucket)
                if bucket is not None:
                    bucket.uploads.pop(upload.upload_id, None)
            raise

    def _check_digests(self, uri: ObjectURI, data: bytes, declared: Sequence[Checksum]) -> None:
        """Refuse bytes that do not match the digests they were sent with, as the clouds do."""
        mine = _digests(data)
        for c in declared:
            if c.is_whole_object and c.algorithm in mine and mine[c.algorithm] != c.value:
                raise StoreError(f"PUT {uri}: the body's {c.algorithm.value} is not the declared one",
                                 status=400, code="BadDigest")

    def _store(self, uri: ObjectURI, data: bytes, part_sizes: tuple[int, ...] | None,
               request: PutRequest) -> PutResult:
        """Under the lock: check the write's conditions, then keep the bytes as a new version."""
        b = self._bucket(uri.bucket)
        current = self._current(b, uri)
        if request.if_none_match and current is not None:
            raise PreconditionFailed(f"PUT {uri}: an object exists", status=412, code="PreconditionFailed")
        if request.if_match is not None and (current is None or current.etag != request.if_match):
            raise PreconditionFailed(f"PUT {uri}: the current object is not {request.if_match}", status=412,
                                     code="PreconditionFailed")
        if request.if_match_version is not None and (current is None or current.version != request.if_match_version):
            raise PreconditionFailed(f"PUT {uri}: the current version is not {request.if_match_version}",
                                     status=412, code="PreconditionFailed")
        digests = _digests(data)
        if part_sizes is None:
            etag = f'"{digests[Algorithm.MD5].hex()}"'
        else:
            offsets = itertools.accumulate(part_sizes, initial=0)
            md5s = [hashlib.md5(data[o:o + n]).digest() for o, n in zip(offsets, part_sizes, strict=False)]
            etag = f'"{multipart_md5(md5s).hex}-{len(part_sizes)}"'
        v = _Version(self._new_id() if b.versioned else None, data, etag, digests, self._clock(), part_sizes,
                     request.content_type, request.content_encoding, dict(request.metadata))
        versions = b.objects.setdefault(uri.key, [])
        if not b.versioned:
            versions[:] = [x for x in versions if x.version is not None]  # the one unversioned object
        versions.append(v)
        checksums = self._checksums(v, Provenance.DESTINATION)
        return PutResult(version=v.version, etag=etag, checksums=checksums, size=len(data),
                         parts=len(part_sizes) if part_sizes is not None else None)

    # --- listings --------------------------------------------------------------------------------------

    def list_versions(self, location: Location, prefix: str, start: str | None = None) -> Iterator[VersionEntry]:
        """Every version and marker under ``prefix``, keys in code-point (UTF-8 byte) order, oldest first.
        Pages hold whole keys, at least ``list_page_size`` entries each but the last."""
        bucket = own_bucket(location, self.scheme)
        after: str | None = None
        while True:
            with self._lock:
                self.requests["ListObjectVersions"] += 1
                b = self._bucket(bucket)
                keys = sorted(k for k, vs in b.objects.items() if vs and k.startswith(prefix)
                              and (start is None or k >= start) and (after is None or k > after))
                page: list[VersionEntry] = []
                taken = 0
                for k in keys:
                    versions = b.objects[k]
                    page.extend(self._entry(k, v, latest=i == len(versions) - 1) for i, v in enumerate(versions))
                    taken += 1
                    if len(page) >= self.list_page_size:
                        break
            yield from page
            if taken == len(keys):
                return
            after = page[-1].key

    def list_soft_deleted(self, location: Location, prefix: str) -> Iterator[VersionEntry]:
        """Deleted versions still restorable (their soft-delete time not yet passed), oldest first."""
        bucket = own_bucket(location, self.scheme)
        with self._lock:
            self.requests["ListSoftDeleted"] += 1
            b = self._bucket(bucket)
            now = self._clock()
            out = [self._entry(k, v, latest=False) for k in sorted(b.soft_deleted) if k.startswith(prefix)
                   for v, until in b.soft_deleted[k] if until > now]
        yield from out

    def list_uploads(self, location: Location, prefix: str) -> Iterator[UploadInfo]:
        bucket = own_bucket(location, self.scheme)
        with self._lock:
            self.requests["ListMultipartUploads"] += 1
            ups = sorted(self._bucket(bucket).uploads.values(), key=lambda u: (u.key, u.initiated, u.upload_id))
            out = [UploadInfo(u.key, u.upload_id, u.initiated) for u in ups if u.key.startswith(prefix)]
        yield from out

    def abort_upload(self, location: Location, key: str, upload_id: str) -> None:
        bucket = own_bucket(location, self.scheme)
        with self._lock:
            self.requests["AbortMultipartUpload"] += 1
            uploads = self._bucket(bucket).uploads
            up = uploads.get(upload_id)
            if up is None or up.key != key:
                raise NotFound(f"upload {upload_id} of {bucket}/{key} not found", status=404, code="NoSuchUpload")
            del uploads[upload_id]

    # --- deletes ---------------------------------------------------------------------------------------

    def delete_version(self, uri: ObjectURI, version: str | None, *, if_match: str | None = None) -> None:
        """Delete exactly one version, or (``version=None``) the unversioned object with ETag ``if_match``."""
        if version is None and if_match is None:
            raise InputError(f"refusing an unpinned delete of {uri}: name a version or an ETag")
        with self._lock:
            self.requests["DeleteObject"] += 1
            self._delete(uri, DeleteTarget(uri.key, version, if_match))

    def delete_versions(self, location: Location, targets: Sequence[DeleteTarget]) -> list[DeleteResult]:
        """One result per target, in order, ``batch_delete_max`` targets per request."""
        bucket = own_bucket(location, self.scheme)
        for t in targets:
            if t.version is None and t.if_match is None and not t.delete_marker:
                raise InputError(f"refusing an unpinned delete of {bucket}/{t.key}")
        out: list[DeleteResult] = []
        size = self.features.batch_delete_max
        for start in range(0, len(targets), size):
            with self._lock:
                self.requests["DeleteObjects"] += 1
                for t in targets[start:start + size]:
                    out.append(self._delete_one(location.uri(t.key), t))
        return out

    def _delete_one(self, uri: ObjectURI, t: DeleteTarget) -> DeleteResult:
        try:
            self._delete(uri, t)
        except NotFound as exc:
            return DeleteResult(t, DeleteOutcome.ABSENT, code=exc.code, message=str(exc))
        except PreconditionFailed as exc:
            return DeleteResult(t, DeleteOutcome.CHANGED, code=exc.code, message=str(exc))
        except AccessDenied as exc:
            return DeleteResult(t, DeleteOutcome.REFUSED, code=exc.code, message=str(exc))
        return DeleteResult(t, DeleteOutcome.DELETED)

    def _delete(self, uri: ObjectURI, t: DeleteTarget) -> None:
        """Under the lock: remove the pinned version, or raise why not."""
        b = self._bucket(uri.bucket)
        v = next((x for x in b.objects.get(uri.key, []) if x.version == t.version), None)
        if v is None:
            raise NotFound(f"{uri} version {t.version} not found", status=404, code="NoSuchVersion")
        if t.if_match is not None and not v.is_marker and v.etag != t.if_match:
            raise PreconditionFailed(f"{uri} version {t.version} is not {t.if_match}", status=412,
                                     code="PreconditionFailed")
        # The store enforces locks and holds; pending replication is migrator's concern, not the store's.
        locked = replace(v.protection, replication_pending=False).blocking_reason(
            self._clock(), bypass_governance=t.bypass_governance)
        if locked is not None:
            raise AccessDenied(f"{uri} version {t.version}: {locked}", status=403, code="AccessDenied")
        self._remove(b, uri.key, v)

    # --- state, under the lock -------------------------------------------------------------------------

    def _bucket(self, name: str) -> _Bucket:
        b = self._buckets.get(name)
        if b is None:
            raise NotFound(f"bucket {name} not found", status=404, code="NoSuchBucket")
        return b

    def _new_id(self) -> str:
        return f"m{next(self._ids):012d}"

    def _begin(self, b: _Bucket, key: str) -> _Upload:
        self.requests["CreateMultipartUpload"] += 1
        up = _Upload(key, f"u{next(self._ids):012d}", self._clock())
        b.uploads[up.upload_id] = up
        return up

    @staticmethod
    def _current(b: _Bucket, uri: ObjectURI) -> _Version | None:
        versions = b.objects.get(uri.key)
        if not versions or versions[-1].is_marker:
            return None
        return versions[-1]

    def _find(self, uri: ObjectURI, version: str | None) -> _Version:
        b = self._bucket(uri.bucket)
        if version is None:
            found = self._current(b, uri)
        else:
            found = next((v for v in b.objects.get(uri.key, []) if v.version == version), None)
        if found is None:
            raise NotFound(f"{uri} version {version} not found", status=404, code="NoSuchVersion")
        return found

    def _readable(self, b: _Bucket, uri: ObjectURI, version: str | None) -> _Version:
        v = self._find(uri, version)
        if v.is_marker:
            raise NotFound(f"{uri}: version {version} is a delete marker", status=405, code="DeleteMarker")
        return v

    def _remove(self, b: _Bucket, key: str, v: _Version) -> None:
        versions = b.objects[key]
        versions.remove(v)
        if not versions:
            del b.objects[key]
        if b.soft_delete_seconds and not v.is_marker:
            until = self._clock() + timedelta(seconds=b.soft_delete_seconds)
            b.soft_deleted.setdefault(key, []).append((v, until))

    def _checksums(self, v: _Version, provenance: Provenance) -> tuple[Checksum, ...]:
        out = [Checksum(a, v.digests[a], provenance) for a in (Algorithm.MD5, Algorithm.CRC32C, Algorithm.SHA256)
               if a in self.reports and not (a == Algorithm.MD5 and v.part_sizes is not None)]
        if v.part_sizes is not None and v.etag:
            out.append(Checksum(Algorithm.MULTIPART_MD5, bytes.fromhex(v.etag.strip('"').split("-")[0]),
                                provenance, parts=len(v.part_sizes)))
        return tuple(out)

    def _info(self, uri: ObjectURI, b: _Bucket, v: _Version, provenance: Provenance) -> ObjectInfo:
        versions = b.objects.get(uri.key, [])
        return ObjectInfo(
            uri=uri, size=len(v.data or b""), version=v.version, etag=v.etag,
            checksums=self._checksums(v, provenance), storage_class=v.storage_class,
            content_type=v.content_type, content_encoding=v.content_encoding, metadata=dict(v.metadata),
            last_modified=v.last_modified, is_latest=bool(versions) and versions[-1] is v,
            multipart_parts=len(v.part_sizes) if v.part_sizes is not None else None,
            protection=v.protection, extra=protection_extra(v.protection))

    @staticmethod
    def _entry(key: str, v: _Version, *, latest: bool) -> VersionEntry:
        return VersionEntry(key=key, version=v.version, is_delete_marker=v.is_marker, is_latest=latest,
                            size=len(v.data or b""), etag=v.etag, last_modified=v.last_modified,
                            storage_class=None if v.is_marker else v.storage_class,
                            protection=v.protection, extra=protection_extra(v.protection))


def _digests(data: bytes) -> dict[Algorithm, bytes]:
    return {Algorithm.MD5: hashlib.md5(data).digest(), Algorithm.SHA256: hashlib.sha256(data).digest(),
            Algorithm.CRC32C: crc32c_bytes(data)}


class MemoryReadStream:
    """A read of bytes already in memory; ``info`` is what the store reported for them."""

    def __init__(self, info: ObjectInfo, data: bytes) -> None:
        self.info = info
        self._body = io.BytesIO(data)

    def read(self, n: int = -1) -> bytes:
        return self._body.read(None if n is None or n < 0 else n)

    def close(self) -> None:
        self._body.close()

    def __enter__(self) -> MemoryReadStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
