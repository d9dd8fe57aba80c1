"""The S3 endpoint's rules where moto departs from S3, over moto's state (:mod:`migrator.sandbox.s3.model`).

The layer (:mod:`migrator.sandbox.s3.http`) calls these before or instead of moto; each raises the sandbox's
:class:`~migrator.sandbox.base.ApiError` with S3's code, which the layer writes as S3's XML error:

- checksums: ``Content-MD5`` and ``x-amz-checksum-{crc32,crc32c,crc64nvme,sha1,sha256}`` must match the
  bytes (400 ``BadDigest``; a malformed ``Content-MD5`` is ``InvalidDigest``);
- SSE-C: a customer key is AES256, 32 bytes, with its MD5; an SSE-C object is read (or copied from) only
  with its key (400 ``InvalidRequest`` without, 403 with another), and its upload's parts need the key;
- versions and uploads: an Object Lock or tagging call on a delete marker (named, or current) is 405
  ``MethodNotAllowed``, on a missing version ``NoSuchVersion``; an unknown upload id is ``NoSuchUpload``
  (moto: 500s);
- conditions: CompleteMultipartUpload ``If-Match`` holds only over the current object with that ETag, and a
  DeleteObjects entry's ``ETag`` is evaluated against the current version;
- checksums read back: HEAD and CompleteMultipartUpload answer an object's checksum as GET does (a composite
  one with its ``-N`` part count, and its ``ChecksumType``);
- Object Lock: an unexpired COMPLIANCE retention is neither shortened nor weakened, a GOVERNANCE one only
  with ``x-amz-bypass-governance-retention`` (403); GetObjectRetention, which moto lacks;
- archives: RestoreObject restores the named version (moto restores the current one);
- replication: ``seed_status`` sets a version's ``x-amz-replication-status``; ``replicate`` copies a version
  to its rules' destinations with the same version id (``REPLICA``) and marks the source ``COMPLETED``.
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from migrator.checksum import crc32c_bytes
from migrator.sandbox.base import ApiError
from migrator.sandbox.s3.model import (
    SSEC_MD5,
    backend,
    completed_by,
    destination_bucket,
    extra,
    find_bucket,
    find_upload,
    find_version,
    is_delete_marker,
    lookup,
    matching_rules,
)
from migrator.sandbox.s3.model import LayerState as State

CHECKSUM_ALGORITHMS = ("crc32", "crc32c", "crc64nvme", "sha1", "sha256")
REPLICATION_STATUSES = frozenset({"PENDING", "COMPLETED", "FAILED", "REPLICA"})
LOCKED_MESSAGE = "Access Denied because object protected by object lock."
_SIZES = {"crc32": 4, "crc32c": 4, "crc64nvme": 8, "sha1": 20, "sha256": 32}


# ------------------------------------------------------------------------------------- checksums

def _digest(algorithm: str, data: bytes) -> bytes:
    if algorithm == "crc32":
        return zlib.crc32(data).to_bytes(4, "big")
    if algorithm == "crc32c":
        return crc32c_bytes(data)
    if algorithm == "crc64nvme":
        from awscrt import checksums  # botocore[crt]

        return int(checksums.crc64nvme(data)).to_bytes(8, "big")
    return hashlib.new(algorithm, data).digest()


def _decoded(value: str, size: int, header: str) -> bytes:
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except ValueError:
        raw = b""
    if len(raw) != size:
        if header == "Content-MD5":
            raise ApiError(400, "InvalidDigest", "The Content-MD5 you specified was invalid.")
        raise ApiError(400, "InvalidRequest", f"Value for {header} header is invalid.")
    return raw


def verify_checksums(data: bytes, declared: dict[str, str], content_md5: str | None) -> None:
    """``declared``: algorithm -> base64 value, from headers or aws-chunked trailers."""
    if content_md5 is not None and _decoded(content_md5, 16, "Content-MD5") != hashlib.md5(data).digest():
        raise ApiError(400, "BadDigest", "The Content-MD5 you specified did not match what we received.")
    for alg, value in declared.items():
        header = f"x-amz-checksum-{alg}"
        if _decoded(value, _SIZES[alg], header) != _digest(alg, data):
            raise ApiError(400, "BadDigest",
                           f"The {alg.upper()} you specified did not match the calculated checksum.")


# ------------------------------------------------------------------------------------- versions and uploads

class DeleteMarkerError(ApiError):
    """A call that needs an object version met a delete marker: 405, with the marker's headers."""

    def __init__(self, method: str, version_id: str) -> None:
        super().__init__(405, "MethodNotAllowed", "The specified method is not allowed against this resource.",
                         Method=method, ResourceType="DeleteMarker")
        self.headers = {"x-amz-delete-marker": "true", "x-amz-version-id": version_id, "Allow": "DELETE"}


def bucket_named(name: str) -> Any:
    """moto's bucket ``name``; 404 ``NoSuchBucket`` when there is none."""
    bucket = find_bucket(name)
    if bucket is None:
        raise ApiError(404, "NoSuchBucket", "The specified bucket does not exist", BucketName=name)
    return bucket


def object_version(bucket_name: str, key: str, version_id: str | None, method: str) -> Any:
    """The version an Object Lock or tagging call is about (the current one without ``version_id``). A delete
    marker there is 405 ``MethodNotAllowed``, as S3 answers these calls (moto: 500 or 404)."""
    found = find_version(bucket_named(bucket_name), key, version_id)
    if found is None:
        if version_id is not None:
            raise ApiError(404, "NoSuchVersion", "The specified version does not exist.", Key=key,
                           VersionId=version_id)
        raise ApiError(404, "NoSuchKey", "The specified key does not exist.", Key=key)
    if is_delete_marker(found):
        raise DeleteMarkerError(method, str(found.version_id))
    return found


def check_upload(bucket_name: str, key: str, upload_id: str, completing: bool) -> None:
    """A part or a completion names an upload that exists (moto: 500); completing again the upload that made
    the current object is answered again, as moto and S3 do."""
    bucket = bucket_named(bucket_name)
    if find_upload(bucket, upload_id) is None and not (completing and completed_by(bucket, key, upload_id)):
        raise ApiError(404, "NoSuchUpload", "The specified upload does not exist. The upload ID may be invalid, "
                                            "or the upload may have been aborted or completed.", UploadId=upload_id)


# ------------------------------------------------------------------------------------- checksums read back

def stored_checksum(key: Any) -> tuple[str, str, str] | None:
    """(algorithm, value, type) as GET answers them: a composite checksum carries ``-`` and its part count."""
    algorithm, value = getattr(key, "checksum_algorithm", None), getattr(key, "checksum_value", None)
    if not algorithm or not value:
        return None
    kind = str(getattr(key, "checksum_type", None) or "")
    if kind == "COMPOSITE" and getattr(key, "checksum_parts", None):
        value = f"{value}-{key.checksum_parts}"
    return str(algorithm), str(value), kind


def checksum_headers(key: Any) -> dict[str, str]:
    """The checksum headers of a read with ChecksumMode ENABLED (moto's HEAD leaves off a composite checksum's
    ``-N`` and, when the upload did not name it, ``x-amz-checksum-type``; its GET has both)."""
    found = stored_checksum(key)
    if found is None:
        return {}
    algorithm, value, kind = found
    headers = {f"x-amz-checksum-{algorithm.lower()}": value}
    if kind:
        headers["x-amz-checksum-type"] = kind
    return headers


def completion_checksum_xml(key: Any) -> str:
    """The checksum elements of a CompleteMultipartUploadResult, which moto leaves out."""
    found = stored_checksum(key)
    if found is None:
        return ""
    algorithm, value, kind = found
    return f"<Checksum{algorithm}>{value}</Checksum{algorithm}>" + (f"<ChecksumType>{kind}</ChecksumType>"
                                                                   if kind else "")


# ------------------------------------------------------------------------------------- conditions

def check_complete_if_match(bucket: str, key: str, if_match: str) -> None:
    """CompleteMultipartUpload with If-Match (moto ignores it): only over the current object with that
    ETag; 404 when there is none, as S3 answers."""
    current = lookup(bucket_named(bucket).name, key, None)
    if current is None:
        raise ApiError(404, "NoSuchKey", "The specified key does not exist.", Key=key)
    if if_match.replace('"', "") != current.etag.replace('"', ""):
        raise ApiError(412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold",
                       Condition="If-Match")


def etag_failure(bucket: str, key: str, etag: str) -> tuple[str, str] | None:
    """Why a DeleteObjects entry with this ``ETag`` is refused (code, message), or None when it may go."""
    current = lookup(bucket, key, None)  # S3 evaluates delete conditions against the current version
    if current is None:
        return ("NoSuchKey", "The specified key does not exist.")
    if etag.strip() == "*" or etag.strip().strip('"') == str(current.etag).strip('"'):
        return None
    return ("PreconditionFailed", "At least one of the pre-conditions you specified did not hold")


# ------------------------------------------------------------------------------------- SSE-C

@dataclass(frozen=True)
class CustomerKey:
    """The SSE-C headers of one request (or of its copy source), as sent; all None when none are."""

    algorithm: str | None = None
    key: str | None = None
    key_md5: str | None = None


def customer_key_md5(given: CustomerKey) -> str | None:
    """The validated MD5 of the customer key, or None when none is given."""
    alg, key, md5 = given.algorithm, given.key, given.key_md5
    if alg is None and key is None and md5 is None:
        return None
    if alg != "AES256":
        raise ApiError(400, "InvalidEncryptionAlgorithmError",
                       "The encryption request you specified is not valid. The valid value is AES256.")
    if key is None or md5 is None:
        raise ApiError(400, "InvalidArgument", "Requests specifying Server Side Encryption with Customer "
                                               "provided keys must provide an appropriate secret key and its MD5.")
    try:
        raw = base64.b64decode(str(key), validate=True)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise ApiError(400, "InvalidArgument", "The secret key was invalid for the specified algorithm.")
    computed = base64.b64encode(hashlib.md5(raw).digest()).decode()
    if computed != md5:
        raise ApiError(400, "InvalidArgument",
                       "The calculated MD5 hash of the key did not match the hash that was provided.")
    return computed


def check_part_key(bucket: str, upload_id: str, given: str | None) -> None:
    """A part of an SSE-C upload carries the upload's key."""
    if not State.ssec_seen:
        return
    try:
        multipart = backend().get_bucket(bucket).multiparts.get(upload_id)
    except Exception:  # noqa: BLE001 - moto answers a missing bucket itself
        return
    expected = multipart.__dict__.get(SSEC_MD5) if multipart is not None else None
    if expected is None:
        return
    if given is None:
        raise ApiError(400, "InvalidRequest", "The multipart upload initiate requested encryption. Subsequent "
                                              "part requests must include the appropriate encryption parameters.")
    if given != expected:
        raise ApiError(400, "InvalidRequest", "The provided encryption parameters did not match the ones used "
                                              "originally.")


def check_ssec_read(key: Any, given: CustomerKey) -> None:
    """Reading (or copying from) ``key``, a moto FakeKey or None: an SSE-C object needs its own key.
    ``given`` is validated only when the object is SSE-C."""
    expected = key.__dict__.get(SSEC_MD5) if key is not None else None
    if expected is None:
        return
    md5 = customer_key_md5(given)
    if md5 is None:
        raise ApiError(400, "InvalidRequest", "The object was stored using a form of Server Side Encryption. "
                                              "The correct parameters must be provided to retrieve the object.")
    if md5 != expected:
        raise ApiError(403, "AccessDenied", "Access Denied")


# ------------------------------------------------------------------------------------- Object Lock

def until(text: str | None) -> datetime | None:
    """An ISO 8601 time as S3 and moto write it; None when absent or unreadable."""
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def retention_in_force(bucket: str, key_name: str, version_id: str | None) -> tuple[Any, datetime] | None:
    """The version and its retain-until time while a retention protects it; None otherwise."""
    key = lookup(bucket, key_name, version_id)
    if key is None or not key.lock_mode:
        return None
    old_until = until(key.lock_until)
    if old_until is None or old_until <= datetime.now(UTC):
        return None
    return key, old_until


def check_retention_change(key: Any, old_until: datetime, mode: str | None, new_until: str | None,
                           bypass: bool) -> None:
    """PutObjectRetention over a retention in force: COMPLIANCE is neither shortened nor weakened,
    GOVERNANCE only with the bypass header."""
    new = until(new_until)
    weaker = (not mode or new is None or new < old_until
              or (key.lock_mode == "COMPLIANCE" and mode != "COMPLIANCE"))
    if not weaker:
        return
    if key.lock_mode == "COMPLIANCE" or not bypass:
        raise ApiError(403, "AccessDenied", LOCKED_MESSAGE)


def retention(bucket: str, key: Any) -> tuple[str, str]:
    """GetObjectRetention, which moto lacks: the mode and the retain-until stamp of version ``key``."""
    if not bucket_named(bucket).object_lock_enabled:
        raise ApiError(400, "InvalidRequest", "Bucket is missing ObjectLockConfiguration")
    if not key.lock_mode or not key.lock_until:
        raise ApiError(404, "NoSuchObjectLockConfiguration",
                       "The specified object does not have a ObjectLock configuration")
    retain = until(key.lock_until)
    stamp = retain.strftime("%Y-%m-%dT%H:%M:%S.000Z") if retain else str(key.lock_until)
    return str(key.lock_mode), stamp


# ------------------------------------------------------------------------------------- archives

def restorable_version(bucket: str, key_name: str, version_id: str | None) -> Any:
    """The named (or current) version, if it is in an archive storage class (moto restores the current one
    whatever the version id)."""
    from moto.s3.utils import ARCHIVE_STORAGE_CLASSES

    key = lookup(bucket_named(bucket).name, key_name, version_id)
    if key is None:
        if version_id is not None:
            raise ApiError(404, "NoSuchVersion", "The specified version does not exist.")
        raise ApiError(404, "NoSuchKey", "The specified key does not exist.", Key=key_name)
    if key.storage_class not in ARCHIVE_STORAGE_CLASSES:
        raise ApiError(403, "InvalidObjectState", "The operation is not valid for the object's storage class",
                       StorageClass=str(key.storage_class))
    return key


def restore(key: Any, days: int) -> bool:
    """Restore ``key`` for ``days`` (at once); whether it had been restored before."""
    restored_before = key.expiry_date is not None
    key.restore(days)
    return restored_before


# ------------------------------------------------------------------------------------- replication

def find_object(payload: dict[str, Any]) -> Any:
    """The version a control request names: ``{"bucket", "key", "version_id"?}``."""
    bucket, key, version = payload.get("bucket"), payload.get("key"), payload.get("version_id")
    if not isinstance(bucket, str) or not isinstance(key, str):
        raise ApiError(400, "InvalidRequest", "bucket and key are required strings")
    found = lookup(bucket, key, str(version) if version is not None else None)
    if found is None:
        raise ApiError(404, "NoSuchKey", f"no object {bucket}/{key} version {version}")
    return found


def seed_status(payload: dict[str, Any]) -> dict[str, Any]:
    key = find_object(payload)
    status = payload.get("status")
    if status is None:
        extra(key).pop("x-amz-replication-status", None)
    elif status in REPLICATION_STATUSES:
        extra(key)["x-amz-replication-status"] = str(status)
    else:
        raise ApiError(400, "InvalidRequest", f"status must be one of {sorted(REPLICATION_STATUSES)} or null")
    return {"bucket": payload["bucket"], "key": payload["key"], "version_id": key.version_id, "status": status}


def replicate(payload: dict[str, Any]) -> dict[str, Any]:
    """Copy one version to its rules' destinations, as S3 replication does: same version id, REPLICA."""
    source = find_object(payload)
    moto = backend()
    rules = matching_rules(moto.get_bucket(payload["bucket"]), source.name)
    if not rules:
        raise ApiError(400, "InvalidRequest", "no enabled replication rule of this bucket covers the key")
    replicas = []
    for rule in rules:
        dest_name = destination_bucket(rule)
        dest_bucket = moto.get_bucket(dest_name)
        storage = (rule.get("Destination") or {}).get("StorageClass") or source.storage_class
        copy = moto.put_object(dest_name, source.name, source.value, storage=storage,
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
        kept = extra(copy)
        kept.clear()
        kept.update({k: v for k, v in extra(source).items() if k != "x-amz-replication-status"})
        kept["x-amz-replication-status"] = "REPLICA"
        replicas.append({"bucket": dest_name, "key": copy.name, "version_id": copy.version_id})
    extra(source)["x-amz-replication-status"] = "COMPLETED"
    return {"source": {"bucket": payload["bucket"], "key": source.name, "version_id": source.version_id},
            "replicas": replicas}
