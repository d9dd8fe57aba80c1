"""Malformed S3 requests, refused before moto sees them: moto answers most of these with a 500 (or accepts
them); S3 answers a 400 (see docs/sandbox.md for the sources).

- XML bodies (:data:`DOCUMENTS`): a body that is not XML, or not the operation's document, is
  ``MalformedXML``; none where the operation needs one is ``MissingRequestBodyError``. Within them:
  DeleteObjects takes 1 to 1000 ``Object`` entries, each with a ``Key``; CompleteMultipartUpload ``Part``
  entries with an integer ``PartNumber`` and an ``ETag``; RestoreObject an integer ``Days`` of at least 1; a
  legal hold ``ON``/``OFF``; a retention ``GOVERNANCE``/``COMPLIANCE`` until an ISO 8601 time; a versioning
  status ``Enabled``/``Suspended``; a default retention integer ``Days``/``Years`` (not positive:
  ``InvalidArgument``);
- integer query parameters (``max-keys``, ``max-parts``, ``part-number-marker``, ``max-uploads``,
  ``partNumber``) and a ListObjectsV2 ``continuation-token`` that moto did not issue: ``InvalidArgument``;
- an ``x-amz-copy-source`` without a bucket and a key, an ``x-amz-copy-source-range`` that is not
  ``bytes=first-last``: ``InvalidArgument``;
- ``If-Modified-Since``/``If-Unmodified-Since`` that are not HTTP dates are ignored, as RFC 7232 says; valid
  ones are handed to moto in the one date format it reads.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any
from urllib.parse import unquote

from migrator.sandbox.base import ApiError
from migrator.sandbox.s3.model import find_bucket, known_continuation_token
from migrator.sandbox.s3.service import until

# operation -> (the root element of its XML body, whether the body is required)
DOCUMENTS = {
    "DeleteObjects": ("Delete", True),
    "CompleteMultipartUpload": ("CompleteMultipartUpload", True),
    "RestoreObject": ("RestoreRequest", False),  # without one, Days is missing: MalformedXML below
    "PutBucketVersioning": ("VersioningConfiguration", True),
    "PutObjectLegalHold": ("LegalHold", True),
    "PutObjectRetention": ("Retention", True),
    "PutObjectLockConfiguration": ("ObjectLockConfiguration", True),
    "PutBucketReplication": ("ReplicationConfiguration", True),
    "PutObjectTagging": ("Tagging", True),
    "PutBucketTagging": ("Tagging", True),
    "PutBucketEncryption": ("ServerSideEncryptionConfiguration", True),
    "PutBucketLifecycle": ("LifecycleConfiguration", True),
    "CreateBucket": ("CreateBucketConfiguration", False),
    "PutBucketAcl": ("AccessControlPolicy", False),
    "PutObjectAcl": ("AccessControlPolicy", False),
}
MAX_DELETE = 1000
_INT32 = 2**31 - 1
_COUNTS = {"ListObjects": ("max-keys",), "ListObjectsV2": ("max-keys",), "ListObjectVersions": ("max-keys",),
           "ListParts": ("max-parts", "part-number-marker"), "ListMultipartUploads": ("max-uploads",)}
_PART_NUMBERED = frozenset({"UploadPart", "UploadPartCopy", "GetObject", "HeadObject"})
_COPIES = frozenset({"CopyObject", "UploadPartCopy"})
_READS = frozenset({"GetObject", "HeadObject"})
_COPY_RANGE = re.compile(r"bytes=(\d+)-(\d+)")
_ENUMS = {  # operation -> element -> allowed values (when the element is there)
    "PutObjectLegalHold": {"Status": frozenset({"ON", "OFF"})},
    "PutObjectRetention": {"Mode": frozenset({"GOVERNANCE", "COMPLIANCE"})},
    "PutBucketVersioning": {"Status": frozenset({"Enabled", "Suspended"}),
                            "MfaDelete": frozenset({"Enabled", "Disabled"})},
}


def malformed_xml() -> ApiError:
    return ApiError(400, "MalformedXML", "The XML you provided was not well-formed or did not validate against "
                                         "our published schema")


def invalid_argument(message: str, name: str, value: str) -> ApiError:
    return ApiError(400, "InvalidArgument", message, ArgumentName=name, ArgumentValue=value)


# ------------------------------------------------------------------------------------- XML

def xml_root(body: bytes) -> Any:
    try:
        return ET.fromstring(body)  # noqa: S314 - loopback-only emulator, trusted local clients
    except ET.ParseError:
        raise malformed_xml() from None


def local(tag: str) -> str:
    return tag.rpartition("}")[2]


def child_text(elem: Any, name: str) -> str | None:
    for child in elem:
        if local(child.tag) == name:
            return str(child.text or "")
    return None


def _children(elem: Any, name: str) -> list[Any]:
    return [child for child in elem if local(child.tag) == name]


def _integer(text: str | None) -> int | None:
    text = (text or "").strip()
    return int(text) if re.fullmatch(r"[+-]?\d{1,10}", text) else None


def check_document(op: str, body: bytes) -> Any:
    """The parsed body of an operation in :data:`DOCUMENTS` (None when it has none and needs none)."""
    root_name, required = DOCUMENTS[op]
    if not body.strip():
        if required:
            raise ApiError(400, "MissingRequestBodyError", "Request Body is empty")
        return None
    root = xml_root(body)
    if local(root.tag) != root_name:
        raise malformed_xml()
    for name, allowed in _ENUMS.get(op, {}).items():
        value = child_text(root, name)
        if value is not None and value.strip() not in allowed:
            raise malformed_xml()
    if op == "PutObjectLegalHold" and child_text(root, "Status") is None:
        raise malformed_xml()
    if op == "PutObjectRetention" and child_text(root, "RetainUntilDate") is not None \
            and until(child_text(root, "RetainUntilDate")) is None:
        raise malformed_xml()
    if op == "DeleteObjects":
        entries = _children(root, "Object")
        if not 1 <= len(entries) <= MAX_DELETE or any(not child_text(e, "Key") for e in entries):
            raise malformed_xml()
    if op == "CompleteMultipartUpload":
        parts = _children(root, "Part")
        if not parts or any(_integer(child_text(p, "PartNumber")) is None or not child_text(p, "ETag")
                            for p in parts):
            raise malformed_xml()
    if op == "PutObjectLockConfiguration":
        _check_default_retention(root)
    return root


def _check_default_retention(root: Any) -> None:
    for elem in root.iter():
        name = local(elem.tag)
        if name in ("Days", "Years"):
            value = _integer(elem.text)
            if value is None:
                raise malformed_xml()
            if value < 1:
                raise invalid_argument("Default retention period must be a positive integer value.", name,
                                       str(elem.text))


def restore_days(root: Any) -> int:
    """RestoreObject's ``Days``: required for the archive classes, an integer of at least 1 (MalformedXML
    otherwise, as S3 answers)."""
    days = _integer(child_text(root, "Days")) if root is not None else None
    if days is None or not 1 <= days <= _INT32:
        raise malformed_xml()
    return days


# ------------------------------------------------------------------------------------- parameters and headers

def check_parameters(op: str, bucket: str, query: dict[str, list[str]], environ: dict[str, Any]) -> None:
    """Query parameters and headers of ``op``; may rewrite the conditional date headers of a read."""
    for name in _COUNTS.get(op, ()):
        _check_count(name, query)
    if op in _PART_NUMBERED and "partNumber" in query:
        value = query["partNumber"][-1]
        number = _integer(value)
        if number is None or not 1 <= number <= 10000:
            raise invalid_argument("Part number must be an integer between 1 and 10000, inclusive", "partNumber",
                                   value)
    if op == "ListObjectsV2":
        token = (query.get("continuation-token") or [""])[-1]
        if token and find_bucket(bucket) is not None and not known_continuation_token(token):
            raise invalid_argument("The continuation token provided is incorrect", "continuation-token", token)
    if op in _COPIES:
        _check_copy_source(op, environ)
    if op in _READS:
        for header in ("HTTP_IF_MODIFIED_SINCE", "HTTP_IF_UNMODIFIED_SINCE"):
            if header in environ:
                _normalise_date(environ, header)


def _check_count(name: str, query: dict[str, list[str]]) -> None:
    if name not in query:
        return
    value = query[name][-1]
    number = _integer(value)
    if number is None or number > _INT32:
        raise invalid_argument(f"Provided {name} not an integer or within integer range", name, value)
    if number < 0:
        if name == "max-keys":
            raise invalid_argument("max-keys cannot be negative", "maxKeys", value)
        raise invalid_argument(f"Argument {name} must be an integer between 0 and {_INT32}", name, value)


def _check_copy_source(op: str, environ: dict[str, Any]) -> None:
    raw = str(environ.get("HTTP_X_AMZ_COPY_SOURCE", ""))
    path = unquote(raw).partition("?versionId=")[0].lstrip("/")
    bucket, _, key = path.partition("/")
    if not bucket:
        raise invalid_argument("Invalid copy source bucket name", "x-amz-copy-source", raw)
    if not key:
        raise invalid_argument("Invalid copy source object key", "x-amz-copy-source", raw)
    copy_range = environ.get("HTTP_X_AMZ_COPY_SOURCE_RANGE")
    if op == "UploadPartCopy" and copy_range is not None:
        match = _COPY_RANGE.fullmatch(str(copy_range).strip())
        if match is None or int(match[1]) > int(match[2]):
            raise invalid_argument("The x-amz-copy-source-range value must be of the form bytes=first-last where "
                                   "first and last are the zero-based offsets of the first and last bytes to copy",
                                   "x-amz-copy-source-range", str(copy_range))


def _normalise_date(environ: dict[str, Any], header: str) -> None:
    try:
        when = parsedate_to_datetime(str(environ[header]))
    except (TypeError, ValueError, IndexError):
        del environ[header]  # RFC 7232: a conditional date that is not an HTTP-date is ignored
        return
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    environ[header] = format_datetime(when, usegmt=True)
