"""An in-memory OCI Object Storage REST emulator that the real ``oci`` SDK talks to over HTTP.

No OCI emulator exists, and the product must prove what it claims against OCI semantics, so this one is
strict where it matters: every request's HTTP signature is verified against the sandbox public key,
Content-MD5 and ``opc-content-crc32c``/``-sha256``/``-sha384`` are checked on puts and parts, version
ids, delete markers and ``if-match``/``if-none-match`` behave as OCI documents, and commit reports the
multipart MD5 and whole-object CRC32C. Beyond objects it emulates, as OCI documents them:

- the bucket's versioning states: ``Disabled`` (never enabled), ``Enabled``, ``Suspended`` ("upload and
  delete behave as in a bucket with versioning disabled; versions created before the suspension are
  retained");
- retention rules (time-bound in DAYS or YEARS, or indefinite; lockable with ``timeRuleLocked`` at least 14
  days ahead): an object or version younger than a rule's duration cannot be deleted or overwritten, a
  locked rule cannot be deleted, and versioning cannot be enabled while rules exist (nor rules added while
  it is enabled);
- replication policies: the destination bucket becomes read-only (403 ``BucketIsReadonly``) and writes to
  the source propagate to it (``_Service.replicate_put``/``replicate_delete`` say exactly what does);
- the Vault (KMS) crypto and management endpoints for ECDSA signing (``migrator.sandbox.oci_kms``) on the
  same port;
- the sandbox-wide fault hook (``migrator.sandbox.faults``): latency, 500/503/429, resets, timeouts,
  truncated and bit-flipped bodies, per operation.

Time is the emulator's own clock (real time plus an offset that tests move forward), so retention expiry
and rule locks are tested without sleeping. Signature dates are checked against real time.

Known departures from the real service: no minimum part size unless ``min_part_size`` is set (OCI waives
it only for the last part); replication is synchronous unless paused through the control path, and the
destination region is recorded but the destination bucket lives in this same emulator; the HTTP status
and code OCI answers for a retention violation are not in its public documentation, so the emulator uses
409 ``Conflict``; no lifecycle, PARs or SSE-C; list orderings beyond "by name, newest version first" are
not modelled.

Unsigned paths exist for tests only: ``GET /_emulator/stats``, ``POST /_emulator/reset``,
``POST /_emulator/clock?advance=SECONDS``, ``GET|POST /_emulator/replication?paused=true|false`` and the
fault hook's ``GET|POST /_emulator/faults``. Operation names (stats, fault plans) are OCI's API names:
``PutObject``, ``GetObject``, ``HeadObject``, ``DeleteObject``, ``ListObjects``, ``ListObjectVersions``,
``CreateMultipartUpload``, ``UploadPart``, ``CommitMultipartUpload``, ``AbortMultipartUpload``,
``CreateRetentionRule``, ``CreateReplicationPolicy``, ``Sign``, ``Verify``, ``CreateKey`` and so on.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import re
import sys
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

import google_crc32c
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from migrator.endpoints import is_loopback_host
from migrator.sandbox.faults import CONTROL_PATH as FAULTS_PATH
from migrator.sandbox.faults import Action, FaultInjector, abort_connection
from migrator.sandbox.oci_auth import fingerprint
from migrator.sandbox.oci_kms import KmsError, KmsVault
from migrator.sandbox.serve import LoopbackServer

MAX_LIST = 1000
CLOCK_SKEW_SECONDS = 300
_CHECKSUM_ALGORITHMS = ("CRC32C", "SHA256", "SHA384")
_TIERS = ("Standard", "InfrequentAccess", "Archive")
_SIG_PARAM = re.compile(r'([a-zA-Z]+)="([^"]*)"')
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
MAX_RETENTION_RULES = 100                 # documented per bucket
MIN_LOCK_DELAY = timedelta(days=14)       # documented: a rule locks no sooner than 14 days after it is set
_TIME_UNITS = {"DAYS": 86400, "YEARS": 365 * 86400}   # a year counts 365 days here
_DATA_IN_OPS = frozenset({"PutObject", "UploadPart"})    # request bodies that are object bytes
_DATA_OUT_OPS = frozenset({"GetObject"})                 # response bodies that are object bytes
_ERROR_KINDS = {500: ("InternalServerError", "An internal server error occurred (injected fault)"),
                503: ("ServiceUnavailable", "The service is currently unavailable (injected fault)"),
                429: ("TooManyRequests", "Too many requests (injected fault)"),
                501: ("NotImplemented", "Not implemented (injected fault)")}


class ApiError(Exception):
    """An OCI error response: status, code and message go into the JSON body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


# ---------------------------------------------------------------------------------------------- state

@dataclass
class ObjectVersion:
    version_id: str
    etag: str
    created: datetime
    data: bytes = b""
    is_delete_marker: bool = False
    md5_b64: str | None = None            # None for multipart objects (OCI has no whole-object MD5)
    multipart_md5: str | None = None      # "b64-N"
    checksum_algorithm: str | None = None
    crc32c_b64: str | None = None         # whole object, when the algorithm was CRC32C
    sha256_b64: str | None = None         # whole object, single puts only
    sha384_b64: str | None = None
    multipart_sha: str | None = None      # "b64-N" for SHA256/SHA384 multipart uploads
    content_type: str = "application/octet-stream"
    content_encoding: str | None = None
    content_language: str | None = None
    content_disposition: str | None = None
    cache_control: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    storage_tier: str = "Standard"
    suspended: bool = False               # written while versioning was Suspended: the next write replaces it

    @property
    def archival_state(self) -> str | None:
        return "Archived" if self.storage_tier == "Archive" else None

    @property
    def list_md5(self) -> str | None:
        return self.md5_b64 if self.md5_b64 is not None else self.multipart_md5


@dataclass
class Part:
    data: bytes
    etag: str
    md5: bytes
    sha: bytes | None
    crc32c_b64: str


@dataclass
class Upload:
    upload_id: str
    name: str
    created: datetime
    checksum_algorithm: str | None
    content_type: str
    content_encoding: str | None
    content_language: str | None
    content_disposition: str | None
    cache_control: str | None
    metadata: dict[str, str]
    storage_tier: str
    if_match: str | None
    if_none_match: str | None
    parts: dict[int, Part] = field(default_factory=dict)


@dataclass
class RetentionRule:
    rule_id: str
    display_name: str
    amount: int | None                    # None: an indefinite rule
    unit: str | None                      # "DAYS" or "YEARS"
    time_rule_locked: datetime | None
    created: datetime
    modified: datetime
    etag: str

    @property
    def seconds(self) -> int | None:
        return None if self.amount is None or self.unit is None else self.amount * _TIME_UNITS[self.unit]

    def locked(self, now: datetime) -> bool:
        return self.time_rule_locked is not None and now >= self.time_rule_locked

    def retains(self, last_modified: datetime, now: datetime) -> bool:
        """Whether an object last modified at ``last_modified`` is still protected by this rule."""
        seconds = self.seconds
        return seconds is None or now < last_modified + timedelta(seconds=seconds)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.rule_id, "displayName": self.display_name, "etag": self.etag,
                               "timeCreated": _iso(self.created), "timeModified": _iso(self.modified)}
        if self.amount is not None:
            out["duration"] = {"timeAmount": self.amount, "timeUnit": self.unit}
        if self.time_rule_locked is not None:
            out["timeRuleLocked"] = _iso(self.time_rule_locked)
        return out


@dataclass
class ReplicationPolicy:
    policy_id: str
    name: str
    destination_region: str
    destination_bucket: str
    created: datetime
    last_sync: datetime
    status: str = "ACTIVE"                # or CLIENT_ERROR once replication into the destination failed
    status_message: str = "Replication is active"

    def to_json(self) -> dict[str, Any]:
        return {"id": self.policy_id, "name": self.name, "destinationRegionName": self.destination_region,
                "destinationBucketName": self.destination_bucket, "timeCreated": _iso(self.created),
                "timeLastSync": _iso(self.last_sync), "status": self.status, "statusMessage": self.status_message}


@dataclass
class Bucket:
    name: str
    compartment_id: str
    created: datetime
    etag: str
    versioning: str = "Disabled"
    storage_tier: str = "Standard"
    metadata: dict[str, str] = field(default_factory=dict)
    objects: dict[str, list[ObjectVersion]] = field(default_factory=dict)  # oldest first
    uploads: dict[str, Upload] = field(default_factory=dict)
    retention_rules: dict[str, RetentionRule] = field(default_factory=dict)
    replication: ReplicationPolicy | None = None       # this bucket is a replication source
    read_only: bool = False                           # this bucket is a replication destination
    replication_source: tuple[str, str] | None = None  # (policy name, source bucket) while a destination

    def latest(self, name: str) -> ObjectVersion | None:
        """The live object: the newest entry unless it is a delete marker."""
        versions = self.objects.get(name)
        if not versions or versions[-1].is_delete_marker:
            return None
        return versions[-1]


# ------------------------------------------------------------------------------------------- helpers

def _now() -> datetime:
    return datetime.now(UTC)


def _iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def _http_date(ts: datetime) -> str:
    return formatdate(ts.timestamp(), usegmt=True)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _crc32c_b64(data: bytes) -> str:
    return _b64(int(google_crc32c.value(data)).to_bytes(4, "big"))


def _decode_b64(text: str, length: int, header: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "InvalidParameter", f"{header} is not valid base64") from None
    if len(raw) != length:
        raise ApiError(400, "InvalidParameter", f"{header} has {len(raw)} bytes, want {length}")
    return raw


def _encode_token(value: Sequence[str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(value)).encode("utf-8")).decode("ascii")


def _decode_token(token: str) -> list[str]:
    try:
        value = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
    except (ValueError, binascii.Error):
        raise ApiError(400, "InvalidParameter", "malformed page token") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ApiError(400, "InvalidParameter", "malformed page token")
    return value


def _limit(query: dict[str, str]) -> int:
    text = query.get("limit", str(MAX_LIST))
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIST:
        raise ApiError(400, "InvalidParameter", f"limit must be 1..{MAX_LIST}")
    return int(text)


def _meta_headers(metadata: dict[str, str]) -> dict[str, str]:
    return {f"opc-meta-{k}": v for k, v in metadata.items()}


def _object_headers(v: ObjectVersion) -> dict[str, str]:
    """Headers of HEAD and GET: what OCI documents for GetObject/HeadObject."""
    h: dict[str, str] = {
        "etag": v.etag,
        "version-id": v.version_id,
        "last-modified": _http_date(v.created),
        "content-type": v.content_type,
        "accept-ranges": "bytes",
        "storage-tier": v.storage_tier,
    }
    if v.md5_b64 is not None:
        h["content-md5"] = v.md5_b64
    if v.multipart_md5 is not None:
        h["opc-multipart-md5"] = v.multipart_md5
    for name, value in (("content-encoding", v.content_encoding), ("content-language", v.content_language),
                        ("content-disposition", v.content_disposition), ("cache-control", v.cache_control),
                        ("archival-state", v.archival_state)):
        if value is not None:
            h[name] = value
    h.update(_checksum_headers(v))
    h.update(_meta_headers(v.metadata))
    return h


def _checksum_headers(v: ObjectVersion) -> dict[str, str]:
    h: dict[str, str] = {}
    if v.checksum_algorithm == "CRC32C" and v.crc32c_b64 is not None:
        h["opc-content-crc32c"] = v.crc32c_b64
    elif v.checksum_algorithm == "SHA256":
        if v.sha256_b64 is not None:
            h["opc-content-sha256"] = v.sha256_b64
        if v.multipart_sha is not None:
            h["opc-multipart-sha256"] = v.multipart_sha
    elif v.checksum_algorithm == "SHA384":
        if v.sha384_b64 is not None:
            h["opc-content-sha384"] = v.sha384_b64
        if v.multipart_sha is not None:
            h["opc-multipart-sha384"] = v.multipart_sha
    return h


@dataclass
class _Digests:
    md5: bytes
    crc32c_b64: str | None
    sha: bytes | None   # SHA-256 or SHA-384 per algorithm


def _check_body(headers: Any, body: bytes, algorithm: str | None) -> _Digests:
    """Validate Content-MD5 and the opc-content-* checksums; a mismatch is a 400 as OCI documents."""
    md5 = hashlib.md5(body).digest()
    declared = headers.get("Content-MD5")
    if declared is not None and _decode_b64(declared, 16, "Content-MD5") != md5:
        raise ApiError(400, "UnmatchedContentMD5",
                       f"The computed MD5 of the request body ({_b64(md5)}) does not match the "
                       f"Content-MD5 header ({declared})")
    crc: str | None = None
    if algorithm == "CRC32C" or headers.get("opc-content-crc32c") is not None:
        crc = _crc32c_b64(body)
        declared = headers.get("opc-content-crc32c")
        if declared is not None and _decode_b64(declared, 4, "opc-content-crc32c") != base64.b64decode(crc):
            raise ApiError(400, "UnmatchedContentCRC32C",
                           f"The computed CRC32C of the request body ({crc}) does not match the "
                           f"opc-content-crc32c header ({declared})")
    sha: bytes | None = None
    for name, alg, size in (("SHA256", hashlib.sha256, 32), ("SHA384", hashlib.sha384, 48)):
        header = f"opc-content-{name.lower()}"
        declared = headers.get(header)
        if algorithm == name or declared is not None:
            digest = alg(body).digest()
            if algorithm == name:
                sha = digest
            if declared is not None and _decode_b64(declared, size, header) != digest:
                raise ApiError(400, f"UnmatchedContent{name}",
                               f"The computed {name} of the request body ({_b64(digest)}) does not match "
                               f"the {header} header ({declared})")
    return _Digests(md5=md5, crc32c_b64=crc, sha=sha)


def _algorithm(headers: Any) -> str | None:
    value = headers.get("opc-checksum-algorithm")
    if value is None:
        return None
    upper = str(value).upper()
    if upper not in _CHECKSUM_ALGORITHMS:
        raise ApiError(400, "InvalidParameter", f"unsupported opc-checksum-algorithm {value!r}")
    return upper


# ------------------------------------------------------------------------------------------- service

class _Service:
    """The data and the operations; the HTTP handler only parses and routes."""

    def __init__(self, namespace: str, public_key: rsa.RSAPublicKey, min_part_size: int,
                 region: str = "us-ashburn-1") -> None:
        self.namespace = namespace
        self.region = region
        self.public_key = public_key
        self.fingerprint = fingerprint(public_key)
        self.min_part_size = min_part_size
        self.lock = threading.RLock()
        self.buckets: dict[str, Bucket] = {}
        self._stats_lock = threading.Lock()
        self.requests: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self._offset = timedelta(0)        # the emulator clock runs ahead of real time by this much
        self.vault = KmsVault(self.now)
        self.faults = FaultInjector("oci")
        self.replication_paused = False
        self._pending: list[Callable[[], None]] = []   # replication work held while paused, in order

    def now(self) -> datetime:
        """The emulator's clock: object timestamps, retention and rule locks run on it."""
        return datetime.now(UTC) + self._offset

    def advance_clock(self, seconds: float) -> None:
        if seconds < 0:
            raise ApiError(400, "InvalidParameter", "the clock only moves forward")
        with self.lock:
            self._offset += timedelta(seconds=seconds)

    def count(self, op: str) -> None:
        with self._stats_lock:
            self.requests[op] = self.requests.get(op, 0) + 1

    def count_error(self, code: str) -> None:
        with self._stats_lock:
            self.errors[code] = self.errors.get(code, 0) + 1

    def stats(self) -> dict[str, Any]:
        with self._stats_lock:
            return {"requests": dict(self.requests), "errors": dict(self.errors),
                    "total": sum(self.requests.values())}

    def reset(self) -> None:
        with self.lock:
            self.buckets.clear()
            self._pending.clear()
            self.replication_paused = False
            self._offset = timedelta(0)
        with self._stats_lock:
            self.requests.clear()
            self.errors.clear()
        self.vault.reset()
        self.faults.reset()

    # -- signatures

    def verify_signature(self, method: str, target: str, headers: Any, body: bytes,
                         body_required: bool) -> None:
        auth = headers.get("Authorization")
        if not auth or not auth.startswith("Signature "):
            raise ApiError(401, "NotAuthenticated", "The required information to complete authentication "
                           "was not provided.")
        params = dict(_SIG_PARAM.findall(auth[len("Signature "):]))
        if params.get("version", "1") != "1" or params.get("algorithm") != "rsa-sha256":
            raise ApiError(401, "NotAuthenticated", "unsupported signature version or algorithm")
        key_id = params.get("keyId", "").split("/")
        if len(key_id) != 3 or key_id[2] != self.fingerprint:
            raise ApiError(401, "NotAuthenticated", "unknown key id")
        signed = [h.lower() for h in params.get("headers", "date").split()]
        required = ["date", "(request-target)", "host"]
        if body_required:
            required += ["content-length", "content-type", "x-content-sha256"]
        missing = [h for h in required if h not in signed and not (h == "date" and "x-date" in signed)]
        if missing:
            raise ApiError(401, "NotAuthenticated", f"headers not signed: {' '.join(missing)}")
        lines = []
        for name in signed:
            if name == "(request-target)":
                lines.append(f"(request-target): {method.lower()} {target}")
                continue
            value = headers.get(name)
            if value is None:
                raise ApiError(401, "NotAuthenticated", f"signed header {name} is missing")
            lines.append(f"{name}: {value}")
        try:
            signature = base64.b64decode(params.get("signature", ""), validate=True)
            self.public_key.verify(signature, "\n".join(lines).encode("utf-8"), padding.PKCS1v15(),
                                   hashes.SHA256())
        except (InvalidSignature, binascii.Error, ValueError):
            raise ApiError(401, "NotAuthenticated", "The signature does not match the request") from None
        self._check_date(headers.get("x-date") or headers.get("date"))
        if "x-content-sha256" in signed:
            if _b64(hashlib.sha256(body).digest()) != headers.get("x-content-sha256"):
                raise ApiError(401, "NotAuthenticated", "x-content-sha256 does not match the body")
        if "content-length" in signed and headers.get("content-length") != str(len(body)):
            raise ApiError(401, "NotAuthenticated", "content-length does not match the body")

    @staticmethod
    def _check_date(value: str | None) -> None:
        try:
            when = parsedate_to_datetime(value) if value else None
        except (TypeError, ValueError):
            when = None
        if when is None or when.tzinfo is None:
            raise ApiError(401, "NotAuthenticated", "missing or malformed date header")
        # Real time, not the emulator clock: tests move that one forward while the SDK signs with now.
        if abs((_now() - when).total_seconds()) > CLOCK_SKEW_SECONDS:
            raise ApiError(401, "NotAuthenticated", "date header is too far from the server's clock")

    # -- buckets

    def bucket(self, namespace: str, name: str) -> Bucket:
        if namespace != self.namespace:
            raise ApiError(404, "NamespaceNotFound", f"Namespace '{namespace}' does not exist")
        b = self.buckets.get(name)
        if b is None:
            raise ApiError(404, "BucketNotFound",
                           f"Either the bucket named '{name}' does not exist in the namespace "
                           f"'{namespace}' or you are not authorized to access it")
        return b

    def bucket_json(self, b: Bucket, fields: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {
            "namespace": self.namespace, "name": b.name, "compartmentId": b.compartment_id,
            "metadata": b.metadata, "createdBy": "ocid1.user.oc1..sandbox", "timeCreated": _iso(b.created),
            "etag": b.etag, "publicAccessType": "NoPublicAccess", "storageTier": b.storage_tier,
            "objectEventsEnabled": False, "freeformTags": {}, "definedTags": {}, "isReadOnly": b.read_only,
            "replicationEnabled": b.replication is not None,
            "id": f"ocid1.bucket.oc1..{b.etag.replace('-', '')}",
            "versioning": b.versioning, "autoTiering": "Disabled",
        }
        if "approximateCount" in fields or "approximateSize" in fields:
            live = [v for vs in b.objects.values() for v in vs if not v.is_delete_marker]
            out["approximateCount"] = len(live)
            out["approximateSize"] = sum(len(v.data) for v in live)
        return out

    def create_bucket(self, namespace: str, details: dict[str, Any]) -> Bucket:
        if namespace != self.namespace:
            raise ApiError(404, "NamespaceNotFound", f"Namespace '{namespace}' does not exist")
        name = details.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9._\-]{1,256}", name):
            raise ApiError(400, "InvalidBucketName", f"invalid bucket name {name!r}")
        if not isinstance(details.get("compartmentId"), str):
            raise ApiError(400, "InvalidParameter", "compartmentId is required")
        versioning = details.get("versioning") or "Disabled"
        if versioning not in ("Enabled", "Disabled"):
            raise ApiError(400, "InvalidParameter",
                           f"versioning must be Enabled or Disabled, not {versioning}")
        tier = details.get("storageTier") or "Standard"
        if tier not in ("Standard", "Archive"):
            raise ApiError(400, "InvalidParameter", f"invalid storageTier {tier}")
        with self.lock:
            if name in self.buckets:
                raise ApiError(409, "BucketAlreadyExists", f"Either the bucket '{name}' in namespace "
                               f"'{namespace}' already exists or you are not authorized to create it")
            b = Bucket(name=name, compartment_id=details["compartmentId"], created=self.now(),
                       etag=str(uuid.uuid4()), versioning=versioning, storage_tier=tier,
                       metadata=dict(details.get("metadata") or {}))
            self.buckets[name] = b
            return b

    def check_writable(self, b: Bucket) -> None:
        """A replication destination takes writes from replication only (the message is OCI's)."""
        if b.read_only:
            raise ApiError(403, "BucketIsReadonly",
                           f"Bucket '{b.name}' in namespace '{self.namespace}' is in read-only state")

    def update_bucket(self, b: Bucket, details: dict[str, Any], if_match: str | None) -> None:
        with self.lock:
            if if_match is not None and if_match != b.etag:
                raise ApiError(412, "IfMatchFailed", "The If-Match header does not match the bucket's ETag")
            versioning = details.get("versioning")
            if versioning is not None:
                if versioning not in ("Enabled", "Suspended"):
                    raise ApiError(400, "InvalidParameter",
                                   f"versioning can be changed to Enabled or Suspended, not {versioning}")
                if versioning != b.versioning:
                    # Documented: no versioning on a replication destination, none while retention rules
                    # exist, and Disabled means "never enabled".
                    self.check_writable(b)
                    if versioning == "Suspended" and b.versioning == "Disabled":
                        raise ApiError(400, "InvalidParameter", "versioning was never enabled on this bucket")
                    if versioning == "Enabled" and b.retention_rules:
                        raise ApiError(409, "Conflict",
                                       f"Versioning cannot be enabled on bucket '{b.name}' while it has "
                                       "retention rules")
                    b.versioning = versioning
            if isinstance(details.get("metadata"), dict):
                b.metadata = dict(details["metadata"])
            b.etag = str(uuid.uuid4())

    def delete_bucket(self, b: Bucket, if_match: str | None) -> None:
        with self.lock:
            if if_match is not None and if_match != b.etag:
                raise ApiError(412, "IfMatchFailed", "The If-Match header does not match the bucket's ETag")
            self.check_writable(b)
            if b.replication is not None:
                raise ApiError(409, "ReplicationPolicyConflict",
                               f"Bucket '{b.name}' has a replication policy: delete the policy first")
            if any(b.objects.values()) or b.uploads:
                raise ApiError(409, "BucketNotEmpty", f"Bucket named '{b.name}' is not empty")
            del self.buckets[b.name]

    # -- retention rules

    def _rule_fields(self, details: dict[str, Any], now: datetime) -> dict[str, Any]:
        """The fields present in a create or update body, validated; absent fields are left out."""
        out: dict[str, Any] = {}
        if details.get("displayName") is not None:
            name = details["displayName"]
            if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9._\-]{1,256}", name):
                raise ApiError(400, "InvalidParameter", f"invalid displayName {name!r}")
            out["display_name"] = name
        if details.get("duration") is not None:
            d = details["duration"]
            amount = d.get("timeAmount") if isinstance(d, dict) else None
            unit = d.get("timeUnit") if isinstance(d, dict) else None
            if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
                raise ApiError(400, "InvalidParameter", "duration.timeAmount must be a positive integer")
            if unit not in _TIME_UNITS:
                raise ApiError(400, "InvalidParameter", f"duration.timeUnit must be DAYS or YEARS, not {unit!r}")
            out["amount"], out["unit"] = amount, unit
        if details.get("timeRuleLocked") is not None:
            try:
                lock = datetime.fromisoformat(str(details["timeRuleLocked"]).replace("Z", "+00:00"))
            except ValueError:
                raise ApiError(400, "InvalidParameter", "timeRuleLocked is not an RFC 3339 time") from None
            if lock.tzinfo is None:
                lock = lock.replace(tzinfo=UTC)
            if lock < now + MIN_LOCK_DELAY:
                raise ApiError(400, "InvalidParameter",
                               "timeRuleLocked must be at least 14 days after the rule is set")
            out["time_rule_locked"] = lock
        return out

    def create_retention_rule(self, b: Bucket, details: dict[str, Any]) -> RetentionRule:
        now = self.now()
        fields = self._rule_fields(details, now)
        if "time_rule_locked" in fields and "amount" not in fields:
            raise ApiError(400, "InvalidParameter", "a rule without a duration cannot be locked")
        with self.lock:
            if b.versioning == "Enabled":
                raise ApiError(409, "Conflict",
                               f"Retention rules cannot be added to bucket '{b.name}': versioning is enabled")
            if len(b.retention_rules) >= MAX_RETENTION_RULES:
                raise ApiError(400, "LimitExceeded", f"a bucket has at most {MAX_RETENTION_RULES} retention rules")
            rule_id = str(uuid.uuid4())
            rule = RetentionRule(
                rule_id=rule_id,
                display_name=fields.get("display_name") or f"retention-rule-{now.strftime('%Y%m%d-%H%M%S')}",
                amount=fields.get("amount"), unit=fields.get("unit"),
                time_rule_locked=fields.get("time_rule_locked"), created=now, modified=now,
                etag=str(uuid.uuid4()))
            b.retention_rules[rule_id] = rule
            return rule

    def retention_rule(self, b: Bucket, rule_id: str) -> RetentionRule:
        rule = b.retention_rules.get(rule_id)
        if rule is None:
            raise ApiError(404, "NotFound", f"Retention rule '{rule_id}' was not found in bucket '{b.name}'")
        return rule

    def update_retention_rule(self, b: Bucket, rule_id: str, details: dict[str, Any],
                              if_match: str | None) -> RetentionRule:
        now = self.now()
        fields = self._rule_fields(details, now)
        with self.lock:
            rule = self.retention_rule(b, rule_id)
            if if_match is not None and if_match != rule.etag:
                raise ApiError(412, "IfMatchFailed", "The If-Match header does not match the rule's ETag")
            if rule.locked(now):
                # Documented: once locked, only increases in the duration are allowed.
                old, new = rule.seconds, (fields["amount"] * _TIME_UNITS[fields["unit"]]
                                          if "amount" in fields else rule.seconds)
                if (set(fields) - {"amount", "unit", "display_name"}
                        or fields.get("display_name", rule.display_name) != rule.display_name
                        or old is None or new is None or new < old):
                    raise ApiError(409, "Conflict",
                                   f"Retention rule '{rule.display_name}' is locked: only its duration can grow")
            amount = fields.get("amount", rule.amount)
            if fields.get("time_rule_locked") is not None and amount is None:
                raise ApiError(400, "InvalidParameter", "a rule without a duration cannot be locked")
            rule.display_name = fields.get("display_name", rule.display_name)
            rule.amount, rule.unit = amount, fields.get("unit", rule.unit)
            rule.time_rule_locked = fields.get("time_rule_locked", rule.time_rule_locked)
            rule.modified, rule.etag = now, str(uuid.uuid4())
            return rule

    def delete_retention_rule(self, b: Bucket, rule_id: str, if_match: str | None) -> None:
        with self.lock:
            rule = self.retention_rule(b, rule_id)
            if if_match is not None and if_match != rule.etag:
                raise ApiError(412, "IfMatchFailed", "The If-Match header does not match the rule's ETag")
            if rule.locked(self.now()):
                raise ApiError(409, "Conflict", f"Retention rule '{rule.display_name}' is locked: it can only "
                               "be removed by deleting the bucket")
            del b.retention_rules[rule_id]

    def check_retention(self, b: Bucket, name: str, v: ObjectVersion | None, what: str) -> None:
        """Refuse to delete or overwrite ``v`` while any rule retains it (duration from its last modified)."""
        if v is None or v.is_delete_marker or not b.retention_rules:
            return
        now = self.now()
        for rule in sorted(b.retention_rules.values(), key=lambda r: r.created):
            if rule.retains(v.created, now):
                seconds = rule.seconds
                until = ("indefinitely" if seconds is None
                         else f"until {_iso(v.created + timedelta(seconds=seconds))}")
                raise ApiError(409, "Conflict",
                               f"Cannot {what} object '{name}' (version '{v.version_id}') in bucket '{b.name}': "
                               f"retention rule '{rule.display_name}' retains it {until}")

    # -- replication

    def create_replication_policy(self, b: Bucket, details: dict[str, Any]) -> ReplicationPolicy:
        given: dict[str, str] = {}
        for key in ("name", "destinationRegionName", "destinationBucketName"):
            value = details.get(key)
            if not isinstance(value, str) or not value:
                raise ApiError(400, "InvalidParameter", f"{key} is required")
            given[key] = value
        name, region, dest_name = given["name"], given["destinationRegionName"], given["destinationBucketName"]
        with self.lock:
            dest = self.buckets.get(dest_name)
            if dest is None:
                raise ApiError(400, "RelatedResourceNotAuthorizedOrNotFound",
                               f"The destination bucket '{dest_name}' was not found: create it first")
            # Documented constraints: one policy per source, one source per destination, no chains, and
            # no versioning on a destination.
            if dest is b:
                raise ApiError(400, "InvalidParameter", "a bucket cannot replicate to itself")
            if b.replication is not None:
                raise ApiError(409, "ReplicationPolicyConflict", f"Bucket '{b.name}' already has a policy")
            if b.read_only:
                raise ApiError(409, "ReplicationPolicyConflict",
                               f"Bucket '{b.name}' is a replication destination: chained replication is not "
                               "supported")
            # A destination left read-only by a deleted policy may take a new one (documented).
            if dest.replication_source is not None or dest.replication is not None:
                raise ApiError(409, "ReplicationPolicyConflict",
                               f"Bucket '{dest_name}' is already part of a replication")
            if dest.versioning == "Enabled":
                raise ApiError(409, "ReplicationPolicyConflict",
                               f"Bucket '{dest_name}' has versioning enabled: a destination cannot be versioned")
            now = self.now()
            policy = ReplicationPolicy(policy_id=str(uuid.uuid4()), name=name, destination_region=region,
                                       destination_bucket=dest_name, created=now, last_sync=now)
            b.replication = policy
            dest.read_only = True
            dest.replication_source = (name, b.name)
            return policy

    def replication_policy(self, b: Bucket, policy_id: str) -> ReplicationPolicy:
        if b.replication is None or b.replication.policy_id != policy_id:
            raise ApiError(404, "NotFound", f"Replication policy '{policy_id}' was not found on '{b.name}'")
        return b.replication

    def delete_replication_policy(self, b: Bucket, policy_id: str) -> None:
        """Replication stops; the destination stays read-only until MakeBucketWritable is called on it
        (documented: a destination cannot be deleted until it is made writable again)."""
        with self.lock:
            policy = self.replication_policy(b, policy_id)
            b.replication = None
            dest = self.buckets.get(policy.destination_bucket)
            if dest is not None and dest.replication_source == (policy.name, b.name):
                dest.replication_source = None

    def make_bucket_writable(self, dest: Bucket) -> None:
        with self.lock:
            if not dest.read_only:
                raise ApiError(409, "BucketNotReadOnly", f"Bucket '{dest.name}' is not read-only")
            dest.read_only = False
            source = self.buckets.get(dest.replication_source[1]) if dest.replication_source else None
            dest.replication_source = None
            # Documented: the source's policy changes to a client error state.
            if source is not None and source.replication is not None \
                    and source.replication.destination_bucket == dest.name:
                source.replication.status = "CLIENT_ERROR"
                source.replication.status_message = (f"The destination bucket '{dest.name}' was made writable: "
                                                     "it no longer accepts replication")

    def replication_sources(self, dest: Bucket) -> list[dict[str, str]]:
        with self.lock:
            if dest.replication_source is None:
                return []
            return [{"policyName": dest.replication_source[0], "sourceRegionName": self.region,
                     "sourceBucketName": dest.replication_source[1]}]

    def _replicate(self, source: Bucket, work: Callable[[ReplicationPolicy, Bucket], None]) -> None:
        """Run ``work`` against the destination now, or queue it while replication is paused."""
        policy = source.replication
        if policy is None:
            return

        def run() -> None:
            if source.replication is not policy or policy.status != "ACTIVE":
                return   # the policy went away or broke meanwhile: replication stopped
            dest = self.buckets.get(policy.destination_bucket)
            if dest is None or not dest.read_only:
                policy.status = "CLIENT_ERROR"
                policy.status_message = f"The destination bucket '{policy.destination_bucket}' is not available"
                return
            try:
                work(policy, dest)
            except ApiError as err:   # e.g. a retention rule on the destination: the policy reports it
                policy.status, policy.status_message = "CLIENT_ERROR", err.message
                return
            policy.last_sync = self.now()

        if self.replication_paused:
            self._pending.append(run)
        else:
            run()

    def replicate_put(self, source: Bucket, name: str, v: ObjectVersion) -> None:
        """A new object in the source is copied to the destination: same name, bytes, metadata, ETag, MD5
        and checksums; the destination gives it its own version id and timestamps (as OCI documents)."""
        def work(policy: ReplicationPolicy, dest: Bucket) -> None:
            self.check_retention(dest, name, dest.latest(name), "overwrite")
            copy = replace(v, version_id=str(uuid.uuid4()), created=self.now(), metadata=dict(v.metadata),
                           suspended=False)
            self.store_version(dest, name, copy)
        self._replicate(source, work)

    def replicate_delete(self, source: Bucket, name: str) -> None:
        """The source's live object went away (a delete, a delete marker, or a version-pinned delete of the
        latest version): the destination's object of that name is deleted. Previous versions never
        replicate, so deleting one changes nothing in the destination."""
        def work(policy: ReplicationPolicy, dest: Bucket) -> None:
            live = dest.latest(name)
            if live is None:
                return
            self.check_retention(dest, name, live, "delete")
            self._delete_live(dest, name)
        self._replicate(source, work)

    def set_replication_paused(self, paused: bool) -> None:
        """Pause: replication work queues up (a lagging destination). Resume: the queue runs in order."""
        with self.lock:
            self.replication_paused = paused
            if not paused:
                pending, self._pending = self._pending, []
                for run in pending:
                    run()

    # -- objects

    def find_version(self, b: Bucket, name: str, version_id: str | None) -> ObjectVersion:
        if version_id is None:
            v = b.latest(name)
        else:
            v = next((x for x in b.objects.get(name, ()) if x.version_id == version_id), None)
            if v is not None and v.is_delete_marker:
                v = None
        if v is None:
            suffix = f" with version '{version_id}'" if version_id else ""
            raise ApiError(404, "ObjectNotFound",
                           f"The object '{name}'{suffix} was not found in the bucket '{b.name}'")
        return v

    @staticmethod
    def check_write_conditions(b: Bucket, name: str, if_match: str | None, if_none_match: str | None) -> None:
        live = b.latest(name)
        if if_none_match is not None:
            if if_none_match != "*":
                raise ApiError(400, "InvalidParameter", "The only valid value of if-none-match is '*'")
            if live is not None:
                raise ApiError(412, "IfNoneMatchFailed",
                               f"The object '{name}' already exists and if-none-match is '*'")
        if if_match is not None and (live is None or live.etag != if_match):
            raise ApiError(412, "IfMatchFailed",
                           f"The If-Match header ({if_match}) does not match the object's ETag")

    @staticmethod
    def store_version(b: Bucket, name: str, v: ObjectVersion) -> None:
        versions = b.objects.setdefault(name, [])
        if b.versioning == "Enabled":
            versions.append(v)
        elif b.versioning == "Suspended":
            # Documented: uploads behave as with versioning disabled, and versions made while it was enabled
            # are retained. So a write replaces the entry written during the suspension, if any, and
            # otherwise goes on top of the retained versions.
            v.suspended = True
            if versions and versions[-1].suspended:
                versions[-1] = v
            else:
                versions.append(v)
        else:
            versions[:] = [v]

    def write_object(self, b: Bucket, name: str, v: ObjectVersion, if_match: str | None,
                     if_none_match: str | None) -> None:
        """Store ``v`` as the live object (put and commit): conditions, retention, then replication."""
        with self.lock:
            self.check_writable(b)
            self.check_write_conditions(b, name, if_match, if_none_match)
            self.check_retention(b, name, b.latest(name), "overwrite")
            self.store_version(b, name, v)
            self.replicate_put(b, name, v)

    def _delete_live(self, b: Bucket, name: str) -> ObjectVersion | None:
        """Delete the live object as the bucket's versioning state says; returns the marker made, if any."""
        versions = b.objects.get(name, [])
        marker: ObjectVersion | None = None
        if b.versioning == "Disabled":
            b.objects.pop(name, None)
            return None
        if b.versioning == "Suspended":
            # As with versioning disabled, the deletion is permanent for what was written while suspended;
            # retained older versions stay, hidden behind a delete marker so that the object is gone.
            if versions and versions[-1].suspended:
                versions.pop()
            if versions and not versions[-1].is_delete_marker:
                marker = ObjectVersion(version_id=str(uuid.uuid4()), etag=str(uuid.uuid4()), created=self.now(),
                                       is_delete_marker=True, suspended=True)
                versions.append(marker)
            if not versions:
                b.objects.pop(name, None)
            return marker
        marker = ObjectVersion(version_id=str(uuid.uuid4()), etag=str(uuid.uuid4()), created=self.now(),
                               is_delete_marker=True)
        versions.append(marker)
        return marker

    def delete_object(self, b: Bucket, name: str, version_id: str | None,
                      if_match: str | None) -> ObjectVersion | None:
        """Returns the delete marker it created, if any."""
        with self.lock:
            self.check_writable(b)
            versions = b.objects.get(name, [])
            if version_id is not None:
                idx = next((i for i, x in enumerate(versions) if x.version_id == version_id), None)
                if idx is None:
                    raise ApiError(404, "ObjectNotFound", f"The object '{name}' with version "
                                   f"'{version_id}' was not found in the bucket '{b.name}'")
                target = versions[idx]
                if if_match is not None and target.etag != if_match:
                    raise ApiError(412, "IfMatchFailed",
                                   f"The If-Match header ({if_match}) does not match the version's ETag")
                self.check_retention(b, name, target, "delete")
                was_live = idx == len(versions) - 1 and not target.is_delete_marker
                del versions[idx]
                if not versions:
                    b.objects.pop(name, None)
                if was_live:
                    self.replicate_delete(b, name)
                return None
            live = self.find_version(b, name, None)
            if if_match is not None and live.etag != if_match:
                raise ApiError(412, "IfMatchFailed",
                               f"The If-Match header ({if_match}) does not match the object's ETag")
            self.check_retention(b, name, live, "delete")
            marker = self._delete_live(b, name)
            self.replicate_delete(b, name)
            return marker

    def create_upload(self, b: Bucket, details: dict[str, Any], algorithm: str | None,
                      if_match: str | None, if_none_match: str | None) -> Upload:
        name = details.get("object")
        if not isinstance(name, str) or not name:
            raise ApiError(400, "InvalidParameter", "object is required")
        metadata: dict[str, str] = {}
        for k, v in (details.get("metadata") or {}).items():
            if not str(k).lower().startswith("opc-meta-"):
                raise ApiError(400, "InvalidParameter", f"metadata key {k!r} must start with opc-meta-")
            metadata[str(k)[len("opc-meta-"):].lower()] = str(v)
        tier = details.get("storageTier") or b.storage_tier
        if tier not in _TIERS:
            raise ApiError(400, "InvalidParameter", f"invalid storageTier {tier}")
        with self.lock:
            self.check_writable(b)
            self.check_write_conditions(b, name, if_match, if_none_match)
            up = Upload(upload_id=str(uuid.uuid4()), name=name, created=self.now(),
                        checksum_algorithm=algorithm,
                        content_type=details.get("contentType") or "application/octet-stream",
                        content_encoding=details.get("contentEncoding"),
                        content_language=details.get("contentLanguage"),
                        content_disposition=details.get("contentDisposition"),
                        cache_control=details.get("cacheControl"), metadata=metadata, storage_tier=tier,
                        if_match=if_match, if_none_match=if_none_match)
            b.uploads[up.upload_id] = up
            return up

    @staticmethod
    def upload(b: Bucket, name: str, upload_id: str | None) -> Upload:
        up = b.uploads.get(upload_id or "")
        if up is None or up.name != name:
            raise ApiError(404, "NoSuchUpload", f"The upload '{upload_id}' for object '{name}' was not found "
                           f"in the bucket '{b.name}'")
        return up

    def commit(self, b: Bucket, up: Upload, details: dict[str, Any], if_match: str | None,
               if_none_match: str | None) -> ObjectVersion:
        to_commit = details.get("partsToCommit")
        if not isinstance(to_commit, list) or not to_commit:
            raise ApiError(400, "InvalidParameter", "partsToCommit is required")
        exclude = {int(p.get("partNum", -1)) for p in details.get("partsToExclude") or []}
        with self.lock:
            self.check_writable(b)
            if b.uploads.get(up.upload_id) is not up:
                raise ApiError(404, "NoSuchUpload", f"The upload '{up.upload_id}' was not found")
            chosen: dict[int, Part] = {}
            for item in to_commit:
                num, etag = item.get("partNum"), item.get("etag")
                if not isinstance(num, int) or num in exclude:
                    raise ApiError(400, "InvalidParameter", f"invalid part number {num!r}")
                part = up.parts.get(num)
                if part is None or part.etag != etag:
                    raise ApiError(400, "InvalidUploadPart",
                                   f"Part {num} with etag {etag!r} was not uploaded for this upload")
                chosen[num] = part
            ordered = [chosen[n] for n in sorted(chosen)]
            if self.min_part_size and any(len(p.data) < self.min_part_size for p in ordered[:-1]):
                raise ApiError(400, "InvalidParameter",
                               f"every part but the last must be at least {self.min_part_size} bytes")
            self.check_write_conditions(b, up.name, if_match or up.if_match,
                                        if_none_match or up.if_none_match)
            self.check_retention(b, up.name, b.latest(up.name), "overwrite")
            del b.uploads[up.upload_id]
        data = b"".join(p.data for p in ordered)
        count = len(ordered)
        v = ObjectVersion(
            version_id=str(uuid.uuid4()), etag=str(uuid.uuid4()), created=self.now(), data=data,
            multipart_md5=f"{_b64(hashlib.md5(b''.join(p.md5 for p in ordered)).digest())}-{count}",
            checksum_algorithm=up.checksum_algorithm, content_type=up.content_type,
            content_encoding=up.content_encoding, content_language=up.content_language,
            content_disposition=up.content_disposition, cache_control=up.cache_control,
            metadata=up.metadata, storage_tier=up.storage_tier)
        if up.checksum_algorithm == "CRC32C":
            v.crc32c_b64 = _crc32c_b64(data)
        elif up.checksum_algorithm in ("SHA256", "SHA384"):
            alg = hashlib.sha256 if up.checksum_algorithm == "SHA256" else hashlib.sha384
            v.multipart_sha = f"{_b64(alg(b''.join(p.sha or b'' for p in ordered)).digest())}-{count}"
        # A concurrent put may have landed while the data was joined: the checks run again as it is stored.
        self.write_object(b, up.name, v, if_match or up.if_match, if_none_match or up.if_none_match)
        return v


# ------------------------------------------------------------------------------------------------ HTTP

class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "OciEmulator/1"
    sys_version = ""
    timeout = 120  # idle keep-alive connections end instead of holding a thread forever
    service: _Service  # set on a per-emulator subclass
    _reply: tuple[int, dict[str, str], bytes, int] | None = None  # the answer held by _send

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests and benchmarks run thousands of requests

    def version_string(self) -> str:
        return self.server_version

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # -- plumbing

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

    def _send(self, status: int, headers: dict[str, str], body: bytes = b"", *,
              length: int | None = None) -> None:
        """Hold the answer: ``_dispatch`` writes it once the fault hook has had its say."""
        headers.setdefault("opc-request-id", uuid.uuid4().hex)
        client_id = self.headers.get("opc-client-request-id")
        if client_id:
            headers["opc-client-request-id"] = client_id
        self._reply = (status, headers, body, len(body) if length is None else length)

    def _write(self, status: int, headers: dict[str, str], body: bytes, length: int) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, value: Any, headers: dict[str, str] | None = None) -> None:
        out = dict(headers or {})
        out["Content-Type"] = "application/json"
        self._send(status, out, json.dumps(value).encode("utf-8"))

    def _error(self, err: ApiError) -> None:
        self.service.count_error(err.code)
        body = json.dumps({"code": err.code, "message": err.message}).encode("utf-8")
        self._send(err.status, {"Content-Type": "application/json"}, body,
                   length=0 if self.command == "HEAD" else None)

    def _abort(self) -> None:
        """Reset the connection (an injected fault): no answer, and nothing more on this socket."""
        abort_connection(self.connection)
        self.close_connection = True

    def _dispatch(self, method: str) -> None:
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return
        self._reply = None
        raw_path, _, raw_query = self.path.partition("?")
        query = {k: v[-1] for k, v in parse_qs(raw_query, keep_blank_values=True).items()}
        action: Action | None = None
        op = ""
        try:
            if raw_path.startswith("/_emulator/"):
                self._internal(method, raw_path, query, body)
            else:
                segs = raw_path.split("/")
                op, handler = self._route(method, raw_path, segs)
                self.service.count(op)
                # The fault hook comes first, as the network and the service's front end would.
                action = self.service.faults.before(op, data_in=op in _DATA_IN_OPS, data_out=op in _DATA_OUT_OPS)
                if action.drop_before:
                    self._abort()
                    return
                if action.status is not None:
                    code, message = _ERROR_KINDS[action.status]
                    raise ApiError(action.status, code, message)
                body = action.request_body(body)   # a flipped PUT body meets the checksum validation below
                # Object and part bodies are not in the SDK's signature (enforce_content_headers=False).
                body_signed = method in ("POST", "PUT") and op not in _DATA_IN_OPS
                self.service.verify_signature(method, self.path, self.headers, body, body_signed)
                handler(segs, query, body)
        except ApiError as err:
            self._error(err)
        except KmsError as err:
            self._error(ApiError(err.status, err.code, err.message))
        except Exception as exc:  # noqa: BLE001 - a server answers 500 instead of dying
            self._error(ApiError(500, "InternalServerError", f"{type(exc).__name__}: {exc}"))
        if action is not None and action.drop_after:
            self._abort()
            return
        if self._reply is None:
            self.close_connection = True
            return
        status, headers, out, length = self._reply
        if action is not None and op in _DATA_OUT_OPS and status in (200, 206):
            out = action.response_body(out)   # flipped or truncated; Content-Length stays the original
        try:
            self._write(status, headers, out, length)
        except OSError:
            self.close_connection = True
            return
        if action is not None and action.close_after:
            self.close_connection = True

    def _internal(self, method: str, path: str, q: dict[str, str], body: bytes) -> None:
        if method == "GET" and path == "/_emulator/stats":
            self._json(200, self.service.stats())
        elif method == "POST" and path == "/_emulator/reset":
            self.service.reset()
            self._send(204, {})
        elif method == "POST" and path == "/_emulator/clock":
            try:
                seconds = float(q.get("advance", ""))
            except ValueError:
                raise ApiError(400, "InvalidParameter", "advance must be a number of seconds") from None
            self.service.advance_clock(seconds)
            self._json(200, {"now": _iso(self.service.now())})
        elif path == "/_emulator/replication" and method in ("GET", "POST"):
            if method == "POST":
                paused = q.get("paused", "").lower()
                if paused not in ("true", "false"):
                    raise ApiError(400, "InvalidParameter", "paused must be true or false")
                self.service.set_replication_paused(paused == "true")
            with self.service.lock:
                self._json(200, {"paused": self.service.replication_paused,
                                 "pending": len(self.service._pending)})
        elif path == FAULTS_PATH:
            status, payload = self.service.faults.control(method, body)
            self._json(status, payload)
        else:
            raise ApiError(404, "NotFound", f"no emulator endpoint {method} {path}")

    def _route(self, method: str, raw_path: str, s: list[str]) -> tuple[str, Any]:
        if KmsVault.handles(raw_path):
            op, fn = self.service.vault.route(method, raw_path)

            def kms(segs: list[str], q: dict[str, str], body: bytes) -> None:
                status, value, headers = fn(body, q)
                self._json(status, value, headers)
            return op, kms
        n = len(s)
        if n < 2 or s[0] != "" or s[1] != "n":
            raise ApiError(404, "NotFound", "unknown path")
        if n == 2 or (n == 3 and s[2] == ""):
            if method == "GET":
                return "GetNamespace", self.get_namespace
        elif n >= 4 and s[3] == "b":
            if n == 4 or (n == 5 and s[4] == ""):
                if method == "POST":
                    return "CreateBucket", self.create_bucket
                if method == "GET":
                    return "ListBuckets", self.list_buckets
            elif n == 5:
                table = {"GET": ("GetBucket", self.get_bucket), "HEAD": ("HeadBucket", self.head_bucket),
                         "POST": ("UpdateBucket", self.update_bucket),
                         "DELETE": ("DeleteBucket", self.delete_bucket)}
                if method in table:
                    return table[method]
            elif s[5] == "o" and (n == 6 or (n == 7 and s[6] == "")):
                if method == "GET":
                    return "ListObjects", self.list_objects
            elif s[5] == "o":
                table = {"PUT": ("PutObject", self.put_object), "GET": ("GetObject", self.get_object),
                         "HEAD": ("HeadObject", self.head_object),
                         "DELETE": ("DeleteObject", self.delete_object)}
                if method in table:
                    return table[method]
            elif s[5] == "retentionRules" and n == 6:
                table = {"GET": ("ListRetentionRules", self.list_retention_rules),
                         "POST": ("CreateRetentionRule", self.create_retention_rule)}
                if method in table:
                    return table[method]
            elif s[5] == "retentionRules" and n == 7:
                table = {"GET": ("GetRetentionRule", self.get_retention_rule),
                         "PUT": ("UpdateRetentionRule", self.update_retention_rule),
                         "DELETE": ("DeleteRetentionRule", self.delete_retention_rule)}
                if method in table:
                    return table[method]
            elif s[5] == "replicationPolicies" and n == 6:
                table = {"GET": ("ListReplicationPolicies", self.list_replication_policies),
                         "POST": ("CreateReplicationPolicy", self.create_replication_policy)}
                if method in table:
                    return table[method]
            elif s[5] == "replicationPolicies" and n == 7:
                table = {"GET": ("GetReplicationPolicy", self.get_replication_policy),
                         "DELETE": ("DeleteReplicationPolicy", self.delete_replication_policy)}
                if method in table:
                    return table[method]
            elif s[5] == "replicationSources" and n == 6:
                if method == "GET":
                    return "ListReplicationSources", self.list_replication_sources
            elif s[5] == "actions" and n == 7 and s[6] == "makeBucketWritable":
                if method == "POST":
                    return "MakeBucketWritable", self.make_bucket_writable
            elif s[5] == "objectversions" and n == 6:
                if method == "GET":
                    return "ListObjectVersions", self.list_object_versions
            elif s[5] == "u" and (n == 6 or (n == 7 and s[6] == "")):
                if method == "POST":
                    return "CreateMultipartUpload", self.create_upload
                if method == "GET":
                    return "ListMultipartUploads", self.list_uploads
            elif s[5] == "u":
                table = {"PUT": ("UploadPart", self.upload_part),
                         "POST": ("CommitMultipartUpload", self.commit_upload),
                         "DELETE": ("AbortMultipartUpload", self.abort_upload),
                         "GET": ("ListMultipartUploadParts", self.list_parts)}
                if method in table:
                    return table[method]
        raise ApiError(404, "NotFound", f"no operation for {method} {'/'.join(s)}")

    # -- parsing helpers

    def _bucket(self, s: list[str]) -> Bucket:
        return self.service.bucket(unquote(s[2], errors="strict"), unquote(s[4], errors="strict"))

    @staticmethod
    def _name(s: list[str]) -> str:
        # The SDK quotes names with safe='' so '/' arrives as %2F; decode exactly once.
        try:
            name = unquote("/".join(s[6:]), errors="strict")
        except UnicodeDecodeError:
            raise ApiError(400, "InvalidParameter", "object name is not valid UTF-8") from None
        if not name:
            raise ApiError(400, "InvalidParameter", "object name is empty")
        if len(name.encode("utf-8")) > 1024:
            raise ApiError(400, "InvalidParameter", "object name is longer than 1024 bytes")
        return name

    @staticmethod
    def _details(body: bytes) -> dict[str, Any]:
        try:
            value = json.loads(body or b"{}")
        except ValueError:
            raise ApiError(400, "InvalidParameter", "request body is not valid JSON") from None
        if not isinstance(value, dict):
            raise ApiError(400, "InvalidParameter", "request body must be a JSON object")
        return value

    # -- namespace and buckets

    def get_namespace(self, s: list[str], q: dict[str, str], body: bytes) -> None:
        self._json(200, self.service.namespace)

    def create_bucket(self, s: list[str], q: dict[str, str], body: bytes) -> None:
        b = self.service.create_bucket(unquote(s[2]), self._details(body))
        self._json(200, self.service.bucket_json(b), {"etag": b.etag,
                                                       "location": f"/n/{s[2]}/b/{b.name}"})

    def list_buckets(self, s: list[str], q: dict[str, str], body: bytes) -> None:
        if unquote(s[2]) != self.service.namespace:
            raise ApiError(404, "NamespaceNotFound", "unknown namespace")
        compartment = q.get("compartmentId")
        limit = _limit(q)
        with self.service.lock:
            names = sorted(n for n, b in self.service.buckets.items()
                           if compartment is None or b.compartment_id == compartment)
        page = q.get("page")
        if page:
            names = [n for n in names if n >= page]
        headers = {"opc-next-page": names[limit]} if len(names) > limit else {}
        items = []
        for n in names[:limit]:
            b = self.service.buckets[n]
            items.append({"namespace": self.service.namespace, "name": n, "compartmentId": b.compartment_id,
                          "createdBy": "ocid1.user.oc1..sandbox", "timeCreated": _iso(b.created),
                          "etag": b.etag, "freeformTags": {}, "definedTags": {}})
        self._json(200, items, headers)

    def get_bucket(self, s: list[str], q: dict[str, str], body: bytes) -> None:
        b = self._bucket(s)
        if self.headers.get("if-match") not in (None, b.etag):
            raise ApiError(412, "IfMatchFailed", "The If-Match header does not match the bucket's ETag")
        if self.headers.get("if-none-match") == b.etag:
            self._send(304, {"etag": b.etag})
            return
        self._json(200, self.service.bucket_json(b, q.get("fields", "")), {"etag": b.etag})

    def head_bucket(self, s: list[str], q: dict[str, str], body: bytes) -> None:
        b = self._bucket(s)
        if self.headers.get("if-match") not in (None, b.etag):
            raise ApiError(412, "IfMatchFailed", "The If-Match header does not match the bucket's ETag")
        self._send(200, {"etag": b.etag})

    def update_bucket(self, s: list[str], q: dict[str, str], body: bytes) -> None:
        b = self._bucket(s)
        self.service.update_bucket(b, self._details(body), self.headers.get("if-match"))
        self._json(200, self.service.bucket_json(b), {"etag": b.etag})

    def delete_bucket(self, s: list[str], q: dict[str, str], body: bytes) -> None:
        self.service.delete_bucket(self._bucket(s), self.headers.get("if-match"))
        self._send(204, {})

    # -- retention rules

    def list_retention_rules(self, s: list[str], q: dict[str, str], body: bytes) -> None:
        b = self._bucket(s)
        with self.service.lock:
            rules = sorted(b.retention_rules.values(), key=lambda r: r.created, reverse=True)  # newest first
            self._json(200, {"items": [r.to_json() for r in rules]})

    def create_retention_rule(self, s: list[str], q: dict[str, str], body: bytes) -> None:
        rule = self.service.create_retention_rule(self._bucket(s), self._details(body))
        self._json(200, rule.to_json(), {"etag": rule.etag})

    def get_retention_rule(self, s: list[str], q: dict[str, str], body: bytes) -> None:
        b = self._bucket(s)
        with self.service.lock:
            rule = self.service.retention_rule(b, unquote(s[6]))
            self._json(200, rule.to_json(), {"etag": rule.etag})

    def update_retention_rule(self, s: list[str], q: dict[str, str], body: bytes) -> None:
        rule = self.service.update_retention_rule(self._bucket(s), unquote(s[6]), self._details(body),
                                                  self.headers.get("if-match"))
        self._json(200, rule.to_json(), {"etag": rule.etag})

    def delete_retention_rule(self, s: list[str], q: dict[str, str], body: bytes) -> None:
        self.service.delete_retention_rule(self._bucket(s), unquote(s[6]), self.headers.get("if-match"))
        self._send(204, {})

    # -- replication

    def list_replication_policies(self, s: list[str], q: dict[str, str], body: bytes) -> None:
        b = self._bucket(s)
        with self.service.lock:
            self._json(200, [b.replication.to_json()] if b.replication is not None else [])

    def create_replication_policy(self, s: list[str], q: dict[str, str], body: bytes) -> None:
        policy = self.service.create_replication_policy(self._bucket(s), self._details(body))
        self._json(200, policy.to_json())

    def get_replication_policy(self, s: list[str], q: dict[str, str], body: bytes) -> None:
        b = self._bucket(s)
        with self.service.lock:
            self._json(200, self.service.replication_policy(b, unquote(s[6])).to_json())

    def delete_replication_policy(self, s: list[str], q: dict[str, str], body: bytes) -> None:
        self.service.delete_replication_policy(self._bucket(s), unquote(s[6]))
        self._send(204, {})

    def list_replication_sources(self, s: list[str], q: dict[str, str], body: bytes) -> None:
        self._json(200, self.service.replication_sources(self._bucket(s)))

    def make_bucket_writable(self, s: list[str], q: dict[str, str], body: bytes) -> None:
        self.service.make_bucket_writable(self._bucket(s))
        self._send(200, {})

    # -- objects

    def put_object(self, s: list[str], q: dict[str, str], body: bytes) -> None:
        b, name = self._bucket(s), self._name(s)
        self.service.check_writable(b)
        h = self.headers
        algorithm = _algorithm(h)
        digests = _check_body(h, body, algorithm)
        tier = h.get("storage-tier") or b.storage_tier
        if tier not in _TIERS:
            raise ApiError(400, "InvalidParameter", f"invalid storage-tier {tier}")
        metadata = {k.lower()[len("opc-meta-"):]: v for k, v in h.items()
                    if k.lower().startswith("opc-meta-")}
        v = ObjectVersion(
            version_id=str(uuid.uuid4()), etag=str(uuid.uuid4()), created=self.service.now(), data=body,
            md5_b64=_b64(digests.md5), checksum_algorithm=algorithm, crc32c_b64=digests.crc32c_b64,
            sha256_b64=_b64(digests.sha) if algorithm == "SHA256" and digests.sha else None,
            sha384_b64=_b64(digests.sha) if algorithm == "SHA384" and digests.sha else None,
            content_type=h.get("Content-Type") or "application/octet-stream",
            content_encoding=h.get("Content-Encoding"), content_language=h.get("Content-Language"),
            content_disposition=h.get("Content-Disposition"), cache_control=h.get("Cache-Control"),
            metadata=metadata, storage_tier=tier)
        self.service.write_object(b, name, v, h.get("if-match"), h.get("if-none-match"))
        out = {"etag": v.etag, "last-modified": _http_date(v.created), "opc-content-md5": v.md5_b64 or "",
               "version-id": v.version_id}
        out.update(_checksum_headers(v))
        self._send(200, out)

    def _read_version(self, s: list[str], q: dict[str, str]) -> ObjectVersion:
        b, name = self._bucket(s), self._name(s)
        with self.service.lock:
            v = self.service.find_version(b, name, q.get("versionId"))
        if_match = self.headers.get("if-match")
        if if_match is not None and if_match != v.etag:
            raise ApiError(412, "IfMatchFailed", f"The If-Match header ({if_match}) does not match the "
                           "object's ETag")
        return v

    def head_object(self, s: list[str], q: dict[str, str], body: bytes) -> None:
        v = self._read_version(s, q)
        if self.headers.get("if-none-match") in (v.etag, "*"):
            self._send(304, {"etag": v.etag})
            return
        self._send(200, _object_headers(v), length=len(v.data))

    def get_object(self, s: list[str], q: dict[str, str], body: bytes) -> None:
        v = self._read_version(s, q)
        if self.headers.get("if-none-match") in (v.etag, "*"):
            self._send(304, {"etag": v.etag})
            return
        if v.storage_tier == "Archive":
            raise ApiError(409, "NotRestored", "The object is archived; restore it before reading")
        headers = _object_headers(v)
        for key, name in (("httpResponseContentType", "content-type"),
                          ("httpResponseContentEncoding", "content-encoding"),
                          ("httpResponseContentDisposition", "content-disposition"),
                          ("httpResponseCacheControl", "cache-control")):
            if key in q:
                headers[name] = q[key]
        size = len(v.data)
        rng = self.headers.get("range")
        if rng is None:
            self._send(200, headers, v.data)
            return
        m = _RANGE.match(rng.strip())
        if not m or (m.group(1) == "" and m.group(2) == ""):
            raise ApiError(400, "InvalidParameter", f"malformed range {rng!r}")
        if m.group(1) == "":
            first, last = max(0, size - int(m.group(2))), size - 1
        else:
            first = int(m.group(1))
            last = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
        if size == 0 or first >= size or last < first:
            raise ApiError(416, "InvalidRange", f"range {rng} is not satisfiable for {size} bytes")
        headers["content-range"] = f"bytes {first}-{last}/{size}"
        self._send(206, headers, v.data[first:last + 1])

    def delete_object(self, s: list[str], q: dict[str, str], body: bytes) -> None:
        b, name = self._bucket(s), self._name(s)
        marker = self.service.delete_object(b, name, q.get("versionId"), self.headers.get("if-match"))
        out = {"last-modified": _http_date(self.service.now())}
        if marker is not None:
            out["version-id"] = marker.version_id
            out["is-delete-marker"] = "true"
        else:
            out["is-delete-marker"] = "false"
            if q.get("versionId"):
                out["version-id"] = q["versionId"]
        self._send(204, out)

    def list_objects(self, s: list[str], q: dict[str, str], body: bytes) -> None:
        b = self._bucket(s)
        fields = set(q.get("fields", "name").split(","))
        limit, prefix, delimiter = _limit(q), q.get("prefix", ""), q.get("delimiter")
        if delimiter not in (None, "/"):
            raise ApiError(400, "InvalidParameter", "only '/' is supported as a delimiter")
        with self.service.lock:
            live = sorted((n, vs[-1]) for n, vs in b.objects.items()
                          if vs and not vs[-1].is_delete_marker and n.startswith(prefix))
        objects: list[dict[str, Any]] = []
        prefixes: list[str] = []
        next_start: str | None = None
        for n, v in live:
            if "start" in q and n < q["start"]:
                continue
            if "startAfter" in q and n <= q["startAfter"]:
                continue
            if "end" in q and n >= q["end"]:
                break
            if delimiter is not None and delimiter in n[len(prefix):]:
                p = n[:len(prefix) + n[len(prefix):].index(delimiter) + 1]
                if p in prefixes:
                    continue
                if len(objects) + len(prefixes) >= limit:
                    next_start = n
                    break
                prefixes.append(p)
                continue
            if len(objects) + len(prefixes) >= limit:
                next_start = n
                break
            objects.append(self._summary(n, v, fields))
        out: dict[str, Any] = {"objects": objects, "prefixes": prefixes}
        if next_start is not None:
            out["nextStartWith"] = next_start
        self._json(200, out)

    @staticmethod
    def _summary(name: str, v: ObjectVersion, fields: set[str], versions: bool = False) -> dict[str, Any]:
        full: dict[str, Any] = {
            "name": name, "size": len(v.data), "etag": v.etag, "md5": v.list_md5,
            "timeCreated": _iso(v.created), "timeModified": _iso(v.created), "storageTier": v.storage_tier,
            "archivalState": v.archival_state,
        }
        out = {k: val for k, val in full.items() if k == "name" or k in fields}
        if versions:
            out["versionId"] = v.version_id
            out["isDeleteMarker"] = v.is_delete_marker
        return out

    def list_object_versions(self, s: list[str], q: dict[str, str], body: bytes) -> None:
        b = self._bucket(s)
        fields = set(q.get("fields", "name").split(","))
        limit, prefix = _limit(q), q.get("prefix", "")
        with self.service.lock:
            rows = [(n, v) for n in sorted(b.objects) if n.startswith(prefix)
                    for v in reversed(b.objects[n])]  # newest first within a name
        if "start" in q:
            rows = [r for r in rows if r[0] >= q["start"]]
        if "startAfter" in q:
            rows = [r for r in rows if r[0] > q["startAfter"]]
        if "end" in q:
            rows = [r for r in rows if r[0] < q["end"]]
        if q.get("page"):
            token = _decode_token(q["page"])
            idx = next((i for i, (n, v) in enumerate(rows) if [n, v.version_id] == token), None)
            if idx is None:  # that version went away meanwhile: resume at the first later name
                idx = next((i for i, (n, _) in enumerate(rows) if n > token[0]), len(rows))
            rows = rows[idx:]
        headers: dict[str, str] = {}
        if len(rows) > limit:
            headers["opc-next-page"] = _encode_token([rows[limit][0], rows[limit][1].version_id])
        items = [self._summary(n, v, fields, versions=True) for n, v in rows[:limit]]
        self._json(200, {"items": items, "prefixes": []}, headers)

    # -- multipart

    def create_upload(self, s: list[str], q: dict[str, str], body: bytes) -> None:
        b = self._bucket(s)
        up = self.service.create_upload(b, self._details(body), _algorithm(self.headers),
                                        self.headers.get("if-match"), self.headers.get("if-none-match"))
        headers = {"location": f"/n/{s[2]}/b/{s[4]}/u/{up.upload_id}"}
        if up.checksum_algorithm:
            headers["opc-checksum-algorithm"] = up.checksum_algorithm
        self._json(200, self._upload_json(up, b), headers)

    def _upload_json(self, up: Upload, b: Bucket) -> dict[str, Any]:
        return {"namespace": self.service.namespace, "bucket": b.name, "object": up.name,
                "uploadId": up.upload_id, "timeCreated": _iso(up.created), "storageTier": up.storage_tier}

    def upload_part(self, s: list[str], q: dict[str, str], body: bytes) -> None:
        b, name = self._bucket(s), self._name(s)
        num_text = q.get("uploadPartNum", "")
        if not num_text.isdigit() or not 1 <= int(num_text) <= 10000:
            raise ApiError(400, "InvalidParameter", "uploadPartNum must be 1..10000")
        self.service.check_writable(b)
        with self.service.lock:
            up = self.service.upload(b, name, q.get("uploadId"))
        algorithm = _algorithm(self.headers) or up.checksum_algorithm
        if up.checksum_algorithm and algorithm != up.checksum_algorithm:
            raise ApiError(400, "InvalidParameter", "opc-checksum-algorithm differs from the upload's")
        digests = _check_body(self.headers, body, algorithm)
        part = Part(data=body, etag=str(uuid.uuid4()), md5=digests.md5, sha=digests.sha,
                    crc32c_b64=digests.crc32c_b64 or _crc32c_b64(body))
        with self.service.lock:
            self.service.check_write_conditions(b, name, self.headers.get("if-match"),
                                                self.headers.get("if-none-match"))
            if b.uploads.get(up.upload_id) is not up:
                raise ApiError(404, "NoSuchUpload", f"The upload '{up.upload_id}' was not found")
            up.parts[int(num_text)] = part
        out = {"etag": part.etag, "opc-content-md5": _b64(part.md5), "last-modified": _http_date(self.service.now())}
        if algorithm == "CRC32C":
            out["opc-content-crc32c"] = part.crc32c_b64
        elif algorithm in ("SHA256", "SHA384") and part.sha is not None:
            out[f"opc-content-{algorithm.lower()}"] = _b64(part.sha)
        self._send(200, out)

    def commit_upload(self, s: list[str], q: dict[str, str], body: bytes) -> None:
        b, name = self._bucket(s), self._name(s)
        with self.service.lock:
            up = self.service.upload(b, name, q.get("uploadId"))
        v = self.service.commit(b, up, self._details(body), self.headers.get("if-match"),
                                self.headers.get("if-none-match"))
        out = {"etag": v.etag, "last-modified": _http_date(v.created), "version-id": v.version_id,
               "opc-multipart-md5": v.multipart_md5 or ""}
        out.update(_checksum_headers(v))
        self._send(200, out)

    def abort_upload(self, s: list[str], q: dict[str, str], body: bytes) -> None:
        b, name = self._bucket(s), self._name(s)
        with self.service.lock:
            self.service.check_writable(b)
            up = self.service.upload(b, name, q.get("uploadId"))
            del b.uploads[up.upload_id]
        self._send(204, {})

    def list_uploads(self, s: list[str], q: dict[str, str], body: bytes) -> None:
        b = self._bucket(s)
        limit = _limit(q)
        with self.service.lock:
            ups = sorted(b.uploads.values(), key=lambda u: (u.name, u.created, u.upload_id))
        if q.get("page"):
            token = _decode_token(q["page"])
            ups = [u for u in ups if [u.name, u.upload_id] >= token]
        headers = {"opc-next-page": _encode_token([ups[limit].name, ups[limit].upload_id])} \
            if len(ups) > limit else {}
        self._json(200, [self._upload_json(u, b) for u in ups[:limit]], headers)

    def list_parts(self, s: list[str], q: dict[str, str], body: bytes) -> None:
        b, name = self._bucket(s), self._name(s)
        limit = _limit(q)
        with self.service.lock:
            up = self.service.upload(b, name, q.get("uploadId"))
            parts = sorted(up.parts.items())
        if q.get("page"):
            if not q["page"].isdigit():
                raise ApiError(400, "InvalidParameter", "malformed page token")
            parts = [p for p in parts if p[0] >= int(q["page"])]
        headers = {"opc-next-page": str(parts[limit][0])} if len(parts) > limit else {}
        self._json(200, [{"partNumber": n, "etag": p.etag, "md5": _b64(p.md5), "size": len(p.data)}
                         for n, p in parts[:limit]], headers)


# ------------------------------------------------------------------------------------------ lifecycle

class OciEmulator(LoopbackServer):
    """The OCI Object Storage emulator on loopback. ``start()`` returns once it is listening."""

    name = "oci-emulator"

    def __init__(self, *, public_key_pem: bytes, namespace: str, host: str = "127.0.0.1", port: int = 0,
                 min_part_size: int = 0, region: str = "us-ashburn-1") -> None:
        key = serialization.load_pem_public_key(public_key_pem)
        if not isinstance(key, rsa.RSAPublicKey):
            raise ValueError("the OCI emulator needs an RSA public key")
        self.namespace = namespace
        self._service = _Service(namespace, key, min_part_size, region)
        handler = type("_BoundHandler", (_Handler,), {"service": self._service})
        self._bind(host, port, handler)

    def stats(self) -> dict[str, Any]:
        return self._service.stats()

    def reset(self) -> None:
        self._service.reset()

    def advance_clock(self, seconds: float) -> None:
        """Move the emulator's clock forward (retention expiry, rule locks) without sleeping."""
        self._service.advance_clock(seconds)

    def now(self) -> datetime:
        return self._service.now()

    def set_replication_paused(self, paused: bool) -> None:
        """Paused: replication queues up, as a lagging destination; resumed: the queue runs in order."""
        self._service.set_replication_paused(paused)

    @property
    def faults(self) -> FaultInjector:
        """The endpoint's fault hook (``configure(FaultPlan(...))``); also at ``/_emulator/faults``."""
        return self._service.faults

    def iter_objects(self, bucket: str) -> Iterator[tuple[str, ObjectVersion]]:
        """Every stored version in ``bucket`` (for tests that inspect the server side)."""
        with self._service.lock:
            b = self._service.buckets.get(bucket)
            items = [(n, v) for n, vs in b.objects.items() for v in vs] if b else []
        yield from items


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m migrator.sandbox.oci_emulator",
                                     description="In-memory OCI Object Storage emulator (loopback only).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--public-key", required=True, type=Path, help="PEM public key of the API key")
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--ready-file", type=Path, help="the bound port is written here once listening")
    parser.add_argument("--min-part-size", type=int, default=0)
    parser.add_argument("--region", default="us-ashburn-1", help="the region this endpoint plays")
    args = parser.parse_args(argv)
    if not is_loopback_host(args.host):
        parser.exit(2, f"refusing to listen on non-loopback host {args.host!r}\n")
    emulator = OciEmulator(public_key_pem=args.public_key.read_bytes(), namespace=args.namespace,
                           host=args.host, port=args.port, min_part_size=args.min_part_size,
                           region=args.region)

    return emulator.run_until_signalled(args.ready_file)


if __name__ == "__main__":
    sys.exit(main())
