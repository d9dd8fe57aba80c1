"""The GCS emulator's operations over its model (:mod:`migrator.sandbox.gcs.model`), with the JSON API's
rules and errors.

Every state change happens here, under the service's lock; the HTTP side parses requests, reads the model to
render answers, and changes nothing. The rules, as the JSON API reference documents them:

- generations are strictly increasing microsecond stamps; ``metageneration`` counts metadata changes;
- preconditions (``ifGenerationMatch`` and the rest) answer 412 ``conditionNotMet``;
- a delete naming a generation removes exactly that generation (live or noncurrent) and nothing else;
  without one, a versioned bucket keeps the live object as noncurrent;
- soft delete: a generation that leaves the bucket is kept, unreadable and restorable, for the bucket's
  ``softDeletePolicy`` (7 days unless set; 0 turns it off), then hard-deleted on the next lookup;
- temporary and event-based holds (403 ``objectUnderActiveHold``) and the bucket retention policy
  (403 ``retentionPolicyNotMet``) block deletes and replacements; a locked policy only grows;
- declared ``crc32c``/``md5Hash`` (upload metadata or ``X-Goog-Hash``) must match the bytes (400);
  composite objects have a ``crc32c`` and a ``componentCount`` but no ``md5Hash``;
- a resumable session keeps its chunks, takes a re-sent persisted range once, and stores the object when
  the declared size is reached.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import heapq
import re
import uuid
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import google_crc32c

from migrator.sandbox.base import ApiError, EmulatorService, b64, iso_millis
from migrator.sandbox.gcs.model import (
    DEFAULT_SOFT_DELETE_SECONDS,
    Bucket,
    Conditions,
    Gen,
    Session,
    precondition_failed,
)

MAX_COMPOSE_SOURCES = 32
MAX_COMPONENT_COUNT = 1024
MIN_SOFT_DELETE_SECONDS = 7 * 24 * 3600   # documented: 0, or 7 to 90 days
MAX_SOFT_DELETE_SECONDS = 90 * 24 * 3600
MAX_RETENTION_SECONDS = 3_155_760_000
# The number of the one project the emulator plays, in every bucket resource (``projectNumber``): a GCS
# location's owner. Fake and fixed; real project numbers are 12 digits.
PROJECT_NUMBER = "424242424242"
WRITABLE = ("contentType", "contentEncoding", "contentDisposition", "contentLanguage", "cacheControl")
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9._\-]{1,61}[a-z0-9]$")
_CONTENT_RANGE = re.compile(r"^bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)$")


def not_found_object(bucket: str, name: str, generation: int | None = None) -> ApiError:
    suffix = f"#{generation}" if generation is not None else ""
    return ApiError(404, "notFound", f"No such object: {bucket}/{name}{suffix}")


def crc32c(data: bytes) -> bytes:
    return int(google_crc32c.value(data)).to_bytes(4, "big")


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


def check_declared(data: bytes, resource: Mapping[str, Any], header: str | None) -> tuple[bytes, bytes]:
    """Compute CRC32C and MD5 and compare them with what the client declared: 400 on any mismatch."""
    crc = crc32c(data)
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
            raise ApiError(400, "invalid", f"Provided {label} \"{b64(value)}\" doesn't match calculated "
                                           f"{label} \"{b64(actual)}\".")
    return crc, md5


def int_value(text: object, key: str) -> int | None:
    """An integer parameter or header as sent; None when absent or empty."""
    if text is None or text == "":
        return None
    try:
        return int(str(text))
    except ValueError:
        raise ApiError(400, "invalid", f"Invalid value for {key}: {text!r}") from None


def int_param(query: Mapping[str, Any], key: str) -> int | None:
    return int_value(query.get(key), key)


def metadata_map(value: object) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ApiError(400, "invalid", "metadata must be an object")
    return {str(k): str(v) for k, v in value.items() if v is not None}


class GcsService(EmulatorService):
    """The buckets, the upload sessions and the operations on them; state changes happen here, under ``lock``."""

    def __init__(self, project_number: str = PROJECT_NUMBER) -> None:
        super().__init__("gcs")
        self.project_number = project_number
        self.buckets: dict[str, Bucket] = {}
        self.sessions: dict[str, Session] = {}
        self._last_generation = 0

    def next_generation(self, now: datetime) -> int:
        stamp = int(now.timestamp() * 1_000_000)
        self._last_generation = max(stamp, self._last_generation + 1)
        return self._last_generation

    def reset(self) -> None:
        """Buckets, sessions, counts and the fault plan (the clock keeps its offset)."""
        with self.lock:
            self.buckets.clear()
            self.sessions.clear()
        super().reset()

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
            self.check_bucket_conditions(b, conditions)
            now = self.now()
            self._apply_bucket_fields(b, body, now, replace_all=replace_all)
            b.metageneration += 1
            b.updated = now

    @staticmethod
    def check_bucket_conditions(b: Bucket, conditions: Conditions) -> None:
        if conditions.metageneration_match is not None and b.metageneration != conditions.metageneration_match:
            raise precondition_failed()
        if conditions.metageneration_not_match is not None and \
                b.metageneration == conditions.metageneration_not_match:
            raise precondition_failed()

    def lock_retention(self, b: Bucket, metageneration: int | None) -> None:
        with self.lock:
            if metageneration is None:
                raise ApiError(400, "required", "Required parameter: ifMetagenerationMatch")
            self.check_bucket_conditions(b, Conditions(metageneration_match=metageneration))
            if b.retention_period is None:
                raise ApiError(400, "invalid", "The bucket has no retention policy to lock.")
            b.retention_locked = True
            b.metageneration += 1
            b.updated = self.now()

    def delete_bucket(self, b: Bucket, conditions: Conditions) -> None:
        with self.lock:
            self.check_bucket_conditions(b, conditions)
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
            raise not_found_object(b.name, name, generation)
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
                           f"retention and cannot be deleted or overwritten until {iso_millis(expiry)}")

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
        check_name(name)
        now = self.now()
        g = Gen(name=name, generation=0, data=data, crc32c=crc, md5=md5, created=now, updated=now,
                storage_class=str(resource.get("storageClass") or b.storage_class))
        apply_object_fields(g, resource, replace_all=False)
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
            apply_object_fields(g, body, replace_all=replace_all)
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
                g = self.find(b, src["name"], int_param(src, "generation"))
                pre = src.get("objectPreconditions") or {}
                if isinstance(pre, dict) and int_param(pre, "ifGenerationMatch") not in (None, g.generation):
                    raise precondition_failed()
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
            g = self.new_gen(b, dest, data, resource, crc32c(data), None)
            g.component_count = count
            return self.store(b, g, conditions)


    # -- resumable upload sessions

    def start_session(self, b: Bucket, name: str, resource: dict[str, Any], conditions: Conditions,
                      content_length: str | None, content_type: str | None) -> Session:
        """A resumable upload begins: the preconditions hold now and are checked again at the end."""
        check_name(name)
        with self.lock:
            conditions.check(b.live.get(name))
            total = int_value(content_length, "x-upload-content-length")
            session = Session(upload_id=uuid.uuid4().hex, bucket=b.name, name=name, resource=resource,
                              conditions=conditions, content_type=content_type or "application/octet-stream",
                              total=total)
            self.sessions[session.upload_id] = session
            return session

    def session(self, upload_id: str, bucket: str) -> Session:
        session = self.sessions.get(upload_id)
        if session is None or session.bucket != bucket:
            raise ApiError(404, "notFound", "No such upload session.")
        return session

    def append_chunk(self, session: Session, chunk: bytes, content_range: str,
                     goog_hash: str | None) -> tuple[Bucket, Gen] | None:
        """Add a chunk (``Content-Range`` as sent); the stored object once every byte is in, else None.
        Bytes already persisted may be sent again after a failure: the first copy is kept."""
        with self.lock:
            text = content_range.strip()
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
                session.total = have + len(chunk)   # a PUT without Content-Range carries the rest
            elif m.group(1) is not None:
                first, last = int(m.group(1)), int(m.group(2))
                if last - first + 1 != len(chunk):
                    raise ApiError(400, "invalid", "Content-Range does not match the request body length.")
            elif chunk:
                raise ApiError(400, "invalid", "A request body needs a Content-Range with a byte range.")
            if first > have:
                raise ApiError(400, "invalid", f"Chunk starts at {first}, but {have} bytes are persisted.")
            session.buffer += chunk[have - first:]
            if session.total is None or len(session.buffer) < session.total:
                return None
            if len(session.buffer) > session.total:
                raise ApiError(400, "invalid", "More bytes were sent than the declared upload size.")
            data = bytes(session.buffer)
            try:
                crc, md5 = check_declared(data, session.resource, goog_hash)
            except ApiError:
                self.sessions.pop(session.upload_id, None)
                raise
            b = self.bucket(session.bucket)
            resource = dict(session.resource)
            resource.setdefault("contentType", session.content_type)
            g = self.store(b, self.new_gen(b, session.name, data, resource, crc, md5), session.conditions)
            self.sessions.pop(session.upload_id, None)
            return b, g

    def cancel_session(self, session: Session) -> None:
        with self.lock:
            self.sessions.pop(session.upload_id, None)


def check_name(name: str) -> None:
    if not name:
        raise ApiError(400, "required", "Required: object name")
    if len(name.encode("utf-8")) > 1024:
        raise ApiError(400, "invalid", "The object name is longer than 1024 bytes.")
    if "\r" in name or "\n" in name or name in (".", ".."):
        raise ApiError(400, "invalid", f"Invalid object name: {name!r}")


def apply_object_fields(g: Gen, body: Mapping[str, Any], *, replace_all: bool) -> None:
    """Writable object metadata. Patch merges ``metadata`` (null removes a key); update replaces it."""
    for key in WRITABLE:
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
            g.metadata = metadata_map(value)
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
