"""Amazon S3 (and S3-compatible endpoints such as moto) through boto3.

Sections, in the order every adapter follows: construction and endpoint safety, error translation,
reading (stat, part_sizes, open_read), writing (put), listing, deleting, optional features and bucket facts.

One boto3 client is shared by all threads (clients are thread-safe). botocore's own retries are off
(``total_max_attempts=1``): every call goes through ``migrator.retry.call``. botocore's checksum
calculation and validation run only when an API requires them: we compute and compare digests ourselves.
"""

from __future__ import annotations

import base64
import dataclasses
import email.utils
import functools
import hashlib
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any, BinaryIO, TypeVar
from urllib.parse import urlsplit

import boto3
import botocore.session
import botocore.utils
from awscrt import checksums as crt_checksums
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    FlexibleChecksumError,
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
    SSLError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from migrator import crashpoints, retry
from migrator.checksum import (
    Algorithm,
    Checksum,
    Provenance,
    crc32c_bytes,
    from_b64,
    md5_and_crc32c,
    multipart_md5,
    parse_s3_etag,
)
from migrator.endpoints import is_loopback_url
from migrator.errors import (
    AccessDenied,
    ChecksumError,
    InputError,
    NotFound,
    PreconditionFailed,
    StoreError,
    UnsafeEndpointError,
)
from migrator.limits import NO_LIMITS, Gate, StoreLimits
from migrator.stores import errors as store_errors
from migrator.stores import moto_inprocess
from migrator.stores.base import (
    BucketFacts,
    BucketIdentity,
    DeleteOutcome,
    DeleteResult,
    DeleteTarget,
    Features,
    ObjectInfo,
    PutRequest,
    PutResult,
    UploadInfo,
    Uploads,
    VersionEntry,
)
from migrator.stores.common import expect_eof, outcome_of, own_bucket, read_exactly
from migrator.stores.protection import protection_from_extra
from migrator.stores.settings import StoreTransfer
from migrator.uri import Location, ObjectURI

T = TypeVar("T")

MIN_PART_SIZE = 5 * 1024 * 1024          # S3 rejects smaller parts (except the last)
MAX_PART_SIZE = 5 * 1024 * 1024 * 1024
MAX_PARTS = 10_000
BATCH_DELETE_MAX = 1000
# S3's id of the one version an unversioned bucket holds (and of objects written before versioning was
# enabled). It stays inside this adapter: the protocol says version=None, pinned by the ETag.
NULL_VERSION = "null"
# DeleteObjects error codes: nothing there any more, and the pinned ETag no longer matches.
_GONE_CODES = frozenset({"NoSuchKey", "NoSuchVersion"})
_CHANGED_CODES = frozenset({"PreconditionFailed"})

# ---------------------------------------------------------------------------------------------------------
# Construction and endpoint safety
# ---------------------------------------------------------------------------------------------------------

def _require_loopback(url: str | None) -> None:
    if url is None:
        raise UnsafeEndpointError("S3 store is restricted to loopback but no endpoint is set "
                                  "(pass endpoint_url or set AWS_ENDPOINT_URL)")
    if not is_loopback_url(url):
        raise UnsafeEndpointError(f"S3 endpoint {url!r} is not loopback (127.0.0.0/8, ::1, localhost)")


class S3Store:
    """ObjectStore for ``s3://bucket/key``.

    Uses all of ``transfer``: memory for a multipart put is bounded by ``part_size x parts_in_flight``,
    and botocore keeps ``max_pool_connections`` connections.
    """

    scheme = "s3"

    def __init__(self, *, endpoint_url: str | None = None, region: str | None = None, transfer: StoreTransfer,
                 allow_non_loopback: bool = True, list_page_size: int = 1000, profile: str | None = None,
                 addressing_style: str | None = None, ca_bundle: str | None = None,
                 expected_owner: str | None = None, limits: StoreLimits | None = None,
                 inprocess_mock: str | None = None) -> None:
        """``profile``: an AWS shared-config profile (its credentials, not the environment's, are used).
        ``addressing_style``: path, virtual or auto (None: path on loopback, else boto3's default).
        ``ca_bundle``: the CA bundle to trust. ``expected_owner``: an account id sent on every bucket and
        object request as ExpectedBucketOwner, so that a bucket of another account answers 403.
        ``limits``: the location's caps (None: unlimited); every request botocore sends takes a request
        token (``before-send``, once per attempt). ``inprocess_mock``: ``"moto"`` when moto's in-process mock
        answers instead of an endpoint (``migrator.stores.moto_inprocess``: checked here and on every request)."""
        if inprocess_mock is not None:
            moto_inprocess.require_mock()   # before any client exists
        if not MIN_PART_SIZE <= transfer.part_size <= MAX_PART_SIZE:
            raise InputError(f"S3 part size must be between 5 MiB and 5 GiB, got {transfer.part_size}")
        if transfer.parts_in_flight < 1:
            raise InputError("parts_in_flight must be at least 1")
        if transfer.multipart_threshold < 1:
            raise InputError("multipart_threshold must be at least 1")
        if not allow_non_loopback and endpoint_url is not None:
            _require_loopback(endpoint_url)  # refuse before any client (or env lookup) exists
        self.part_size = transfer.part_size
        self.multipart_threshold = transfer.multipart_threshold
        self.parts_in_flight = transfer.parts_in_flight
        self.list_page_size = list_page_size  # S3's maximum; smaller only to exercise paging in tests
        core = botocore.session.get_session()
        # botocore parses every Last-Modified through dateutil: a tenth of a small object's client CPU.
        core.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=_parse_timestamp)
        if profile is not None:
            core.set_config_variable("profile", profile)   # explicit: botocore then skips env credentials
        self._session = boto3.session.Session(region_name=region, botocore_session=core)
        self._max_pool = transfer.max_pool_connections
        self._verify: str | bool | None = ca_bundle
        self._style = addressing_style
        self.expected_owner = expected_owner
        self.limits = limits or NO_LIMITS
        self._client = self._make_client(endpoint_url, path_style=addressing_style == "path")
        # Resolved endpoint: the explicit one, or boto3's own AWS_ENDPOINT_URL[_S3] / config handling.
        resolved = str(self._client.meta.endpoint_url)
        self.endpoint_url: str | None = resolved
        if not allow_non_loopback:
            # With no endpoint configured boto3 resolves to AWS itself, which this check refuses.
            _require_loopback(resolved)
        if is_loopback_url(resolved) and addressing_style is None:
            # Virtual-hosted style would send to bucket.localhost: keep every request on the named host.
            self._client = self._make_client(endpoint_url, path_style=True)
        # Only AWS's own endpoint (boto3's default resolution) makes GetBucketLocation's answer AWS's word;
        # under an in-process mock the answer is moto's.
        self.official_endpoint = endpoint_url is None and inprocess_mock is None and \
            (urlsplit(resolved).hostname or "").endswith(".amazonaws.com")
        if inprocess_mock is not None:
            self._guard_inprocess(endpoint_url, resolved)
        if expected_owner is not None:
            self._client.meta.events.register("before-sign.s3", self._add_expected_owner)
        if not allow_non_loopback:
            self._client.meta.events.register("before-send.s3", _refuse_non_loopback_send)
        if self.limits.requests:
            self._client.meta.events.register("before-send.s3", _request_token(self.limits.requests))
        self._client.meta.events.register("before-call.s3.GetObject", _skip_sdk_response_validation)
        self._client.meta.events.register("before-parse.s3.ListObjectVersions", _record_version_order)
        self.features = Features(
            conditional_write=True, conditional_delete=True, batch_delete_max=BATCH_DELETE_MAX,
            reports_protection=True,   # Object Lock and replication status come with every HEAD
            one_request_limit=self.multipart_threshold,
            uploads=Uploads(list=self.list_uploads, abort=self.abort_upload),
            part_sizes=self.part_sizes, replication_targets=self.replication_targets)

    def _guard_inprocess(self, endpoint_url: str | None, resolved: str) -> None:
        """Under moto's in-process mock: AWS's own endpoint, moto's fake credentials, and a per-request check
        that the mock still answers (registered first, so no other handler runs for a request it refuses)."""
        if endpoint_url is not None or not (urlsplit(resolved).hostname or "").endswith(".amazonaws.com"):
            raise UnsafeEndpointError(f"MIGRATOR_S3_INPROCESS_MOCK=moto answers AWS's own endpoints, not "
                                      f"{resolved!r}: unset AWS_ENDPOINT_URL and any location endpoint")
        credentials = self._session.get_credentials()
        moto_inprocess.require_moto_credentials(None if credentials is None else credentials.access_key)
        self._client.meta.events.register_first("before-send.s3", moto_inprocess.refuse_unless_mocked)
        moto_inprocess.fix_version_listing()

    def _make_client(self, endpoint_url: str | None, *, path_style: bool) -> Any:
        config = Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            parameter_validation=False,   # every call's parameters are built here, not taken from users
            max_pool_connections=self._max_pool,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            s3=_addressing("path" if path_style else self._style),
        )
        client = self._session.client("s3", endpoint_url=endpoint_url, config=config, verify=self._verify)
        # botocore rebuilds and re-sanitizes the whole User-Agent string on every request, only to add
        # telemetry feature flags: a tenth of a small object's client CPU. The string built when the
        # request is made (SDK, Python, OS, config) is kept. getattr: the attribute is botocore's own.
        creator = getattr(client, "_user_agent_creator", None)
        if creator is not None:
            client.meta.events.unregister("request-created.s3", creator.rebuild_and_replace_user_agent_handler)
        return client

    @property
    def client(self) -> Any:
        """The shared boto3 client (for test fixtures and the sandbox; adapters' callers use the protocol)."""
        return self._client

    # -----------------------------------------------------------------------------------------------------
    # Error translation: by HTTP status and error code, never by message text
    # -----------------------------------------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        return retry.call(lambda: _guard(what, fn))

    # -----------------------------------------------------------------------------------------------------
    # Reading
    # -----------------------------------------------------------------------------------------------------

    def stat(self, uri: ObjectURI, version: str | None = None) -> ObjectInfo:
        kwargs = _target(uri, version)
        resp = self._call(f"HEAD {_show(uri, version)}",
                          lambda: self._client.head_object(**kwargs, ChecksumMode="ENABLED"))
        # Lock state comes from HEAD's x-amz-object-lock-* headers, which S3 sends to callers holding the
        # GetObjectRetention/GetObjectLegalHold permissions. Without them a locked delete answers AccessDenied,
        # which removal turns into HELD; it is never retried blindly.
        return _object_info(uri, resp)

    def part_sizes(self, uri: ObjectURI, version: str | None, parts: int) -> list[int]:
        """Size of each part of a multipart object, from HEAD with PartNumber (to recompute its ETag).

        Not pinned by ETag (moto compares If-Match with the part's ETag): sizes from a changed object only
        make the recomputed ETag differ, which fails closed.
        """
        if parts < 1:
            raise InputError(f"part count must be positive, got {parts}")
        kwargs = _target(uri, version)

        def one(number: int) -> int:
            resp = self._call(f"HEAD part {number} of {_show(uri, version)}",
                              lambda: self._client.head_object(**kwargs, PartNumber=number))
            count = resp.get("PartsCount")
            if count is not None and int(count) != parts:
                raise ChecksumError(f"{_show(uri, version)} has {count} parts, expected {parts}")
            return int(resp["ContentLength"])

        if parts == 1:
            return [one(1)]
        with ThreadPoolExecutor(max_workers=min(parts, 8)) as pool:
            # carry: each HEAD belongs to the caller's operation, whose retry owns the attempts
            return list(pool.map(retry.carry(one), range(1, parts + 1)))

    def open_read(self, uri: ObjectURI, version: str | None = None,
                  byte_range: tuple[int, int] | None = None) -> S3ReadStream:
        kwargs = _target(uri, version)
        if byte_range is not None:
            first, last = byte_range
            if first < 0 or last < first:
                raise InputError(f"invalid byte range {byte_range!r}")
            kwargs["Range"] = f"bytes={first}-{last}"
        else:
            # A ranged response carries no checksum of the range; ask for checksums on whole reads only.
            kwargs["ChecksumMode"] = "ENABLED"
        what = f"GET {_show(uri, version)}"
        resp = self._call(what, lambda: self._client.get_object(**kwargs))
        return S3ReadStream(_object_info(uri, resp), resp["Body"], what)

    # -----------------------------------------------------------------------------------------------------
    # Writing
    # -----------------------------------------------------------------------------------------------------

    def put(self, uri: ObjectURI, body: BinaryIO, request: PutRequest) -> PutResult:
        if request.size < 0:
            raise InputError(f"negative size for {uri}")
        if request.size <= self.multipart_threshold:
            data = read_exactly(body, request.size, str(uri))
            expect_eof(body, request.size, str(uri))
            return self._put_single(uri, data, request)
        return self._put_multipart(uri, body, request)

    def _common_write_args(self, uri: ObjectURI, request: PutRequest) -> dict[str, Any]:
        args: dict[str, Any] = {"Bucket": uri.bucket, "Key": uri.key}
        if request.content_type:
            args["ContentType"] = request.content_type
        if request.content_encoding:
            args["ContentEncoding"] = request.content_encoding
        if request.metadata:
            args["Metadata"] = dict(request.metadata)
        return args

    def _put_single(self, uri: ObjectURI, data: bytes, request: PutRequest) -> PutResult:
        md5, crc = md5_and_crc32c(data, request.body_digests)
        args = self._common_write_args(uri, request)
        args.update(Body=data, ContentLength=len(data), ContentMD5=_b64(md5),
                    ChecksumAlgorithm="CRC32C", ChecksumCRC32C=_b64(crc))
        if request.if_none_match:
            args["IfNoneMatch"] = "*"
        elif request.if_match:
            args["IfMatch"] = request.if_match
        attempts = [0]

        def send() -> Any:
            attempts[0] += 1
            return self._client.put_object(**args)

        try:
            resp = self._call(f"PUT {uri}", send)
        except PreconditionFailed:
            # A retry after a lost response finds our own write: accept it only if the bytes are ours.
            if attempts[0] < 2:
                raise
            return self._reconcile(uri, f'"{md5.hex()}"', crc, None, len(data), None)
        return _put_result(resp, len(data), parts=None)

    def _put_multipart(self, uri: ObjectURI, body: BinaryIO, request: PutRequest) -> PutResult:
        size = request.size
        part_size = _effective_part_size(size, self.part_size)
        args = self._common_write_args(uri, request)
        created = self._call(
            f"create upload {uri}",
            lambda: self._client.create_multipart_upload(
                **args, ChecksumAlgorithm="CRC32C", ChecksumType="FULL_OBJECT"))
        upload_id = str(created["UploadId"])
        # S3 and moto honour FULL_OBJECT for CRC32C. A service that ignores it answers without
        # ChecksumType (or COMPOSITE): then the object's CRC32C is composite and we complete without it.
        full_object = created.get("ChecksumType") == "FULL_OBJECT"
        try:
            parts, part_md5s, whole_crc = self._upload_parts(uri, body, size, part_size, upload_id)
            expect_eof(body, size, str(uri))
        except BaseException:
            self._abort_quietly(uri, upload_id)
            raise
        complete: dict[str, Any] = {
            "Bucket": uri.bucket, "Key": uri.key, "UploadId": upload_id,
            "MultipartUpload": {"Parts": parts}, "MpuObjectSize": size,
        }
        if full_object:
            complete.update(ChecksumType="FULL_OBJECT", ChecksumCRC32C=_b64(whole_crc))
        if request.if_none_match:
            complete["IfNoneMatch"] = "*"
        elif request.if_match:
            complete["IfMatch"] = request.if_match
        expected_etag = f'"{multipart_md5(part_md5s).hex}-{len(parts)}"'
        attempts = [0]

        def send() -> Any:
            attempts[0] += 1
            return self._client.complete_multipart_upload(**complete)

        try:
            resp = self._call(f"complete upload {uri}", send)
        except (PreconditionFailed, NotFound):
            # After a lost response the retry sees NoSuchUpload or 412 for our own completed object.
            if attempts[0] >= 2:
                return self._reconcile(uri, expected_etag, whole_crc if full_object else None,
                                       None, size, len(parts))
            self._abort_quietly(uri, upload_id)
            raise
        except BaseException:
            self._abort_quietly(uri, upload_id)
            raise
        result = _put_result(resp, size, parts=len(parts))
        if not any(c.algorithm == Algorithm.CRC32C for c in result.checksums):
            # moto omits checksums from CompleteMultipartUpload; ask the destination, pinned to what we wrote.
            return self._reconcile(uri, result.etag or expected_etag, whole_crc if full_object else None,
                                   result.version, size, len(parts))
        return result

    def _upload_parts(self, uri: ObjectURI, body: BinaryIO, size: int, part_size: int,
                      upload_id: str) -> tuple[list[dict[str, Any]], list[bytes], bytes]:
        """Read parts in order; upload up to ``parts_in_flight`` at once. Returns parts, part MD5s, CRC32C."""
        slots = threading.BoundedSemaphore(self.parts_in_flight)
        whole = 0  # CRC32C of the whole object, extended part by part in order
        futures: list[Future[dict[str, Any]]] = []
        md5s: list[bytes] = []
        failed = threading.Event()

        def upload(number: int, data: bytes, md5: bytes) -> dict[str, Any]:
            try:
                crc = _b64(crc32c_bytes(data))
                resp = self._call(
                    f"upload part {number} of {uri}",
                    lambda: self._client.upload_part(
                        Bucket=uri.bucket, Key=uri.key, UploadId=upload_id, PartNumber=number, Body=data,
                        ContentLength=len(data), ContentMD5=_b64(md5), ChecksumAlgorithm="CRC32C",
                        ChecksumCRC32C=crc))
                reported = resp.get("ChecksumCRC32C")
                if reported is not None and reported != crc:
                    raise ChecksumError(f"part {number} of {uri}: S3 stored CRC32C {reported}, sent {crc}")
                crashpoints.hit("mid-multipart")
                return {"PartNumber": number, "ETag": resp["ETag"], "ChecksumCRC32C": crc}
            except BaseException:
                failed.set()
                raise
            finally:
                slots.release()

        with ThreadPoolExecutor(max_workers=self.parts_in_flight, thread_name_prefix="s3-part") as pool:
            offset, number = 0, 0
            while offset < size and not failed.is_set():
                slots.acquire()  # before reading: at most parts_in_flight part buffers exist
                if failed.is_set():
                    slots.release()
                    break
                length = min(part_size, size - offset)
                try:
                    data = read_exactly(body, length, str(uri))
                except BaseException:
                    slots.release()
                    raise
                number += 1
                offset += length
                whole = int(crt_checksums.crc32c(data, whole))
                md5 = hashlib.md5(data).digest()
                md5s.append(md5)
                # carry: the part belongs to the caller's operation, whose retry owns the attempts
                futures.append(pool.submit(retry.carry(upload), number, data, md5))
                del data
        parts = [f.result() for f in futures]  # re-raises the first failure in part order
        return parts, md5s, whole.to_bytes(4, "big")

    def _reconcile(self, uri: ObjectURI, etag: str, crc: bytes | None, version: str | None, size: int,
                   parts: int | None) -> PutResult:
        """HEAD pinned to our ETag (and version): the destination's own report of what it stores."""
        kwargs = _target(uri, version)   # None right after our write is the current version
        kwargs["IfMatch"] = etag
        resp = self._call(f"HEAD {uri} after write",
                          lambda: self._client.head_object(**kwargs, ChecksumMode="ENABLED"))
        result = _put_result(resp, int(resp.get("ContentLength", -1)), parts=parts)
        if version is not None:
            result = dataclasses.replace(result, version=version)
        if result.size != size:
            raise PreconditionFailed(f"{uri} holds {result.size} bytes after writing {size}",
                                     status=412, code="SizeMismatch")
        if crc is not None:
            stored = next((c for c in result.checksums
                           if c.algorithm == Algorithm.CRC32C and c.parts is None), None)
            if stored is not None and stored.value != crc:
                raise PreconditionFailed(f"{uri} holds other bytes than written", status=412,
                                         code="ChecksumMismatch")
        return result

    def _abort_quietly(self, uri: ObjectURI, upload_id: str) -> None:
        try:
            # Its own attempts: a retry of the failed operation starts a new upload and would not redo this.
            retry.separately(lambda: self.abort_upload(uri.location, uri.key, upload_id))
        except StoreError:
            pass  # the original failure matters more; list_uploads finds the leftover

    # -----------------------------------------------------------------------------------------------------
    # Listing
    # -----------------------------------------------------------------------------------------------------

    def list_versions(self, location: Location, prefix: str, start: str | None = None) -> Iterator[VersionEntry]:
        """Every version and delete marker under ``prefix``, keys in S3 order, oldest first within a key."""
        bucket = own_bucket(location, self.scheme)
        # KeyMarker is exclusive: starting after start[:-1] includes start (and a few keys before it).
        key_marker: str | None = start[:-1] if start and len(start) > 1 else None
        version_marker: str | None = None
        pending_key: str | None = None
        pending: list[VersionEntry] = []
        while True:
            kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": self.list_page_size}
            if key_marker is not None:
                kwargs["KeyMarker"] = key_marker
                if version_marker is not None:
                    kwargs["VersionIdMarker"] = version_marker
            page = self._call(f"list versions s3://{bucket}/{prefix}",
                              functools.partial(self._client.list_object_versions, **kwargs))
            for entry in _page_entries(page):
                if entry.key != pending_key:
                    yield from reversed(pending)
                    pending, pending_key = [], entry.key
                pending.append(entry)
            if not page.get("IsTruncated"):
                break
            key_marker = page.get("NextKeyMarker")
            version_marker = page.get("NextVersionIdMarker")
            if key_marker is None:
                raise StoreError(f"truncated version listing of s3://{bucket} without a next marker")
        yield from reversed(pending)

    def list_uploads(self, location: Location, prefix: str) -> Iterator[UploadInfo]:
        bucket = own_bucket(location, self.scheme)
        key_marker: str | None = None
        upload_marker: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxUploads": self.list_page_size}
            if key_marker is not None:
                kwargs["KeyMarker"] = key_marker
                if upload_marker is not None:
                    kwargs["UploadIdMarker"] = upload_marker
            page = self._call(f"list uploads s3://{bucket}/{prefix}",
                              functools.partial(self._client.list_multipart_uploads, **kwargs))
            for up in page.get("Uploads", []) or []:
                yield UploadInfo(key=up["Key"], upload_id=up["UploadId"], initiated=up.get("Initiated"))
            if not page.get("IsTruncated"):
                return
            key_marker = page.get("NextKeyMarker")
            upload_marker = page.get("NextUploadIdMarker")
            if key_marker is None:
                raise StoreError(f"truncated upload listing of s3://{bucket} without a next marker")

    def abort_upload(self, location: Location, key: str, upload_id: str) -> None:
        bucket = own_bucket(location, self.scheme)
        self._call(f"abort upload s3://{bucket}/{key}",
                   lambda: self._client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id))

    # -----------------------------------------------------------------------------------------------------
    # Deleting: always pinned, to a version id or (unversioned) an ETag
    # -----------------------------------------------------------------------------------------------------

    def delete_version(self, uri: ObjectURI, version: str | None, *, if_match: str | None = None) -> None:
        """Delete one version. An unversioned object (``version=None``) is deleted as S3's "null" version
        under its ETag: without a version id, a versioned or suspended bucket would only add a delete
        marker and keep the bytes."""
        if version is None and if_match is None:
            raise InputError(f"refusing an unpinned delete of {uri}: name a version or an ETag")
        kwargs: dict[str, Any] = {"Bucket": uri.bucket, "Key": uri.key, "VersionId": version or NULL_VERSION}
        if if_match is not None:
            kwargs["IfMatch"] = if_match
        self._call(f"DELETE {_show(uri, version)}", lambda: self._client.delete_object(**kwargs))

    def delete_versions(self, location: Location, targets: Sequence[DeleteTarget]) -> list[DeleteResult]:
        """DeleteObjects in batches of 1,000; one result per target, in the order given."""
        bucket = own_bucket(location, self.scheme)
        for t in targets:
            if t.version is None and t.if_match is None and not t.delete_marker:
                raise InputError(f"refusing an unpinned delete of s3://{bucket}/{t.key}")
        results: list[DeleteResult] = []
        for start in range(0, len(targets), BATCH_DELETE_MAX):
            results.extend(self._delete_batch(bucket, targets[start:start + BATCH_DELETE_MAX]))
        return results

    def _delete_batch(self, bucket: str, batch: Sequence[DeleteTarget]) -> list[DeleteResult]:
        objects = []
        for t in batch:
            # Always a version id ("null" for an unversioned object): a delete never adds a marker.
            obj: dict[str, str] = {"Key": t.key, "VersionId": t.version or NULL_VERSION}
            if t.if_match is not None:
                obj["ETag"] = t.if_match  # per-key condition of DeleteObjects (ObjectIdentifier.ETag)
            objects.append(obj)
        extra: dict[str, Any] = {}
        if any(t.bypass_governance for t in batch):
            extra["BypassGovernanceRetention"] = True  # only under an explicit wave policy; recorded per delete
        resp = self._call(f"batch delete in s3://{bucket}",
                          lambda: self._client.delete_objects(
                              Bucket=bucket, Delete={"Objects": objects, "Quiet": False}, **extra))
        deleted = {(d.get("Key"), d.get("VersionId")): d for d in resp.get("Deleted", []) or []}
        errors = {(e.get("Key"), e.get("VersionId")): e for e in resp.get("Errors", []) or []}
        out = []
        for t in batch:
            wire = t.version or NULL_VERSION
            err = errors.get((t.key, wire))
            d = deleted.get((t.key, wire)) or deleted.get((t.key, None))
            if err is None and d is None:
                err = errors.get((t.key, None))  # moto omits VersionId from Errors: fail every such target
            if err is not None:
                code = err.get("Code")
                out.append(DeleteResult(t, outcome_of(code, _GONE_CODES, _CHANGED_CODES), code=code,
                                        message=err.get("Message")))
                continue
            if d is None:
                out.append(DeleteResult(t, DeleteOutcome.REFUSED, code="NoResult",
                                        message="S3 reported nothing for this target"))
            elif d.get("DeleteMarker") and d.get("DeleteMarkerVersionId") not in (None, wire):
                # A marker was added instead of the pinned version removed: the bytes are still there.
                out.append(DeleteResult(t, DeleteOutcome.REFUSED, code="DeleteMarkerCreated",
                                        message=f"delete marker {d.get('DeleteMarkerVersionId')} added"))
            else:
                out.append(DeleteResult(t, DeleteOutcome.DELETED))
        return out

    # -----------------------------------------------------------------------------------------------------
    # Optional features (replication) and bucket facts
    # -----------------------------------------------------------------------------------------------------

    def replication_targets(self, location: Location) -> list[Location]:
        """Destination buckets of the bucket's CRR/SRR rules (enabled or not: a disabled rule may be re-enabled)."""
        bucket = own_bucket(location, self.scheme)
        try:
            resp = self._call(f"GET replication s3://{bucket}",
                              lambda: self._client.get_bucket_replication(Bucket=bucket))
        except NotFound:
            return []
        except StoreError as exc:
            if exc.code == "ReplicationConfigurationNotFoundError":
                return []
            raise
        names = set()
        for rule in resp.get("ReplicationConfiguration", {}).get("Rules", []) or []:
            arn = str(rule.get("Destination", {}).get("Bucket", ""))
            name = arn.rsplit(":", 1)[-1]
            if name:
                names.add(name)
        return [Location("s3", name) for name in sorted(names)]

    def _add_expected_owner(self, request: Any, operation_name: str = "", **_: Any) -> None:
        # Every call but ListBuckets names a bucket; the header makes S3 refuse a bucket of another account.
        if operation_name != "ListBuckets" and self.expected_owner is not None:
            request.headers["x-amz-expected-bucket-owner"] = self.expected_owner

    def identify(self, location: Location) -> BucketIdentity:
        bucket = own_bucket(location, self.scheme)
        found = self._call(f"get location of s3://{bucket}", lambda: self._client.get_bucket_location(Bucket=bucket))
        constraint = found.get("LocationConstraint")
        # S3: no constraint means us-east-1; "EU" is the legacy name of eu-west-1.
        region = {None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}.get(constraint, constraint)
        return BucketIdentity(region=str(region), region_source="GetBucketLocation", owner=self.expected_owner,
                              owner_source="ExpectedBucketOwner" if self.expected_owner else "none",
                              official_endpoint=self.official_endpoint)

    def bucket_facts(self, location: Location) -> BucketFacts:
        bucket = own_bucket(location, self.scheme)
        versioning = self._call(f"get versioning of s3://{bucket}",
                                lambda: self._client.get_bucket_versioning(Bucket=bucket))
        # Suspended buckets still hold the versions written while enabled: they must be listed and removed.
        versioned = versioning.get("Status") in ("Enabled", "Suspended")
        try:
            lock = self._call(f"get object lock of s3://{bucket}",
                              lambda: self._client.get_object_lock_configuration(Bucket=bucket))
            retention = (lock.get("ObjectLockConfiguration") or {}).get("ObjectLockEnabled") == "Enabled"
        except NotFound:
            retention = False  # ObjectLockConfigurationNotFoundError
        except AccessDenied:
            retention = True   # cannot tell: assume a lock may apply, removal checks every version
        return BucketFacts(versioning=versioned, retention=retention, soft_delete_seconds=0)  # S3 has none


def _addressing(style: str | None) -> Any:
    """botocore's ``s3`` config for an addressing style (path, virtual, auto), or None for its default."""
    return {"addressing_style": style} if style else None


class S3ReadStream:
    """A GET body read in caller-sized pieces; never buffers the whole object."""

    def __init__(self, info: ObjectInfo, body: Any, what: str) -> None:
        self.info = info
        self._body = body
        self._what = what

    def read(self, n: int = -1) -> bytes:
        try:
            data = self._body.read(None if n is None or n < 0 else n)
        except (ClientError, BotoCoreError, ConnectionError, TimeoutError, OSError) as exc:
            raise _translate(self._what, exc) from exc
        return bytes(data)

    def close(self) -> None:
        self._body.close()

    def __enter__(self) -> S3ReadStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------------------
# Helpers: translation, mapping responses to values
# ---------------------------------------------------------------------------------------------------------

# Connection-level failures: no usable answer came, so the request may be asked again.
_NO_ANSWER_BOTO: tuple[type[BaseException], ...] = (
    EndpointConnectionError, ConnectionClosedError, ReadTimeoutError, IncompleteReadError,
    ResponseStreamingError, BotoConnectionError, FlexibleChecksumError)


def _guard(what: str, fn: Callable[[], T]) -> T:
    try:
        return fn()
    except (ClientError, BotoCoreError, ConnectionError, TimeoutError) as exc:
        raise _translate(what, exc) from exc


def _translate(what: str, exc: BaseException) -> StoreError:
    return store_errors.to_error(_failure(what, exc))


def _failure(what: str, exc: BaseException) -> store_errors.Failure:
    """What botocore's exception says; ``migrator.stores.errors`` decides what it means."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {}) or {}
        meta = exc.response.get("ResponseMetadata", {}) or {}
        headers = meta.get("HTTPHeaders", {}) or {}
        status = meta.get("HTTPStatusCode")
        request_id = meta.get("RequestId") or headers.get("x-amz-request-id")
        code = str(err.get("Code") or status or "Unknown")
        if status == 405 and headers.get("x-amz-delete-marker") == "true" and code not in \
                store_errors.NOT_FOUND_CODES:
            return store_errors.Failure(f"{what}: the version is a delete marker", status=status,
                                        code="DeleteMarker", request_id=request_id)
        return store_errors.Failure(f"{what}: {code} (HTTP {status})", status=status, code=code,
                                    request_id=request_id)
    if isinstance(exc, SSLError):
        return store_errors.Failure(f"{what}: TLS failure: {exc}", code="SSLError", cause=store_errors.Cause.CLIENT)
    name = type(exc).__name__
    no_answer = isinstance(exc, (*_NO_ANSWER_BOTO, *store_errors.NO_ANSWER_EXCEPTIONS))
    cause = store_errors.Cause.NO_ANSWER if no_answer else store_errors.Cause.CLIENT
    return store_errors.Failure(f"{what}: {name}: {exc}", code=name, cause=cause)


def _request_token(gate: Gate) -> Callable[..., None]:
    """A ``before-send`` handler taking one request token per request sent (returns None: botocore sends)."""
    def take(**_: Any) -> None:
        gate.acquire(1)
    return take


def _refuse_non_loopback_send(request: Any, **_: Any) -> None:
    """Last line of defence: endpoint rules may rewrite hosts; nothing leaves loopback when restricted."""
    if not is_loopback_url(str(request.url)):
        host = urlsplit(str(request.url)).hostname
        raise UnsafeEndpointError(f"refusing to send an S3 request to non-loopback host {host!r}")


def _skip_sdk_response_validation(context: Any = None, **_: Any) -> None:
    """ChecksumMode=ENABLED makes botocore validate GET bodies. We hash every byte ourselves, and botocore
    would wrongly validate composite values that lack the "-N" suffix (moto), so drop its check."""
    if isinstance(context, dict):
        checksum = context.get("checksum")
        if isinstance(checksum, dict):
            checksum.pop("response_algorithms", None)


_ENTRY_TAG = re.compile(rb"<(Version|DeleteMarker)>")


def _record_version_order(response_dict: Any = None, customized_response_dict: Any = None,
                          **_: Any) -> None:
    """boto3 splits a version listing into Versions and DeleteMarkers; keep S3's interleaved order."""
    if not isinstance(response_dict, dict) or not isinstance(customized_response_dict, dict):
        return
    body = response_dict.get("body")
    if response_dict.get("status_code") == 200 and isinstance(body, bytes):
        customized_response_dict["MigratorEntryOrder"] = [m.group(1) == b"DeleteMarker"
                                                          for m in _ENTRY_TAG.finditer(body)]


def _page_entries(page: Mapping[str, Any]) -> list[VersionEntry]:
    """One listing page as S3 ordered it: by key, newest first within a key."""
    versions = [_entry(v, marker=False) for v in page.get("Versions", []) or []]
    markers = [_entry(d, marker=True) for d in page.get("DeleteMarkers", []) or []]
    order = page.get("MigratorEntryOrder")
    if isinstance(order, list) and sum(order) == len(markers) and len(order) == len(versions) + len(markers):
        vi, mi = iter(versions), iter(markers)
        ordered = [next(mi) if is_marker else next(vi) for is_marker in order]
        # S3 interleaves by key then newest first; moto emits all versions, then all markers. Grouping by
        # key (stable; code-point order is S3's UTF-8 byte order) is a no-op on S3 and keeps keys whole.
        return sorted(ordered, key=lambda e: e.key)
    # Fallback: merge by key, then newest first, the latest first on equal times.
    merged = versions + markers
    merged.sort(key=lambda e: (e.key, -(e.last_modified.timestamp() if e.last_modified else 0.0),
                               not e.is_latest))
    return merged


def _version(value: Any) -> str | None:
    """S3's version id as the protocol speaks it: "null" (an unversioned object) is None."""
    return None if value is None or str(value) == NULL_VERSION else str(value)


def _entry(raw: Mapping[str, Any], *, marker: bool) -> VersionEntry:
    return VersionEntry(key=raw["Key"], version=_version(raw.get("VersionId")), is_delete_marker=marker,
                        is_latest=bool(raw.get("IsLatest")), size=0 if marker else int(raw.get("Size", 0)),
                        etag=None if marker else raw.get("ETag"), last_modified=raw.get("LastModified"),
                        storage_class=None if marker else raw.get("StorageClass"))


def _target(uri: ObjectURI, version: str | None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"Bucket": uri.bucket, "Key": uri.key}
    # No id reads the current object. "null" (in records written before the protocol said None) is
    # dropped too: moto refuses it on unversioned buckets.
    if version is not None and version != NULL_VERSION:
        kwargs["VersionId"] = version
    return kwargs


def _show(uri: ObjectURI, version: str | None) -> str:
    return f"{uri}?versionId={version}" if version is not None else str(uri)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _effective_part_size(size: int, part_size: int) -> int:
    """Grow parts (in whole MiB) when ``size`` would need more than S3's 10,000 parts."""
    mib = 1024 * 1024
    needed = -(-size // MAX_PARTS)
    if needed > part_size:
        part_size = -(-needed // mib) * mib
    if part_size > MAX_PART_SIZE:
        raise InputError(f"object of {size} bytes is too large for S3 multipart upload")
    return part_size


_CHECKSUM_FIELDS = (
    ("ChecksumCRC64NVME", Algorithm.CRC64NVME),
    ("ChecksumCRC32C", Algorithm.CRC32C),
    ("ChecksumCRC32", Algorithm.CRC32),
    ("ChecksumSHA256", Algorithm.SHA256),
    ("ChecksumSHA1", Algorithm.SHA1),
)
def _parse_timestamp(value: str) -> datetime:
    """The two forms S3 sends (RFC 7231 headers, ISO 8601 in XML), fast; anything else as botocore would."""
    try:
        if value[-1:] == "Z":
            return datetime.fromisoformat(value)
        if value[-4:] == " GMT":
            return email.utils.parsedate_to_datetime(value)
    except (ValueError, TypeError):
        pass
    return botocore.utils.parse_timestamp(value)


_ETAG_PARTS = re.compile(r'-([0-9]+)"?$')


def _etag_parts(etag: str | None) -> int | None:
    m = _ETAG_PARTS.search(etag or "")
    return int(m.group(1)) if m else None


def _encryption(resp: Mapping[str, Any]) -> str | None:
    if resp.get("SSECustomerAlgorithm"):
        return "SSE-C"
    sse = resp.get("ServerSideEncryption")
    return str(sse) if sse else None


def _checksums(resp: Mapping[str, Any], provenance: Provenance, multipart_parts: int | None,
               extra: dict[str, str]) -> list[Checksum]:
    """Additional checksums plus the ETag where it is an MD5 (plaintext or SSE-S3, never SSE-C/KMS)."""
    out: list[Checksum] = []
    ctype = resp.get("ChecksumType")
    for field_name, algorithm in _CHECKSUM_FIELDS:
        raw = resp.get(field_name)
        if not raw:
            continue
        value, sep, count = str(raw).rpartition("-")
        parts: int | None
        if sep and count.isdigit():
            parts = int(count)
        else:
            value = str(raw)
            if algorithm == Algorithm.CRC64NVME or ctype == "FULL_OBJECT":
                parts = None
            elif ctype == "COMPOSITE" or multipart_parts is not None:
                # Composite without "-N" (moto), or an older multipart object without ChecksumType.
                parts = multipart_parts
                if parts is None:
                    extra[f"unparsed_{algorithm.value}"] = str(raw)
                    continue
            else:
                parts = None
        try:
            out.append(from_b64(algorithm, value, provenance, parts))
        except ChecksumError:
            extra[f"unparsed_{algorithm.value}"] = str(raw)
    etag = resp.get("ETag")
    encryption = _encryption(resp)
    if etag and encryption in (None, "AES256"):
        try:
            out.append(parse_s3_etag(str(etag), provenance))
        except ChecksumError:
            pass  # not an MD5 (e.g. an S3-compatible store's own ETag): no evidence, not a mismatch
    return out


_EXTRA_FIELDS = (
    ("ReplicationStatus", "replication_status"), ("ObjectLockMode", "object_lock_mode"),
    ("ObjectLockLegalHoldStatus", "object_lock_legal_hold"), ("Restore", "restore"),
    ("ArchiveStatus", "archive_status"), ("ChecksumType", "checksum_type"),
    ("SSEKMSKeyId", "sse_kms_key_id"), ("Expiration", "expiration"),
)


def _iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _object_info(uri: ObjectURI, resp: Mapping[str, Any]) -> ObjectInfo:
    etag = resp.get("ETag")
    multipart_parts = _etag_parts(etag)
    if multipart_parts is None and resp.get("PartsCount") is not None and "PartNumber" not in resp:
        multipart_parts = int(resp["PartsCount"])
    size = int(resp.get("ContentLength", 0))
    content_range = resp.get("ContentRange")
    if content_range:
        total = str(content_range).rpartition("/")[2]
        if total.isdigit():
            size = int(total)
    extra: dict[str, str] = {}
    for field_name, name in _EXTRA_FIELDS:
        if resp.get(field_name):
            extra[name] = str(resp[field_name])
    if resp.get("ObjectLockRetainUntilDate"):
        extra["object_lock_retain_until"] = _iso(resp["ObjectLockRetainUntilDate"])
    checksums = _checksums(resp, Provenance.SOURCE, multipart_parts, extra)
    return ObjectInfo(
        uri=uri, size=size, version=_version(resp.get("VersionId")),
        etag=str(etag) if etag else None, checksums=tuple(checksums),
        storage_class=str(resp.get("StorageClass") or "STANDARD"), encryption=_encryption(resp),
        content_type=resp.get("ContentType"), content_encoding=resp.get("ContentEncoding"),
        metadata=dict(resp.get("Metadata") or {}), last_modified=resp.get("LastModified"),
        multipart_parts=multipart_parts, protection=protection_from_extra(extra), extra=extra)


def _put_result(resp: Mapping[str, Any], size: int, *, parts: int | None) -> PutResult:
    extra: dict[str, str] = {}
    checksums = _checksums(resp, Provenance.DESTINATION, parts, extra)
    etag = resp.get("ETag")
    return PutResult(version=_version(resp.get("VersionId")), etag=str(etag) if etag else None,
                     checksums=tuple(checksums), size=size, parts=parts)
