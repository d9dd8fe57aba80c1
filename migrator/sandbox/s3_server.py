"""The sandbox's S3 endpoint: moto's WSGI app behind a layer that makes it behave as S3 documents.

moto departs from S3 exactly where migrator's promises live. The layer (``S3Layer``, a WSGI middleware, plus a
few patches to moto's models where the state lives) adds:

- ``BadDigest`` (400) for a PutObject/UploadPart (or any request with a body) whose ``Content-MD5`` or
  ``x-amz-checksum-{crc32,crc32c,crc64nvme,sha1,sha256}`` does not match the bytes; ``aws-chunked`` bodies are
  decoded to check a header or trailer checksum, then passed on unchanged;
- DeleteObjects honouring each entry's ``ETag`` (``PreconditionFailed`` for that key, evaluated like moto's
  DeleteObject ``If-Match``: against the current version);
- CompleteMultipartUpload ``If-Match`` (moto ignores it): only over the current object with that ETag;
- Object Lock: COMPLIANCE retention can be neither shortened nor weakened, GOVERNANCE only with
  ``x-amz-bypass-governance-retention``; a default retention can be set on a bucket that holds objects;
- replication: PutBucketReplication needs versioning on the source and on local destination buckets; new
  objects matching an enabled rule report ``x-amz-replication-status: PENDING``;
  ``POST /_emulator/replication-status`` seeds a status and ``POST /_emulator/replicate`` copies an object to
  its rules' destination buckets (same version id, ``REPLICA``) and marks the source ``COMPLETED``;
- archived storage classes: GET answers 403 InvalidObjectState until RestoreObject (moto; restores complete at
  once), RestoreObject honours ``versionId``, HEAD reports ``x-amz-restore``;
- SSE-C: objects written with a customer key answer GET/HEAD (and copies from them) with 400 without the key
  and 403 with a different key, echo the key's MD5, and get an ETag that is not the MD5 of the bytes;
- the sandbox's fault hook (:mod:`migrator.sandbox.faults`) and request counts per operation (API names such
  as ``GetObject``, ``PutObject``, ``UploadPart``, ``DeleteObjects``, ``ListObjectVersions``).

Unsigned control paths: ``GET /_emulator/stats``, ``POST /_emulator/reset`` (moto's state, counts, faults),
``GET|POST /_emulator/faults``, ``POST /_emulator/replication-status`` (JSON ``{"bucket", "key",
"version_id"?, "status"}``), ``POST /_emulator/replicate`` (JSON ``{"bucket", "key", "version_id"?}``).

Two speed-ups change no behaviour: moto's dispatcher lists its own package on every request (cached here), and
ListObjectVersions deep-copied every version in the bucket on every call.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import functools
import hashlib
import http
import io
import json
import secrets
import signal
import socket
import sys
import threading
import traceback
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote
from xml.sax.saxutils import escape

from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

from migrator.checksum import crc32c_bytes
from migrator.endpoints import is_loopback_host
from migrator.sandbox.faults import CONTROL_PATH, Action, FaultInjector, abort_connection
from migrator.sandbox.serve import write_ready

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
StartResponse = Callable[..., Any]

S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
EXTRA_HEADERS = "migrator_headers"  # FakeKey attribute: headers the layer adds to HEAD/GET/PUT answers
SSEC_MD5 = "migrator_ssec_md5"      # FakeKey/FakeMultipart attribute: the customer key's MD5 (base64)
SSEC_ALG = "x-amz-server-side-encryption-customer-algorithm"
SSEC_KEY_MD5 = "x-amz-server-side-encryption-customer-key-MD5"
REPLICATION_STATUSES = frozenset({"PENDING", "COMPLETED", "FAILED", "REPLICA"})
LOCKED_MESSAGE = "Access Denied because object protected by object lock."


class _State:
    """Process-wide layer state (moto's own state is process-wide too)."""

    ssec_seen = False  # an SSE-C object was ever written: only then do reads pay for a key lookup


_ctx = threading.local()  # per request thread: the SSE-C key MD5 of the object moto is about to create


# ------------------------------------------------------------------------------------- moto patches

def _cache_module_list() -> None:
    from moto import backends

    listed = tuple(backends.list_of_moto_modules())

    @functools.wraps(backends.list_of_moto_modules)
    def cached() -> Iterable[str]:
        return listed

    backends.list_of_moto_modules = cached


def _fast_version_listing() -> None:
    """moto's ListObjectVersions deep-copies every version in the bucket, data included, on every call
    (~50 ms at 300 keys, and 500s when a put races the copy), then filters by prefix. Its only use of
    deepcopy copies each key's list of versions to set ``is_latest``: a shallow copy of the versions
    does the same job, and keys outside the requested prefix (dropped later anyway) are skipped.
    It also fixes moto's KeyMarker handling (see below), which made batched listings lose versions."""
    import copy as std_copy
    import types

    from moto.s3 import models

    local = threading.local()

    def deepcopy(value: Any, memo: Any = None) -> Any:
        if isinstance(value, list):
            prefix = getattr(local, "prefix", "")
            after = getattr(local, "after", None)
            name = str(getattr(value[0], "name", "")) if value else ""
            if value and prefix and not name.startswith(prefix):
                return []
            if value and after is not None and name <= after:
                return []
            return [_shallow(v) for v in value]
        return std_copy.deepcopy(value, memo)

    listed_types: dict[type, type] = {}

    def _shallow(v: Any) -> Any:
        # copy.copy would go through FakeKey.__getstate__/__setstate__, which read the whole value and
        # write it to a new spooled file: a listing then cost time in proportion to the bytes listed.
        # The listing only sets is_latest on its copies, so they may share the value buffer, as long as
        # a copy's disposal (FakeKey.__del__ closes the buffer) leaves the original's alone.
        kind = listed_types.get(type(v))
        if kind is None:
            kind = listed_types[type(v)] = type(f"Listed{type(v).__name__}", (type(v),),
                                                {"dispose": lambda self, garbage=False: None})
        dup: Any = object.__new__(kind)
        dup.__dict__.update(v.__dict__)
        return dup

    models.copy = types.SimpleNamespace(copy=std_copy.copy, deepcopy=deepcopy)  # type: ignore[assignment,attr-defined]
    original = models.S3Backend.list_object_versions

    @functools.wraps(original)
    def list_object_versions(self: Any, bucket_name: str, *args: Any, **kwargs: Any) -> Any:
        local.prefix = kwargs.get("prefix") or ""
        # moto mishandles a KeyMarker without VersionIdMarker: it drops the first version after the
        # marker and keeps the marker key's own later versions. S3 lists every key after the marker:
        # filter those keys here and let moto start from the top.
        if kwargs.get("key_marker") and not kwargs.get("version_id_marker"):
            local.after = kwargs["key_marker"]
            kwargs["key_marker"] = None
        try:
            return original(self, bucket_name, *args, **kwargs)
        finally:
            local.prefix = ""
            local.after = None

    models.S3Backend.list_object_versions = list_object_versions  # type: ignore[method-assign]


def _extra(obj: Any) -> dict[str, str]:
    extra: dict[str, str] | None = obj.__dict__.get(EXTRA_HEADERS)
    if extra is None:
        extra = obj.__dict__[EXTRA_HEADERS] = {}
    return extra


def _tag_ssec(key: Any, key_md5: str) -> None:
    """Mark ``key`` as SSE-C: S3 echoes the algorithm and key MD5, and its ETag is not the MD5 of the bytes."""
    _State.ssec_seen = True
    key.__dict__[SSEC_MD5] = key_md5
    _extra(key).update({SSEC_ALG: "AES256", SSEC_KEY_MD5: key_md5})
    suffix = key.etag.strip('"').partition("-")[2]
    key._etag = secrets.token_hex(16) + (f"-{suffix}" if suffix else "")


def _rule_prefix(rule: dict[str, Any]) -> str | None:
    """The key prefix an enabled rule replicates; None when it filters on tags (not emulated) or is off."""
    if rule.get("Status") != "Enabled":
        return None
    flt = rule.get("Filter")
    if flt is None:
        return str(rule.get("Prefix") or "")
    if not isinstance(flt, dict):
        return ""
    if "Tag" in flt or ("And" in flt and "Tag" in (flt.get("And") or {})):
        return None
    inner = flt.get("And") if isinstance(flt.get("And"), dict) else flt
    return str((inner or {}).get("Prefix") or "")


def _rules(bucket: Any) -> list[dict[str, Any]]:
    config = getattr(bucket, "replication", None)
    if not config:
        return []
    rules = config.get("Rule") or []
    return [r for r in (rules if isinstance(rules, list) else [rules]) if isinstance(r, dict)]


def _matching_rules(bucket: Any, key_name: str) -> list[dict[str, Any]]:
    out = []
    for rule in _rules(bucket):
        prefix = _rule_prefix(rule)
        if prefix is not None and key_name.startswith(prefix):
            out.append(rule)
    return out


def _destination_bucket(rule: dict[str, Any]) -> str:
    arn = str((rule.get("Destination") or {}).get("Bucket") or "")
    return arn.rpartition(":::")[2] if ":::" in arn else arn


def _patch_models() -> None:
    from moto.s3 import models
    from moto.s3.exceptions import S3ClientError

    rd = models.FakeKey.response_dict

    def response_dict(self: Any) -> dict[str, Any]:
        res: dict[str, Any] = rd.fget(self)  # type: ignore[attr-defined]
        extra = self.__dict__.get(EXTRA_HEADERS)
        if extra:
            res.update(extra)
        return res

    models.FakeKey.response_dict = property(response_dict)  # type: ignore[assignment,method-assign]

    put_object = models.S3Backend.put_object

    @functools.wraps(put_object)
    def put_object_tagged(self: Any, bucket_name: str, key_name: str, *args: Any, **kwargs: Any) -> Any:
        key = put_object(self, bucket_name, key_name, *args, **kwargs)
        key_md5 = getattr(_ctx, "ssec", None)
        if key_md5:
            _tag_ssec(key, key_md5)
        if _matching_rules(self.get_bucket(bucket_name), key_name):
            _extra(key)["x-amz-replication-status"] = "PENDING"  # until replicated (POST /_emulator/replicate)
        return key

    models.S3Backend.put_object = put_object_tagged  # type: ignore[method-assign]

    create_mpu = models.S3Backend.create_multipart_upload

    @functools.wraps(create_mpu)
    def create_multipart_upload(self: Any, *args: Any, **kwargs: Any) -> Any:
        multipart = create_mpu(self, *args, **kwargs)
        key_md5 = getattr(_ctx, "ssec", None)
        if key_md5:
            _State.ssec_seen = True
            multipart.__dict__[SSEC_MD5] = key_md5
        return multipart

    models.S3Backend.create_multipart_upload = create_multipart_upload  # type: ignore[method-assign]

    complete_mpu = models.S3Backend.complete_multipart_upload

    @functools.wraps(complete_mpu)
    def complete_multipart_upload(self: Any, bucket_name: str, multipart_id: str, body: Any) -> Any:
        multipart = self.get_bucket(bucket_name).multiparts.get(multipart_id)
        key = complete_mpu(self, bucket_name, multipart_id, body)
        key_md5 = multipart.__dict__.get(SSEC_MD5) if multipart is not None else None
        if key is not None and key_md5:
            _tag_ssec(key, key_md5)
        return key

    models.S3Backend.complete_multipart_upload = complete_multipart_upload  # type: ignore[method-assign]

    def put_object_lock_configuration(self: Any, bucket_name: str, lock_enabled: bool, mode: str | None = None,
                                      days: int | None = None, years: int | None = None) -> None:
        # moto refuses any change once the bucket holds objects; S3 lets a locked bucket's default
        # retention change at any time (it applies to objects written afterwards).
        bucket = self.get_bucket(bucket_name)
        if not bucket.is_versioned:
            raise S3ClientError("InvalidBucketState",
                                "Versioning must be 'Enabled' on the bucket to apply a Object Lock configuration")
        if lock_enabled:
            bucket.object_lock_enabled = True
            bucket.versioning_status = "Enabled"
        bucket.default_lock_mode = mode
        bucket.default_lock_days = days
        bucket.default_lock_years = years

    models.S3Backend.put_object_lock_configuration = put_object_lock_configuration  # type: ignore[method-assign]

    put_replication = models.S3Backend.put_bucket_replication

    @functools.wraps(put_replication)
    def put_bucket_replication(self: Any, bucket_name: str, replication: dict[str, Any]) -> None:
        if not self.get_bucket(bucket_name).is_versioned:
            raise S3ClientError("InvalidRequest",
                                "Versioning must be 'Enabled' on the bucket to apply a replication configuration")
        rules = replication.get("Rule")
        for rule in rules if isinstance(rules, list) else [rules]:
            name = _destination_bucket(rule or {})
            dest = self.buckets.get(name)
            if dest is None:
                raise S3ClientError("InvalidRequest", "Destination bucket must exist.")
            if not dest.is_versioned:
                raise S3ClientError("InvalidRequest", "Destination bucket must have versioning enabled.")
        put_replication(self, bucket_name, replication)

    models.S3Backend.put_bucket_replication = put_bucket_replication  # type: ignore[method-assign]


# ------------------------------------------------------------------------------------- requests

_BUCKET_GET = {"versions": "ListObjectVersions", "uploads": "ListMultipartUploads",
               "replication": "GetBucketReplication", "versioning": "GetBucketVersioning",
               "object-lock": "GetObjectLockConfiguration", "location": "GetBucketLocation",
               "encryption": "GetBucketEncryption", "policy": "GetBucketPolicy", "lifecycle": "GetBucketLifecycle",
               "tagging": "GetBucketTagging", "acl": "GetBucketAcl"}
_BUCKET_PUT = {"versioning": "PutBucketVersioning", "replication": "PutBucketReplication",
               "object-lock": "PutObjectLockConfiguration", "encryption": "PutBucketEncryption",
               "policy": "PutBucketPolicy", "lifecycle": "PutBucketLifecycle", "tagging": "PutBucketTagging",
               "acl": "PutBucketAcl"}
_KEY_GET = {"uploadId": "ListParts", "retention": "GetObjectRetention", "legal-hold": "GetObjectLegalHold",
            "tagging": "GetObjectTagging", "acl": "GetObjectAcl", "attributes": "GetObjectAttributes"}
_KEY_PUT = {"retention": "PutObjectRetention", "legal-hold": "PutObjectLegalHold", "tagging": "PutObjectTagging",
            "acl": "PutObjectAcl"}
_DATA_IN = frozenset({"PutObject", "UploadPart"})
_READS = frozenset({"GetObject", "HeadObject", "GetObjectAttributes"})
_CHECKSUM_ALGS = ("crc32", "crc32c", "crc64nvme", "sha1", "sha256")
_NO_BODY_CHECKSUM = frozenset({"CompleteMultipartUpload", "CopyObject", "UploadPartCopy"})


def _first(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


@dataclass
class _Request:
    method: str
    bucket: str
    key: str
    query: dict[str, list[str]]
    op: str

    def param(self, name: str) -> str | None:
        return _first(self.query, name)


def _classify(environ: dict[str, Any]) -> _Request:
    method = str(environ.get("REQUEST_METHOD", "GET")).upper()
    raw = str(environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO") or "/")
    path, _, _ = raw.partition("?")
    if "://" in path:
        path = "/" + path.split("://", 1)[1].partition("/")[2]
    query = parse_qs(str(environ.get("QUERY_STRING") or ""), keep_blank_values=True)
    host = str(environ.get("HTTP_HOST") or "").rpartition(":")[0] or str(environ.get("HTTP_HOST") or "")
    if host.endswith(".localhost"):  # virtual-hosted style
        bucket, key = host[: -len(".localhost")], unquote(path[1:])
    else:
        bucket, _, key = unquote(path[1:]).partition("/")
    return _Request(method, bucket, key, query, _operation(method, bucket, key, query, environ))


def _operation(method: str, bucket: str, key: str, query: dict[str, list[str]], environ: dict[str, Any]) -> str:
    if not bucket:
        return "ListBuckets"
    if not key:
        if method == "GET":
            for name, op in _BUCKET_GET.items():
                if name in query:
                    return op
            return "ListObjectsV2" if "list-type" in query else "ListObjects"
        if method == "PUT":
            for name, op in _BUCKET_PUT.items():
                if name in query:
                    return op
            return "CreateBucket"
        if method == "POST" and "delete" in query:
            return "DeleteObjects"
        return {"HEAD": "HeadBucket", "DELETE": "DeleteBucket"}.get(method, f"{method}Bucket")
    copy = "HTTP_X_AMZ_COPY_SOURCE" in environ
    if method == "GET":
        for name, op in _KEY_GET.items():
            if name in query:
                return op
        return "GetObject"
    if method == "HEAD":
        return "HeadObject"
    if method == "PUT":
        if "partNumber" in query and "uploadId" in query:
            return "UploadPartCopy" if copy else "UploadPart"
        for name, op in _KEY_PUT.items():
            if name in query:
                return op
        return "CopyObject" if copy else "PutObject"
    if method == "POST":
        if "uploads" in query:
            return "CreateMultipartUpload"
        if "uploadId" in query:
            return "CompleteMultipartUpload"
        if "restore" in query:
            return "RestoreObject"
        return "PostObject"
    if method == "DELETE":
        if "uploadId" in query:
            return "AbortMultipartUpload"
        if "tagging" in query:
            return "DeleteObjectTagging"
        return "DeleteObject"
    return f"{method}Object"


class S3Error(Exception):
    def __init__(self, status: int, code: str, message: str, **fields: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.fields = status, code, message, fields


def _status_line(status: int) -> str:
    try:
        return f"{status} {http.HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Error"


def _error_response(err: S3Error, method: str, start_response: StartResponse) -> list[bytes]:
    rid = secrets.token_hex(8).upper()
    extra = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in err.fields.items())
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{err.code}</Code>'
            f"<Message>{escape(err.message)}</Message>{extra}<RequestId>{rid}</RequestId>"
            f"<HostId>{rid}</HostId></Error>").encode()
    headers = [("Content-Type", "application/xml"), ("x-amz-request-id", rid)]
    if method == "HEAD":  # HEAD answers carry no body
        body = b""
    headers.append(("Content-Length", str(len(body))))
    start_response(_status_line(err.status), headers)
    return [body]


# ------------------------------------------------------------------------------------- bodies

def _read_body(environ: dict[str, Any]) -> bytes:
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH")
    if length:
        data = stream.read(int(length))
    elif environ.get("wsgi.input_terminated"):
        data = stream.read()
    else:
        data = b""
    _set_body(environ, data)
    return bytes(data)


def _set_body(environ: dict[str, Any], data: bytes) -> None:
    environ["wsgi.input"] = io.BytesIO(data)
    environ["CONTENT_LENGTH"] = str(len(data))


def _is_aws_chunked(environ: dict[str, Any]) -> bool:
    return (str(environ.get("HTTP_X_AMZ_CONTENT_SHA256", "")).startswith("STREAMING-")
            or "aws-chunked" in str(environ.get("HTTP_CONTENT_ENCODING", "")))


def _decode_aws_chunked(raw: bytes) -> tuple[bytes, dict[str, str]]:
    """``aws-chunked`` framing: ``hex-size[;chunk-signature=...]\\r\\n data \\r\\n``..., ``0\\r\\n``, trailers."""
    data, trailers, pos = bytearray(), {}, 0
    while True:
        end = raw.find(b"\r\n", pos)
        if end < 0:
            raise S3Error(400, "IncompleteBody", "The request body terminated unexpectedly")
        try:
            size = int(raw[pos:end].split(b";", 1)[0].strip() or b"0", 16)
        except ValueError:
            raise S3Error(400, "InvalidRequest", "Malformed aws-chunked body") from None
        pos = end + 2
        if size == 0:
            break
        if pos + size > len(raw):
            raise S3Error(400, "IncompleteBody", "The request body terminated unexpectedly")
        data += raw[pos:pos + size]
        pos += size + 2
    for line in raw[pos:].split(b"\r\n"):
        name, sep, value = line.partition(b":")
        if sep:
            trailers[name.strip().decode("latin-1").lower()] = value.strip().decode("latin-1")
    return bytes(data), trailers


def _encode_aws_chunked(data: bytes, trailers: dict[str, str]) -> bytes:
    head = f"{len(data):x}\r\n".encode() + data + b"\r\n" if data else b""
    tail = "".join(f"{k}:{v}\r\n" for k, v in trailers.items() if k != "x-amz-trailer-signature").encode()
    return head + b"0\r\n" + tail + b"\r\n"


def _digest(algorithm: str, data: bytes) -> bytes:
    if algorithm == "crc32":
        return zlib.crc32(data).to_bytes(4, "big")
    if algorithm == "crc32c":
        return crc32c_bytes(data)
    if algorithm == "crc64nvme":
        from awscrt import checksums  # botocore[crt]

        return int(checksums.crc64nvme(data)).to_bytes(8, "big")
    return hashlib.new(algorithm, data).digest()


def _b64(value: str, size: int, header: str) -> bytes:
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except ValueError:
        raw = b""
    if len(raw) != size:
        if header == "Content-MD5":
            raise S3Error(400, "InvalidDigest", "The Content-MD5 you specified was invalid.")
        raise S3Error(400, "InvalidRequest", f"Value for {header} header is invalid.")
    return raw


_SIZES = {"crc32": 4, "crc32c": 4, "crc64nvme": 8, "sha1": 20, "sha256": 32}


def _verify_checksums(data: bytes, declared: dict[str, str], content_md5: str | None) -> None:
    if content_md5 is not None and _b64(content_md5, 16, "Content-MD5") != hashlib.md5(data).digest():
        raise S3Error(400, "BadDigest", "The Content-MD5 you specified did not match what we received.")
    for alg, value in declared.items():
        header = f"x-amz-checksum-{alg}"
        if _b64(value, _SIZES[alg], header) != _digest(alg, data):
            raise S3Error(400, "BadDigest", f"The {alg.upper()} you specified did not match the calculated checksum.")


# ------------------------------------------------------------------------------------- the layer

def _until(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _xml_root(body: bytes) -> Any:
    import xml.etree.ElementTree as ET

    try:
        return ET.fromstring(body)  # noqa: S314 - loopback-only emulator, trusted local clients
    except ET.ParseError:
        raise S3Error(400, "MalformedXML", "The XML you provided was not well-formed or did not validate "
                                           "against our published schema") from None


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _child_text(elem: Any, name: str) -> str | None:
    for child in elem:
        if _local(child.tag) == name:
            return str(child.text or "")
    return None


def _backend() -> Any:
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    return s3_backends[DEFAULT_ACCOUNT_ID]["aws"]


def _lookup(bucket: str, key: str, version_id: str | None) -> Any:
    """The FakeKey moto would serve, or None (no bucket, no key, a delete marker)."""
    try:
        return _backend().get_object(bucket, key, version_id=version_id)
    except Exception:  # noqa: BLE001 - moto raises its own errors for a missing bucket; moto answers those
        return None


class S3Layer:
    """WSGI middleware in front of moto; see the module docstring for what it adds."""

    def __init__(self, app: WSGIApp, faults: FaultInjector | None = None) -> None:
        self.app = app
        self.faults = faults or FaultInjector("s3")

    # -- WSGI entry

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO") or "")
        if path.startswith("/_emulator/"):
            return self._control(environ, start_response, path)
        if path.startswith("/moto-api/"):
            return self.app(environ, start_response)
        req = _classify(environ)
        action = self.faults.before(req.op, data_in=req.op in _DATA_IN, data_out=req.op == "GetObject")
        if action.drop_before:
            self._drop(environ)
        if action.status is not None:
            return _error_response(self._fault_error(action.status), req.method, start_response)
        try:
            handled = self._prepare(req, environ, action, start_response)
            if handled is not None:
                return handled
            ssec_md5 = self._ssec_for_write(req, environ)
        except S3Error as err:
            return _error_response(err, req.method, start_response)
        if req.op == "DeleteObjects":
            return self._delete_objects(req, environ, start_response, action)
        if action.kind is None and ssec_md5 is None:
            return self.app(environ, start_response)  # the fast path: most requests
        _ctx.ssec = ssec_md5
        try:
            status, headers, body = self._call(environ)
        finally:
            _ctx.ssec = None
        return self._finish(environ, action, status, headers, body, start_response)

    # -- faults

    @staticmethod
    def _fault_error(status: int) -> S3Error:
        if status == 503:
            return S3Error(503, "SlowDown", "Please reduce your request rate.")
        if status == 429:
            return S3Error(429, "TooManyRequestsException", "Too many requests.")
        return S3Error(500, "InternalError", "We encountered an internal error. Please try again.")

    @staticmethod
    def _drop(environ: dict[str, Any]) -> None:
        sock = environ.get("werkzeug.socket")
        if sock is not None:
            abort_connection(sock)
        raise ConnectionResetError("fault injected: connection reset")  # the server treats it as dropped

    def _call(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        captured: list[Any] = []
        chunks: list[bytes] = []

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
            captured[:] = [status, list(headers)]
            return chunks.append

        result = self.app(environ, start)
        try:
            chunks.extend(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return str(captured[0]), captured[1], b"".join(chunks)

    def _finish(self, environ: dict[str, Any], action: Action, status: str, headers: list[tuple[str, str]],
                body: bytes, start_response: StartResponse) -> list[bytes]:
        if action.drop_after:
            self._drop(environ)
        if status.startswith("2") and environ.get("REQUEST_METHOD") == "GET":
            if not any(k.lower() == "content-length" for k, _ in headers):
                headers.append(("Content-Length", str(len(body))))  # a cut body must look cut
            body = action.response_body(body)
        start_response(status, headers)
        return [body]

    # -- checks before moto

    def _prepare(self, req: _Request, environ: dict[str, Any], action: Action,
                 start_response: StartResponse) -> Iterable[bytes] | None:
        op = req.op
        if action.kind == "flip-put":
            self._flip_put(environ, action)
        if op not in _NO_BODY_CHECKSUM:
            self._check_digests(environ, op)
        if _State.ssec_seen:
            self._check_ssec_read(req, environ)
        if op == "CompleteMultipartUpload" and environ.get("HTTP_IF_MATCH"):
            self._check_complete_if_match(req, str(environ["HTTP_IF_MATCH"]))
        if op == "PutObjectRetention":
            self._check_retention_change(req, environ)
        if op == "GetObjectRetention":
            return self._get_retention(req, start_response)
        if op == "RestoreObject" and req.param("versionId"):
            return self._restore_version(req, environ, start_response)
        return None

    @staticmethod
    def _check_complete_if_match(req: _Request, if_match: str) -> None:
        """CompleteMultipartUpload with If-Match (moto ignores it): only over the current object with that
        ETag; 404 when there is none, as S3 answers."""
        current = _backend().get_object(req.bucket, req.key)
        if current is None:
            raise S3Error(404, "NoSuchKey", "The specified key does not exist.", Key=req.key)
        if if_match.replace('"', "") != current.etag.replace('"', ""):
            raise S3Error(412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold",
                          Condition="If-Match")

    def _flip_put(self, environ: dict[str, Any], action: Action) -> None:
        raw = _read_body(environ)
        if _is_aws_chunked(environ):
            data, trailers = _decode_aws_chunked(raw)
            _set_body(environ, _encode_aws_chunked(action.request_body(data), trailers))
        else:
            _set_body(environ, action.request_body(raw))

    def _check_digests(self, environ: dict[str, Any], op: str) -> None:
        content_md5 = environ.get("HTTP_CONTENT_MD5")
        declared = {alg: str(environ[name]) for alg in _CHECKSUM_ALGS
                    if (name := f"HTTP_X_AMZ_CHECKSUM_{alg.upper()}") in environ}
        chunked = _is_aws_chunked(environ)
        trailer = str(environ.get("HTTP_X_AMZ_TRAILER", "")).lower()
        if content_md5 is None and not declared and not (chunked and trailer.startswith("x-amz-checksum-")):
            return
        raw = _read_body(environ)
        if chunked:
            data, trailers = _decode_aws_chunked(raw)
            for alg in _CHECKSUM_ALGS:
                value = trailers.get(f"x-amz-checksum-{alg}")
                if value is not None:
                    declared.setdefault(alg, value)
        else:
            data = raw
        _verify_checksums(data, declared, None if content_md5 is None else str(content_md5))
        if declared and op in _DATA_IN and "HTTP_X_AMZ_SDK_CHECKSUM_ALGORITHM" not in environ:
            # S3 keeps a checksum sent without its algorithm header; moto keeps it only with the header.
            environ["HTTP_X_AMZ_SDK_CHECKSUM_ALGORITHM"] = next(iter(declared)).upper()

    # -- SSE-C

    @staticmethod
    def _customer_key_md5(environ: dict[str, Any], prefix: str) -> str | None:
        """The validated MD5 of the customer key in headers ``prefix``-*, or None when none is given."""
        alg = environ.get(f"{prefix}ALGORITHM")
        key = environ.get(f"{prefix}KEY")
        md5 = environ.get(f"{prefix}KEY_MD5")
        if alg is None and key is None and md5 is None:
            return None
        if alg != "AES256":
            raise S3Error(400, "InvalidEncryptionAlgorithmError",
                          "The encryption request you specified is not valid. The valid value is AES256.")
        if key is None or md5 is None:
            raise S3Error(400, "InvalidArgument", "Requests specifying Server Side Encryption with Customer "
                                                  "provided keys must provide an appropriate secret key and its MD5.")
        try:
            raw = base64.b64decode(str(key), validate=True)
        except ValueError:
            raw = b""
        if len(raw) != 32:
            raise S3Error(400, "InvalidArgument", "The secret key was invalid for the specified algorithm.")
        computed = base64.b64encode(hashlib.md5(raw).digest()).decode()
        if computed != md5:
            raise S3Error(400, "InvalidArgument",
                          "The calculated MD5 hash of the key did not match the hash that was provided.")
        return computed

    def _ssec_for_write(self, req: _Request, environ: dict[str, Any]) -> str | None:
        if req.op not in ("PutObject", "CopyObject", "CreateMultipartUpload", "UploadPart"):
            return None
        given = self._customer_key_md5(environ, "HTTP_X_AMZ_SERVER_SIDE_ENCRYPTION_CUSTOMER_")
        if req.op == "UploadPart":
            self._check_part_key(req, given)
            return None
        return given

    @staticmethod
    def _check_part_key(req: _Request, given: str | None) -> None:
        if not _State.ssec_seen:
            return
        try:
            multipart = _backend().get_bucket(req.bucket).multiparts.get(req.param("uploadId") or "")
        except Exception:  # noqa: BLE001 - moto answers a missing bucket itself
            return
        expected = multipart.__dict__.get(SSEC_MD5) if multipart is not None else None
        if expected is None:
            return
        if given is None:
            raise S3Error(400, "InvalidRequest", "The multipart upload initiate requested encryption. Subsequent "
                                                 "part requests must include the appropriate encryption parameters.")
        if given != expected:
            raise S3Error(400, "InvalidRequest", "The provided encryption parameters did not match the ones used "
                                                 "originally.")

    def _check_ssec_read(self, req: _Request, environ: dict[str, Any]) -> None:
        if req.op in _READS:
            key = _lookup(req.bucket, req.key, req.param("versionId"))
            given_prefix = "HTTP_X_AMZ_SERVER_SIDE_ENCRYPTION_CUSTOMER_"
        elif req.op in ("CopyObject", "UploadPartCopy"):
            source = unquote(str(environ.get("HTTP_X_AMZ_COPY_SOURCE", ""))).lstrip("/")
            path, _, qs = source.partition("?")
            bucket, _, key_name = path.partition("/")
            key = _lookup(bucket, key_name, _first(parse_qs(qs), "versionId"))
            given_prefix = "HTTP_X_AMZ_COPY_SOURCE_SERVER_SIDE_ENCRYPTION_CUSTOMER_"
        else:
            return
        expected = key.__dict__.get(SSEC_MD5) if key is not None else None
        if expected is None:
            return
        given = self._customer_key_md5(environ, given_prefix)
        if given is None:
            raise S3Error(400, "InvalidRequest", "The object was stored using a form of Server Side Encryption. "
                                                 "The correct parameters must be provided to retrieve the object.")
        if given != expected:
            raise S3Error(403, "AccessDenied", "Access Denied")

    # -- Object Lock

    def _check_retention_change(self, req: _Request, environ: dict[str, Any]) -> None:
        key = _lookup(req.bucket, req.key, req.param("versionId"))
        if key is None or not key.lock_mode:
            return
        old_until = _until(key.lock_until)
        if old_until is None or old_until <= datetime.now(UTC):
            return
        root = _xml_root(_read_body(environ))
        mode = _child_text(root, "Mode")
        new_until = _until(_child_text(root, "RetainUntilDate"))
        weaker = (not mode or new_until is None or new_until < old_until
                  or (key.lock_mode == "COMPLIANCE" and mode != "COMPLIANCE"))
        if not weaker:
            return
        bypass = str(environ.get("HTTP_X_AMZ_BYPASS_GOVERNANCE_RETENTION", "")).lower() == "true"
        if key.lock_mode == "COMPLIANCE" or not bypass:
            raise S3Error(403, "AccessDenied", LOCKED_MESSAGE)

    @staticmethod
    def _get_retention(req: _Request, start_response: StartResponse) -> list[bytes]:
        """GetObjectRetention, which moto lacks."""
        key = _lookup(req.bucket, req.key, req.param("versionId"))
        if key is None:
            raise S3Error(404, "NoSuchKey", "The specified key does not exist.")
        if not key.lock_mode or not key.lock_until:
            raise S3Error(404, "NoSuchObjectLockConfiguration",
                          "The specified object does not have a ObjectLock configuration")
        until = _until(key.lock_until)
        stamp = until.strftime("%Y-%m-%dT%H:%M:%S.000Z") if until else str(key.lock_until)
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Retention xmlns="{S3_NS}"><Mode>{escape(key.lock_mode)}'
                f"</Mode><RetainUntilDate>{stamp}</RetainUntilDate></Retention>").encode()
        start_response("200 OK", [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
        return [body]

    # -- archive restore of a named version (moto restores the current one whatever the versionId)

    def _restore_version(self, req: _Request, environ: dict[str, Any],
                         start_response: StartResponse) -> list[bytes]:
        from moto.s3.utils import ARCHIVE_STORAGE_CLASSES

        key = _lookup(req.bucket, req.key, req.param("versionId"))
        if key is None:
            raise S3Error(404, "NoSuchVersion", "The specified version does not exist.")
        if key.storage_class not in ARCHIVE_STORAGE_CLASSES:
            raise S3Error(403, "InvalidObjectState", "The operation is not valid for the object's storage class",
                          StorageClass=str(key.storage_class))
        body = _read_body(environ)
        days_text = _child_text(_xml_root(body), "Days") if body.strip() else None
        restored_before = key.expiry_date is not None
        key.restore(int(days_text or 1))
        start_response("200 OK" if restored_before else "202 Accepted", [("Content-Length", "0")])
        return [b""]

    # -- DeleteObjects with per-key ETag conditions

    def _delete_objects(self, req: _Request, environ: dict[str, Any], start_response: StartResponse,
                        action: Action) -> Iterable[bytes]:
        try:
            body = _read_body(environ)
            if b"ETag>" not in body:
                return self._passthrough(environ, action, start_response)
            root = _xml_root(body)
            kept: list[tuple[str, str | None]] = []
            errors: list[str] = []
            quiet = False
            for elem in root:
                name = _local(elem.tag)
                if name == "Quiet":
                    quiet = (elem.text or "").strip().lower() == "true"
                    continue
                if name != "Object":
                    continue
                key = _child_text(elem, "Key") or ""
                version = _child_text(elem, "VersionId")
                etag = _child_text(elem, "ETag")
                failure = self._etag_failure(req.bucket, key, etag) if etag is not None else None
                if failure is None:
                    kept.append((key, version))
                else:
                    version_xml = f"<VersionId>{escape(version)}</VersionId>" if version else ""
                    errors.append(f"<Error><Key>{escape(key)}</Key>{version_xml}<Code>{failure[0]}</Code>"
                                  f"<Message>{failure[1]}</Message></Error>")
        except S3Error as err:
            return _error_response(err, req.method, start_response)
        if not errors:
            return self._passthrough(environ, action, start_response)
        if kept:
            parts = ["<Delete>", "<Quiet>true</Quiet>" if quiet else ""]
            for key, version in kept:
                v = f"<VersionId>{escape(version)}</VersionId>" if version else ""
                parts.append(f"<Object><Key>{escape(key)}</Key>{v}</Object>")
            parts.append("</Delete>")
            _set_body(environ, "".join(parts).encode())
            for name in ["HTTP_CONTENT_MD5"] + [f"HTTP_X_AMZ_CHECKSUM_{a.upper()}" for a in _CHECKSUM_ALGS]:
                environ.pop(name, None)  # they were checked against the original body
            status, headers, out = self._call(environ)
            if not status.startswith("2"):
                return self._finish(environ, action, status, headers, out, start_response)
        else:
            status = "200 OK"
            headers = [("Content-Type", "application/xml")]
            out = f'<?xml version="1.0" encoding="UTF-8"?>\n<DeleteResult xmlns="{S3_NS}"></DeleteResult>'.encode()
        out = out.replace(b"</DeleteResult>", "".join(errors).encode() + b"</DeleteResult>")
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(out))))
        return self._finish(environ, action, status, headers, out, start_response)

    def _passthrough(self, environ: dict[str, Any], action: Action,
                     start_response: StartResponse) -> Iterable[bytes]:
        if action.kind is None:
            return self.app(environ, start_response)
        status, headers, body = self._call(environ)
        return self._finish(environ, action, status, headers, body, start_response)

    @staticmethod
    def _etag_failure(bucket: str, key: str, etag: str) -> tuple[str, str] | None:
        current = _lookup(bucket, key, None)  # S3 evaluates delete conditions against the current version
        if current is None:
            return ("NoSuchKey", "The specified key does not exist.")
        if etag.strip() == "*" or etag.strip().strip('"') == str(current.etag).strip('"'):
            return None
        return ("PreconditionFailed", "At least one of the pre-conditions you specified did not hold")

    # -- control paths

    def _control(self, environ: dict[str, Any], start_response: StartResponse, path: str) -> list[bytes]:
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        body = _read_body(environ) if method == "POST" else b""
        try:
            status, payload = self._control_answer(method, path, body)
        except S3Error as err:
            status, payload = err.status, {"error": err.message}
        data = json.dumps(payload).encode()
        start_response(_status_line(status), [("Content-Type", "application/json"),
                                              ("Content-Length", str(len(data)))])
        return [data]

    def _control_answer(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        if path == CONTROL_PATH:
            return self.faults.control(method, body)
        if method == "GET" and path == "/_emulator/stats":
            requests = self.faults.requests()
            return 200, {"requests": requests, "total": sum(requests.values()), "injected": self.faults.injected()}
        if method == "POST" and path == "/_emulator/reset":
            from moto.moto_api._internal.models import moto_api_backend

            moto_api_backend.reset()
            self.faults.reset()
            _State.ssec_seen = False
            return 200, {"status": "ok"}
        if method == "POST" and path == "/_emulator/replication-status":
            return 200, self._seed_status(_json_object(body))
        if method == "POST" and path == "/_emulator/replicate":
            return 200, self._replicate(_json_object(body))
        return 404, {"error": f"no emulator endpoint {method} {path}"}

    @staticmethod
    def _object(payload: dict[str, Any]) -> Any:
        bucket, key, version = payload.get("bucket"), payload.get("key"), payload.get("version_id")
        if not isinstance(bucket, str) or not isinstance(key, str):
            raise S3Error(400, "InvalidRequest", "bucket and key are required strings")
        found = _lookup(bucket, key, str(version) if version is not None else None)
        if found is None:
            raise S3Error(404, "NoSuchKey", f"no object {bucket}/{key} version {version}")
        return found

    def _seed_status(self, payload: dict[str, Any]) -> dict[str, Any]:
        key = self._object(payload)
        status = payload.get("status")
        if status is None:
            _extra(key).pop("x-amz-replication-status", None)
        elif status in REPLICATION_STATUSES:
            _extra(key)["x-amz-replication-status"] = str(status)
        else:
            raise S3Error(400, "InvalidRequest", f"status must be one of {sorted(REPLICATION_STATUSES)} or null")
        return {"bucket": payload["bucket"], "key": payload["key"], "version_id": key.version_id, "status": status}

    def _replicate(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Copy one version to its rules' destinations, as S3 replication does: same version id, REPLICA."""
        source = self._object(payload)
        backend = _backend()
        rules = _matching_rules(backend.get_bucket(payload["bucket"]), source.name)
        if not rules:
            raise S3Error(400, "InvalidRequest", "no enabled replication rule of this bucket covers the key")
        replicas = []
        for rule in rules:
            dest_name = _destination_bucket(rule)
            dest_bucket = backend.get_bucket(dest_name)
            storage = (rule.get("Destination") or {}).get("StorageClass") or source.storage_class
            copy = backend.put_object(dest_name, source.name, source.value, storage=storage,
                                      etag=str(source.etag).strip('"'), encryption=source.encryption,
                                      kms_key_id=source.kms_key_id, lock_mode=source.lock_mode,
                                      lock_legal_status=source.lock_legal_status, lock_until=source.lock_until,
                                      checksum_value=source.checksum_value, disable_notification=True)
            if dest_bucket.is_versioned:
                copy._version_id = source.version_id
            copy.set_metadata(dict(source.metadata))
            copy.checksum_algorithm = source.checksum_algorithm
            copy.checksum_type = source.checksum_type
            if SSEC_MD5 in source.__dict__:
                copy.__dict__[SSEC_MD5] = source.__dict__[SSEC_MD5]
            extra = _extra(copy)
            extra.clear()
            extra.update({k: v for k, v in _extra(source).items() if k != "x-amz-replication-status"})
            extra["x-amz-replication-status"] = "REPLICA"
            replicas.append({"bucket": dest_name, "key": copy.name, "version_id": copy.version_id})
        _extra(source)["x-amz-replication-status"] = "COMPLETED"
        return {"source": {"bucket": payload["bucket"], "key": source.name, "version_id": source.version_id},
                "replicas": replicas}


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        raise S3Error(400, "InvalidRequest", "the body must be a JSON object") from None
    if not isinstance(data, dict):
        raise S3Error(400, "InvalidRequest", "the body must be a JSON object")
    return data


# ------------------------------------------------------------------------------------- server

_patched = threading.Lock()
_patches_done = False


def build_app(faults: FaultInjector | None = None) -> S3Layer:
    """moto's WSGI app behind the layer. moto's patches are process-wide and applied once."""
    global _patches_done
    with _patched:
        if not _patches_done:
            _cache_module_list()
            _fast_version_listing()
            _patch_models()
            _patches_done = True
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    return S3Layer(DomainDispatcherApplication(create_backend_app), faults)


# ------------------------------------------------------------------------------------- serving
#
# werkzeug's handler sends "Connection: close" on every answer because http.server cannot find the end of a
# request body the app left unread. Real S3 keeps connections alive, and closing costs each client a TCP
# connect per request (and the server a thread per request). The handler below keeps HTTP/1.1 connections
# open when the next request line can be found for certain: the request body is read through a counting
# wrapper and drained to its Content-Length, and every answer is framed (Content-Length or chunked, nothing
# for HEAD/1xx/204/304). Anything else closes the connection as before: a chunked or malformed request
# body, an answer that cannot be framed, a client that asked for close, an error or a dropped connection
# mid-answer, and an answer body shorter than its Content-Length (the truncate fault: the client must see
# a short read, not wait for bytes that never come).

IDLE_TIMEOUT = 60.0  # seconds a kept-alive connection may idle (or one read or write may stall)
_SMALL = 64 * 1024  # join pieces below this size into one send; larger pieces are not copied
_DRAIN_CHUNK = 1024 * 1024


class _Body(io.RawIOBase):
    """``wsgi.input``: at most Content-Length bytes of the connection, counted so the rest can be drained.

    A client that closes before sending all it announced is a dropped connection (ConnectionError), never a
    short body that the app might store.
    """

    def __init__(self, stream: Any, length: int) -> None:
        super().__init__()
        self._stream = stream
        self.remaining = length

    def readable(self) -> bool:
        return True

    def _take(self, data: bytes, complete: bool) -> bytes:
        if not complete:
            raise ConnectionAbortedError("the client closed the connection inside the request body")
        self.remaining -= len(data)
        return data

    def read(self, size: int | None = -1) -> bytes:
        size = self.remaining if size is None or size < 0 else min(size, self.remaining)
        if not size:
            return b""
        data = self._stream.read(size)
        return self._take(data, len(data) == size)

    def readall(self) -> bytes:
        return self.read(-1)

    def readline(self, size: int | None = -1) -> bytes:
        size = self.remaining if size is None or size < 0 else min(size, self.remaining)
        if not size:
            return b""
        line = self._stream.readline(size)
        return self._take(line, len(line) == size or line.endswith(b"\n"))

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(memoryview(buffer).cast("B")))
        memoryview(buffer).cast("B")[: len(data)] = data
        return len(data)

    def drain(self) -> None:
        """Read and discard what the app left unread, so the next request line is next on the wire."""
        while self.remaining:
            self.read(min(self.remaining, _DRAIN_CHUNK))


class _Answer:
    """One response: WSGI ``start_response``/``write`` with keep-alive framing."""

    def __init__(self, handler: _KeepAliveHandler, keep_alive: bool) -> None:
        self.handler = handler
        self.keep_alive = keep_alive  # False: the request itself rules out another request on this connection
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.started = False
        self.chunked = False
        self.bodyless = False
        self.length: int | None = None  # the declared Content-Length
        self.sent = 0

    def start_response(self, status: str, headers: list[tuple[str, str]],
                       exc_info: Any = None) -> Callable[[bytes], None]:
        if exc_info:
            try:
                if self.started:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("start_response called twice")
        self.status, self.headers = status, list(headers)
        return self.write

    def _head(self) -> bytes:
        handler = self.handler
        if self.status is None:  # an application bug; raised as wsgiref and start_response above do
            raise AssertionError("write() before start_response")
        code_text, _, reason = self.status.partition(" ")
        code = int(code_text)
        names = {name.lower(): value for name, value in self.headers}
        self.bodyless = handler.command == "HEAD" or 100 <= code < 200 or code in (204, 304)
        framed = self.bodyless
        if "content-length" in names:
            self.length, framed = int(names["content-length"]), True
        elif not self.bodyless and "transfer-encoding" not in names and handler.request_version == "HTTP/1.1":
            self.chunked = framed = True
        keep = (self.keep_alive and framed and not handler.close_connection
                and names.get("connection", "").lower() != "close" and not handler.server.closing)
        lines = [f"{handler.protocol_version} {code} {reason}"]
        if "server" not in names:
            lines.append(f"Server: {handler.version_string()}")
        if "date" not in names:
            lines.append(f"Date: {handler.date_time_string()}")
        lines.extend(f"{name}: {value}" for name, value in self.headers if name.lower() != "connection")
        if self.chunked:
            lines.append("Transfer-Encoding: chunked")
        if not keep:
            handler.close_connection = True
            lines.append("Connection: close")
        elif handler.request_version != "HTTP/1.1":
            lines.append("Connection: keep-alive")  # an HTTP/1.0 client that asked for it
        self.started = True
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def write(self, data: bytes) -> None:
        head = b"" if self.started else self._head()
        if self.bodyless:
            data = b""
        elif self.length is not None and self.sent + len(data) > self.length:
            data = data[: self.length - self.sent]  # never send past the frame; the connection cannot be reused
            self.handler.close_connection = True
        self.sent += len(data)
        if self.chunked and data:
            self._send(head, b"%x\r\n" % len(data), data, b"\r\n")
        else:
            self._send(head, data)

    def finish(self) -> None:
        if not self.started:
            self.write(b"")
        if self.chunked:
            self._send(b"0\r\n\r\n")
        elif self.length is not None and not self.bodyless and self.sent < self.length:
            self.handler.close_connection = True  # a cut body (truncate fault): the client must see it end

    def _send(self, *parts: bytes) -> None:
        if sum(map(len, parts)) <= _SMALL:
            parts = (b"".join(parts),)
        for part in parts:
            if part:
                self.handler.wfile.write(part)


class _KeepAliveHandler(WSGIRequestHandler):
    """werkzeug's WSGI handler with HTTP/1.1 keep-alive (see the comment above)."""

    server: S3Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = IDLE_TIMEOUT

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, idle=True)

    def finish(self) -> None:
        self.server.untrack(self.connection)
        super().finish()

    def parse_request(self) -> bool:
        self.server.track(self.connection, idle=False)  # a request line arrived: no longer idle
        return super().parse_request()

    def handle_one_request(self) -> None:
        super().handle_one_request()
        if not self.close_connection:
            self.server.track(self.connection, idle=True)

    def handle(self) -> None:
        try:
            super().handle()
        except OSError:
            if self.connection.fileno() != -1:
                raise  # a real error; -1 means the fault hook reset this connection on purpose

    def log_error(self, format: str, *args: Any) -> None:
        if not format.startswith("Request timed out"):  # an idle keep-alive connection expiring is normal
            super().log_error(format, *args)

    def _request_body(self, environ: dict[str, Any]) -> _Body | None:
        """The counted body, or None when its end cannot be found for certain (the connection then closes)."""
        if "HTTP_TRANSFER_ENCODING" in environ or len(self.headers.get_all("Content-Length") or ()) > 1:
            return None  # werkzeug decodes chunked bodies; their end (and trailers) is not ours to find
        text = str(environ.get("CONTENT_LENGTH") or "0").strip()
        if not text.isdigit():
            return None
        body = _Body(self.rfile, int(text))
        environ["wsgi.input"] = body
        return body

    def run_wsgi(self) -> None:
        if self.headers.get("Expect", "").lower().strip(" \t") == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self.environ = environ = self.make_environ()
        body = self._request_body(environ)
        answer = _Answer(self, keep_alive=body is not None)
        try:
            result = self.server.app(environ, answer.start_response)
            try:
                for data in result:
                    answer.write(data)
                answer.finish()
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
            if body is not None and not self.close_connection:
                body.drain()
        except (ConnectionError, TimeoutError) as exc:
            self.close_connection = True
            self.connection_dropped(exc, environ)
        except Exception:  # noqa: BLE001 - the app's bug: log it, answer 500 if nothing was sent, close
            self.close_connection = True
            if self.connection.fileno() == -1:
                return  # the fault hook reset the connection
            self.server.log("error", f"Error on request:\n{traceback.format_exc()}")
            if not answer.started:
                error = b"Internal Server Error"
                answer = _Answer(self, keep_alive=False)
                answer.start_response("500 INTERNAL SERVER ERROR", [
                    ("Content-Type", "text/plain"), ("Content-Length", str(len(error)))])
                with contextlib.suppress(OSError):
                    answer.write(error)


class S3Server(ThreadedWSGIServer):
    """The threaded werkzeug server with keep-alive connections.

    ``accepted`` counts TCP connections accepted. ``shutdown()`` and ``server_close()`` also end the
    connections that sit idle between requests, so a stopped server answers nothing on old connections.
    """

    daemon_threads = True

    def __init__(self, host: str, port: int, app: Any, handler: type[WSGIRequestHandler]) -> None:
        super().__init__(host, port, app, handler)
        self.accepted = 0
        self.closing = False
        self._lock = threading.Lock()
        self._idle: dict[socket.socket, bool] = {}  # open connection -> waiting for a request line

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._lock:
            self.accepted += 1
        super().process_request(request, client_address)

    def track(self, conn: socket.socket, *, idle: bool) -> None:
        with self._lock:
            self._idle[conn] = idle
            closing = self.closing
        if closing and idle:
            _end(conn)

    def untrack(self, conn: socket.socket) -> None:
        with self._lock:
            self._idle.pop(conn, None)

    def _end_idle(self) -> None:
        with self._lock:
            self.closing = True
            idle = [conn for conn, waiting in self._idle.items() if waiting]
        for conn in idle:
            _end(conn)

    def shutdown(self) -> None:
        super().shutdown()
        self._end_idle()

    def server_close(self) -> None:
        self._end_idle()
        super().server_close()


def _end(conn: socket.socket) -> None:
    """Wake the handler blocked reading the next request line: it sees end of stream and closes."""
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_RDWR)


def make_server(host: str = "127.0.0.1", port: int = 0, app: S3Layer | None = None) -> S3Server:
    """A threaded werkzeug server for the layer, loopback only (``serve_forever``/``shutdown``), keep-alive."""
    if not is_loopback_host(host):
        raise ValueError(f"the S3 endpoint listens on loopback only, not {host!r}")
    import logging

    from moto.moto_server.werkzeug_app import MotoRequestHandler

    class Handler(_KeepAliveHandler, MotoRequestHandler):  # moto's make_environ keeps underscored headers
        pass

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no per-request log lines
    return S3Server(host, port, app or build_app(), Handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="migrator-sandbox-s3")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready-file", type=Path, required=True)
    args = parser.parse_args(argv)
    if not is_loopback_host(args.host):
        print(f"refusing non-loopback host {args.host}", file=sys.stderr)
        return 2
    server = make_server(args.host, args.port)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    write_ready(args.ready_file, int(server.server_address[1]))
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
