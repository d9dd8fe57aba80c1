"""An in-memory Google Cloud Storage JSON API emulator that the real ``google-cloud-storage`` client talks to.

fake-gcs-server departs from documented GCS exactly where migrator's promises live (pinned deletes,
noncurrent generations, soft delete, batch, checksum validation), so this one follows the JSON API
reference on those points:

- generations are strictly increasing microsecond stamps; ``metageneration`` counts metadata changes;
- ``ifGenerationMatch``/``ifGenerationNotMatch``/``ifMetagenerationMatch``/``ifMetagenerationNotMatch``
  answer 412 ``conditionNotMet`` on inserts, reads, patches, deletes, composes and restores;
- a delete naming ``generation`` removes exactly that generation (live or noncurrent) and nothing else;
  without it, a versioned bucket keeps the live object as noncurrent (``timeDeleted``);
- soft delete (bucket ``softDeletePolicy``, 7 days unless set; 0 turns it off): deleted and replaced
  generations become soft-deleted with ``softDeleteTime``/``hardDeleteTime``, listed only with
  ``softDeleted=true``, unreadable, and restorable with ``objects.restore``;
- temporary and event-based holds (403 ``objectUnderActiveHold``) and the bucket retention policy
  (403 ``retentionPolicyNotMet``) block deletes and replacements;
- ``crc32c``/``md5Hash`` declared in upload metadata or an ``X-Goog-Hash`` header are checked against the
  bytes (400 on mismatch); composite objects carry ``componentCount`` and ``crc32c`` but no ``md5Hash``;
- media is served exactly as stored (gzip stays gzip when the client accepts it);
- JSON batch (``POST /batch/storage/v1``, multipart/mixed, at most 100 calls);
- the sandbox-wide fault hook (``migrator.sandbox.faults``): latency, 500/503/429 (``backendError``,
  ``rateLimitExceeded``), resets, timeouts, truncated and bit-flipped media on download, and bit flips in
  uploaded media before the declared ``crc32c``/``md5Hash`` are checked, per operation (the op names of
  ``GET /_emulator/stats``).

Choices where the documentation is silent, and known departures: see ``/work/notes/gcs-emulator-status.md``.
Unauthenticated paths exist for tests only: ``GET /_emulator/stats`` and ``POST /_emulator/reset``, plus
``POST /_emulator/clock?advance=SECONDS`` to move the emulator's clock forward without sleeping, and the
fault hook's ``GET|POST /_emulator/faults``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import gzip
import hashlib
import heapq
import json
import re
import sys
import threading
import uuid
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import google_crc32c

from migrator.endpoints import is_loopback_host
from migrator.sandbox.faults import CONTROL_PATH as FAULTS_PATH
from migrator.sandbox.faults import Action, FaultInjector, abort_connection
from migrator.sandbox.serve import LoopbackServer

MAX_RESULTS = 1000
MAX_BATCH_CALLS = 100            # documented limit of one JSON batch request
MAX_COMPOSE_SOURCES = 32
MAX_COMPONENT_COUNT = 1024
DEFAULT_SOFT_DELETE_SECONDS = 7 * 24 * 3600
MIN_SOFT_DELETE_SECONDS = 7 * 24 * 3600   # documented: 0, or 7 to 90 days
MAX_SOFT_DELETE_SECONDS = 90 * 24 * 3600
MAX_RETENTION_SECONDS = 3_155_760_000
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9._\-]{1,61}[a-z0-9]$")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_CONTENT_RANGE = re.compile(r"^bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)$")
_WRITABLE = ("contentType", "contentEncoding", "contentDisposition", "contentLanguage", "cacheControl")
_FAULT_ERRORS = {500: ("backendError", "Internal Error (injected fault)"),
                 503: ("backendError", "Backend Error (injected fault)"),
                 429: ("rateLimitExceeded", "The rate of requests is too high (injected fault)"),
                 501: ("notImplemented", "Not Implemented (injected fault)")}


class ApiError(Exception):
    """A JSON API error: status, reason and message go into the documented error body."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


def _not_found_object(bucket: str, name: str, generation: int | None = None) -> ApiError:
    suffix = f"#{generation}" if generation is not None else ""
    return ApiError(404, "notFound", f"No such object: {bucket}/{name}{suffix}")


def _precondition_failed() -> ApiError:
    return ApiError(412, "conditionNotMet", "At least one of the pre-conditions you specified did not hold.")


# ---------------------------------------------------------------------------------------------- state

@dataclass
class Gen:
    """One generation of one object, whatever its state (live, noncurrent or soft-deleted)."""

    name: str
    generation: int
    data: bytes
    crc32c: bytes
    md5: bytes | None                 # None for composite objects
    created: datetime
    updated: datetime
    metageneration: int = 1
    content_type: str = "application/octet-stream"
    content_encoding: str | None = None
    content_disposition: str | None = None
    content_language: str | None = None
    cache_control: str | None = None
    metadata: dict[str, str] | None = None
    temporary_hold: bool = False
    event_based_hold: bool = False
    retention_base: datetime | None = None   # where the bucket retention period starts counting
    component_count: int | None = None
    storage_class: str = "STANDARD"
    time_deleted: datetime | None = None     # when it stopped being live
    soft_delete_time: datetime | None = None
    hard_delete_time: datetime | None = None

    @property
    def held(self) -> bool:
        return self.temporary_hold or self.event_based_hold


@dataclass
class Bucket:
    name: str
    created: datetime
    updated: datetime
    metageneration: int = 1
    versioning: bool = False
    soft_delete_seconds: int = DEFAULT_SOFT_DELETE_SECONDS
    soft_delete_effective: datetime | None = None
    retention_period: int | None = None
    retention_effective: datetime | None = None
    retention_locked: bool = False
    default_event_based_hold: bool = False
    storage_class: str = "STANDARD"
    location: str = "US"
    labels: dict[str, str] = field(default_factory=dict)
    live: dict[str, Gen] = field(default_factory=dict)
    noncurrent: dict[str, list[Gen]] = field(default_factory=dict)   # ascending generation
    soft: dict[str, list[Gen]] = field(default_factory=dict)         # ascending generation
    hard_delete_queue: list[tuple[datetime, int, str]] = field(default_factory=list)

    def retention_expiry(self, g: Gen) -> datetime | None:
        if self.retention_period is None or g.retention_base is None:
            return None
        return g.retention_base + timedelta(seconds=self.retention_period)


@dataclass
class Session:
    """A resumable upload in progress."""

    upload_id: str
    bucket: str
    name: str
    resource: dict[str, Any]
    conditions: Conditions
    content_type: str
    total: int | None = None
    buffer: bytearray = field(default_factory=bytearray)


@dataclass(frozen=True)
class Conditions:
    generation_match: int | None = None
    generation_not_match: int | None = None
    metageneration_match: int | None = None
    metageneration_not_match: int | None = None

    def check(self, target: Gen | None) -> None:
        """412 unless every given precondition holds for ``target`` (None: no such object)."""
        if self.generation_match is not None:
            if target is None:
                if self.generation_match != 0:
                    raise _precondition_failed()
            elif target.generation != self.generation_match:
                raise _precondition_failed()
        if self.generation_not_match is not None:
            if target is None or target.generation == self.generation_not_match:
                raise _precondition_failed()
        if self.metageneration_match is not None:
            if target is None or target.metageneration != self.metageneration_match:
                raise _precondition_failed()
        if self.metageneration_not_match is not None:
            if target is None or target.metageneration == self.metageneration_not_match:
                raise _precondition_failed()


# ------------------------------------------------------------------------------------------- helpers

def _iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _crc32c(data: bytes) -> bytes:
    return int(google_crc32c.value(data)).to_bytes(4, "big")


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
    return _b64(b"\x08" + _varint(g.generation) + b"\x10" + _varint(g.metageneration))


def _bucket_etag(b: Bucket) -> str:
    return _b64(b"\x08" + _varint(b.metageneration))


def _decode_hash(text: object, length: int, what: str) -> bytes:
    if not isinstance(text, str):
        raise ApiError(400, "invalid", f"{what} must be a base64 string")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "invalid", f"{what} {text!r} is not valid base64") from None
    if len(raw) != length:
        raise ApiError(400, "invalid", f"{what} {text!r} has {len(raw)} bytes, want {length}")
    return raw


def _parse_goog_hash(value: str | None) -> dict[str, bytes]:
    """``X-Goog-Hash: crc32c=...,md5=...`` as raw digests."""
    out: dict[str, bytes] = {}
    if not value:
        return out
    for item in value.split(","):
        key, sep, text = item.strip().partition("=")
        key = key.strip().lower()
        if not sep or key not in ("crc32c", "md5"):
            raise ApiError(400, "invalid", f"malformed X-Goog-Hash entry {item.strip()!r}")
        out[key] = _decode_hash(text.strip(), 4 if key == "crc32c" else 16, f"X-Goog-Hash {key}")
    return out


def _check_declared(data: bytes, resource: Mapping[str, Any], header: str | None) -> tuple[bytes, bytes]:
    """Compute CRC32C and MD5 and compare them with what the client declared: 400 on any mismatch."""
    crc = _crc32c(data)
    md5 = hashlib.md5(data).digest()
    declared: list[tuple[str, bytes]] = []
    if resource.get("crc32c") is not None:
        declared.append(("crc32c", _decode_hash(resource["crc32c"], 4, "crc32c")))
    if resource.get("md5Hash") is not None:
        declared.append(("md5", _decode_hash(resource["md5Hash"], 16, "md5Hash")))
    declared.extend(_parse_goog_hash(header).items())
    for algorithm, value in declared:
        actual = crc if algorithm == "crc32c" else md5
        if value != actual:
            label = "CRC32C" if algorithm == "crc32c" else "MD5 hash"
            raise ApiError(400, "invalid", f"Provided {label} \"{_b64(value)}\" doesn't match calculated "
                                           f"{label} \"{_b64(actual)}\".")
    return crc, md5


def _int_param(query: Mapping[str, Any], key: str) -> int | None:
    text = query.get(key)
    if text is None or text == "":
        return None
    try:
        return int(str(text))
    except ValueError:
        raise ApiError(400, "invalid", f"Invalid value for {key}: {text!r}") from None


def _bool_param(query: Mapping[str, str], key: str) -> bool:
    # The Python client sends Python's str(True) = "True"; the API documents "true".
    return query.get(key, "").lower() == "true"


def _conditions(query: Mapping[str, str], prefix: str = "") -> Conditions:
    def key(name: str) -> str:
        # Rewrite's source conditions: ifGenerationMatch -> ifSourceGenerationMatch.
        return prefix + name[2:] if prefix else name
    return Conditions(_int_param(query, key("ifGenerationMatch")), _int_param(query, key("ifGenerationNotMatch")),
                      _int_param(query, key("ifMetagenerationMatch")),
                      _int_param(query, key("ifMetagenerationNotMatch")))


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


def _metadata_map(value: object) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ApiError(400, "invalid", "metadata must be an object")
    return {str(k): str(v) for k, v in value.items() if v is not None}


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
    n = _int_param(query, "maxResults")
    if n is None:
        return MAX_RESULTS
    if n < 1:
        raise ApiError(400, "invalid", "maxResults must be positive")
    return min(n, MAX_RESULTS)


def _multipart_parts(body: bytes, content_type: str) -> list[tuple[dict[str, str], bytes]]:
    """Split a multipart body byte-exactly: one CRLF after each delimiter and before the next belongs to it."""
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    if not m:
        raise ApiError(400, "invalid", "multipart request without a boundary")
    delimiter = b"--" + m.group(1).encode("latin-1")
    chunks = body.split(delimiter)
    parts: list[tuple[dict[str, str], bytes]] = []
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break
        chunk = chunk[2:] if chunk.startswith(b"\r\n") else chunk[1:] if chunk.startswith(b"\n") else chunk
        chunk = chunk[:-2] if chunk.endswith(b"\r\n") else chunk[:-1] if chunk.endswith(b"\n") else chunk
        head, sep, content = chunk.partition(b"\r\n\r\n")
        if not sep:
            head, sep, content = chunk.partition(b"\n\n")
        headers: dict[str, str] = {}
        for line in head.decode("latin-1").splitlines():
            k, colon, v = line.partition(":")
            if colon:
                headers[k.strip().lower()] = v.strip()
        parts.append((headers, content))
    return parts


# ------------------------------------------------------------------------------------------- service

class _Service:
    """The data and the operations; HTTP parsing lives in the router and the handler."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.buckets: dict[str, Bucket] = {}
        self.sessions: dict[str, Session] = {}
        self._last_generation = 0
        self._clock_offset = timedelta(0)
        self._stats_lock = threading.Lock()
        self.requests: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self.faults = FaultInjector("gcs")

    # -- clock, counters

    def now(self) -> datetime:
        return datetime.now(UTC) + self._clock_offset

    def advance_clock(self, seconds: float) -> None:
        with self.lock:
            self._clock_offset += timedelta(seconds=seconds)

    def next_generation(self, now: datetime) -> int:
        stamp = int(now.timestamp() * 1_000_000)
        self._last_generation = max(stamp, self._last_generation + 1)
        return self._last_generation

    def count(self, op: str) -> None:
        with self._stats_lock:
            self.requests[op] = self.requests.get(op, 0) + 1

    def count_error(self, reason: str) -> None:
        with self._stats_lock:
            self.errors[reason] = self.errors.get(reason, 0) + 1

    def stats(self) -> dict[str, Any]:
        with self._stats_lock:
            return {"requests": dict(self.requests), "errors": dict(self.errors),
                    "total": sum(self.requests.values())}

    def reset(self) -> None:
        with self.lock:
            self.buckets.clear()
            self.sessions.clear()
        with self._stats_lock:
            self.requests.clear()
            self.errors.clear()
        self.faults.reset()

    # -- buckets

    def bucket(self, name: str) -> Bucket:
        b = self.buckets.get(name)
        if b is None:
            raise ApiError(404, "notFound", "The specified bucket does not exist.")
        self._purge(b)
        return b

    def _purge(self, b: Bucket) -> None:
        """Hard-delete soft-deleted generations whose hardDeleteTime has passed."""
        now = self.now()
        queue = b.hard_delete_queue
        while queue and queue[0][0] <= now:
            _, generation, name = heapq.heappop(queue)
            gens = b.soft.get(name, [])
            gens[:] = [g for g in gens if g.generation != generation]
            if not gens:
                b.soft.pop(name, None)

    def create_bucket(self, body: dict[str, Any]) -> Bucket:
        name = body.get("name")
        if not isinstance(name, str) or not _BUCKET_NAME.match(name) or ".." in name:
            raise ApiError(400, "invalid", f"Invalid bucket name: {name!r}")
        now = self.now()
        b = Bucket(name=name, created=now, updated=now, soft_delete_effective=now)
        self._apply_bucket_fields(b, body, now, replace_all=False)
        with self.lock:
            if name in self.buckets:
                raise ApiError(409, "conflict", "Your previous request to create the named bucket succeeded "
                                                "and you already own it.")
            self.buckets[name] = b
        return b

    @staticmethod
    def _apply_bucket_fields(b: Bucket, body: Mapping[str, Any], now: datetime, *, replace_all: bool) -> None:
        if "versioning" in body or replace_all:
            v = body.get("versioning") or {}
            b.versioning = bool(v.get("enabled", False)) if isinstance(v, dict) else False
        if "softDeletePolicy" in body or replace_all:
            p = body.get("softDeletePolicy")
            seconds = DEFAULT_SOFT_DELETE_SECONDS
            if isinstance(p, dict) and p.get("retentionDurationSeconds") is not None:
                try:
                    seconds = int(p["retentionDurationSeconds"])
                except (TypeError, ValueError):
                    raise ApiError(400, "invalid", "retentionDurationSeconds must be an integer") from None
            if seconds != 0 and not MIN_SOFT_DELETE_SECONDS <= seconds <= MAX_SOFT_DELETE_SECONDS:
                raise ApiError(400, "invalid", "The soft delete retention duration must be 0 or between "
                                               f"{MIN_SOFT_DELETE_SECONDS} and {MAX_SOFT_DELETE_SECONDS} seconds.")
            if seconds != b.soft_delete_seconds:
                b.soft_delete_effective = now
            b.soft_delete_seconds = seconds
        if "retentionPolicy" in body or replace_all:
            p = body.get("retentionPolicy")
            period: int | None = None
            if isinstance(p, dict) and p.get("retentionPeriod") is not None:
                try:
                    period = int(p["retentionPeriod"])
                except (TypeError, ValueError):
                    raise ApiError(400, "invalid", "retentionPeriod must be an integer") from None
                if not 0 < period <= MAX_RETENTION_SECONDS:
                    raise ApiError(400, "invalid", "retentionPeriod is out of range")
            if b.retention_locked and (period is None or period < (b.retention_period or 0)):
                raise ApiError(403, "forbidden", "Cannot remove or reduce the locked retention policy of "
                                                 f"bucket {b.name}.")
            if period != b.retention_period:
                b.retention_effective = now if period is not None else None
            b.retention_period = period
        if "defaultEventBasedHold" in body or replace_all:
            b.default_event_based_hold = bool(body.get("defaultEventBasedHold") or False)
        if isinstance(body.get("storageClass"), str):
            b.storage_class = body["storageClass"]
        if isinstance(body.get("location"), str):
            b.location = body["location"].upper()
        if "labels" in body or replace_all:
            labels = body.get("labels") or {}
            b.labels = {str(k): str(v) for k, v in labels.items() if v is not None} \
                if isinstance(labels, dict) else {}

    def patch_bucket(self, b: Bucket, body: dict[str, Any], conditions: Conditions, *, replace_all: bool) -> None:
        with self.lock:
            self._check_bucket_conditions(b, conditions)
            now = self.now()
            self._apply_bucket_fields(b, body, now, replace_all=replace_all)
            b.metageneration += 1
            b.updated = now

    @staticmethod
    def _check_bucket_conditions(b: Bucket, conditions: Conditions) -> None:
        if conditions.metageneration_match is not None and b.metageneration != conditions.metageneration_match:
            raise _precondition_failed()
        if conditions.metageneration_not_match is not None and \
                b.metageneration == conditions.metageneration_not_match:
            raise _precondition_failed()

    def lock_retention(self, b: Bucket, metageneration: int | None) -> None:
        with self.lock:
            if metageneration is None:
                raise ApiError(400, "required", "Required parameter: ifMetagenerationMatch")
            self._check_bucket_conditions(b, Conditions(metageneration_match=metageneration))
            if b.retention_period is None:
                raise ApiError(400, "invalid", "The bucket has no retention policy to lock.")
            b.retention_locked = True
            b.metageneration += 1
            b.updated = self.now()

    def delete_bucket(self, b: Bucket, conditions: Conditions) -> None:
        with self.lock:
            self._check_bucket_conditions(b, conditions)
            if b.live or any(b.noncurrent.values()):
                raise ApiError(409, "conflict", "The bucket you tried to delete is not empty.")
            self.buckets.pop(b.name, None)

    # -- objects: lookup

    def find(self, b: Bucket, name: str, generation: int | None, *, soft_deleted: bool = False) -> Gen:
        """The live object, or exactly the named generation (live or noncurrent; soft-deleted on request)."""
        if soft_deleted:
            if generation is None:
                raise ApiError(400, "required", "A generation is required when softDeleted is true.")
            g = next((x for x in b.soft.get(name, ()) if x.generation == generation), None)
        elif generation is None:
            g = b.live.get(name)
        else:
            live = b.live.get(name)
            g = live if live is not None and live.generation == generation else \
                next((x for x in b.noncurrent.get(name, ()) if x.generation == generation), None)
        if g is None:
            raise _not_found_object(b.name, name, generation)
        return g

    # -- objects: state changes (call with self.lock held)

    def _check_removable(self, b: Bucket, g: Gen, *, becomes_noncurrent: bool) -> None:
        """403 when a hold or the bucket retention policy forbids deleting or replacing ``g``."""
        if g.held:
            raise ApiError(403, "objectUnderActiveHold",
                           f"Object '{b.name}/{g.name}' is under active Event-Based hold or Temporary hold "
                           "and cannot be deleted, overwritten or archived until hold is removed.")
        expiry = b.retention_expiry(g)
        # Documented: in a versioned bucket a live object under retention can still be made noncurrent.
        if expiry is not None and self.now() < expiry and not becomes_noncurrent:
            raise ApiError(403, "retentionPolicyNotMet",
                           f"Object '{b.name}/{g.name}' is subject to bucket's retention policy or object "
                           f"retention and cannot be deleted or overwritten until {_iso(expiry)}")

    def _discard(self, b: Bucket, g: Gen, now: datetime) -> None:
        """A generation leaves the bucket: soft-deleted when the policy says so, otherwise gone."""
        if g.time_deleted is None:
            g.time_deleted = now
        if b.soft_delete_seconds > 0:
            g.soft_delete_time = now
            g.hard_delete_time = now + timedelta(seconds=b.soft_delete_seconds)
            gens = b.soft.setdefault(g.name, [])
            gens.append(g)
            gens.sort(key=lambda x: x.generation)
            heapq.heappush(b.hard_delete_queue, (g.hard_delete_time, g.generation, g.name))

    def _displace_live(self, b: Bucket, name: str, now: datetime) -> None:
        live = b.live.pop(name, None)
        if live is None:
            return
        if b.versioning:
            live.time_deleted = now
            b.noncurrent.setdefault(name, []).append(live)
        else:
            self._discard(b, live, now)

    def store(self, b: Bucket, g: Gen, conditions: Conditions) -> Gen:
        """Make ``g`` the live generation of its name, checking preconditions, holds and retention."""
        with self.lock:
            if self.buckets.get(b.name) is not b:
                raise ApiError(404, "notFound", "The specified bucket does not exist.")
            live = b.live.get(g.name)
            conditions.check(live)
            if live is not None:
                self._check_removable(b, live, becomes_noncurrent=b.versioning)
            now = self.now()
            g.generation = self.next_generation(now)
            g.created = g.updated = now
            g.retention_base = None if g.event_based_hold else now
            self._displace_live(b, g.name, now)
            b.live[g.name] = g
            return g

    def new_gen(self, b: Bucket, name: str, data: bytes, resource: Mapping[str, Any], crc: bytes,
                md5: bytes | None) -> Gen:
        _check_name(name)
        now = self.now()
        g = Gen(name=name, generation=0, data=data, crc32c=crc, md5=md5, created=now, updated=now,
                storage_class=str(resource.get("storageClass") or b.storage_class))
        _apply_object_fields(g, resource, replace_all=False)
        if "eventBasedHold" not in resource and b.default_event_based_hold:
            g.event_based_hold = True
        return g

    def delete(self, b: Bucket, name: str, generation: int | None, conditions: Conditions) -> None:
        with self.lock:
            target = self.find(b, name, generation)
            conditions.check(target)
            now = self.now()
            if generation is None:
                # The live object: noncurrent in a versioned bucket, otherwise discarded.
                self._check_removable(b, target, becomes_noncurrent=b.versioning)
                self._displace_live(b, name, now)
                return
            # A named generation, live or noncurrent: exactly that one leaves, nothing else changes.
            self._check_removable(b, target, becomes_noncurrent=False)
            if b.live.get(name) is target:
                b.live.pop(name, None)
            else:
                gens = b.noncurrent[name]
                gens.remove(target)
                if not gens:
                    b.noncurrent.pop(name, None)
            self._discard(b, target, now)

    def patch(self, b: Bucket, name: str, generation: int | None, body: Mapping[str, Any],
              conditions: Conditions, *, replace_all: bool) -> Gen:
        with self.lock:
            g = self.find(b, name, generation)
            conditions.check(g)
            was_event_held = g.event_based_hold
            _apply_object_fields(g, body, replace_all=replace_all)
            now = self.now()
            if was_event_held and not g.event_based_hold:
                g.retention_base = now   # documented: releasing an event-based hold restarts retention
            g.metageneration += 1
            g.updated = now
            return g

    def restore(self, b: Bucket, name: str, generation: int | None, conditions: Conditions) -> Gen:
        with self.lock:
            if generation is None:
                raise ApiError(400, "required", "Required parameter: generation")
            source = self.find(b, name, generation, soft_deleted=True)
            g = replace(source, metageneration=1, time_deleted=None, soft_delete_time=None,
                        hard_delete_time=None,
                        metadata=dict(source.metadata) if source.metadata is not None else None)
            return self.store(b, g, conditions)

    def compose(self, b: Bucket, dest: str, body: Mapping[str, Any], conditions: Conditions) -> Gen:
        sources = body.get("sourceObjects")
        if not isinstance(sources, list) or not sources:
            raise ApiError(400, "required", "Required: sourceObjects")
        if len(sources) > MAX_COMPOSE_SOURCES:
            raise ApiError(400, "invalid", f"The number of source components provided ({len(sources)}) "
                                           f"exceeds the maximum ({MAX_COMPOSE_SOURCES}).")
        with self.lock:
            parts: list[Gen] = []
            for src in sources:
                if not isinstance(src, dict) or not isinstance(src.get("name"), str):
                    raise ApiError(400, "required", "Required: sourceObjects[].name")
                g = self.find(b, src["name"], _int_param(src, "generation"))
                pre = src.get("objectPreconditions") or {}
                if isinstance(pre, dict) and _int_param(pre, "ifGenerationMatch") not in (None, g.generation):
                    raise _precondition_failed()
                parts.append(g)
            count = sum(p.component_count or 1 for p in parts)
            if count > MAX_COMPONENT_COUNT:
                raise ApiError(400, "invalid", f"The resulting object would have {count} components, more "
                                               f"than the maximum {MAX_COMPONENT_COUNT}.")
            data = b"".join(p.data for p in parts)
            destination = body.get("destination") or {}
            if not isinstance(destination, dict):
                raise ApiError(400, "invalid", "destination must be an object")
            resource = dict(destination)
            if "contentType" not in resource:
                resource["contentType"] = parts[0].content_type
            g = self.new_gen(b, dest, data, resource, _crc32c(data), None)
            g.component_count = count
            return self.store(b, g, conditions)


def _check_name(name: str) -> None:
    if not name:
        raise ApiError(400, "required", "Required: object name")
    if len(name.encode("utf-8")) > 1024:
        raise ApiError(400, "invalid", "The object name is longer than 1024 bytes.")
    if "\r" in name or "\n" in name or name in (".", ".."):
        raise ApiError(400, "invalid", f"Invalid object name: {name!r}")


def _apply_object_fields(g: Gen, body: Mapping[str, Any], *, replace_all: bool) -> None:
    """Writable object metadata. Patch merges ``metadata`` (null removes a key); update replaces it."""
    for key in _WRITABLE:
        if key in body or (replace_all and key != "contentType"):
            value = body.get(key)
            if value is not None and not isinstance(value, str):
                raise ApiError(400, "invalid", f"{key} must be a string")
            attr = re.sub(r"[A-Z]", lambda m: "_" + m.group(0).lower(), key)
            if key == "contentType":
                g.content_type = value or "application/octet-stream"
            else:
                setattr(g, attr, value)
    if "metadata" in body:
        value = body["metadata"]
        if replace_all or value is None:
            g.metadata = _metadata_map(value)
        elif isinstance(value, dict):
            merged = dict(g.metadata or {})
            for k, v in value.items():
                if v is None:
                    merged.pop(str(k), None)
                else:
                    merged[str(k)] = str(v)
            g.metadata = merged or None
        else:
            raise ApiError(400, "invalid", "metadata must be an object")
    elif replace_all:
        g.metadata = None
    for key, attr in (("temporaryHold", "temporary_hold"), ("eventBasedHold", "event_based_hold")):
        if key in body or replace_all:
            value = body.get(key)
            if value is not None and not isinstance(value, bool):
                raise ApiError(400, "invalid", f"{key} must be a boolean")
            setattr(g, attr, bool(value))


# ------------------------------------------------------------------------------------------- rendering

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
        "crc32c": _b64(g.crc32c),
        "etag": _object_etag(g),
        "timeCreated": _iso(g.created),
        "updated": _iso(g.updated),
        "timeStorageClassUpdated": _iso(g.created),
        "timeFinalized": _iso(g.created),
    }
    if g.md5 is not None:
        out["md5Hash"] = _b64(g.md5)
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
        out["retentionExpirationTime"] = _iso(expiry)
    if g.time_deleted is not None:
        out["timeDeleted"] = _iso(g.time_deleted)
    if g.soft_delete_time is not None and g.hard_delete_time is not None:
        out["softDeleteTime"] = _iso(g.soft_delete_time)
        out["hardDeleteTime"] = _iso(g.hard_delete_time)
    return out


def _bucket_json(b: Bucket, base: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kind": "storage#bucket",
        "id": b.name,
        "selfLink": f"{base}/storage/v1/b/{b.name}",
        "projectNumber": "0",
        "name": b.name,
        "timeCreated": _iso(b.created),
        "updated": _iso(b.updated),
        "metageneration": str(b.metageneration),
        "location": b.location,
        "locationType": "multi-region",
        "storageClass": b.storage_class,
        "etag": _bucket_etag(b),
        "versioning": {"enabled": b.versioning},
        "softDeletePolicy": {"retentionDurationSeconds": str(b.soft_delete_seconds),
                             "effectiveTime": _iso(b.soft_delete_effective or b.created)},
        "iamConfiguration": {"uniformBucketLevelAccess": {"enabled": True},
                             "publicAccessPrevention": "enforced"},
        "rpo": "DEFAULT",
    }
    if b.retention_period is not None:
        out["retentionPolicy"] = {"retentionPeriod": str(b.retention_period),
                                  "effectiveTime": _iso(b.retention_effective or b.created),
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
        "errors": [{"message": err.message, "domain": "global", "reason": err.reason}]}})


Handler = Callable[[Request, list[str]], Response]


class _Router:
    """Maps JSON API requests to service calls. Pure: a Request in, a Response out (batch reuses it)."""

    def __init__(self, service: _Service) -> None:
        self.service = service

    def handle(self, req: Request, *, in_batch: bool = False) -> Response:
        try:
            op, handler, segs = self._route(req, in_batch)
            self.service.count(op)
            return handler(req, segs)
        except ApiError as err:
            self.service.count_error(err.reason)
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
        return _json_response(200, _bucket_json(b, req.base))

    def list_buckets(self, req: Request, segs: list[str]) -> Response:
        prefix = req.query.get("prefix", "")
        limit = _max_results(req.query)
        start = _decode_token(req.query["pageToken"])[0] if req.query.get("pageToken") else None
        with self.service.lock:
            names = sorted(n for n in self.service.buckets if n.startswith(prefix)
                           and (start is None or n > start))
            items = [_bucket_json(self.service.buckets[n], req.base) for n in names[:limit]]
        out: dict[str, Any] = {"kind": "storage#buckets", "items": items}
        if len(names) > limit:
            out["nextPageToken"] = _encode_token(names[limit - 1], 0)
        return _json_response(200, out)

    def get_bucket(self, req: Request, segs: list[str]) -> Response:
        with self.service.lock:
            b = self.service.bucket(segs[3])
            self.service._check_bucket_conditions(b, _conditions(req.query))
            return _json_response(200, _bucket_json(b, req.base))

    def patch_bucket(self, req: Request, segs: list[str], replace_all: bool = False) -> Response:
        with self.service.lock:
            b = self.service.bucket(segs[3])
            self.service.patch_bucket(b, _json_object(req.body), _conditions(req.query), replace_all=replace_all)
            return _json_response(200, _bucket_json(b, req.base))

    def update_bucket(self, req: Request, segs: list[str]) -> Response:
        return self.patch_bucket(req, segs, replace_all=True)

    def lock_retention(self, req: Request, segs: list[str]) -> Response:
        with self.service.lock:
            b = self.service.bucket(segs[3])
            self.service.lock_retention(b, _int_param(req.query, "ifMetagenerationMatch"))
            return _json_response(200, _bucket_json(b, req.base))

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
            g = self.service.find(b, segs[3], _int_param(req.query, "generation"),
                                  soft_deleted=_bool_param(req.query, "softDeleted"))
            _conditions(req.query).check(g)
            return _json_response(200, _object_json(b, g, req.base))

    def download(self, req: Request, segs: list[str]) -> Response:
        b = self._bucket(segs[1])
        with self.service.lock:
            g = self.service.find(b, segs[3], _int_param(req.query, "generation"))
            _conditions(req.query).check(g)
        hashes = f"crc32c={_b64(g.crc32c)}" + (f",md5={_b64(g.md5)}" if g.md5 is not None else "")
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
            parts = _multipart_parts(req.body, req.headers.get("content-type", ""))
            if len(parts) != 2:
                raise ApiError(400, "invalid", "A multipart upload needs exactly two parts: metadata and media.")
            resource = _json_object(parts[0][1])
            data = parts[1][1]
            if "contentType" not in resource and parts[1][0].get("content-type"):
                resource["contentType"] = parts[1][0]["content-type"]
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
        crc, md5 = _check_declared(data, resource, req.headers.get("x-goog-hash"))
        g = self.service.store(b, self.service.new_gen(b, name, data, resource, crc, md5), conditions)
        return _json_response(200, _object_json(b, g, req.base))

    def _start_resumable(self, req: Request, b: Bucket, conditions: Conditions) -> Response:
        resource = _json_object(req.body)
        if req.query.get("name"):
            resource["name"] = req.query["name"]
        name = resource.get("name")
        if not isinstance(name, str):
            raise ApiError(400, "required", "Required: object name")
        _check_name(name)
        with self.service.lock:
            conditions.check(b.live.get(name))
            total = _int_param(req.headers, "x-upload-content-length")
            content_type = req.headers.get("x-upload-content-type") or "application/octet-stream"
            session = Session(upload_id=uuid.uuid4().hex, bucket=b.name, name=name, resource=resource,
                              conditions=conditions, content_type=content_type, total=total)
            self.service.sessions[session.upload_id] = session
        location = (f"{req.base}/upload/storage/v1/b/{quote(b.name, safe='')}/o?uploadType=resumable"
                    f"&upload_id={session.upload_id}")
        return Response(200, {"Location": location, "X-GUploader-UploadID": session.upload_id})

    def _session(self, req: Request, segs: list[str]) -> Session:
        session = self.service.sessions.get(req.query.get("upload_id", ""))
        if session is None or session.bucket != segs[4]:
            raise ApiError(404, "notFound", "No such upload session.")
        return session

    def upload_chunk(self, req: Request, segs: list[str]) -> Response:
        chunk = req.corrupt(req.body)
        with self.service.lock:
            session = self._session(req, segs)
            text = req.headers.get("content-range", "").strip()
            m = _CONTENT_RANGE.match(text) if text else None
            if text and m is None:
                raise ApiError(400, "invalid", f"Invalid Content-Range: {text!r}")
            have = len(session.buffer)
            if m is not None and m.group(3) != "*":
                total = int(m.group(3))
                if session.total is not None and session.total != total:
                    raise ApiError(400, "invalid", "The upload size differs from the one declared before.")
                session.total = total
            first = have
            if m is None:
                session.total = have + len(req.body)   # a PUT without Content-Range carries the rest
            elif m.group(1) is not None:
                first, last = int(m.group(1)), int(m.group(2))
                if last - first + 1 != len(req.body):
                    raise ApiError(400, "invalid", "Content-Range does not match the request body length.")
            elif req.body:
                raise ApiError(400, "invalid", "A request body needs a Content-Range with a byte range.")
            if first > have:
                raise ApiError(400, "invalid", f"Chunk starts at {first}, but {have} bytes are persisted.")
            # Bytes already persisted may be sent again after a failure: keep the first copy.
            session.buffer += chunk[have - first:]
            if session.total is None or len(session.buffer) < session.total:
                headers = {"Range": f"bytes=0-{len(session.buffer) - 1}"} if session.buffer else {}
                return Response(308, headers)
            if len(session.buffer) > session.total:
                raise ApiError(400, "invalid", "More bytes were sent than the declared upload size.")
            data = bytes(session.buffer)
            try:
                crc, md5 = _check_declared(data, session.resource, req.headers.get("x-goog-hash"))
            except ApiError:
                self.service.sessions.pop(session.upload_id, None)
                raise
            b = self.service.bucket(session.bucket)
            resource = dict(session.resource)
            resource.setdefault("contentType", session.content_type)
            g = self.service.store(b, self.service.new_gen(b, session.name, data, resource, crc, md5),
                                   session.conditions)
            self.service.sessions.pop(session.upload_id, None)
            return _json_response(200, _object_json(b, g, req.base))

    def upload_cancel(self, req: Request, segs: list[str]) -> Response:
        with self.service.lock:
            session = self._session(req, segs)
            self.service.sessions.pop(session.upload_id, None)
        return Response(499)

    def patch_object(self, req: Request, segs: list[str], replace_all: bool = False) -> Response:
        b = self._bucket(segs[1])
        g = self.service.patch(b, segs[3], _int_param(req.query, "generation"), _json_object(req.body),
                               _conditions(req.query), replace_all=replace_all)
        with self.service.lock:
            return _json_response(200, _object_json(b, g, req.base))

    def update_object(self, req: Request, segs: list[str]) -> Response:
        return self.patch_object(req, segs, replace_all=True)

    def delete_object(self, req: Request, segs: list[str]) -> Response:
        b = self._bucket(segs[1])
        self.service.delete(b, segs[3], _int_param(req.query, "generation"), _conditions(req.query))
        return Response(204)

    def restore(self, req: Request, segs: list[str]) -> Response:
        b = self._bucket(segs[1])
        g = self.service.restore(b, segs[3], _int_param(req.query, "generation"), _conditions(req.query))
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
            src = self.service.find(src_bucket, segs[3], _int_param(req.query, "sourceGeneration"))
            _conditions(req.query, "ifSource").check(src)
            resource = _json_object(req.body)
            fields = {k: v for k, v in _object_json(src_bucket, src, req.base).items()
                      if k in (*_WRITABLE, "metadata")}
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
                self.service.count_error(err.reason)
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


# ------------------------------------------------------------------------------------------------ HTTP

class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "GcsEmulator/1"
    sys_version = ""
    timeout = 120  # idle keep-alive connections end instead of holding a thread forever
    router: _Router  # set on a per-emulator subclass

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests and benchmarks run thousands of requests

    def version_string(self) -> str:
        return self.server_version

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

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, resp: Response, body: bytes | None = None) -> None:
        """Write ``resp``; ``body`` (a faulted copy) replaces its bytes but not its Content-Length."""
        self.send_response(resp.status)
        for k, v in resp.headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(resp.body)))
        self.end_headers()
        out = resp.body if body is None else body
        if out:
            self.wfile.write(out)

    def _abort(self) -> None:
        """Reset the connection (an injected fault): no answer, and nothing more on this socket."""
        abort_connection(self.connection)
        self.close_connection = True

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
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return
        path, _, raw_query = self.path.partition("?")
        if path.startswith(("http://", "https://")):
            path = urlsplit(self.path).path
        query = {k: v[-1] for k, v in parse_qs(raw_query, keep_blank_values=True).items()}
        headers = {k.lower(): v for k, v in self.headers.items()}
        host = headers.get("host") or "127.0.0.1"
        req = Request(self.command, path, query, headers, body, f"http://{host}")
        op: str | None = None
        action: Action | None = None
        try:
            if path.startswith("/_emulator/"):
                resp = self._internal(req)
            else:
                op, action = self._faults_before(req)
                if action is not None and action.drop_before:
                    self._abort()
                    return
                if action is not None and action.status is not None:
                    reason, message = _FAULT_ERRORS[action.status]
                    self.router.service.count(op or "unknown")
                    raise ApiError(action.status, reason, message)
                if action is not None:
                    req.corrupt = action.request_body
                resp = self.router.handle(req)
        except ApiError as err:
            self.router.service.count_error(err.reason)
            resp = _error_response(err)
        except Exception as exc:  # noqa: BLE001 - a server answers 500 instead of dying
            resp = _error_response(ApiError(500, "backendError", f"{type(exc).__name__}: {exc}"))
        if action is not None and action.drop_after:
            self._abort()
            return
        out = resp.body
        if action is not None and op == "objects.get.media" and resp.status in (200, 206):
            out = action.response_body(resp.body)   # flipped or truncated; Content-Length stays the original
        try:
            self._send(resp, out)
        except OSError:
            self.close_connection = True
            return
        if action is not None and action.close_after:
            self.close_connection = True

    def _internal(self, req: Request) -> Response:
        service = self.router.service
        if req.method == "GET" and req.path == "/_emulator/stats":
            return _json_response(200, service.stats())
        if req.method == "POST" and req.path == "/_emulator/reset":
            service.reset()
            return Response(204)
        if req.method == "POST" and req.path == "/_emulator/clock":
            try:
                seconds = float(req.query.get("advance", ""))
            except ValueError:
                raise ApiError(400, "invalid", "advance must be a number of seconds") from None
            if seconds < 0:
                raise ApiError(400, "invalid", "the clock only moves forward")
            service.advance_clock(seconds)
            return _json_response(200, {"now": _iso(service.now())})
        if req.path == FAULTS_PATH:
            status, payload = service.faults.control(req.method, req.body)
            return _json_response(status, payload)
        raise ApiError(404, "notFound", f"no emulator endpoint {req.method} {req.path}")


# ------------------------------------------------------------------------------------------ lifecycle

class GcsEmulator(LoopbackServer):
    """The GCS JSON API emulator on loopback. ``start()`` returns once it is listening; ``url`` is its endpoint."""

    name = "gcs-emulator"

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._service = _Service()
        handler = type("_BoundHandler", (_Handler,), {"router": _Router(self._service)})
        self._bind(host, port, handler)

    def stats(self) -> dict[str, Any]:
        return self._service.stats()

    def reset(self) -> None:
        self._service.reset()

    def advance_clock(self, seconds: float) -> None:
        """Move the emulator's clock forward (retention, hard deletion) without sleeping."""
        self._service.advance_clock(seconds)

    @property
    def faults(self) -> FaultInjector:
        """The endpoint's fault hook (``configure(FaultPlan(...))``); also at ``/_emulator/faults``."""
        return self._service.faults

    def iter_generations(self, bucket: str) -> Iterator[tuple[str, str, int]]:
        """(state, name, generation) of every stored generation, for tests that inspect the server side."""
        with self._service.lock:
            b = self._service.buckets.get(bucket)
            rows: list[tuple[str, str, int]] = []
            if b is not None:
                rows += [("live", g.name, g.generation) for g in b.live.values()]
                rows += [("noncurrent", g.name, g.generation) for gs in b.noncurrent.values() for g in gs]
                rows += [("soft-deleted", g.name, g.generation) for gs in b.soft.values() for g in gs]
        yield from sorted(rows, key=lambda r: (r[1], r[2]))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m migrator.sandbox.gcs_emulator",
                                     description="In-memory GCS JSON API emulator (loopback only).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready-file", type=Path, help="the bound port is written here once listening")
    args = parser.parse_args(argv)
    if not is_loopback_host(args.host):
        parser.exit(2, f"refusing to listen on non-loopback host {args.host!r}\n")
    emulator = GcsEmulator(host=args.host, port=args.port)

    return emulator.run_until_signalled(args.ready_file)


if __name__ == "__main__":
    sys.exit(main())
