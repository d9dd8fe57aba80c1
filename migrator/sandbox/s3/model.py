"""The S3 endpoint's state: moto's models, patched where S3 differs, and what the layer keeps beside them.

moto holds every bucket, version and upload, process-wide; nothing here is HTTP. What the layer adds:

- on moto's ``FakeKey``: ``EXTRA_HEADERS`` (headers HEAD/GET/PUT answers carry: the replication status and
  the SSE-C echo) and ``SSEC_MD5`` (the customer key's MD5, also on ``FakeMultipart``); an SSE-C object's ETag
  is not the MD5 of its bytes, as on S3;
- ``LayerState.ssec_seen``: whether an SSE-C object was ever written, so that reads pay for a key lookup only
  then; ``request_local.ssec``: the key MD5 of the object the current request is about to make;
- patches (:func:`apply_patches`, once per process): PutObject and multipart completion tag SSE-C keys and
  mark keys under an enabled replication rule ``PENDING``; a locked bucket's default retention can change
  while it holds objects; PutBucketReplication needs versioning on the source and the destination;
  deleting a delete marker by version id reports it (``x-amz-delete-marker``, and ``DeleteMarker`` with
  ``DeleteMarkerVersionId`` in DeleteObjects), as S3 does; and two speed-ups that change no behaviour
  (moto's module list cached, ListObjectVersions without its deep copy, with moto's KeyMarker handling
  fixed);
- readers of the replication rules (which keys a rule covers, where it replicates to) and of moto's objects
  (buckets, versions and delete markers, uploads, continuation tokens).
"""

from __future__ import annotations

import functools
import secrets
import threading
from collections.abc import Iterable
from typing import Any

EXTRA_HEADERS = "migrator_headers"  # FakeKey attribute: headers the layer adds to HEAD/GET/PUT answers
SSEC_MD5 = "migrator_ssec_md5"      # FakeKey/FakeMultipart attribute: the customer key's MD5 (base64)
SSEC_ALG = "x-amz-server-side-encryption-customer-algorithm"
SSEC_KEY_MD5 = "x-amz-server-side-encryption-customer-key-MD5"


class LayerState:
    """Process-wide layer state (moto's own state is process-wide too)."""

    ssec_seen = False  # an SSE-C object was ever written: only then do reads pay for a key lookup


request_local = threading.local()  # per request thread: the SSE-C key MD5 of the object moto is about to create

_patched = threading.Lock()
_patches_done = False


def apply_patches() -> None:
    """Patch moto's models (process-wide) the first time; later calls do nothing."""
    global _patches_done
    with _patched:
        if not _patches_done:
            _cache_module_list()
            _fast_version_listing()
            _patch_models()
            _patches_done = True


def reset() -> None:
    """moto's state and the layer's (``POST /_emulator/reset``)."""
    from moto.moto_api._internal.models import moto_api_backend

    moto_api_backend.reset()
    LayerState.ssec_seen = False


def backend() -> Any:
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    return s3_backends[DEFAULT_ACCOUNT_ID]["aws"]


def lookup(bucket: str, key: str, version_id: str | None) -> Any:
    """The FakeKey moto would serve, or None (no bucket, no key, a delete marker)."""
    try:
        return backend().get_object(bucket, key, version_id=version_id)
    except Exception:  # noqa: BLE001 - moto raises its own errors for a missing bucket; moto answers those
        return None


def find_bucket(name: str) -> Any:
    """moto's bucket, or None."""
    return backend().buckets.get(name)


def find_version(bucket: Any, key: str, version_id: str | None) -> Any:
    """The version of ``key`` in moto's ``bucket`` (the current one when ``version_id`` is None), delete
    markers included; None when there is none."""
    if version_id is None:
        return bucket.keys.get(key)
    for version in bucket.keys.getlist(key, []):
        if str(version.version_id) == str(version_id):
            return version
    return None


def is_delete_marker(version: Any) -> bool:
    from moto.s3.models import FakeDeleteMarker

    return isinstance(version, FakeDeleteMarker)


def find_upload(bucket: Any, upload_id: str) -> Any:
    """The multipart upload ``upload_id`` of moto's ``bucket``, or None."""
    return bucket.multiparts.get(upload_id)


def completed_by(bucket: Any, key: str, upload_id: str) -> bool:
    """Whether the current version of ``key`` is the object that upload ``upload_id`` completed (moto answers
    a repeated CompleteMultipartUpload again, as S3 does)."""
    current = bucket.keys.get(key)
    multipart = getattr(current, "multipart", None)
    return multipart is not None and multipart.id == upload_id


def known_continuation_token(token: str) -> bool:
    """Whether moto issued this ListObjectsV2 continuation token (moto fails with a 500 on any other)."""
    return token in backend()._pagination_tokens


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


def extra(obj: Any) -> dict[str, str]:
    extra: dict[str, str] | None = obj.__dict__.get(EXTRA_HEADERS)
    if extra is None:
        extra = obj.__dict__[EXTRA_HEADERS] = {}
    return extra


def tag_ssec(key: Any, key_md5: str) -> None:
    """Mark ``key`` as SSE-C: S3 echoes the algorithm and key MD5, and its ETag is not the MD5 of the bytes."""
    LayerState.ssec_seen = True
    key.__dict__[SSEC_MD5] = key_md5
    extra(key).update({SSEC_ALG: "AES256", SSEC_KEY_MD5: key_md5})
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


def matching_rules(bucket: Any, key_name: str) -> list[dict[str, Any]]:
    out = []
    for rule in _rules(bucket):
        prefix = _rule_prefix(rule)
        if prefix is not None and key_name.startswith(prefix):
            out.append(rule)
    return out


def destination_bucket(rule: dict[str, Any]) -> str:
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
        key_md5 = getattr(request_local, "ssec", None)
        if key_md5:
            tag_ssec(key, key_md5)
        if matching_rules(self.get_bucket(bucket_name), key_name):
            extra(key)["x-amz-replication-status"] = "PENDING"  # until replicated (POST /_emulator/replicate)
        return key

    models.S3Backend.put_object = put_object_tagged  # type: ignore[method-assign]

    create_mpu = models.S3Backend.create_multipart_upload

    @functools.wraps(create_mpu)
    def create_multipart_upload(self: Any, *args: Any, **kwargs: Any) -> Any:
        multipart = create_mpu(self, *args, **kwargs)
        key_md5 = getattr(request_local, "ssec", None)
        if key_md5:
            LayerState.ssec_seen = True
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
            tag_ssec(key, key_md5)
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
            name = destination_bucket(rule or {})
            dest = self.buckets.get(name)
            if dest is None:
                raise S3ClientError("InvalidRequest", "Destination bucket must exist.")
            if not dest.is_versioned:
                raise S3ClientError("InvalidRequest", "Destination bucket must have versioning enabled.")
        put_replication(self, bucket_name, replication)

    models.S3Backend.put_bucket_replication = put_bucket_replication  # type: ignore[method-assign]
    _report_deleted_markers(models)


def _report_deleted_markers(models: Any) -> None:
    """Deleting a delete marker by its version id: S3 answers ``x-amz-delete-marker: true`` (DeleteObject) and
    ``DeleteMarker``/``DeleteMarkerVersionId`` in the ``<Deleted>`` entry (DeleteObjects). moto says so only for
    a marker stacked on another marker, and never in DeleteObjects."""

    def marker_versions(backend: Any, bucket_name: str, entries: Iterable[tuple[str, str | None]]) -> set[str]:
        bucket = backend.get_bucket(bucket_name)
        return {str(version) for key, version in entries
                if version is not None and is_delete_marker(find_version(bucket, key, version))}

    delete_object = models.S3Backend.delete_object

    @functools.wraps(delete_object)
    def delete_one(self: Any, bucket_name: str, key_name: str, version_id: str | None = None,
                   bypass: bool = False) -> tuple[bool, dict[str, Any]]:
        marker = bool(marker_versions(self, bucket_name, [(key_name, version_id)]))
        done, meta = delete_object(self, bucket_name, key_name, version_id=version_id, bypass=bypass)
        if marker:
            meta["delete-marker"] = "true"
        return done, meta

    delete_objects = models.S3Backend.delete_objects

    @functools.wraps(delete_objects)
    def delete_many(self: Any, bucket_name: str, objects: list[dict[str, Any]], bypass_retention: bool = False
                    ) -> tuple[list[tuple[str, str | None, str | None]], list[str]]:
        markers = marker_versions(self, bucket_name, [(o["Key"], o.get("VersionId")) for o in objects])
        deleted, errors = delete_objects(self, bucket_name, objects, bypass_retention)
        # moto writes DeleteMarker=true and DeleteMarkerVersionId from the third field
        return [(k, v, v if v is not None and str(v) in markers else dv) for k, v, dv in deleted], errors

    models.S3Backend.delete_object = delete_one
    models.S3Backend.delete_objects = delete_many
