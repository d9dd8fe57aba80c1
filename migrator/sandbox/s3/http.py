"""The S3 endpoint's HTTP side: ``S3Layer``, a WSGI middleware in front of moto's app.

Per request, in order: the control paths (``/_emulator/...``) are answered here, and moto's own
``/moto-api/`` passes through; every other request is classified into its S3 API operation (the names the
stats count and the fault hook is keyed by: ``GetObject``, ``PutObject``, ``UploadPart``,
``DeleteObjects``, ``ListObjectVersions``, ...), the fault hook has its say first, the checks of
:mod:`migrator.sandbox.s3.checks` and the rules of :mod:`migrator.sandbox.s3.service` run (a flipped PUT body
meets the checksum check), and moto answers; HEAD with ``ChecksumMode=ENABLED`` and CompleteMultipartUpload
answers are then put right. The layer reads a request body only when a checksum, a fault or an XML document's
checks need it; ``aws-chunked`` bodies are decoded to check a header or trailer checksum and passed on
unchanged. An
:class:`~migrator.sandbox.base.ApiError` becomes S3's XML ``<Error>`` (no body for HEAD).

Control paths (unsigned): ``GET /_emulator/stats`` (requests per operation, from the fault hook),
``POST /_emulator/reset`` (moto's state, counts, faults), ``GET|POST /_emulator/faults``,
``POST /_emulator/replication-status`` (JSON ``{"bucket", "key", "version_id"?, "status"}``) and
``POST /_emulator/replicate`` (JSON ``{"bucket", "key", "version_id"?}``).
"""

from __future__ import annotations

import http
import io
import json
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote
from xml.sax.saxutils import escape

from migrator.sandbox.base import ApiError, FaultErrors, fault_error
from migrator.sandbox.faults import CONTROL_PATH, Action, FaultInjector, abort_connection
from migrator.sandbox.s3 import checks, model, service
from migrator.sandbox.s3.checks import child_text, local, xml_root
from migrator.sandbox.s3.model import LayerState, lookup, request_local
from migrator.sandbox.s3.service import CHECKSUM_ALGORITHMS

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
StartResponse = Callable[..., Any]

S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
FAULT_ERRORS: FaultErrors = {
    500: ("InternalError", "We encountered an internal error. Please try again."),
    503: ("SlowDown", "Please reduce your request rate."),
    429: ("TooManyRequestsException", "Too many requests."),
    501: ("NotImplemented", "A header you provided implies functionality that is not implemented.")}
# The account every bucket of this server belongs to (moto's default account): one server, one owner.
DEFAULT_OWNER = "123456789012"
# The access key id of a SigV4 ("Credential=AKID/date/region/s3/aws4_request") or SigV2 ("AWS AKID:sig") header.
_SIGV4_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")
_SIGV2 = re.compile(r"^AWS ([^:\s]+):")
# Calls without the bucket owner condition: no bucket (ListBuckets), or none yet to own (CreateBucket).
_NO_OWNER_CONDITION = frozenset({"ListBuckets", "CreateBucket"})


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
_NO_BODY_CHECKSUM = frozenset({"CompleteMultipartUpload", "CopyObject", "UploadPartCopy"})
_UPLOADS = frozenset({"UploadPart", "UploadPartCopy", "CompleteMultipartUpload"})
# calls about one object version, which S3 refuses on a delete marker: operation -> the method S3 names
_ON_VERSION = {"PutObjectLegalHold": "PUT", "GetObjectLegalHold": "GET", "PutObjectRetention": "PUT",
               "GetObjectRetention": "GET", "PutObjectTagging": "PUT", "GetObjectTagging": "GET",
               "DeleteObjectTagging": "DELETE"}


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


def _signer(environ: dict[str, Any]) -> str | None:
    """The access key id a request is signed with (header or presigned query), or None when unsigned."""
    auth = str(environ.get("HTTP_AUTHORIZATION") or "")
    found = _SIGV4_CREDENTIAL.search(auth) or _SIGV2.match(auth)
    if found:
        return found.group(1)
    query = parse_qs(str(environ.get("QUERY_STRING") or ""))
    credential = _first(query, "X-Amz-Credential")
    if credential:
        return credential.partition("/")[0]
    return _first(query, "AWSAccessKeyId")


def _status_line(status: int) -> str:
    try:
        return f"{status} {http.HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Error"


def _error_response(err: ApiError, method: str, start_response: StartResponse) -> list[bytes]:
    rid = secrets.token_hex(8).upper()
    extra = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in err.fields.items())
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{err.code}</Code>'
            f"<Message>{escape(err.message)}</Message>{extra}<RequestId>{rid}</RequestId>"
            f"<HostId>{rid}</HostId></Error>").encode()
    headers = [("Content-Type", "application/xml"), ("x-amz-request-id", rid)]
    if isinstance(err, service.DeleteMarkerError):
        headers.extend(err.headers.items())
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
            raise ApiError(400, "IncompleteBody", "The request body terminated unexpectedly")
        try:
            size = int(raw[pos:end].split(b";", 1)[0].strip() or b"0", 16)
        except ValueError:
            raise ApiError(400, "InvalidRequest", "Malformed aws-chunked body") from None
        pos = end + 2
        if size == 0:
            break
        if pos + size > len(raw):
            raise ApiError(400, "IncompleteBody", "The request body terminated unexpectedly")
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


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        raise ApiError(400, "InvalidRequest", "the body must be a JSON object") from None
    if not isinstance(data, dict):
        raise ApiError(400, "InvalidRequest", "the body must be a JSON object")
    return data


# ------------------------------------------------------------------------------------- the layer

class S3Layer:
    """WSGI middleware in front of moto; see the module docstring for what it adds."""

    def __init__(self, app: WSGIApp, faults: FaultInjector | None = None, owner: str = DEFAULT_OWNER,
                 access_key: str | None = None, path_only: bool = False) -> None:
        self.app = app
        self.faults = faults or FaultInjector("s3")
        self.owner = owner
        self.access_key = access_key  # None: any signer, as moto; else only this key id is known
        self.path_only = path_only    # a store with no virtual-hosted buckets: the Host never names one

    # -- WSGI entry

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO") or "")
        if path.startswith("/_emulator/"):
            return self._control(environ, start_response, path)
        if path.startswith("/moto-api/"):
            return self.app(environ, start_response)
        if self.path_only:  # moto would read a bucket from a "bucket.localhost" Host; this store does not
            environ["HTTP_HOST"] = f"127.0.0.1:{environ.get('SERVER_PORT', '')}"
        req = _classify(environ)
        try:
            self._check_signer(environ)
            self._check_owner(req, environ)
        except ApiError as err:
            # Refused unread: read the body first, as the checks below do, or a client still sending it
            # may see the connection end (TLS EOF) before it reads the 403.
            _read_body(environ)
            return _error_response(err, req.method, start_response)
        action = self.faults.before(req.op, data_in=req.op in _DATA_IN, data_out=req.op == "GetObject")
        if action.drop_before:
            self._drop(environ)
        if action.status is not None:
            return _error_response(fault_error(action.status, FAULT_ERRORS), req.method, start_response)
        try:
            handled = self._prepare(req, environ, action, start_response)
            if handled is not None:
                return handled
            ssec_md5 = self._ssec_for_write(req, environ)
        except ApiError as err:
            return _error_response(err, req.method, start_response)
        if req.op == "DeleteObjects":
            return self._delete_objects(req, environ, start_response, action)
        amend = self._amends(req, environ)
        if action.kind is None and ssec_md5 is None and not amend:
            return self.app(environ, start_response)  # the fast path: most requests
        request_local.ssec = ssec_md5
        try:
            status, headers, body = self._call(environ)
        finally:
            request_local.ssec = None
        if amend and status.startswith("2"):
            headers, body = self._amend(req, headers, body)
        return self._finish(environ, action, status, headers, body, start_response)

    # -- faults

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

    # -- answers moto gets wrong, put right after it

    @staticmethod
    def _amends(req: _Request, environ: dict[str, Any]) -> bool:
        """HEAD with ChecksumMode ENABLED and CompleteMultipartUpload: their checksums are put right."""
        if req.op == "CompleteMultipartUpload":
            return True
        return (req.op == "HeadObject" and "partNumber" not in req.query
                and str(environ.get("HTTP_X_AMZ_CHECKSUM_MODE", "")).upper() == "ENABLED")

    @staticmethod
    def _amend(req: _Request, headers: list[tuple[str, str]], body: bytes) -> tuple[list[tuple[str, str]], bytes]:
        version = next((v for k, v in headers if k.lower() == "x-amz-version-id"), None)
        key = lookup(req.bucket, req.key, version if req.op == "CompleteMultipartUpload" else req.param("versionId"))
        if key is None:
            return headers, body
        if req.op == "HeadObject":  # as GET answers: a composite checksum with its -N, and its type
            fixed = service.checksum_headers(key)
            return [(k, v) for k, v in headers if k.lower() not in fixed] + list(fixed.items()), body
        closing = b"</CompleteMultipartUploadResult>"
        if b"<Checksum" in body or closing not in body:
            return headers, body
        body = body.replace(closing, service.completion_checksum_xml(key).encode() + closing)
        return [(k, v) for k, v in headers if k.lower() != "content-length"] + [("Content-Length", str(len(body)))], \
            body

    # -- checks before moto

    def _check_signer(self, environ: dict[str, Any]) -> None:
        """With ``access_key`` set, only that key id is known: another is 403 InvalidAccessKeyId (S3's code
        and message, naming the key), an unsigned request 403 AccessDenied. The signature itself is not
        checked (moto does not either): the point is that another store's credentials are refused."""
        if self.access_key is None:
            return
        key_id = _signer(environ)
        if key_id is None:
            raise ApiError(403, "AccessDenied", "Access Denied")
        if key_id != self.access_key:
            raise ApiError(403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our "
                           "records.", AWSAccessKeyId=key_id)

    def _check_owner(self, req: _Request, environ: dict[str, Any]) -> None:
        """The bucket owner condition (moto ignores it): an ``x-amz-expected-bucket-owner`` (or, for a copy,
        ``x-amz-source-expected-bucket-owner``) naming another account is 403 AccessDenied, as S3 answers."""
        if req.op in _NO_OWNER_CONDITION:
            return
        for header in ("HTTP_X_AMZ_EXPECTED_BUCKET_OWNER", "HTTP_X_AMZ_SOURCE_EXPECTED_BUCKET_OWNER"):
            expected = environ.get(header)
            if expected is not None and str(expected).strip() != self.owner:
                raise ApiError(403, "AccessDenied", "Access Denied")

    def _prepare(self, req: _Request, environ: dict[str, Any], action: Action,
                 start_response: StartResponse) -> Iterable[bytes] | None:
        op = req.op
        if action.kind == "flip-put":
            self._flip_put(environ, action)
        if op not in _NO_BODY_CHECKSUM:
            self._check_digests(environ, op)
        checks.check_parameters(op, req.bucket, req.query, environ)
        document = checks.check_document(op, self._xml_body(environ)) if op in checks.DOCUMENTS else None
        if LayerState.ssec_seen:
            self._check_ssec_read(req, environ)
        if op in _UPLOADS:
            service.check_upload(req.bucket, req.key, req.param("uploadId") or "", op == "CompleteMultipartUpload")
        if op == "CompleteMultipartUpload" and environ.get("HTTP_IF_MATCH"):
            service.check_complete_if_match(req.bucket, req.key, str(environ["HTTP_IF_MATCH"]))
        version = service.object_version(req.bucket, req.key, req.param("versionId"), _ON_VERSION[op]) \
            if op in _ON_VERSION else None
        if op == "PutObjectRetention":
            self._check_retention_change(req, environ, document)
        if op == "GetObjectRetention":
            return self._get_retention(req, version, start_response)
        if op == "RestoreObject":
            return self._restore(req, document, start_response)
        return None

    @staticmethod
    def _xml_body(environ: dict[str, Any]) -> bytes:
        raw = _read_body(environ)
        return _decode_aws_chunked(raw)[0] if _is_aws_chunked(environ) else raw

    def _flip_put(self, environ: dict[str, Any], action: Action) -> None:
        raw = _read_body(environ)
        if _is_aws_chunked(environ):
            data, trailers = _decode_aws_chunked(raw)
            _set_body(environ, _encode_aws_chunked(action.request_body(data), trailers))
        else:
            _set_body(environ, action.request_body(raw))

    def _check_digests(self, environ: dict[str, Any], op: str) -> None:
        content_md5 = environ.get("HTTP_CONTENT_MD5")
        declared = {alg: str(environ[name]) for alg in CHECKSUM_ALGORITHMS
                    if (name := f"HTTP_X_AMZ_CHECKSUM_{alg.upper()}") in environ}
        chunked = _is_aws_chunked(environ)
        trailer = str(environ.get("HTTP_X_AMZ_TRAILER", "")).lower()
        if content_md5 is None and not declared and not (chunked and trailer.startswith("x-amz-checksum-")):
            return
        raw = _read_body(environ)
        if chunked:
            data, trailers = _decode_aws_chunked(raw)
            for alg in CHECKSUM_ALGORITHMS:
                value = trailers.get(f"x-amz-checksum-{alg}")
                if value is not None:
                    declared.setdefault(alg, value)
        else:
            data = raw
        service.verify_checksums(data, declared, None if content_md5 is None else str(content_md5))
        if declared and op in _DATA_IN and "HTTP_X_AMZ_SDK_CHECKSUM_ALGORITHM" not in environ:
            # S3 keeps a checksum sent without its algorithm header; moto keeps it only with the header.
            environ["HTTP_X_AMZ_SDK_CHECKSUM_ALGORITHM"] = next(iter(declared)).upper()

    # -- SSE-C

    @staticmethod
    def _customer_key(environ: dict[str, Any], prefix: str) -> service.CustomerKey:
        """The customer key headers ``prefix``-* as sent."""
        return service.CustomerKey(environ.get(f"{prefix}ALGORITHM"), environ.get(f"{prefix}KEY"),
                                   environ.get(f"{prefix}KEY_MD5"))

    def _ssec_for_write(self, req: _Request, environ: dict[str, Any]) -> str | None:
        if req.op not in ("PutObject", "CopyObject", "CreateMultipartUpload", "UploadPart"):
            return None
        given = service.customer_key_md5(self._customer_key(environ, "HTTP_X_AMZ_SERVER_SIDE_ENCRYPTION_CUSTOMER_"))
        if req.op == "UploadPart":
            service.check_part_key(req.bucket, req.param("uploadId") or "", given)
            return None
        return given

    def _check_ssec_read(self, req: _Request, environ: dict[str, Any]) -> None:
        if req.op in _READS:
            key = lookup(req.bucket, req.key, req.param("versionId"))
            given_prefix = "HTTP_X_AMZ_SERVER_SIDE_ENCRYPTION_CUSTOMER_"
        elif req.op in ("CopyObject", "UploadPartCopy"):
            source = unquote(str(environ.get("HTTP_X_AMZ_COPY_SOURCE", ""))).lstrip("/")
            path, _, qs = source.partition("?")
            bucket, _, key_name = path.partition("/")
            key = lookup(bucket, key_name, _first(parse_qs(qs), "versionId"))
            given_prefix = "HTTP_X_AMZ_COPY_SOURCE_SERVER_SIDE_ENCRYPTION_CUSTOMER_"
        else:
            return
        service.check_ssec_read(key, self._customer_key(environ, given_prefix))

    # -- Object Lock

    @staticmethod
    def _check_retention_change(req: _Request, environ: dict[str, Any], root: Any) -> None:
        in_force = service.retention_in_force(req.bucket, req.key, req.param("versionId"))
        if in_force is None or root is None:
            return  # nothing to weaken: the body is left to moto
        key, old_until = in_force
        bypass = str(environ.get("HTTP_X_AMZ_BYPASS_GOVERNANCE_RETENTION", "")).lower() == "true"
        service.check_retention_change(key, old_until, child_text(root, "Mode"),
                                       child_text(root, "RetainUntilDate"), bypass)

    @staticmethod
    def _get_retention(req: _Request, key: Any, start_response: StartResponse) -> list[bytes]:
        """GetObjectRetention, which moto lacks."""
        mode, stamp = service.retention(req.bucket, key)
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Retention xmlns="{S3_NS}"><Mode>{escape(mode)}'
                f"</Mode><RetainUntilDate>{stamp}</RetainUntilDate></Retention>").encode()
        start_response("200 OK", [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
        return [body]

    # -- archive restores (moto restores the current version whatever the versionId, and fails with a 500 on
    #    a malformed request)

    @staticmethod
    def _restore(req: _Request, document: Any, start_response: StartResponse) -> list[bytes]:
        days = checks.restore_days(document)
        key = service.restorable_version(req.bucket, req.key, req.param("versionId"))
        restored_before = service.restore(key, days)
        start_response("200 OK" if restored_before else "202 Accepted", [("Content-Length", "0")])
        return [b""]

    # -- DeleteObjects with per-key ETag conditions

    def _delete_objects(self, req: _Request, environ: dict[str, Any], start_response: StartResponse,
                        action: Action) -> Iterable[bytes]:
        try:
            body = _read_body(environ)
            if b"ETag>" not in body:
                return self._passthrough(environ, action, start_response)
            root = xml_root(body)
            kept: list[tuple[str, str | None]] = []
            errors: list[str] = []
            quiet = False
            for elem in root:
                name = local(elem.tag)
                if name == "Quiet":
                    quiet = (elem.text or "").strip().lower() == "true"
                    continue
                if name != "Object":
                    continue
                key = child_text(elem, "Key") or ""
                version = child_text(elem, "VersionId")
                etag = child_text(elem, "ETag")
                failure = service.etag_failure(req.bucket, key, etag) if etag is not None else None
                if failure is None:
                    kept.append((key, version))
                else:
                    version_xml = f"<VersionId>{escape(version)}</VersionId>" if version else ""
                    errors.append(f"<Error><Key>{escape(key)}</Key>{version_xml}<Code>{failure[0]}</Code>"
                                  f"<Message>{failure[1]}</Message></Error>")
        except ApiError as err:
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
            for name in ["HTTP_CONTENT_MD5"] + [f"HTTP_X_AMZ_CHECKSUM_{a.upper()}" for a in CHECKSUM_ALGORITHMS]:
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

    # -- control paths

    def _control(self, environ: dict[str, Any], start_response: StartResponse, path: str) -> list[bytes]:
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        body = _read_body(environ) if method == "POST" else b""
        try:
            status, payload = self._control_answer(method, path, body)
        except ApiError as err:
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
            model.reset()
            self.faults.reset()
            return 200, {"status": "ok"}
        if method == "POST" and path == "/_emulator/replication-status":
            return 200, service.seed_status(_json_object(body))
        if method == "POST" and path == "/_emulator/replicate":
            return 200, service.replicate(_json_object(body))
        return 404, {"error": f"no emulator endpoint {method} {path}"}
