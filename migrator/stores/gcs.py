"""Google Cloud Storage adapter (scheme ``gs``) over google-cloud-storage's JSON API client.

Sections, in the order every adapter uses: construction, bucket facts, reads (stat, open_read),
writes (put), listings, deletes, translation of SDK errors and resources.

The client's own retries are off on every call (``retry=None``); ``migrator.retry.call`` is the one
policy. Generations are the version ids (decimal strings); every read and delete is pinned to one.
"""

from __future__ import annotations

import base64
import http.client
import io
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, BinaryIO, TypeVar
from urllib.parse import quote

import google.auth.exceptions
import requests
import urllib3.exceptions
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from google.cloud.storage.exceptions import DataCorruption, InvalidResponse
from requests.adapters import HTTPAdapter

from migrator import retry
from migrator.checksum import (
    Algorithm,
    Checksum,
    Provenance,
    from_b64,
    md5_and_crc32c,
)
from migrator.endpoints import require_loopback
from migrator.errors import (
    ChecksumError,
    ChecksumMismatch,
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
    VersionEntry,
)
from migrator.stores.common import RawBodyStream, delete_each, own_bucket
from migrator.stores.protection import protection_from_extra
from migrator.stores.settings import StoreTransfer
from migrator.uri import Location, ObjectURI

T = TypeVar("T")

_CHUNK_ALIGN = 256 * 1024  # resumable chunks must be multiples of 256 KiB
# Delete error codes (as translated below): nothing there any more, and the generation or ETag changed.
_GONE_CODES = frozenset({"NotFound"})
_CHANGED_CODES = frozenset({"PreconditionFailed", "conditionNotMet"})
_TIMEOUT = (10.0, 120.0)   # (connect, read) seconds for media GETs
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
    urllib3.exceptions.HTTPError,          # ProtocolError, ReadTimeoutError, IncompleteRead, ...
    google.auth.exceptions.TransportError,
    http.client.IncompleteRead,
    ConnectionError,
    TimeoutError,
)


class MeteredAdapter(HTTPAdapter):
    """requests' HTTPAdapter taking one request token per request it sends (every attempt, every chunk)."""

    def __init__(self, gate: Gate, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gate = gate

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        self.gate.acquire(1)
        return super().send(request, *args, **kwargs)


class GcsStore:
    """ObjectStore for ``gs://``. One client, shared by threads (requests sessions are thread-safe
    enough for independent requests; the SDK documents Client as usable across threads).

    Uses ``transfer.part_size`` (the resumable upload's chunk: memory per upload is one chunk),
    ``multipart_threshold`` and ``max_pool_connections`` (the client's requests pool). Not
    ``parts_in_flight``: a resumable upload sends its chunks one after another, in order.
    ``endpoint`` None means the SDK's own resolution (which honours STORAGE_EMULATOR_HOST); with
    ``allow_non_loopback`` off an explicit loopback endpoint is required.
    """

    scheme = "gs"

    # --- construction -------------------------------------------------------------------------------

    def __init__(self, *, endpoint: str | None = None, project: str | None = None, transfer: StoreTransfer,
                 allow_non_loopback: bool = True, credentials_file: str | None = None,
                 ca_bundle: str | None = None, limits: StoreLimits | None = None) -> None:
        """``credentials_file``: a service-account JSON (None: ADC, or anonymous on an emulator endpoint).
        ``ca_bundle``: the CA bundle the client's session trusts. ``limits``: the location's caps (None:
        unlimited); every request the client's session sends (resumable upload chunks too) takes a token."""
        if endpoint is not None and "://" not in endpoint:
            endpoint = "http://" + endpoint
        if not allow_non_loopback:
            require_loopback(endpoint, "GCS store")
        if transfer.part_size <= 0 or transfer.part_size % _CHUNK_ALIGN:
            raise InputError(f"GCS part size {transfer.part_size} must be a positive multiple of 256 KiB",
                             field="part_size")
        if transfer.multipart_threshold < 0:
            raise InputError("multipart threshold must not be negative", field="multipart_threshold")
        self.endpoint = endpoint
        self.part_size = transfer.part_size
        self.multipart_threshold = transfer.multipart_threshold
        self.official_endpoint = endpoint is None
        self.limits = limits or NO_LIMITS
        if credentials_file is not None:
            from google.oauth2 import service_account

            try:
                creds = service_account.Credentials.from_service_account_file(credentials_file)  # type: ignore[no-untyped-call]
            except (OSError, ValueError) as exc:
                raise InputError(f"cannot read the service-account file: {type(exc).__name__}",
                                 field="credentials_file") from None
            options = {"api_endpoint": endpoint} if endpoint is not None else None
            self._client = storage.Client(project=project or creds.project_id, credentials=creds,
                                          client_options=options)
        elif endpoint is not None:
            self._client = storage.Client(project=project or "migrator-local",
                                          credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                                          client_options={"api_endpoint": endpoint})
        else:
            try:
                self._client = storage.Client(project=project)
            except google.auth.exceptions.DefaultCredentialsError:
                # Said without the SDK's text, which may name files that hold credentials.
                raise InputError("no Google credentials found: set GOOGLE_APPLICATION_CREDENTIALS or run "
                                 "`gcloud auth application-default login` (for the sandbox, "
                                 "`eval \"$(migrator sandbox env)\"`)", field="gcs credentials") from None
        # The client's session (also used by resumable uploads) would keep requests' default of 10
        # connections: fewer than a wave's workers, so the rest would reconnect for every request.
        pool = MeteredAdapter(self.limits.requests, pool_connections=4, pool_maxsize=transfer.max_pool_connections)
        for prefix in ("http://", "https://"):
            self._client._http.mount(prefix, pool)
        if ca_bundle is not None:
            self._client._http.verify = ca_bundle
        # No uploads feature: the JSON API cannot list incomplete resumable uploads (they expire after a
        # week and hold no readable object); XML-API multipart uploads are not used.
        self.features = Features(
            conditional_write=True, conditional_delete=True,
            batch_delete_max=1,            # JSON batch requests: later
            reports_protection=True,       # holds and retention come with every object resource
            one_request_limit=self.multipart_threshold, soft_deleted=self.list_soft_deleted)

    @property
    def client(self) -> storage.Client:
        """The underlying SDK client (tests and the sandbox create buckets with it)."""
        return self._client

    # --- bucket facts -------------------------------------------------------------------------------

    def identify(self, location: Location) -> BucketIdentity:
        bucket = own_bucket(location, self.scheme)
        res = _call(lambda: self._client.get_bucket(bucket, retry=None)._properties, f"gs://{bucket}")
        where, project = res.get("location"), res.get("projectNumber")
        return BucketIdentity(region=str(where).lower() if where else None,
                              region_source="bucket location" if where else "none",
                              owner=str(project) if project else None,
                              owner_source="bucket projectNumber" if project else "none",
                              official_endpoint=self.official_endpoint)

    def bucket_facts(self, location: Location) -> BucketFacts:
        bucket = own_bucket(location, self.scheme)
        res = _call(lambda: self._client.get_bucket(bucket, retry=None)._properties, f"gs://{bucket}")
        versioning = bool((res.get("versioning") or {}).get("enabled", False))
        seconds: int | None = None   # no policy in the resource: unknown, which holds (fail closed)
        policy = res.get("softDeletePolicy")
        if isinstance(policy, Mapping) and policy.get("retentionDurationSeconds") is not None:
            seconds = int(policy["retentionDurationSeconds"])
        retention = bool(res.get("retentionPolicy")) or \
            (res.get("objectRetention") or {}).get("mode") == "Enabled"
        return BucketFacts(versioning=versioning, retention=retention, soft_delete_seconds=seconds)

    # --- reads --------------------------------------------------------------------------------------

    def stat(self, uri: ObjectURI, version: str | None = None) -> ObjectInfo:
        generation = _generation(version)

        def get() -> dict[str, Any]:
            blob = self._client.bucket(uri.bucket).get_blob(uri.key, generation=generation, retry=None)
            if blob is None:
                raise NotFound(f"{uri} (generation {version}) not found", status=404, code="NotFound")
            return dict(blob._properties)

        return info_from_resource(uri, _call(get, str(uri)))

    def open_read(self, uri: ObjectURI, version: str | None = None,
                  byte_range: tuple[int, int] | None = None) -> RawBodyStream:
        """Stream the stored bytes as they are (gzip-encoded objects stay compressed).

        ``info`` comes from the response headers alone (x-goog-generation, x-goog-hash,
        x-goog-stored-content-*, x-goog-meta-*): no second request. Holds, retention and
        encryption are not in the headers; call ``stat`` for those. With a range, ``size`` is the
        whole object's and the checksums describe the whole object, not the range.
        """
        generation = _generation(version)
        if byte_range is not None and (byte_range[0] < 0 or byte_range[1] < byte_range[0]):
            raise InputError(f"bad byte range {byte_range!r}")
        path = f"/b/{quote(uri.bucket, safe='')}/o/{quote(uri.key, safe='')}"
        params = {"alt": "media"}
        if generation is not None:
            params["generation"] = str(generation)
        url = self._client._connection.build_api_url(path=path, query_params=params)
        # Accept gzip so that GCS serves gzip-encoded objects as stored (no decompressive transcoding).
        headers = {"Accept-Encoding": "gzip"}
        if byte_range is not None:
            headers["Range"] = f"bytes={byte_range[0]}-{byte_range[1]}"

        def get() -> requests.Response:
            resp: requests.Response = self._client._http.get(url, headers=headers, stream=True,
                                                             timeout=_TIMEOUT)
            if resp.status_code not in (200, 206):
                try:
                    body = resp.text[:500]
                finally:
                    resp.close()
                raise _status_error(resp.status_code, f"GET {uri} (generation {version}): {body}")
            return resp

        resp = _call(get, str(uri))
        try:
            info = _info_from_headers(uri, resp, generation, byte_range)
            return RawBodyStream(resp, info, _int_header(resp.headers.get("Content-Length")), translate)
        except BaseException:
            resp.close()
            raise

    # --- writes -------------------------------------------------------------------------------------

    def put(self, uri: ObjectURI, body: BinaryIO, request: PutRequest) -> PutResult:
        """Small objects: read whole (<= threshold), send our MD5 and CRC32C so GCS checks them, and
        retry under the policy. Large objects: one resumable upload in ``part_size`` chunks, streamed;
        not retried here (the body cannot be rewound in general): the caller retries the object."""
        # 0: only if no live object; a generation: only over that exact object (our own earlier version).
        if_generation_match = 0 if request.if_none_match else (
            int(request.if_match_version) if request.if_match_version and request.if_match_version.isdigit()
            else None)
        if request.size <= self.multipart_threshold:
            return self._put_small(uri, body, request, if_generation_match)
        return self._put_resumable(uri, body, request, if_generation_match)

    def _new_blob(self, uri: ObjectURI, request: PutRequest) -> storage.Blob:
        blob = self._client.bucket(uri.bucket).blob(uri.key)
        if request.content_type:
            blob.content_type = request.content_type
        if request.content_encoding:
            blob.content_encoding = request.content_encoding
        if request.metadata:
            blob.metadata = dict(request.metadata)
        return blob

    def _put_small(self, uri: ObjectURI, body: BinaryIO, request: PutRequest,
                   if_generation_match: int | None) -> PutResult:
        data = _read_exact(body, request.size, uri)
        md5_raw, crc_raw = md5_and_crc32c(data, request.body_digests)
        md5, crc = base64.b64encode(md5_raw).decode("ascii"), base64.b64encode(crc_raw).decode("ascii")
        failed_before = {"retryable": False}

        def upload() -> dict[str, Any]:
            blob = self._new_blob(uri, request)
            blob.md5_hash = md5   # GCS rejects the upload when the bytes do not match these
            blob.crc32c = crc
            try:
                blob.upload_from_file(io.BytesIO(data), size=len(data),
                                      if_generation_match=if_generation_match,
                                      checksum="crc32c", retry=None)
            except Exception as exc:
                err = translate(exc, str(uri), digests_sent=True)
                if isinstance(err, PreconditionFailed) and failed_before["retryable"]:
                    # An earlier attempt may have landed before its response was lost.
                    mine = self._own_earlier_write(uri, len(data), md5, crc)
                    if mine is not None:
                        return mine
                if isinstance(err, StoreError) and err.retryable:
                    failed_before["retryable"] = True
                raise err from exc
            return dict(blob._properties)

        return _put_result(retry.call(upload))

    def _own_earlier_write(self, uri: ObjectURI, size: int, md5: str, crc: str) -> dict[str, Any] | None:
        try:
            blob = self._client.bucket(uri.bucket).get_blob(uri.key, retry=None)
        except Exception as exc:
            raise translate(exc, str(uri)) from exc
        if blob is None:
            return None
        res: dict[str, Any] = blob._properties
        if int(res.get("size", -1)) == size and res.get("md5Hash") == md5 and res.get("crc32c") == crc:
            return dict(res)
        return None

    def _put_resumable(self, uri: ObjectURI, body: BinaryIO, request: PutRequest,
                       if_generation_match: int | None) -> PutResult:
        blob = self._new_blob(uri, request)
        blob.chunk_size = self.part_size  # memory per upload ~ one chunk
        reader = _ExactReader(body, request.size, uri)
        try:
            blob.upload_from_file(reader, size=request.size, if_generation_match=if_generation_match,
                                  checksum="crc32c", retry=None)
        except Exception as exc:
            raise translate(exc, str(uri), digests_sent=True) from exc  # X-Goog-Hash on the last chunk
        return _put_result(dict(blob._properties))

    # --- listings -----------------------------------------------------------------------------------

    def list_versions(self, location: Location, prefix: str, start: str | None = None) -> Iterator[VersionEntry]:
        """Every generation (live and noncurrent) under ``prefix``, oldest first within a key.

        GCS has no delete markers. Soft-deleted objects are not in this listing (the API refuses
        ``versions`` with ``softDeleted``): see ``list_soft_deleted``. Keys come back in name order,
        so generations of one key are buffered and sorted, one key at a time.
        """
        run: list[VersionEntry] = []
        for res in self._list(location, prefix, versions=True, start=start):
            entry = _version_entry(res)
            if run and run[-1].key != entry.key:
                yield from _oldest_first(run)
                run = []
            run.append(entry)
        yield from _oldest_first(run)

    def list_soft_deleted(self, location: Location, prefix: str) -> Iterator[VersionEntry]:
        """Soft-deleted generations under ``prefix`` (restorable until their hardDeleteTime)."""
        for res in self._list(location, prefix, soft_deleted=True):
            yield _version_entry(res, latest=False)

    def _list(self, location: Location, prefix: str, *, versions: bool = False,
              soft_deleted: bool = False, start: str | None = None) -> Iterator[dict[str, Any]]:
        bucket = own_bucket(location, self.scheme)
        # Booleans go out as "true": the JSON API's spelling (the SDK would send "True").
        kwargs: dict[str, Any] = {"prefix": prefix, "retry": None}
        if start:
            kwargs["start_offset"] = start  # inclusive
        if versions:
            kwargs["versions"] = "true"
        if soft_deleted:
            kwargs["soft_deleted"] = "true"
        where = f"gs://{bucket}/{prefix}"
        token: str | None = None
        while True:
            # One fresh request per page, so a retried page never resumes a dead iterator.
            def fetch(token: str | None = token) -> tuple[list[dict[str, Any]], str | None]:
                listing = self._client.list_blobs(bucket, page_token=token, **kwargs)
                page = next(listing.pages, None)
                items = [dict(b._properties) for b in page] if page is not None else []
                return items, listing.next_page_token

            items, token = _call(fetch, where)
            yield from items
            if not token:
                return

    # --- deletes ------------------------------------------------------------------------------------

    def delete_version(self, uri: ObjectURI, version: str | None, *, if_match: str | None = None) -> None:
        """Delete exactly one generation, with ``ifGenerationMatch`` on that same generation.

        An unpinned delete is refused: on GCS every object has a generation, and deleting "whatever
        is live" could remove bytes nobody verified. ``if_match`` (an ETag) has no JSON API
        precondition; when given it is checked against a stat of that generation first.
        """
        generation = _generation(version)
        if generation is None:
            raise InputError(f"refusing an unpinned delete of {uri}: name a generation")
        if if_match is not None:
            current = self.stat(uri, version)
            if current.etag != if_match:
                raise PreconditionFailed(f"{uri} generation {version} has etag {current.etag!r}, "
                                         f"not {if_match!r}", status=412, code="PreconditionFailed")

        def delete() -> None:
            blob = self._client.bucket(uri.bucket).blob(uri.key, generation=generation)
            blob.delete(if_generation_match=generation, retry=None)

        _call(delete, f"{uri} (generation {version})")

    def delete_versions(self, location: Location, targets: Sequence[DeleteTarget]) -> list[DeleteResult]:
        """One request per target for now (JSON batch requests come later)."""
        own_bucket(location, self.scheme)
        return delete_each(targets, location.uri,
                           lambda uri, version, etag: self.delete_version(uri, version, if_match=etag),
                           gone=_GONE_CODES, changed=_CHANGED_CODES)


def _info_from_headers(uri: ObjectURI, resp: requests.Response, generation: int | None,
                       byte_range: tuple[int, int] | None) -> ObjectInfo:
    h = resp.headers
    served = h.get("x-goog-generation")
    if served is None:
        raise StoreError(f"GET {uri}: response has no x-goog-generation", code="MissingGeneration")
    if generation is not None and int(served) != generation:
        raise StoreError(f"GET {uri}: asked for generation {generation}, got {served}",
                         code="WrongGeneration")
    stored_encoding = h.get("x-goog-stored-content-encoding")
    sent_encoding = h.get("Content-Encoding")
    if sent_encoding and sent_encoding.lower() not in ("identity", (stored_encoding or "").lower()):
        # The server compressed on the fly: these would not be the stored bytes.
        raise StoreError(f"GET {uri}: served {sent_encoding!r} but stored {stored_encoding!r}",
                         code="TranscodedBody")
    if byte_range is not None and resp.status_code != 206:
        raise StoreError(f"GET {uri}: range {byte_range} answered {resp.status_code}", code="RangeIgnored")
    size = _int_header(h.get("x-goog-stored-content-length"))
    if size is None:  # fake-gcs-server sends no x-goog-stored-content-length
        size = _range_total(h.get("Content-Range")) if resp.status_code == 206 \
            else _int_header(h.get("Content-Length"))
    if size is None:
        raise StoreError(f"GET {uri}: response tells no object size", code="MissingSize")
    hashes = _parse_goog_hash(h.get("x-goog-hash", ""))
    checksums = [from_b64(Algorithm.CRC32C, hashes["crc32c"], Provenance.SOURCE)] \
        if "crc32c" in hashes else []
    if "md5" in hashes:
        checksums.append(from_b64(Algorithm.MD5, hashes["md5"], Provenance.SOURCE))
    last_modified = None
    if h.get("Last-Modified"):
        try:
            last_modified = parsedate_to_datetime(h["Last-Modified"])
        except (TypeError, ValueError):
            last_modified = None
    etag = h.get("ETag")
    return ObjectInfo(
        uri=uri, size=size, version=served,
        etag=etag.strip('"') if etag else None,
        checksums=tuple(checksums),
        storage_class=h.get("x-goog-storage-class"),
        content_type=h.get("Content-Type"),
        content_encoding=stored_encoding if stored_encoding not in (None, "identity") else None,
        metadata={k[len("x-goog-meta-"):]: v for k, v in h.items() if k.lower().startswith("x-goog-meta-")},
        last_modified=last_modified,
        multipart_parts=_int_header(h.get("x-goog-component-count")),
        metageneration=h.get("x-goog-metageneration"),
        extra={"info_source": "response-headers"},
    )


def _parse_goog_hash(text: str) -> dict[str, str]:
    """``crc32c=AAAAAA==,md5=...`` (one header, or several joined with commas)."""
    out: dict[str, str] = {}
    for part in text.split(","):
        name, sep, value = part.strip().partition("=")
        if sep:
            out[name.lower()] = value
    return out


def _int_header(value: str | None) -> int | None:
    return int(value) if value is not None and value.strip().isdigit() else None


def _range_total(content_range: str | None) -> int | None:
    if not content_range or "/" not in content_range:
        return None
    return _int_header(content_range.rsplit("/", 1)[1])


class _ExactReader:
    """Hands the SDK exactly ``size`` bytes from ``body``; raises when the body is short or long."""

    def __init__(self, body: BinaryIO, size: int, uri: ObjectURI) -> None:
        self._body = body
        self._left = size
        self._uri = uri
        self._pos = 0

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def read(self, n: int | None = -1) -> bytes:
        want = self._left if n is None or n < 0 else min(n, self._left)
        chunks: list[bytes] = []
        got = 0
        while got < want:
            chunk = self._body.read(want - got)
            if not chunk:
                raise InputError(f"body for {self._uri} ended {self._left - got} bytes early")
            chunks.append(bytes(chunk))
            got += len(chunk)
        self._left -= got
        self._pos += got
        if self._left == 0 and want > 0 and self._body.read(1):
            raise InputError(f"body for {self._uri} is longer than its declared size")
        return b"".join(chunks)


def _read_exact(body: BinaryIO, size: int, uri: ObjectURI) -> bytes:
    data = _ExactReader(body, size, uri).read(size)
    if size == 0 and body.read(1):
        raise InputError(f"body for {uri} is longer than its declared size")
    return data


# --- translation: SDK resources and errors ------------------------------------------------------------

def _generation(version: str | None) -> int | None:
    if version is None:
        return None
    if not version.isdigit():
        raise InputError(f"GCS generation must be a decimal number, got {version!r}")
    return int(version)


def _time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def source_checksums(res: Mapping[str, Any], provenance: Provenance) -> tuple[Checksum, ...]:
    """crc32c always; md5Hash only when GCS has one (composite objects have none)."""
    if not res.get("crc32c"):
        raise ChecksumError(f"GCS object {res.get('name')!r} reports no crc32c")
    out = [from_b64(Algorithm.CRC32C, str(res["crc32c"]), provenance)]
    if res.get("md5Hash"):
        out.append(from_b64(Algorithm.MD5, str(res["md5Hash"]), provenance))
    return tuple(out)


def info_from_resource(uri: ObjectURI, res: Mapping[str, Any]) -> ObjectInfo:
    """An ObjectInfo from a JSON API object resource."""
    encryption = None
    if res.get("customerEncryption"):
        encryption = "CSEK"
    elif res.get("kmsKeyName"):
        encryption = "CMEK"
    extra = _extra_of(res)
    metadata = res.get("metadata") or {}
    component_count = res.get("componentCount")
    return ObjectInfo(
        uri=uri,
        size=int(res.get("size", 0)),
        version=str(res["generation"]) if res.get("generation") is not None else None,
        etag=res.get("etag"),
        checksums=source_checksums(res, Provenance.SOURCE),
        storage_class=res.get("storageClass"),
        encryption=encryption,
        content_type=res.get("contentType"),
        content_encoding=res.get("contentEncoding"),
        metadata={str(k): str(v) for k, v in metadata.items() if v is not None},
        last_modified=_time(res.get("updated")),
        is_latest=res.get("timeDeleted") is None,
        multipart_parts=int(component_count) if component_count is not None else None,
        metageneration=str(res["metageneration"]) if res.get("metageneration") is not None else None,
        protection=protection_from_extra(extra),
        extra=extra,
    )


def _put_result(res: Mapping[str, Any]) -> PutResult:
    component_count = res.get("componentCount")
    return PutResult(
        version=str(res["generation"]) if res.get("generation") is not None else None,
        etag=res.get("etag"),
        checksums=source_checksums(res, Provenance.DESTINATION),
        size=int(res.get("size", 0)),
        parts=int(component_count) if component_count is not None else None,
    )


def _extra_of(res: Mapping[str, Any]) -> dict[str, str]:
    """Holds, retention and deletion times from an object resource (listings carry them too)."""
    extra: dict[str, str] = {
        # Absent holds mean "no hold" in the JSON API: say so explicitly.
        "temporaryHold": "true" if res.get("temporaryHold") else "false",
        "eventBasedHold": "true" if res.get("eventBasedHold") else "false",
    }
    for name in ("retentionExpirationTime", "softDeleteTime", "hardDeleteTime", "timeDeleted",
                 "kmsKeyName", "componentCount"):
        if res.get(name) is not None:
            extra[name] = str(res[name])
    retention = res.get("retention")
    if isinstance(retention, Mapping):
        if retention.get("mode"):
            extra["retentionMode"] = str(retention["mode"])
        if retention.get("retainUntilTime"):
            extra["retainUntilTime"] = str(retention["retainUntilTime"])
    return extra


def _version_entry(res: Mapping[str, Any], *, latest: bool | None = None) -> VersionEntry:
    extra = _extra_of(res)
    return VersionEntry(
        key=str(res["name"]),
        version=str(res["generation"]),
        is_delete_marker=False,
        is_latest=res.get("timeDeleted") is None if latest is None else latest,
        size=int(res.get("size", 0)),
        etag=res.get("etag"),
        last_modified=_time(res.get("updated")),
        storage_class=res.get("storageClass"),
        protection=protection_from_extra(extra),
        extra=extra,
    )


def _oldest_first(run: list[VersionEntry]) -> list[VersionEntry]:
    return sorted(run, key=lambda e: int(e.version or 0))


def _status_error(status: int | None, message: str, reason: str | None = None, *,
                  digests_sent: bool = False) -> StoreError:
    """An error answer, through the one table. GCS's reason is the code, except on 404 and 412: there
    callers compare the stable ``NotFound`` and ``PreconditionFailed`` (the table's names for a missing
    code), not GCS's ``notFound`` and ``conditionNotMet``. A 403's reason (e.g. retentionPolicyNotMet) is
    kept because it says why the cloud refused."""
    code = None if status in (404, 412) else reason
    return store_errors.to_error(store_errors.Failure(message, status=status, code=code,
                                                      digests_sent=digests_sent))


def translate(exc: BaseException, where: str, *, digests_sent: bool = False) -> MigratorError:
    """Map an SDK/transport exception onto the migrator hierarchy, by type and status code.

    ``digests_sent``: the failed request was an upload that declared its md5Hash/crc32c, so a bare 400 is
    GCS refusing bytes that do not match them (see ``migrator.stores.errors``).
    """
    if isinstance(exc, MigratorError):
        return exc
    if isinstance(exc, DataCorruption):
        return ChecksumMismatch(f"{where}: the stored checksum differs from the bytes sent: {exc}")
    if isinstance(exc, gexc.GoogleAPICallError):
        status = exc.code if isinstance(exc.code, int) else None
        reason = None
        if exc.errors and isinstance(exc.errors[0], Mapping):
            reason = exc.errors[0].get("reason")
        return _status_error(status, f"{where}: {exc.message}", reason, digests_sent=digests_sent)
    if isinstance(exc, InvalidResponse):
        response = getattr(exc, "response", None)
        status = getattr(response, "status_code", None)
        return _status_error(status if isinstance(status, int) else None, f"{where}: {exc}",
                             digests_sent=digests_sent)
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
