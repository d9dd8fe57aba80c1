"""OCI Object Storage adapter (scheme ``oci``) over the ``oci`` SDK's ObjectStorageClient.

Sections, in the order every adapter uses: construction, optional features and bucket facts, reads (stat, open_read),
writes (put), listings, deletes, translation of SDK errors and headers.

Every request goes to the namespace its URI or location names; the store's own namespace (given, or asked of
the service once) only stands in where one names none.

The SDK's own retries and circuit breaker are off; ``migrator.retry.call`` is the one policy.
The store takes the OCI SDK config as a value, read and checked above the store layer by
``migrator.oci_config.load`` (the registry calls the loader its ``StoreSettings`` carries): that reader
passes the file's path to the SDK explicitly, and reports a bad file or key without quoting it.

Checksums from ``stat``/``open_read`` carry ``Provenance.SOURCE`` ("reported by the store for the bytes
it holds"); a caller using OCI as a destination re-labels them. ``put`` reports ``DESTINATION``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import http.client
import math
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, BinaryIO, TypeVar
from urllib.parse import urlsplit

import google_crc32c
import oci
from oci._vendor.requests.adapters import HTTPAdapter
from oci._vendor.requests.exceptions import RequestException as VendoredRequestException
from urllib3.exceptions import HTTPError as Urllib3Error

from migrator import crashpoints, retry
from migrator.checksum import (
    Algorithm,
    Checksum,
    Provenance,
    crc32c_bytes,
    from_b64,
    md5_and_crc32c,
    parse_oci_multipart_md5,
)
from migrator.endpoints import require_loopback
from migrator.errors import (
    ChecksumError,
    InputError,
    MigratorError,
    NotFound,
    PreconditionFailed,
    StoreError,
)
from migrator.limits import NO_LIMITS, Gate, StoreLimits
from migrator.stores import errors as store_errors
from migrator.stores.base import (
    BucketFacts,
    BucketIdentity,
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
from migrator.stores.common import RawBodyStream, delete_each, expect_eof, own_bucket, read_exactly
from migrator.stores.settings import StoreTransfer
from migrator.uri import Location, ObjectURI

T = TypeVar("T")

MAX_PARTS = 10_000
_TIMEOUT = (10.0, 120.0)  # (connect, read) seconds
_VERSION_FIELDS = "name,size,etag,md5,timeCreated,timeModified,storageTier,archivalState"
# Delete error codes: nothing there any more, and the pinned ETag no longer matches.
_GONE_CODES = frozenset({"NotFound", "ObjectNotFound", "VersionNotFound"})
_CHANGED_CODES = frozenset({"IfMatchFailed", "PreconditionFailed"})
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    VendoredRequestException,      # oci.exceptions.RequestException / ConnectTimeout derive from it
    Urllib3Error,                  # ProtocolError, ReadTimeoutError while streaming a body
    http.client.IncompleteRead,
    ConnectionError,
    TimeoutError,
)
_MODELS = oci.object_storage.models
_crc32c_extend: Callable[[int, bytes], int] = google_crc32c.extend


# objectstorage.<region>.<realm domain>: oraclecloud.com (OC1), the numbered and government realms' domains;
# a region may have three parts (us-gov-ashburn-1, uk-gov-london-1).
_OFFICIAL_HOST = re.compile(
    r"^objectstorage\.([a-z]{2}(?:-[a-z]+)+-\d+)\.(?:oraclecloud\d*\.com|oraclegovcloud\.(?:com|uk))$")


def oci_region_from_endpoint(url: str) -> str | None:
    """The region an official Object Storage endpoint's hostname names, or None for any other host."""
    host = urlsplit(url if "://" in url else "https://" + url).hostname or ""
    m = _OFFICIAL_HOST.match(host.lower())
    return m.group(1) if m else None


class MeteredAdapter(HTTPAdapter):  # type: ignore[misc]  # the SDK's vendored requests is untyped
    """The SDK's vendored requests HTTPAdapter, taking one request token per request it sends."""

    def __init__(self, gate: Gate, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gate = gate

    def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        self.gate.acquire(1)
        return super().send(request, *args, **kwargs)


class OciStore:
    """ObjectStore for ``oci://namespace/bucket/key``. One SDK client shared by threads (the SDK's
    own multipart assembler does the same), with a connection pool sized for parallel parts."""

    scheme = "oci"

    # --- construction -------------------------------------------------------------------------------

    def __init__(self, config: Mapping[str, Any], endpoint: str | None = None, *, namespace: str | None = None,
                 transfer: StoreTransfer, allow_non_loopback: bool = True, ca_bundle: str | None = None,
                 limits: StoreLimits | None = None) -> None:
        """``config``: the OCI SDK config of one profile, as ``migrator.oci_config.load`` returns it (checked,
        its key loadable). Uses all of ``transfer``: parts of ``part_size``, ``parts_in_flight`` at once per
        object, and a requests pool of ``max_pool_connections`` (at least two per part in flight).
        ``limits``: the location's caps (None: unlimited); every request the SDK's session sends takes a
        request token."""
        if not allow_non_loopback:
            require_loopback(endpoint, "OCI store")
        if transfer.part_size <= 0:
            raise InputError("part size must be positive", field="part_size")
        if transfer.multipart_threshold < 0:
            raise InputError("multipart threshold must not be negative", field="multipart_threshold")
        if transfer.parts_in_flight < 1:
            raise InputError("parts in flight must be at least 1", field="parts_in_flight")
        self.endpoint = endpoint
        self.part_size = transfer.part_size
        self.multipart_threshold = transfer.multipart_threshold
        self.parts_in_flight = transfer.parts_in_flight
        self.limits = limits or NO_LIMITS
        # Neither the SDK's retries nor its circuit breaker: after a few failures the breaker would fail
        # calls locally for a while ("please contact Oracle support"), a second policy under ours.
        kwargs: dict[str, Any] = {"retry_strategy": oci.retry.NoneRetryStrategy(), "timeout": _TIMEOUT,
                                  "circuit_breaker_strategy": oci.circuit_breaker.NoCircuitBreakerStrategy()}
        if endpoint is not None:
            kwargs["service_endpoint"] = endpoint
        self._client = oci.object_storage.ObjectStorageClient(dict(config), **kwargs)
        size = max(transfer.max_pool_connections, transfer.parts_in_flight * 2)
        for prefix in ("http://", "https://"):
            self._client.base_client.session.mount(
                prefix, MeteredAdapter(self.limits.requests, pool_connections=4, pool_maxsize=size))
        if ca_bundle is not None:
            self._client.base_client.session.verify = ca_bundle
        # The region: the official endpoint's hostname says it; with no endpoint the SDK derives one from the
        # config's region, which is then the region the requests go to. Any other host cannot say.
        self.region = oci_region_from_endpoint(endpoint) if endpoint is not None else config.get("region")
        self.official_endpoint = self.region is not None
        self._namespace = namespace
        self._ns_lock = threading.Lock()
        self.features = Features(
            conditional_write=True,        # if-none-match: * on put and commit
            conditional_delete=True,       # if-match on the ETag, and version ids
            batch_delete_max=1,            # OCI's BatchDeleteObjects takes no version ids
            reports_protection=False,      # retention rules are per bucket; objects do not say they are held
            one_request_limit=self.multipart_threshold,
            uploads=Uploads(list=self.list_uploads, abort=self.abort_upload),
            replication_targets=self.replication_targets)

    @property
    def client(self) -> Any:
        """The underlying SDK client (tests and the sandbox create buckets with it)."""
        return self._client

    @property
    def namespace(self) -> str:
        """The tenancy's namespace, for URIs and locations that name none: given, or asked of the service once."""
        with self._ns_lock:
            if self._namespace is None:
                self._namespace = str(_call(lambda: self._client.get_namespace().data, "oci namespace"))
            return self._namespace

    def _ns(self, uri: ObjectURI) -> str:
        if uri.scheme != "oci":
            raise InputError(f"not an oci:// URI: {uri}")
        return uri.namespace or self.namespace

    def _place(self, location: Location) -> tuple[str, str]:
        """(namespace, bucket) of a bucket-level call: the location's own namespace, never another."""
        bucket = own_bucket(location, self.scheme)
        return location.namespace or self.namespace, bucket

    # --- optional features and bucket facts ---------------------------------------------------------

    def replication_targets(self, location: Location) -> list[Location]:
        """Destination buckets of the bucket's replication policies (another region, same namespace)."""
        ns, bucket = self._place(location)
        where = f"oci://{ns}/{bucket}"
        policies = _call(lambda: self._client.list_replication_policies(ns, bucket).data, where)
        names = {str(getattr(p, "destination_bucket_name", "") or "") for p in policies or []}
        return [Location("oci", name, ns) for name in sorted(names) if name]

    def identify(self, location: Location) -> BucketIdentity:
        ns, bucket = self._place(location)
        data = _call(lambda: self._client.get_bucket(ns, bucket).data, f"oci://{ns}/{bucket}")
        owner = getattr(data, "namespace", None) or ns
        return BucketIdentity(region=self.region, region_source="endpoint hostname" if self.region else "none",
                              owner=str(owner), owner_source="bucket namespace",
                              official_endpoint=self.official_endpoint)

    def bucket_facts(self, location: Location) -> BucketFacts:
        ns, bucket = self._place(location)
        where = f"oci://{ns}/{bucket}"
        data = _call(lambda: self._client.get_bucket(ns, bucket).data, where)
        rules = _call(lambda: self._client.list_retention_rules(ns, bucket).data, where)
        # Suspended still keeps the versions made while enabled: list them like a versioned bucket.
        versioning = (getattr(data, "versioning", None) or "Disabled") != "Disabled"
        return BucketFacts(versioning=versioning, retention=bool(getattr(rules, "items", None)),
                           soft_delete_seconds=0)   # OCI has no soft delete

    # --- reads --------------------------------------------------------------------------------------

    def stat(self, uri: ObjectURI, version: str | None = None) -> ObjectInfo:
        ns = self._ns(uri)
        kwargs = {"version_id": version} if version is not None else {}
        resp = _call(lambda: self._client.head_object(ns, uri.bucket, uri.key, **kwargs), _where(uri, version))
        info = info_from_headers(uri, resp.headers)
        _check_version(uri, version, info.version)
        return info

    def open_read(self, uri: ObjectURI, version: str | None = None,
                  byte_range: tuple[int, int] | None = None) -> RawBodyStream:
        """Stream the stored bytes as they are (no decoding). With a range, ``info.size`` is the whole
        object's, and only checksums that describe the whole object are reported."""
        ns = self._ns(uri)
        if byte_range is not None and (byte_range[0] < 0 or byte_range[1] < byte_range[0]):
            raise InputError(f"bad byte range {byte_range!r}")
        kwargs: dict[str, Any] = {}
        if version is not None:
            kwargs["version_id"] = version
        if byte_range is not None:
            kwargs["range"] = f"bytes={byte_range[0]}-{byte_range[1]}"
        resp = _call(lambda: self._client.get_object(ns, uri.bucket, uri.key, **kwargs), _where(uri, version))
        raw = resp.data
        try:
            if byte_range is not None and resp.status != 206:
                raise StoreError(f"GET {uri}: range {byte_range} answered {resp.status}", code="RangeIgnored")
            info = info_from_headers(uri, resp.headers, ranged=byte_range is not None)
            _check_version(uri, version, info.version)
            expected = _int_header(resp.headers.get("content-length"))
            return RawBodyStream(raw, info, expected, translate)
        except BaseException:
            raw.close()
            raise

    # --- writes -------------------------------------------------------------------------------------

    def put(self, uri: ObjectURI, body: BinaryIO, request: PutRequest) -> PutResult:
        """One PutObject up to the threshold; above it a multipart upload with parts overlapped.

        Every body goes with its Content-MD5 and CRC32C, so OCI refuses bytes damaged on the way;
        ``if-none-match: *`` when the request says so. Parts are bytes in memory and retried one by
        one; the whole upload is aborted on failure. Memory: part size x parts in flight.
        """
        ns = self._ns(uri)
        if request.size < 0:
            raise InputError(f"negative size for {uri}")
        if request.size <= self.multipart_threshold:
            return self._put_single(ns, uri, body, request)
        return self._put_multipart(ns, uri, body, request)

    def _put_kwargs(self, request: PutRequest) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if request.content_type:
            kwargs["content_type"] = request.content_type
        if request.content_encoding:
            kwargs["content_encoding"] = request.content_encoding
        if request.metadata:
            kwargs["opc_meta"] = dict(request.metadata)
        if request.if_none_match:
            kwargs["if_none_match"] = "*"
        elif request.if_match:
            kwargs["if_match"] = request.if_match
        return kwargs

    def _put_single(self, ns: str, uri: ObjectURI, body: BinaryIO, request: PutRequest) -> PutResult:
        data = read_exactly(body, request.size, str(uri))
        expect_eof(body, request.size, str(uri))
        md5_raw, crc_raw = md5_and_crc32c(data, request.body_digests)
        md5, crc = base64.b64encode(md5_raw).decode("ascii"), base64.b64encode(crc_raw).decode("ascii")
        kwargs = self._put_kwargs(request)
        state = {"retried": False}

        def attempt() -> PutResult:
            try:
                resp = self._client.put_object(ns, uri.bucket, uri.key, data, content_md5=md5,
                                               opc_checksum_algorithm="CRC32C", opc_content_crc32c=crc,
                                               **kwargs)
            except Exception as exc:
                err = translate(exc, str(uri))
                if isinstance(err, PreconditionFailed) and state["retried"]:
                    # An earlier attempt may have landed before its response was lost.
                    mine = self._own_earlier_write(uri, len(data), md5=md5, crc=crc)
                    if mine is not None:
                        return mine
                if isinstance(err, StoreError) and err.retryable:
                    state["retried"] = True
                raise err from exc
            return _single_result(resp.headers, len(data), uri)

        return retry.call(attempt)

    def _own_earlier_write(self, uri: ObjectURI, size: int, *, md5: str | None = None, crc: str | None = None,
                           multipart_md5: str | None = None) -> PutResult | None:
        try:
            info = self.stat(uri)
        except NotFound:
            return None
        h = info.extra
        if info.size != size or h.get("opc-content-crc32c", crc) != crc:
            return None
        if md5 is not None and h.get("content-md5") != md5:
            return None
        if multipart_md5 is not None and h.get("opc-multipart-md5") != multipart_md5:
            return None
        checksums = tuple(Checksum(c.algorithm, c.value, Provenance.DESTINATION, c.parts) for c in info.checksums)
        return PutResult(version=info.version, etag=info.etag, checksums=checksums, size=size,
                         parts=info.multipart_parts)

    def _put_multipart(self, ns: str, uri: ObjectURI, body: BinaryIO, request: PutRequest) -> PutResult:
        part_size = max(self.part_size, math.ceil(request.size / MAX_PARTS))
        count = max(1, math.ceil(request.size / part_size))
        details = _MODELS.CreateMultipartUploadDetails(
            object=uri.key, content_type=request.content_type, content_encoding=request.content_encoding,
            metadata={f"opc-meta-{k}": v for k, v in request.metadata.items()} or None)
        create_kwargs = ({"if_none_match": "*"} if request.if_none_match
                         else {"if_match": request.if_match} if request.if_match else {})
        upload = _call(lambda: self._client.create_multipart_upload(
            ns, uri.bucket, details, opc_checksum_algorithm="CRC32C", **create_kwargs).data, str(uri))
        upload_id = str(upload.upload_id)
        try:
            etags, part_md5s, whole_crc = self._upload_parts(ns, uri, body, upload_id, request.size,
                                                             part_size, count)
            expected_mp = f"{base64.b64encode(hashlib.md5(b''.join(part_md5s)).digest()).decode()}-{count}"
            commit = _MODELS.CommitMultipartUploadDetails(parts_to_commit=[
                _MODELS.CommitMultipartUploadPartDetails(part_num=n, etag=e) for n, e in enumerate(etags, 1)])
            crc_b64 = base64.b64encode(whole_crc).decode("ascii")
            state = {"retried": False}

            def attempt() -> PutResult:
                try:
                    resp = self._client.commit_multipart_upload(ns, uri.bucket, uri.key, upload_id, commit,
                                                                **create_kwargs)
                except Exception as exc:
                    err = translate(exc, str(uri))
                    if isinstance(err, NotFound | PreconditionFailed) and state["retried"]:
                        mine = self._own_earlier_write(uri, request.size, crc=crc_b64,
                                                       multipart_md5=expected_mp)
                        if mine is not None:
                            return mine
                    if isinstance(err, StoreError) and err.retryable:
                        state["retried"] = True
                    raise err from exc
                return _multipart_result(resp.headers, request.size, count, uri)

            return retry.call(attempt)
        except BaseException:
            self._abort_quietly(ns, uri, upload_id)
            raise

    def _upload_parts(self, ns: str, uri: ObjectURI, body: BinaryIO, upload_id: str, size: int,
                      part_size: int, count: int) -> tuple[list[str], list[bytes], bytes]:
        """Read parts in order (the body is one stream), upload up to ``parts_in_flight`` at once."""
        slots = threading.Semaphore(self.parts_in_flight)
        whole = 0
        futures: list[Future[tuple[str, bytes]]] = []
        with ThreadPoolExecutor(max_workers=self.parts_in_flight, thread_name_prefix="oci-part") as pool:
            try:
                for num in range(1, count + 1):
                    slots.acquire()
                    failed = next((f for f in futures if f.done() and f.exception() is not None), None)
                    if failed is not None:
                        slots.release()
                        failed.result()  # raises the part's error
                    try:
                        want = min(part_size, size - (num - 1) * part_size)
                        data = read_exactly(body, want, str(uri))
                        if num == count:
                            expect_eof(body, size, str(uri))
                        whole = _crc32c_extend(whole, data)
                    except BaseException:
                        slots.release()
                        raise
                    # carry: the part belongs to the caller's operation, whose retry owns the attempts
                    fut = pool.submit(retry.carry(self._upload_part), ns, uri, upload_id, num, data)
                    del data  # the pool holds it now; keeps memory at parts_in_flight parts
                    fut.add_done_callback(lambda _f: slots.release())
                    futures.append(fut)
                results = [f.result() for f in futures]
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
        return [r[0] for r in results], [r[1] for r in results], whole.to_bytes(4, "big")

    def _upload_part(self, ns: str, uri: ObjectURI, upload_id: str, num: int, data: bytes) -> tuple[str, bytes]:
        md5 = hashlib.md5(data).digest()
        md5_text = base64.b64encode(md5).decode("ascii")
        crc = base64.b64encode(crc32c_bytes(data)).decode("ascii")
        resp = _call(lambda: self._client.upload_part(
            ns, uri.bucket, uri.key, upload_id, num, data, content_md5=md5_text,
            opc_checksum_algorithm="CRC32C", opc_content_crc32c=crc), f"{uri} part {num}")
        reported = resp.headers.get("opc-content-md5")
        if reported is not None and reported != md5_text:
            raise StoreError(f"{uri} part {num}: OCI stored MD5 {reported}, sent {md5_text}",
                             code="PartDigestMismatch")
        etag = resp.headers.get("etag")
        if not etag:
            raise StoreError(f"{uri} part {num}: no etag in the response", code="MissingEtag")
        crashpoints.hit("mid-multipart")
        return str(etag), md5

    def _abort_quietly(self, ns: str, uri: ObjectURI, upload_id: str) -> None:
        try:
            # Its own attempts: a retry of the failed operation starts a new upload and would not redo this.
            retry.separately(lambda: self.abort_upload(Location("oci", uri.bucket, ns), uri.key, upload_id))
        except MigratorError:
            pass  # the original error matters more; list_uploads finds what is left

    # --- listings -----------------------------------------------------------------------------------

    def list_versions(self, location: Location, prefix: str, start: str | None = None) -> Iterator[VersionEntry]:
        """Every version and delete marker under ``prefix``, oldest first within a key.

        OCI lists names in order and, within a name, newest first; each name's run is reversed.
        The newest entry of a key (a version or a delete marker) is its latest.
        """
        run: list[Any] = []
        for item in self._list_versions(location, prefix, start):
            if run and run[-1].name != item.name:
                yield from _entries(run)
                run = []
            run.append(item)
        yield from _entries(run)

    def _list_versions(self, location: Location, prefix: str, start: str | None = None) -> Iterator[Any]:
        ns, bucket = self._place(location)
        where = f"oci://{ns}/{bucket}/{prefix}"
        page: str | None = None
        while True:
            kwargs: dict[str, Any] = {"fields": _VERSION_FIELDS}
            if prefix:
                kwargs["prefix"] = prefix
            if start and not page:
                kwargs["start"] = start  # inclusive; later pages follow opc-next-page
            if page:
                kwargs["page"] = page
            resp = _call(functools.partial(self._client.list_object_versions, ns, bucket, **kwargs), where)
            yield from resp.data.items or []
            page = resp.headers.get("opc-next-page")
            if not page:
                return

    def list_uploads(self, location: Location, prefix: str) -> Iterator[UploadInfo]:
        """Incomplete multipart uploads whose object name starts with ``prefix`` (the API has no
        prefix filter: every page is read)."""
        ns, bucket = self._place(location)
        where = f"oci://{ns}/{bucket}"
        page: str | None = None
        while True:
            kwargs = {"page": page} if page else {}
            resp = _call(functools.partial(self._client.list_multipart_uploads, ns, bucket, **kwargs), where)
            for up in resp.data or []:
                if str(up.object).startswith(prefix):
                    yield UploadInfo(key=str(up.object), upload_id=str(up.upload_id), initiated=up.time_created)
            page = resp.headers.get("opc-next-page")
            if not page:
                return

    def abort_upload(self, location: Location, key: str, upload_id: str) -> None:
        ns, bucket = self._place(location)
        _call_idempotent(lambda: self._client.abort_multipart_upload(ns, bucket, key, upload_id),
                         f"oci://{ns}/{bucket}/{key} upload {upload_id}")

    # --- deletes ------------------------------------------------------------------------------------

    def delete_version(self, uri: ObjectURI, version: str | None, *, if_match: str | None = None) -> None:
        """Delete exactly one version (permanent, even in a versioned bucket), or the live object
        under an ``if-match`` ETag precondition. A delete naming neither is refused: it could remove
        bytes nobody verified, or only add a delete marker."""
        ns = self._ns(uri)
        if version is None and if_match is None:
            raise InputError(f"refusing an unpinned delete of {uri}: name a version or an ETag")
        kwargs: dict[str, Any] = {}
        if version is not None:
            kwargs["version_id"] = version
        if if_match is not None:
            kwargs["if_match"] = if_match
        def call() -> None:
            self._client.delete_object(ns, uri.bucket, uri.key, **kwargs)

        if version is not None:
            # A retried pinned delete that finds nothing means an earlier attempt removed it.
            _call_idempotent(call, _where(uri, version))
        else:
            _call(call, _where(uri, version))

    def delete_versions(self, location: Location, targets: Sequence[DeleteTarget]) -> list[DeleteResult]:
        """One request per target: OCI's BatchDeleteObjects cannot name version ids."""
        ns, bucket = self._place(location)
        return delete_each(targets, Location("oci", bucket, ns, location.at).uri,
                           lambda uri, version, etag: self.delete_version(uri, version, if_match=etag),
                           gone=_GONE_CODES, changed=_CHANGED_CODES)


# --- translation: SDK headers, listings and errors ----------------------------------------------------

def _where(uri: ObjectURI, version: str | None) -> str:
    return f"{uri} (version {version})" if version else str(uri)


def _check_version(uri: ObjectURI, asked: str | None, got: str | None) -> None:
    if asked is not None and got is not None and asked != got:
        raise StoreError(f"{uri}: asked for version {asked}, got {got}", code="WrongVersion")


def _int_header(value: str | None) -> int | None:
    return int(value) if value is not None and value.strip().isdigit() else None


def _http_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None


def _checksums(h: Mapping[str, str], provenance: Provenance, *, ranged: bool = False) -> list[Checksum]:
    """Every checksum OCI reports in these headers, each for the whole object."""
    out: list[Checksum] = []
    md5 = h.get("opc-content-md5") or (None if ranged else h.get("content-md5"))
    if md5:
        out.append(from_b64(Algorithm.MD5, md5, provenance))
    if h.get("opc-content-crc32c"):
        out.append(from_b64(Algorithm.CRC32C, h["opc-content-crc32c"], provenance))
    if h.get("opc-content-sha256"):
        out.append(from_b64(Algorithm.SHA256, h["opc-content-sha256"], provenance))
    if h.get("opc-multipart-md5"):
        out.append(parse_oci_multipart_md5(h["opc-multipart-md5"], provenance))
    return out


_EXTRA_HEADERS = ("archival-state", "time-of-archival", "opc-multipart-md5", "opc-multipart-sha256",
                  "opc-content-crc32c", "content-md5", "opc-sse-kms-key-id", "opc-sse-customer-algorithm",
                  "storage-tier")


def info_from_headers(uri: ObjectURI, headers: Mapping[str, str], *, ranged: bool = False) -> ObjectInfo:
    """An ObjectInfo from HeadObject/GetObject response headers (checksums as SOURCE)."""
    h = headers
    size: int | None
    if ranged:
        content_range = h.get("content-range") or ""
        size = _int_header(content_range.rsplit("/", 1)[1]) if "/" in content_range else None
    else:
        size = _int_header(h.get("content-length"))
    if size is None:
        raise StoreError(f"{uri}: the response tells no object size", code="MissingSize")
    try:
        checksums = _checksums(h, Provenance.SOURCE, ranged=ranged)
    except ChecksumError as exc:
        raise StoreError(f"{uri}: malformed checksum header: {exc}", code="MalformedChecksum") from exc
    multipart = next((c for c in checksums if c.algorithm == Algorithm.MULTIPART_MD5), None)
    encryption = None
    if h.get("opc-sse-customer-algorithm"):
        encryption = "SSE-C"
    elif h.get("opc-sse-kms-key-id"):
        encryption = "KMS"
    extra = {name: str(h[name]) for name in _EXTRA_HEADERS if h.get(name)}
    extra["info_source"] = "response-headers"
    return ObjectInfo(
        uri=uri,
        size=size,
        version=h.get("version-id"),
        etag=h.get("etag"),
        checksums=tuple(checksums),
        storage_class=h.get("storage-tier"),
        encryption=encryption,
        content_type=h.get("content-type"),
        content_encoding=h.get("content-encoding"),
        metadata={k[len("opc-meta-"):]: v for k, v in h.items() if k.lower().startswith("opc-meta-")},
        last_modified=_http_time(h.get("last-modified")),
        multipart_parts=multipart.parts if multipart is not None else None,
        extra=extra,
    )


def _single_result(h: Mapping[str, str], size: int, uri: ObjectURI) -> PutResult:
    checksums = _checksums(h, Provenance.DESTINATION)
    if not any(c.algorithm == Algorithm.MD5 for c in checksums):
        raise StoreError(f"PUT {uri}: OCI reported no opc-content-md5", code="MissingChecksum")
    return PutResult(version=h.get("version-id"), etag=h.get("etag"), checksums=tuple(checksums), size=size)


def _multipart_result(h: Mapping[str, str], size: int, count: int, uri: ObjectURI) -> PutResult:
    checksums = _checksums(h, Provenance.DESTINATION)
    mp = next((c for c in checksums if c.algorithm == Algorithm.MULTIPART_MD5), None)
    if mp is None or mp.parts != count:
        raise StoreError(f"commit {uri}: OCI reported no opc-multipart-md5 for {count} parts",
                         code="MissingChecksum")
    return PutResult(version=h.get("version-id"), etag=h.get("etag"), checksums=tuple(checksums),
                     size=size, parts=count)


def _entries(run: list[Any]) -> list[VersionEntry]:
    """One key's listing rows (newest first, as OCI lists them) as entries, oldest first."""
    out = []
    for idx, item in enumerate(reversed(run)):
        out.append(VersionEntry(
            key=str(item.name),
            version=str(item.version_id) if item.version_id is not None else None,
            is_delete_marker=bool(item.is_delete_marker),
            is_latest=idx == len(run) - 1,
            size=int(item.size or 0),
            etag=item.etag,
            last_modified=item.time_modified or item.time_created,
            storage_class=item.storage_tier,
        ))
    return out


def _status_error(status: int | None, code: str | None, message: str,
                  request_id: str | None = None) -> StoreError:
    """An error answer, through the one table (``migrator.stores.errors``)."""
    return store_errors.to_error(store_errors.Failure(message, status=status, code=code, request_id=request_id))


def translate(exc: BaseException, where: str) -> MigratorError:
    """Map an SDK/transport exception onto the migrator hierarchy, by type and status code."""
    if isinstance(exc, MigratorError):
        return exc
    if isinstance(exc, oci.exceptions.ServiceError):
        status = exc.status if isinstance(exc.status, int) and exc.status > 0 else None
        request_id = getattr(exc, "request_id", None)
        return _status_error(status, exc.code, f"{where}: {exc.status} {exc.code}: {exc.message}",
                             str(request_id) if request_id else None)
    if isinstance(exc, _CONNECTION_ERRORS):
        return store_errors.to_error(store_errors.Failure(
            f"{where}: connection failed: {type(exc).__name__}: {exc}", code="ConnectionError",
            cause=store_errors.Cause.NO_ANSWER))
    return store_errors.to_error(store_errors.Failure(f"{where}: {type(exc).__name__}: {exc}",
                                                      code=type(exc).__name__, cause=store_errors.Cause.CLIENT))


def _call(fn: Callable[[], T], where: str) -> T:
    """Run one SDK call under the retry policy, errors translated first so the policy sees them."""
    def attempt() -> T:
        try:
            return fn()
        except Exception as exc:
            raise translate(exc, where) from exc
    return retry.call(attempt)


def _call_idempotent(fn: Callable[[], Any], where: str) -> None:
    """A removal: NotFound after a retried attempt means an earlier attempt did the work."""
    state = {"retried": False}

    def attempt() -> None:
        try:
            fn()
        except Exception as exc:
            err = translate(exc, where)
            if isinstance(err, NotFound) and state["retried"]:
                return
            if isinstance(err, StoreError) and err.retryable:
                state["retried"] = True
            raise err from exc
    retry.call(attempt)
