"""The OCI emulator's HTTP side: parse each request, check its signature, route it to the service, write the
answer in OCI's wire format.

Routing follows the REST paths the ``oci`` SDK sends (``/n/{namespace}/b/{bucket}/o/{object}``, ``.../u/...``
for multipart, ``.../retentionRules``, ``.../replicationPolicies``, ``.../objectversions``, and the Vault
paths under ``/20180608/``); each route has OCI's operation name, which the stats count and the fault hook
is keyed by. Per request, in order: the fault hook (as the network and the front end would), the signature
(:mod:`migrator.sandbox.oci.signature`; object and part bodies are not signed, as the SDK sends them), the
operation. An :class:`~migrator.sandbox.base.ApiError` becomes OCI's JSON error ``{"code", "message"}``
(no body for HEAD) and is counted by code; anything else is a 500 ``InternalServerError``.

This module changes no state: it parses (refusing malformed requests), calls the service
(:mod:`migrator.sandbox.oci.service`) for every operation and rule, and reads the model under the service's
lock to render answers and page through listings. The unsigned control paths are the shared ones
(:class:`~migrator.sandbox.base.EmulatorService`) plus ``GET|POST /_emulator/replication?paused=``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Sequence
from datetime import datetime
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qs, unquote

from migrator.sandbox.base import (
    ApiError,
    EmulatorHandler,
    FaultErrors,
    Reply,
    b64,
    fault_error,
    iso_millis,
)
from migrator.sandbox.faults import Action
from migrator.sandbox.oci.kms import KmsVault, json_details
from migrator.sandbox.oci.model import Bucket, ObjectVersion, ReplicationPolicy, RetentionRule, Upload
from migrator.sandbox.oci.service import Declared, ObjectFields, OciService, checksum_algorithm
from migrator.sandbox.oci.signature import SignatureVerifier

MAX_LIST = 1000
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_DATA_IN_OPS = frozenset({"PutObject", "UploadPart"})    # request bodies that are object bytes
_DATA_OUT_OPS = frozenset({"GetObject"})                 # response bodies that are object bytes
FAULT_ERRORS: FaultErrors = {
    500: ("InternalServerError", "An internal server error occurred (injected fault)"),
    503: ("ServiceUnavailable", "The service is currently unavailable (injected fault)"),
    429: ("TooManyRequests", "Too many requests (injected fault)"),
    501: ("NotImplemented", "Not implemented (injected fault)")}


# ------------------------------------------------------------------------------------------- parsing

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


# ----------------------------------------------------------------------------------------- rendering

def _http_date(ts: datetime) -> str:
    return formatdate(ts.timestamp(), usegmt=True)


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


def _bucket_json(namespace: str, b: Bucket, fields: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {
        "namespace": namespace, "name": b.name, "compartmentId": b.compartment_id,
        "metadata": b.metadata, "createdBy": "ocid1.user.oc1..sandbox", "timeCreated": iso_millis(b.created),
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


def _rule_json(rule: RetentionRule) -> dict[str, Any]:
    out: dict[str, Any] = {"id": rule.rule_id, "displayName": rule.display_name, "etag": rule.etag,
                           "timeCreated": iso_millis(rule.created), "timeModified": iso_millis(rule.modified)}
    if rule.amount is not None:
        out["duration"] = {"timeAmount": rule.amount, "timeUnit": rule.unit}
    if rule.time_rule_locked is not None:
        out["timeRuleLocked"] = iso_millis(rule.time_rule_locked)
    return out


def _policy_json(policy: ReplicationPolicy) -> dict[str, Any]:
    return {"id": policy.policy_id, "name": policy.name, "destinationRegionName": policy.destination_region,
            "destinationBucketName": policy.destination_bucket, "timeCreated": iso_millis(policy.created),
            "timeLastSync": iso_millis(policy.last_sync), "status": policy.status,
            "statusMessage": policy.status_message}


# ------------------------------------------------------------------------------------------- handler

class OciHandler(EmulatorHandler):
    """One connection's requests: signature, fault hook, route, service call, answer."""

    server_version = "OciEmulator/1"
    service: OciService  # set on a per-emulator subclass, with the verifier
    verifier: SignatureVerifier
    _reply: Reply | None = None  # the answer held by _send

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

    def _send(self, status: int, headers: dict[str, str], body: bytes = b"", *,
              length: int | None = None) -> None:
        """Hold the answer: ``_dispatch`` writes it once the fault hook has had its say."""
        headers.setdefault("opc-request-id", uuid.uuid4().hex)
        client_id = self.headers.get("opc-client-request-id")
        if client_id:
            headers["opc-client-request-id"] = client_id
        self._reply = (status, headers, body, len(body) if length is None else length)

    def _json(self, status: int, value: Any, headers: dict[str, str] | None = None) -> None:
        out = dict(headers or {})
        out["Content-Type"] = "application/json"
        self._send(status, out, json.dumps(value).encode("utf-8"))

    def _error(self, err: ApiError) -> None:
        self.service.count_error(err.code)
        body = json.dumps({"code": err.code, "message": err.message}).encode("utf-8")
        self._send(err.status, {"Content-Type": "application/json"}, body,
                   length=0 if self.command == "HEAD" else None)

    def _dispatch(self, method: str) -> None:
        try:
            body = self.read_body()
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
                    self.abort()
                    return
                if action.status is not None:
                    raise fault_error(action.status, FAULT_ERRORS)
                body = action.request_body(body)   # a flipped PUT body meets the checksum validation below
                # Object and part bodies are not in the SDK's signature (enforce_content_headers=False).
                body_signed = method in ("POST", "PUT") and op not in _DATA_IN_OPS
                self.verifier.verify(method, self.path, self.headers, body, body_signed)
                handler(segs, query, body)
        except ApiError as err:
            self._error(err)
        except Exception as exc:  # noqa: BLE001 - a server answers 500 instead of dying
            self._error(ApiError(500, "InternalServerError", f"{type(exc).__name__}: {exc}"))
        self.answer(self._reply, action, data_out=op in _DATA_OUT_OPS)

    def _internal(self, method: str, path: str, q: dict[str, str], body: bytes) -> None:
        answer = self.service.control(method, path, q, body, "InvalidParameter")
        if answer is not None:
            status, value = answer
            if value is None:
                self._send(status, {})
            else:
                self._json(status, value)
        elif path == "/_emulator/replication" and method in ("GET", "POST"):
            if method == "POST":
                paused = q.get("paused", "").lower()
                if paused not in ("true", "false"):
                    raise ApiError(400, "InvalidParameter", "paused must be true or false")
                self.service.set_replication_paused(paused == "true")
            paused_now, pending = self.service.replication_state()
            self._json(200, {"paused": paused_now, "pending": pending})
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

    def _declared(self) -> Declared:
        h = self.headers
        return Declared(content_md5=h.get("Content-MD5"), crc32c=h.get("opc-content-crc32c"),
                        sha256=h.get("opc-content-sha256"), sha384=h.get("opc-content-sha384"))

    # -- namespace and buckets

    def get_namespace(self, s: list[str], q: dict[str, str], body: bytes) -> None:
        self._json(200, self.service.namespace)

    def create_bucket(self, s: list[str], q: dict[str, str], body: bytes) -> None:
        b = self.service.create_bucket(unquote(s[2]), json_details(body))
        self._json(200, _bucket_json(self.service.namespace, b),
                   {"etag": b.etag, "location": f"/n/{s[2]}/b/{b.name}"})

    def list_buckets(self, s: list[str], q: dict[str, str], body: bytes) -> None:
        if unquote(s[2]) != self.service.namespace:
            raise ApiError(404, "NamespaceNotFound", "unknown namespace")
        compartment = q.get("compartmentId")
        limit = _limit(q)
        page = q.get("page") or ""
        with self.service.lock:   # one snapshot: a bucket deleted meanwhile is not looked up again
            buckets = sorted((b for n, b in self.service.buckets.items()
                              if n >= page and (compartment is None or b.compartment_id == compartment)),
                             key=lambda b: b.name)
            items = [{"namespace": self.service.namespace, "name": b.name, "compartmentId": b.compartment_id,
                      "createdBy": "ocid1.user.oc1..sandbox", "timeCreated": iso_millis(b.created),
                      "etag": b.etag, "freeformTags": {}, "definedTags": {}} for b in buckets[:limit]]
        headers = {"opc-next-page": buckets[limit].name} if len(buckets) > limit else {}
        self._json(200, items, headers)

    def get_bucket(self, s: list[str], q: dict[str, str], body: bytes) -> None:
        b = self._bucket(s)
        self.service.check_bucket_etag(b, self.headers.get("if-match"))
        if self.headers.get("if-none-match") == b.etag:
            self._send(304, {"etag": b.etag})
            return
        with self.service.lock:   # approximateCount walks the objects: not while a put changes them
            self._json(200, _bucket_json(self.service.namespace, b, q.get("fields", "")), {"etag": b.etag})

    def head_bucket(self, s: list[str], q: dict[str, str], body: bytes) -> None:
        b = self._bucket(s)
        self.service.check_bucket_etag(b, self.headers.get("if-match"))
        self._send(200, {"etag": b.etag})

    def update_bucket(self, s: list[str], q: dict[str, str], body: bytes) -> None:
        b = self._bucket(s)
        self.service.update_bucket(b, json_details(body), self.headers.get("if-match"))
        self._json(200, _bucket_json(self.service.namespace, b), {"etag": b.etag})

    def delete_bucket(self, s: list[str], q: dict[str, str], body: bytes) -> None:
        self.service.delete_bucket(self._bucket(s), self.headers.get("if-match"))
        self._send(204, {})

    # -- retention rules

    def list_retention_rules(self, s: list[str], q: dict[str, str], body: bytes) -> None:
        b = self._bucket(s)
        with self.service.lock:
            rules = sorted(b.retention_rules.values(), key=lambda r: r.created, reverse=True)  # newest first
            self._json(200, {"items": [_rule_json(r) for r in rules]})

    def create_retention_rule(self, s: list[str], q: dict[str, str], body: bytes) -> None:
        rule = self.service.create_retention_rule(self._bucket(s), json_details(body))
        self._json(200, _rule_json(rule), {"etag": rule.etag})

    def get_retention_rule(self, s: list[str], q: dict[str, str], body: bytes) -> None:
        b = self._bucket(s)
        with self.service.lock:
            rule = self.service.retention_rule(b, unquote(s[6]))
            self._json(200, _rule_json(rule), {"etag": rule.etag})

    def update_retention_rule(self, s: list[str], q: dict[str, str], body: bytes) -> None:
        rule = self.service.update_retention_rule(self._bucket(s), unquote(s[6]), json_details(body),
                                                  self.headers.get("if-match"))
        self._json(200, _rule_json(rule), {"etag": rule.etag})

    def delete_retention_rule(self, s: list[str], q: dict[str, str], body: bytes) -> None:
        self.service.delete_retention_rule(self._bucket(s), unquote(s[6]), self.headers.get("if-match"))
        self._send(204, {})

    # -- replication

    def list_replication_policies(self, s: list[str], q: dict[str, str], body: bytes) -> None:
        b = self._bucket(s)
        with self.service.lock:
            self._json(200, [_policy_json(b.replication)] if b.replication is not None else [])

    def create_replication_policy(self, s: list[str], q: dict[str, str], body: bytes) -> None:
        policy = self.service.create_replication_policy(self._bucket(s), json_details(body))
        self._json(200, _policy_json(policy))

    def get_replication_policy(self, s: list[str], q: dict[str, str], body: bytes) -> None:
        b = self._bucket(s)
        with self.service.lock:
            self._json(200, _policy_json(self.service.replication_policy(b, unquote(s[6]))))

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
        algorithm = checksum_algorithm(h.get("opc-checksum-algorithm"))
        metadata = {k.lower()[len("opc-meta-"):]: v for k, v in h.items()
                    if k.lower().startswith("opc-meta-")}
        fields = ObjectFields(
            content_type=h.get("Content-Type") or "application/octet-stream",
            content_encoding=h.get("Content-Encoding"), content_language=h.get("Content-Language"),
            content_disposition=h.get("Content-Disposition"), cache_control=h.get("Cache-Control"),
            metadata=metadata)
        v = self.service.put_object(b, name, body, algorithm, self._declared(), fields, h.get("storage-tier"),
                                    h.get("if-match"), h.get("if-none-match"))
        out = {"etag": v.etag, "last-modified": _http_date(v.created), "opc-content-md5": v.md5_b64 or "",
               "version-id": v.version_id}
        out.update(_checksum_headers(v))
        self._send(200, out)

    def _read_version(self, s: list[str], q: dict[str, str]) -> ObjectVersion:
        b, name = self._bucket(s), self._name(s)
        return self.service.read_version(b, name, q.get("versionId"), self.headers.get("if-match"))

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
        self.service.check_readable(v)
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
            "timeCreated": iso_millis(v.created), "timeModified": iso_millis(v.created),
            "storageTier": v.storage_tier,
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
        details = json_details(body)
        up = self.service.create_upload(b, details, checksum_algorithm(self.headers.get("opc-checksum-algorithm")),
                                        self.headers.get("if-match"), self.headers.get("if-none-match"))
        headers = {"location": f"/n/{s[2]}/b/{s[4]}/u/{up.upload_id}"}
        if up.checksum_algorithm:
            headers["opc-checksum-algorithm"] = up.checksum_algorithm
        self._json(200, self._upload_json(up, b), headers)

    def _upload_json(self, up: Upload, b: Bucket) -> dict[str, Any]:
        return {"namespace": self.service.namespace, "bucket": b.name, "object": up.name,
                "uploadId": up.upload_id, "timeCreated": iso_millis(up.created), "storageTier": up.storage_tier}

    def upload_part(self, s: list[str], q: dict[str, str], body: bytes) -> None:
        b, name = self._bucket(s), self._name(s)
        num_text = q.get("uploadPartNum", "")
        if not num_text.isdigit() or not 1 <= int(num_text) <= 10000:
            raise ApiError(400, "InvalidParameter", "uploadPartNum must be 1..10000")
        part, algorithm = self.service.upload_part(
            b, name, q.get("uploadId"), int(num_text), body, self.headers.get("opc-checksum-algorithm"),
            self._declared(), self.headers.get("if-match"), self.headers.get("if-none-match"))
        out = {"etag": part.etag, "opc-content-md5": b64(part.md5), "last-modified": _http_date(self.service.now())}
        if algorithm == "CRC32C":
            out["opc-content-crc32c"] = part.crc32c_b64
        elif algorithm in ("SHA256", "SHA384") and part.sha is not None:
            out[f"opc-content-{algorithm.lower()}"] = b64(part.sha)
        self._send(200, out)

    def commit_upload(self, s: list[str], q: dict[str, str], body: bytes) -> None:
        b, name = self._bucket(s), self._name(s)
        with self.service.lock:
            up = self.service.upload(b, name, q.get("uploadId"))
        v = self.service.commit(b, up, json_details(body), self.headers.get("if-match"),
                                self.headers.get("if-none-match"))
        out = {"etag": v.etag, "last-modified": _http_date(v.created), "version-id": v.version_id,
               "opc-multipart-md5": v.multipart_md5 or ""}
        out.update(_checksum_headers(v))
        self._send(200, out)

    def abort_upload(self, s: list[str], q: dict[str, str], body: bytes) -> None:
        b, name = self._bucket(s), self._name(s)
        self.service.abort_upload(b, name, q.get("uploadId"))
        self._send(204, {})

    def list_uploads(self, s: list[str], q: dict[str, str], body: bytes) -> None:
        b = self._bucket(s)
        limit = _limit(q)
        # One order for the listing and its page token, (object, uploadId): a token in another order than
        # the sort's skips some uploads and repeats others (forever, with limit=1).
        with self.service.lock:
            ups = sorted(b.uploads.values(), key=lambda u: (u.name, u.upload_id))
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
        self._json(200, [{"partNumber": n, "etag": p.etag, "md5": b64(p.md5), "size": len(p.data)}
                         for n, p in parts[:limit]], headers)

