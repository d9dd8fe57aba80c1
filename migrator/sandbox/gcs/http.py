"""The GCS emulator's HTTP side: the JSON API's paths routed to the service, and answers in its wire format.

``Router`` is pure: a :class:`Request` in, a :class:`Response` out, so a JSON batch (``POST
/batch/storage/v1``, multipart/mixed, at most 100 calls) runs each part through it again. Routes carry the
API's method names (``objects.insert``, ``objects.get.media``, ``objects.delete``, ``batch``, ...), which the
stats count and the fault hook is keyed by. ``GcsHandler`` reads each request off the connection, asks the
fault hook first (as the network and the front end would; flipped upload bytes meet the declared hashes in
the service), routes it, and writes the answer; control paths are the shared ones
(:class:`~migrator.sandbox.base.EmulatorService`). An :class:`~migrator.sandbox.base.ApiError` becomes the
documented error body ``{"error": {"code", "message", "errors": [{"reason": ...}]}}`` and is counted by
reason.

This module changes no state: it parses requests (refusing malformed ones), reads the model under the
service's lock to render answers, list and page, and calls the service (:mod:`migrator.sandbox.gcs.service`)
for every change. Media is served exactly as stored (gzip stays gzip when the client accepts it, and is
decompressed only when it does not); an unparseable ``Range`` is ignored, as HTTP allows.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import re
import uuid
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.parser import BytesParser
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from migrator.sandbox.base import ApiError, EmulatorHandler, FaultErrors, b64, fault_error, iso_millis
from migrator.sandbox.faults import Action
from migrator.sandbox.gcs import multipart
from migrator.sandbox.gcs.model import Bucket, Conditions, Gen, Session
from migrator.sandbox.gcs.service import WRITABLE, GcsService, check_declared, int_param

MAX_RESULTS = 1000
MAX_BATCH_CALLS = 100            # documented limit of one JSON batch request
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
FAULT_ERRORS: FaultErrors = {500: ("backendError", "Internal Error (injected fault)"),
                             503: ("backendError", "Backend Error (injected fault)"),
                             429: ("rateLimitExceeded", "The rate of requests is too high (injected fault)"),
                             501: ("notImplemented", "Not Implemented (injected fault)")}


# ------------------------------------------------------------------------------------------- parsing

def _bool_param(query: Mapping[str, str], key: str) -> bool:
    # The Python client sends Python's str(True) = "True"; the API documents "true".
    return query.get(key, "").lower() == "true"


def _conditions(query: Mapping[str, str], prefix: str = "") -> Conditions:
    def key(name: str) -> str:
        # Rewrite's source conditions: ifGenerationMatch -> ifSourceGenerationMatch.
        return prefix + name[2:] if prefix else name
    return Conditions(int_param(query, key("ifGenerationMatch")), int_param(query, key("ifGenerationNotMatch")),
                      int_param(query, key("ifMetagenerationMatch")),
                      int_param(query, key("ifMetagenerationNotMatch")))


def _json_object(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        value = json.loads(body)
    except ValueError:
        raise ApiError(400, "parseError", "Parse Error") from None
    if not isinstance(value, dict):
        raise ApiError(400, "invalid", "request body must be a JSON object")
    return value


def _encode_token(name: str, generation: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([name, generation]).encode("utf-8")).decode("ascii")


def _decode_token(token: str) -> tuple[str, int]:
    try:
        value = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeEncodeError):
        raise ApiError(400, "invalid", "Invalid page token") from None
    if (not isinstance(value, list) or len(value) != 2 or not isinstance(value[0], str)
            or not isinstance(value[1], int)):
        raise ApiError(400, "invalid", "Invalid page token")
    return value[0], value[1]


def _max_results(query: Mapping[str, str]) -> int:
    n = int_param(query, "maxResults")
    if n is None:
        return MAX_RESULTS
    if n < 1:
        raise ApiError(400, "invalid", "maxResults must be positive")
    return min(n, MAX_RESULTS)


# ----------------------------------------------------------------------------------------- rendering

def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _object_etag(g: Gen) -> str:
    # Real GCS etags are the protobuf encoding of (generation, metageneration), base64.
    return b64(b"\x08" + _varint(g.generation) + b"\x10" + _varint(g.metageneration))


def _bucket_etag(b: Bucket) -> str:
    return b64(b"\x08" + _varint(b.metageneration))


def _object_json(b: Bucket, g: Gen, base: str) -> dict[str, Any]:
    quoted = quote(g.name, safe="")
    out: dict[str, Any] = {
        "kind": "storage#object",
        "id": f"{b.name}/{g.name}/{g.generation}",
        "selfLink": f"{base}/storage/v1/b/{b.name}/o/{quoted}",
        "mediaLink": f"{base}/download/storage/v1/b/{b.name}/o/{quoted}?generation={g.generation}&alt=media",
        "name": g.name,
        "bucket": b.name,
        "generation": str(g.generation),
        "metageneration": str(g.metageneration),
        "contentType": g.content_type,
        "storageClass": g.storage_class,
        "size": str(len(g.data)),
        "crc32c": b64(g.crc32c),
        "etag": _object_etag(g),
        "timeCreated": iso_millis(g.created),
        "updated": iso_millis(g.updated),
        "timeStorageClassUpdated": iso_millis(g.created),
        "timeFinalized": iso_millis(g.created),
    }
    if g.md5 is not None:
        out["md5Hash"] = b64(g.md5)
    if g.component_count is not None:
        out["componentCount"] = g.component_count
    for key, value in (("contentEncoding", g.content_encoding), ("contentDisposition", g.content_disposition),
                       ("contentLanguage", g.content_language), ("cacheControl", g.cache_control)):
        if value is not None:
            out[key] = value
    if g.metadata is not None:
        out["metadata"] = dict(g.metadata)
    if g.temporary_hold:
        out["temporaryHold"] = True
    if g.event_based_hold:
        out["eventBasedHold"] = True
    expiry = b.retention_expiry(g)
    if expiry is not None:
        out["retentionExpirationTime"] = iso_millis(expiry)
    if g.time_deleted is not None:
        out["timeDeleted"] = iso_millis(g.time_deleted)
    if g.soft_delete_time is not None and g.hard_delete_time is not None:
        out["softDeleteTime"] = iso_millis(g.soft_delete_time)
        out["hardDeleteTime"] = iso_millis(g.hard_delete_time)
    return out


# Google's predefined dual-regions and its multi-regions; any other location is one region (US-EAST1, ...).
_DUAL_REGIONS = frozenset({"ASIA1", "EUR4", "EUR5", "EUR7", "EUR8", "NAM4"})
_MULTI_REGIONS = frozenset({"US", "EU", "ASIA"})


def _location_type(location: str) -> str:
    if location in _MULTI_REGIONS:
        return "multi-region"
    return "dual-region" if location in _DUAL_REGIONS else "region"


def _bucket_json(b: Bucket, base: str, project_number: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kind": "storage#bucket",
        "id": b.name,
        "selfLink": f"{base}/storage/v1/b/{b.name}",
        "projectNumber": project_number,  # the one project this emulator plays
        "name": b.name,
        "timeCreated": iso_millis(b.created),
        "updated": iso_millis(b.updated),
        "metageneration": str(b.metageneration),
        "location": b.location,
        "locationType": _location_type(b.location),
        "storageClass": b.storage_class,
        "etag": _bucket_etag(b),
        "versioning": {"enabled": b.versioning},
        "softDeletePolicy": {"retentionDurationSeconds": str(b.soft_delete_seconds),
                             "effectiveTime": iso_millis(b.soft_delete_effective or b.created)},
        "iamConfiguration": {"uniformBucketLevelAccess": {"enabled": True},
                             "publicAccessPrevention": "enforced"},
        "rpo": "DEFAULT",
    }
    if b.retention_period is not None:
        out["retentionPolicy"] = {"retentionPeriod": str(b.retention_period),
                                  "effectiveTime": iso_millis(b.retention_effective or b.created),
                                  "isLocked": b.retention_locked}
    if b.default_event_based_hold:
        out["defaultEventBasedHold"] = True
    if b.labels:
        out["labels"] = dict(b.labels)
    return out


# ------------------------------------------------------------------------------------------- routing

def _same(data: bytes) -> bytes:
    return data


@dataclass
class Request:
    method: str
    path: str                       # raw (still percent-encoded) path, no query
    query: dict[str, str]
    headers: dict[str, str]         # lower-case names
    body: bytes
    base: str                       # scheme://host:port of this server as the client addressed it
    # Applied to uploaded media bytes before their declared hashes are checked: the fault hook's flip-put,
    # a network corrupting the payload (metadata parts and boundaries are left alone).
    corrupt: Callable[[bytes], bytes] = _same


@dataclass
class Response:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def _json_response(status: int, value: Any, headers: dict[str, str] | None = None) -> Response:
    out = dict(headers or {})
    out["Content-Type"] = "application/json; charset=UTF-8"
    return Response(status, out, json.dumps(value).encode("utf-8"))


def _error_response(err: ApiError) -> Response:
    return _json_response(err.status, {"error": {
        "code": err.status, "message": err.message,
        "errors": [{"message": err.message, "domain": "global", "reason": err.code}]}})


Handler = Callable[[Request, list[str]], Response]


class Router:
    """Maps JSON API requests to service calls. Pure: a Request in, a Response out (batch reuses it)."""

    def __init__(self, service: GcsService) -> None:
        self.service = service

    def handle(self, req: Request, *, in_batch: bool = False) -> Response:
        try:
            op, handler, segs = self._route(req, in_batch)
            self.service.count(op)
            return handler(req, segs)
        except ApiError as err:
            self.service.count_error(err.code)
            return _error_response(err)

    def operation(self, req: Request) -> str | None:
        """The operation a request names (None when it names none): the fault hook's key."""
        try:
            return self._route(req, False)[0]
        except ApiError:
            return None

    # -- routes

    def _route(self, req: Request, in_batch: bool) -> tuple[str, Handler, list[str]]:
        path, m = req.path, req.method
        raw = path.split("/")[1:]
        segs = [unquote(s) for s in raw]
        if not in_batch:
            if path == "/batch/storage/v1" and m == "POST":
                return "batch", self.batch, segs
            if raw[:4] == ["upload", "storage", "v1", "b"] and len(raw) == 6 and raw[5] == "o":
                if "upload_id" in req.query:
                    if m in ("PUT", "POST"):
                        return "objects.insert.chunk", self.upload_chunk, segs
                    if m == "DELETE":
                        return "objects.insert.cancel", self.upload_cancel, segs
                elif m == "POST":
                    return "objects.insert", self.insert, segs
            if raw[:4] == ["download", "storage", "v1", "b"] and len(raw) >= 7 and raw[5] == "o" and m == "GET":
                return "objects.get.media", self.download, self._object_segs(raw, 4)
        if raw[:3] == ["storage", "v1", "b"]:
            n = len(raw)
            if n == 3 or (n == 4 and raw[3] == ""):
                if m == "GET":
                    return "buckets.list", self.list_buckets, segs
                if m == "POST":
                    return "buckets.insert", self.insert_bucket, segs
            elif n == 4:
                table: dict[str, tuple[str, Handler]] = {
                    "GET": ("buckets.get", self.get_bucket), "PATCH": ("buckets.patch", self.patch_bucket),
                    "PUT": ("buckets.update", self.update_bucket), "DELETE": ("buckets.delete", self.delete_bucket)}
                if m in table:
                    return table[m][0], table[m][1], segs
            elif n == 5 and raw[4] == "lockRetentionPolicy" and m == "POST":
                return "buckets.lockRetentionPolicy", self.lock_retention, segs
            elif raw[4] == "o" and (n == 5 or (n == 6 and raw[5] == "")):
                if m == "GET":
                    return "objects.list", self.list_objects, segs
            elif raw[4] == "o":
                osegs = self._object_segs(raw, 3)
                action = osegs[4:]
                if not action:
                    if m == "GET":
                        if req.query.get("alt") == "media" and not in_batch:
                            return "objects.get.media", self.download, osegs
                        return "objects.get", self.get_object, osegs
                    table = {"PATCH": ("objects.patch", self.patch_object),
                             "PUT": ("objects.update", self.update_object),
                             "DELETE": ("objects.delete", self.delete_object)}
                    if m in table:
                        return table[m][0], table[m][1], osegs
                elif m == "POST" and action == ["compose"]:
                    return "objects.compose", self.compose, osegs
                elif m == "POST" and action == ["restore"]:
                    return "objects.restore", self.restore, osegs
                elif m == "POST" and len(action) == 5 and action[0] in ("rewriteTo", "copyTo") \
                        and action[1] == "b" and action[3] == "o":
                    op = "objects.rewrite" if action[0] == "rewriteTo" else "objects.copy"
                    return op, self.rewrite, osegs
        raise ApiError(404, "notFound", f"Not Found: {m} {path}")

    @staticmethod
    def _object_segs(raw: list[str], api: int) -> list[str]:
        """[bucket, "o", name, ...action] decoded; accepts names whose slashes were not percent-encoded."""
        bucket = unquote(raw[api])
        rest = raw[api + 2:]
        actions = {"compose", "restore", "rewriteTo", "copyTo"}
        split = next((i for i, s in enumerate(rest) if i > 0 and s in actions), len(rest))
        try:
            name = unquote("/".join(rest[:split]), errors="strict")
        except UnicodeDecodeError:
            raise ApiError(400, "invalid", "The object name is not valid UTF-8.") from None
        tail = [unquote(s) for s in rest[split:]]
        if len(tail) > 5:   # rewriteTo/b/BUCKET/o/NAME with unencoded slashes in NAME
            tail = [*tail[:4], "/".join(tail[4:])]
        return ["", bucket, "o", name, *tail]

    # -- buckets

    def insert_bucket(self, req: Request, segs: list[str]) -> Response:
        b = self.service.create_bucket(_json_object(req.body))
        return _json_response(200, _bucket_json(b, req.base, self.service.project_number))

    def list_buckets(self, req: Request, segs: list[str]) -> Response:
        prefix = req.query.get("prefix", "")
        limit = _max_results(req.query)
        start = _decode_token(req.query["pageToken"])[0] if req.query.get("pageToken") else None
        with self.service.lock:
            names = sorted(n for n in self.service.buckets if n.startswith(prefix)
                           and (start is None or n > start))
            number = self.service.project_number
            items = [_bucket_json(self.service.buckets[n], req.base, number) for n in names[:limit]]
        out: dict[str, Any] = {"kind": "storage#buckets", "items": items}
        if len(names) > limit:
            out["nextPageToken"] = _encode_token(names[limit - 1], 0)
        return _json_response(200, out)

    def get_bucket(self, req: Request, segs: list[str]) -> Response:
        with self.service.lock:
            b = self.service.bucket(segs[3])
            self.service.check_bucket_conditions(b, _conditions(req.query))
            return _json_response(200, _bucket_json(b, req.base, self.service.project_number))

    def patch_bucket(self, req: Request, segs: list[str], replace_all: bool = False) -> Response:
        with self.service.lock:
            b = self.service.bucket(segs[3])
            self.service.patch_bucket(b, _json_object(req.body), _conditions(req.query), replace_all=replace_all)
            return _json_response(200, _bucket_json(b, req.base, self.service.project_number))

    def update_bucket(self, req: Request, segs: list[str]) -> Response:
        return self.patch_bucket(req, segs, replace_all=True)

    def lock_retention(self, req: Request, segs: list[str]) -> Response:
        with self.service.lock:
            b = self.service.bucket(segs[3])
            self.service.lock_retention(b, int_param(req.query, "ifMetagenerationMatch"))
            return _json_response(200, _bucket_json(b, req.base, self.service.project_number))

    def delete_bucket(self, req: Request, segs: list[str]) -> Response:
        with self.service.lock:
            self.service.delete_bucket(self.service.bucket(segs[3]), _conditions(req.query))
        return Response(204)

    # -- object reads

    def _bucket(self, name: str) -> Bucket:
        with self.service.lock:
            return self.service.bucket(name)

    def get_object(self, req: Request, segs: list[str]) -> Response:
        b = self._bucket(segs[1])
        with self.service.lock:
            g = self.service.find(b, segs[3], int_param(req.query, "generation"),
                                  soft_deleted=_bool_param(req.query, "softDeleted"))
            _conditions(req.query).check(g)
            return _json_response(200, _object_json(b, g, req.base))

    def download(self, req: Request, segs: list[str]) -> Response:
        b = self._bucket(segs[1])
        with self.service.lock:
            g = self.service.find(b, segs[3], int_param(req.query, "generation"))
            _conditions(req.query).check(g)
        hashes = f"crc32c={b64(g.crc32c)}" + (f",md5={b64(g.md5)}" if g.md5 is not None else "")
        headers = {
            "Content-Type": g.content_type, "ETag": _object_etag(g), "x-goog-generation": str(g.generation),
            "x-goog-metageneration": str(g.metageneration), "x-goog-hash": hashes,
            "x-goog-stored-content-length": str(len(g.data)),
            "x-goog-stored-content-encoding": g.content_encoding or "identity",
            "x-goog-storage-class": g.storage_class, "Accept-Ranges": "bytes",
            "Last-Modified": g.updated.strftime("%a, %d %b %Y %H:%M:%S GMT"),
        }
        for name, value in (("Content-Disposition", g.content_disposition),
                            ("Content-Language", g.content_language), ("Cache-Control", g.cache_control)):
            if value is not None:
                headers[name] = value
        data = g.data
        accepts_gzip = "gzip" in req.headers.get("accept-encoding", "").lower()
        if g.content_encoding == "gzip" and not accepts_gzip:
            # Documented decompressive transcoding: only when the client does not accept gzip.
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError, zlib.error):
                pass
            else:
                headers["Warning"] = "214 UploadServer gunzipped"
                return Response(200, headers, data)
        if g.content_encoding:
            headers["Content-Encoding"] = g.content_encoding
        rng = req.headers.get("range")
        if rng is None:
            return Response(200, headers, data)
        m = _RANGE.match(rng.strip())
        size = len(data)
        if not m or (m.group(1) == "" and m.group(2) == ""):
            return Response(200, headers, data)   # an unparseable Range is ignored, as HTTP allows
        if m.group(1) == "":
            first, last = max(0, size - int(m.group(2))), size - 1
        else:
            first = int(m.group(1))
            last = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
        if first >= size or last < first:
            if size == 0 and m.group(1) in ("", "0"):
                return Response(200, headers, data)
            raise ApiError(416, "requestedRangeNotSatisfiable", "Request range not satisfiable")
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        return Response(206, headers, data[first:last + 1])

    def list_objects(self, req: Request, segs: list[str]) -> Response:
        q = req.query
        b = self._bucket(segs[3])
        prefix, delimiter = q.get("prefix", ""), q.get("delimiter") or None
        start, end = q.get("startOffset") or None, q.get("endOffset") or None
        trailing = _bool_param(q, "includeTrailingDelimiter")
        limit = _max_results(q)
        after = _decode_token(q["pageToken"]) if q.get("pageToken") else None
        with self.service.lock:
            if _bool_param(q, "softDeleted"):
                rows = [g for gens in b.soft.values() for g in gens]
            elif _bool_param(q, "versions"):
                rows = [*b.live.values(), *(g for gens in b.noncurrent.values() for g in gens)]
            else:
                rows = list(b.live.values())
            rows = [g for g in rows if g.name.startswith(prefix) and (start is None or g.name >= start)
                    and (end is None or g.name < end)]
            rows.sort(key=lambda g: (g.name, g.generation))
            items: list[dict[str, Any]] = []
            prefixes: list[str] = []
            token: str | None = None
            last: tuple[str, int] | None = None
            for g in rows:
                key = (g.name, g.generation)
                if after is not None and key <= after:
                    continue
                if last is not None and key <= last:
                    continue
                p: str | None = None
                if delimiter is not None:
                    idx = g.name.find(delimiter, len(prefix))
                    if idx >= 0:
                        p = g.name[:idx + len(delimiter)]
                if len(items) + len(prefixes) >= limit:
                    token = _encode_token(*last) if last is not None else None
                    break
                if p is not None:
                    prefixes.append(p)
                    # Everything under this prefix is covered by it: resume after the whole prefix.
                    last = (p + "\U0010ffff", 0)
                    if trailing and g.name == p:
                        items.append(_object_json(b, g, req.base))
                    continue
                items.append(_object_json(b, g, req.base))
                last = key
        out: dict[str, Any] = {"kind": "storage#objects"}
        if items:
            out["items"] = items
        if prefixes:
            out["prefixes"] = prefixes
        if token is not None:
            out["nextPageToken"] = token
        return _json_response(200, out)

    # -- object writes

    def insert(self, req: Request, segs: list[str]) -> Response:
        q = req.query
        b = self._bucket(segs[4])
        kind = q.get("uploadType", "")
        conditions = _conditions(q)
        if kind == "resumable":
            return self._start_resumable(req, b, conditions)
        if kind == "media":
            resource: dict[str, Any] = {"name": q.get("name")}
            if req.headers.get("content-type"):
                resource["contentType"] = req.headers["content-type"]
            data = req.body
        elif kind == "multipart":
            parts = multipart.split(req.body, req.headers.get("content-type", ""))
            if len(parts) != 2:
                raise ApiError(400, "invalid", "A multipart upload needs exactly two parts: metadata and media.")
            meta, body = parts
            encoding = body.headers.get("content-transfer-encoding", "binary").lower()
            if encoding not in ("binary", "8bit", "7bit"):
                # Refused rather than stored still encoded: the emulator decodes no transfer encoding.
                raise ApiError(400, "invalid", f"Unsupported Content-Transfer-Encoding {encoding!r} on the media part.")
            resource = _json_object(meta.content)
            data = body.content
            if "contentType" not in resource and body.headers.get("content-type"):
                resource["contentType"] = body.headers["content-type"]
        else:
            raise ApiError(400, "invalid", f"Invalid uploadType: {kind!r}")
        if q.get("name"):
            resource["name"] = q["name"]
        if q.get("contentEncoding"):
            resource["contentEncoding"] = q["contentEncoding"]
        name = resource.get("name")
        if not isinstance(name, str):
            raise ApiError(400, "required", "Required: object name")
        data = req.corrupt(data)
        crc, md5 = check_declared(data, resource, req.headers.get("x-goog-hash"))
        g = self.service.store(b, self.service.new_gen(b, name, data, resource, crc, md5), conditions)
        return _json_response(200, _object_json(b, g, req.base))

    def _start_resumable(self, req: Request, b: Bucket, conditions: Conditions) -> Response:
        resource = _json_object(req.body)
        if req.query.get("name"):
            resource["name"] = req.query["name"]
        name = resource.get("name")
        if not isinstance(name, str):
            raise ApiError(400, "required", "Required: object name")
        session = self.service.start_session(b, name, resource, conditions,
                                             req.headers.get("x-upload-content-length"),
                                             req.headers.get("x-upload-content-type"))
        location = (f"{req.base}/upload/storage/v1/b/{quote(b.name, safe='')}/o?uploadType=resumable"
                    f"&upload_id={session.upload_id}")
        return Response(200, {"Location": location, "X-GUploader-UploadID": session.upload_id})

    def _session(self, req: Request, segs: list[str]) -> Session:
        return self.service.session(req.query.get("upload_id", ""), segs[4])

    def upload_chunk(self, req: Request, segs: list[str]) -> Response:
        chunk = req.corrupt(req.body)
        with self.service.lock:
            session = self._session(req, segs)
            stored = self.service.append_chunk(session, chunk, req.headers.get("content-range", ""),
                                               req.headers.get("x-goog-hash"))
            if stored is None:
                headers = {"Range": f"bytes=0-{len(session.buffer) - 1}"} if session.buffer else {}
                if req.headers.get("x-guploader-no-308", "").strip().lower() == "yes":
                    # Asked by Go's client (gensupport), for whom 308 is a redirect: 200 says it instead.
                    return Response(200, {**headers, "X-HTTP-Status-Code-Override": "308"})
                return Response(308, headers)
            b, g = stored
            return _json_response(200, _object_json(b, g, req.base))

    def upload_cancel(self, req: Request, segs: list[str]) -> Response:
        with self.service.lock:
            self.service.cancel_session(self._session(req, segs))
        return Response(499)

    def patch_object(self, req: Request, segs: list[str], replace_all: bool = False) -> Response:
        b = self._bucket(segs[1])
        g = self.service.patch(b, segs[3], int_param(req.query, "generation"), _json_object(req.body),
                               _conditions(req.query), replace_all=replace_all)
        with self.service.lock:
            return _json_response(200, _object_json(b, g, req.base))

    def update_object(self, req: Request, segs: list[str]) -> Response:
        return self.patch_object(req, segs, replace_all=True)

    def delete_object(self, req: Request, segs: list[str]) -> Response:
        b = self._bucket(segs[1])
        self.service.delete(b, segs[3], int_param(req.query, "generation"), _conditions(req.query))
        return Response(204)

    def restore(self, req: Request, segs: list[str]) -> Response:
        b = self._bucket(segs[1])
        g = self.service.restore(b, segs[3], int_param(req.query, "generation"), _conditions(req.query))
        with self.service.lock:
            return _json_response(200, _object_json(b, g, req.base))

    def compose(self, req: Request, segs: list[str]) -> Response:
        b = self._bucket(segs[1])
        g = self.service.compose(b, segs[3], _json_object(req.body), _conditions(req.query))
        with self.service.lock:
            return _json_response(200, _object_json(b, g, req.base))

    def rewrite(self, req: Request, segs: list[str]) -> Response:
        """rewriteTo and copyTo in one call: the whole object, ``done`` at once."""
        src_bucket = self._bucket(segs[1])
        dst_bucket = self._bucket(segs[6])
        with self.service.lock:
            src = self.service.find(src_bucket, segs[3], int_param(req.query, "sourceGeneration"))
            _conditions(req.query, "ifSource").check(src)
            resource = _json_object(req.body)
            fields = {k: v for k, v in _object_json(src_bucket, src, req.base).items()
                      if k in (*WRITABLE, "metadata")}
            fields.update(resource)
            g = self.service.new_gen(dst_bucket, segs[8], src.data, fields, src.crc32c, src.md5)
            g.component_count = src.component_count
            g = self.service.store(dst_bucket, g, _conditions(req.query))
            body = _object_json(dst_bucket, g, req.base)
        if segs[4] == "copyTo":
            return _json_response(200, body)
        size = str(len(g.data))
        return _json_response(200, {"kind": "storage#rewriteResponse", "totalBytesRewritten": size,
                                    "objectSize": size, "done": True, "resource": body})

    # -- batch

    def batch(self, req: Request, segs: list[str]) -> Response:
        content_type = req.headers.get("content-type", "")
        if not content_type.lower().startswith("multipart/mixed"):
            raise ApiError(400, "invalid", "A batch request must be multipart/mixed.")
        message = BytesParser().parsebytes(b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n"
                                           + req.body)
        payload = message.get_payload()
        if not message.is_multipart() or not isinstance(payload, list) or not payload:
            raise ApiError(400, "invalid", "The batch request has no parts.")
        if len(payload) > MAX_BATCH_CALLS:
            raise ApiError(400, "invalid", f"A batch request may contain at most {MAX_BATCH_CALLS} calls.")
        boundary = f"batch_{uuid.uuid4().hex}"
        out: list[bytes] = []
        for i, part in enumerate(payload):
            content_id = str(part.get("Content-ID", "")).strip().strip("<>") or str(i + 1)
            raw = part.get_payload(decode=True)
            text = raw if isinstance(raw, bytes) else str(part.get_payload()).encode("utf-8")
            try:
                sub = self._parse_subrequest(text, req.base)
                resp = self.handle(sub, in_batch=True)
            except ApiError as err:
                self.service.count_error(err.code)
                resp = _error_response(err)
            out.append(self._format_subresponse(boundary, content_id, resp))
        body = b"".join(out) + f"--{boundary}--\r\n".encode("ascii")
        return Response(200, {"Content-Type": f"multipart/mixed; boundary={boundary}"}, body)

    @staticmethod
    def _parse_subrequest(text: bytes, base: str) -> Request:
        head, sep, body = text.partition(b"\r\n\r\n")
        if not sep:
            head, sep, body = text.partition(b"\n\n")
        lines = head.decode("utf-8").splitlines()
        if not lines:
            raise ApiError(400, "invalid", "An empty batch part.")
        words = lines[0].split()
        if len(words) < 2:
            raise ApiError(400, "invalid", f"Malformed request line in batch part: {lines[0]!r}")
        url = urlsplit(words[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            k, colon, v = line.partition(":")
            if colon:
                headers[k.strip().lower()] = v.strip()
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        return Request(method=words[0].upper(), path=url.path, query=query, headers=headers,
                       body=body.strip(), base=base)

    @staticmethod
    def _format_subresponse(boundary: str, content_id: str, resp: Response) -> bytes:
        reason = {200: "OK", 204: "No Content", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
                  409: "Conflict", 412: "Precondition Failed"}.get(resp.status, "Status")
        lines = [f"--{boundary}", "Content-Type: application/http", f"Content-ID: <response-{content_id}>", "",
                 f"HTTP/1.1 {resp.status} {reason}"]
        headers = dict(resp.headers)
        headers.setdefault("Content-Type", "application/json; charset=UTF-8")
        headers["Content-Length"] = str(len(resp.body))
        lines.extend(f"{k}: {v}" for k, v in headers.items())
        lines.extend(["", ""])
        return "\r\n".join(lines).encode("utf-8") + resp.body + b"\r\n"


# ------------------------------------------------------------------------------------------- handler

class GcsHandler(EmulatorHandler):
    """One connection's requests: the fault hook, then the router; control paths aside."""

    server_version = "GcsEmulator/1"
    router: Router  # set on a per-emulator subclass

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _faults_before(self, req: Request) -> tuple[str | None, Action | None]:
        """Consult the fault hook first, as the network and the service's front end would."""
        op = self.router.operation(req)
        if op is None:
            return None, None
        # Object bytes travel in simple and multipart inserts and in resumable chunks, and out in media.
        data_in = (op == "objects.insert" and req.query.get("uploadType") != "resumable") or \
            (op == "objects.insert.chunk" and bool(req.body))
        return op, self.router.service.faults.before(op, data_in=data_in, data_out=op == "objects.get.media")

    def _dispatch(self) -> None:
        try:
            body = self.read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return
        path, _, raw_query = self.path.partition("?")
        if path.startswith(("http://", "https://")):
            path = urlsplit(self.path).path
        query = {k: v[-1] for k, v in parse_qs(raw_query, keep_blank_values=True).items()}
        headers = {k.lower(): v for k, v in self.headers.items()}
        host = headers.get("host") or "127.0.0.1"
        req = Request(self.command, path, query, headers, body, f"{self.scheme}://{host}")
        op: str | None = None
        action: Action | None = None
        try:
            if path.startswith("/_emulator/"):
                resp = self._internal(req)
            else:
                op, action = self._faults_before(req)
                if action is not None and action.drop_before:
                    self.abort()
                    return
                if action is not None and action.status is not None:
                    self.router.service.count(op or "unknown")
                    raise fault_error(action.status, FAULT_ERRORS)
                if action is not None:
                    req.corrupt = action.request_body
                resp = self.router.handle(req)
        except ApiError as err:
            self.router.service.count_error(err.code)
            resp = _error_response(err)
        except Exception as exc:  # noqa: BLE001 - a server answers 500 instead of dying
            resp = _error_response(ApiError(500, "backendError", f"{type(exc).__name__}: {exc}"))
        self.answer((resp.status, resp.headers, resp.body, len(resp.body)), action,
                    data_out=op == "objects.get.media")

    def _internal(self, req: Request) -> Response:
        answer = self.router.service.control(req.method, req.path, req.query, req.body, "invalid")
        if answer is None:
            raise ApiError(404, "notFound", f"no emulator endpoint {req.method} {req.path}")
        status, value = answer
        return Response(status) if value is None else _json_response(status, value)
