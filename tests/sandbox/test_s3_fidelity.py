"""The sandbox's S3 endpoint (moto behind migrator's layer) behaves as S3 documents, through the real boto3 client.

Each test shows one behaviour moto lacks on its own: BadDigest, DeleteObjects ETag conditions, Object Lock
COMPLIANCE, replication, archived storage classes, SSE-C; then the sandbox-wide fault hook and counters.
The endpoint is its own process (the sandbox's launcher), reset before every test.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import time
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import botocore.exceptions
import google_crc32c
import pytest
from botocore.config import Config

from migrator.sandbox import control
from migrator.sandbox.faults import FaultPlan, clear_faults, get_faults, set_faults

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.literals import ObjectLockModeType, StorageClassType
    from mypy_boto3_s3.type_defs import CompleteMultipartUploadOutputTypeDef, ObjectLockRetentionTypeDef

FUTURE = "2099-01-01T00:00:00Z"
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def named(field: str, value: str) -> dict[str, Any]:
    """A request field whose name is chosen at run time (boto3-stubs types each field by its literal name)."""
    return {field: value}


def checksum(alg: str, data: bytes) -> str:
    if alg == "CRC32":
        return b64(zlib.crc32(data).to_bytes(4, "big"))
    if alg == "CRC32C":
        return b64(int(google_crc32c.value(data)).to_bytes(4, "big"))
    if alg == "CRC64NVME":
        from awscrt import checksums

        return b64(int(checksums.crc64nvme(data)).to_bytes(8, "big"))
    return b64(hashlib.new(alg.lower(), data).digest())


def code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response["Error"]["Code"])


def status(exc: botocore.exceptions.ClientError) -> int:
    return int(exc.response["ResponseMetadata"]["HTTPStatusCode"])


def control_post(url: str, path: str, payload: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(url + path, data=json.dumps(payload).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with _OPENER.open(req, timeout=10) as resp:
        out: dict[str, Any] = json.loads(resp.read())
    return out


def control_get(url: str, path: str) -> dict[str, Any]:
    with _OPENER.open(url + path, timeout=10) as resp:
        out: dict[str, Any] = json.loads(resp.read())
    return out


@pytest.fixture(scope="module")
def s3_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    endpoint = control._start_s3(tmp_path_factory.mktemp("s3-fidelity"))
    try:
        yield endpoint.url
    finally:
        control._stop_pid(endpoint.pid)


@pytest.fixture
def url(s3_url: str) -> str:
    control_post(s3_url, "/_emulator/reset", {})
    return s3_url


def client_for(url: str, **config: Any) -> S3Client:
    cfg = Config(request_checksum_calculation="when_required", response_checksum_validation="when_required",
                 retries={"total_max_attempts": 1}, **config)
    return boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="AKIASANDBOXEXAMPLE00",
                        aws_secret_access_key="sandbox", config=cfg)


@pytest.fixture
def s3(url: str) -> S3Client:
    return client_for(url)


def versioned_bucket(s3: S3Client, name: str, *, lock: bool = False) -> str:
    if lock:
        s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    else:
        s3.create_bucket(Bucket=name)
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


# ------------------------------------------------------------------------------------------ BadDigest

def test_put_with_wrong_content_md5_is_bad_digest(s3: S3Client) -> None:
    s3.create_bucket(Bucket="digests")
    with pytest.raises(botocore.exceptions.ClientError) as err:
        s3.put_object(Bucket="digests", Key="k", Body=b"abc", ContentMD5=b64(hashlib.md5(b"abd").digest()))
    assert (code(err.value), status(err.value)) == ("BadDigest", 400)
    with pytest.raises(botocore.exceptions.ClientError) as missing:
        s3.head_object(Bucket="digests", Key="k")
    assert status(missing.value) == 404  # nothing was stored
    s3.put_object(Bucket="digests", Key="k", Body=b"abc", ContentMD5=b64(hashlib.md5(b"abc").digest()))
    assert s3.get_object(Bucket="digests", Key="k")["Body"].read() == b"abc"


def test_malformed_content_md5_is_invalid_digest(s3: S3Client) -> None:
    s3.create_bucket(Bucket="digests")
    with pytest.raises(botocore.exceptions.ClientError) as err:
        s3.put_object(Bucket="digests", Key="k", Body=b"abc", ContentMD5="bm90LW1kNQ==")
    assert code(err.value) == "InvalidDigest"


@pytest.mark.parametrize("alg", ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"])
def test_put_with_wrong_additional_checksum_is_bad_digest(s3: S3Client, alg: str) -> None:
    s3.create_bucket(Bucket="digests")
    param = f"Checksum{alg}"
    with pytest.raises(botocore.exceptions.ClientError) as err:
        s3.put_object(Bucket="digests", Key="k", Body=b"payload", **named(param, checksum(alg, b"pay1oad")))
    assert (code(err.value), status(err.value)) == ("BadDigest", 400)
    s3.put_object(Bucket="digests", Key="k", Body=b"payload", **named(param, checksum(alg, b"payload")))
    head = s3.head_object(Bucket="digests", Key="k", ChecksumMode="ENABLED")
    assert head.get(param) == checksum(alg, b"payload")


def test_sdk_computed_checksum_is_accepted(s3: S3Client) -> None:
    s3.create_bucket(Bucket="digests")
    s3.put_object(Bucket="digests", Key="k", Body=b"payload", ChecksumAlgorithm="CRC64NVME")
    assert s3.get_object(Bucket="digests", Key="k")["Body"].read() == b"payload"


def test_upload_part_with_wrong_checksum_is_bad_digest(s3: S3Client) -> None:
    s3.create_bucket(Bucket="digests")
    upload = s3.create_multipart_upload(Bucket="digests", Key="big")["UploadId"]
    part = b"x" * 1024
    with pytest.raises(botocore.exceptions.ClientError) as err:
        s3.upload_part(Bucket="digests", Key="big", UploadId=upload, PartNumber=1, Body=part,
                       ContentMD5=b64(hashlib.md5(part + b"!").digest()))
    assert code(err.value) == "BadDigest"
    with pytest.raises(botocore.exceptions.ClientError) as err2:
        s3.upload_part(Bucket="digests", Key="big", UploadId=upload, PartNumber=1, Body=part,
                       ChecksumSHA256=checksum("SHA256", b"other"))
    assert code(err2.value) == "BadDigest"
    etag = s3.upload_part(Bucket="digests", Key="big", UploadId=upload, PartNumber=1, Body=part,
                          ContentMD5=b64(hashlib.md5(part).digest()))["ETag"]
    s3.complete_multipart_upload(Bucket="digests", Key="big", UploadId=upload,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    assert s3.get_object(Bucket="digests", Key="big")["Body"].read() == part


def _aws_chunked_put(url: str, path: str, data: bytes, trailer_value: str) -> tuple[int, bytes]:
    """A PUT framed as ``aws-chunked`` with an unsigned CRC32 trailer, as SDKs send over TLS."""
    half = len(data) // 2
    body = (f"{half:x}\r\n".encode() + data[:half] + b"\r\n" + f"{len(data) - half:x}\r\n".encode()
            + data[half:] + b"\r\n0\r\n" + f"x-amz-checksum-crc32:{trailer_value}\r\n\r\n".encode())
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("PUT", path, body=body, headers={
            "Content-Encoding": "aws-chunked", "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
            "x-amz-trailer": "x-amz-checksum-crc32", "x-amz-decoded-content-length": str(len(data)),
            "Content-Length": str(len(body))})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_aws_chunked_trailer_checksum_is_verified(url: str, s3: S3Client) -> None:
    s3.create_bucket(Bucket="chunked")
    data = b"streamed with a trailer " * 100
    bad_status, bad_body = _aws_chunked_put(url, "/chunked/k", data, checksum("CRC32", data + b"x"))
    assert bad_status == 400 and b"<Code>BadDigest</Code>" in bad_body
    good_status, _ = _aws_chunked_put(url, "/chunked/k", data, checksum("CRC32", data))
    assert good_status == 200
    assert s3.get_object(Bucket="chunked", Key="k")["Body"].read() == data


# ------------------------------------------------------------------------------------ DeleteObjects

def test_delete_objects_honours_per_key_etag(s3: S3Client) -> None:
    bucket = versioned_bucket(s3, "conditional")
    stale = s3.put_object(Bucket=bucket, Key="a", Body=b"old")["ETag"]
    s3.put_object(Bucket=bucket, Key="a", Body=b"new")
    b_etag = s3.put_object(Bucket=bucket, Key="b", Body=b"bee")["ETag"]
    resp = s3.delete_objects(Bucket=bucket, Delete={"Objects": [
        {"Key": "a", "ETag": stale}, {"Key": "b", "ETag": b_etag}, {"Key": "missing", "ETag": '"00"'}]})
    errors = {e["Key"]: e["Code"] for e in resp.get("Errors", [])}
    assert errors == {"a": "PreconditionFailed", "missing": "NoSuchKey"}
    assert [d["Key"] for d in resp["Deleted"]] == ["b"]
    assert s3.get_object(Bucket=bucket, Key="a")["Body"].read() == b"new"  # untouched
    with pytest.raises(botocore.exceptions.ClientError):
        s3.head_object(Bucket=bucket, Key="b")


def test_delete_objects_all_conditions_failing(s3: S3Client) -> None:
    s3.create_bucket(Bucket="conditional")
    s3.put_object(Bucket="conditional", Key="a", Body=b"x")
    resp = s3.delete_objects(Bucket="conditional", Delete={"Objects": [{"Key": "a", "ETag": '"ffff"'}]})
    assert [e["Code"] for e in resp["Errors"]] == ["PreconditionFailed"]
    assert not resp.get("Deleted")
    assert s3.get_object(Bucket="conditional", Key="a")["Body"].read() == b"x"


def test_complete_multipart_upload_honours_if_match(s3: S3Client) -> None:
    s3.create_bucket(Bucket="cond-complete")
    current = s3.put_object(Bucket="cond-complete", Key="k", Body=b"ours")["ETag"]
    part = b"p" * (5 * 1024 * 1024)

    def complete(key: str, if_match: str) -> CompleteMultipartUploadOutputTypeDef:
        up = s3.create_multipart_upload(Bucket="cond-complete", Key=key)["UploadId"]
        etag = s3.upload_part(Bucket="cond-complete", Key=key, UploadId=up, PartNumber=1, Body=part)["ETag"]
        return s3.complete_multipart_upload(Bucket="cond-complete", Key=key, UploadId=up, IfMatch=if_match,
                                            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})

    for key, if_match, code in (("k", '"ffff"', "PreconditionFailed"), ("absent", current, "NoSuchKey")):
        with pytest.raises(botocore.exceptions.ClientError) as err:
            complete(key, if_match)
        assert err.value.response["Error"]["Code"] == code
    assert s3.get_object(Bucket="cond-complete", Key="k")["Body"].read() == b"ours"
    complete("k", current)   # over exactly the current object: allowed
    assert s3.get_object(Bucket="cond-complete", Key="k")["ContentLength"] == len(part)


# --------------------------------------------------------------------------------------- Object Lock

def _locked_put(s3: S3Client, bucket: str, key: str, mode: ObjectLockModeType) -> str:
    return str(s3.put_object(Bucket=bucket, Key=key, Body=b"held", ObjectLockMode=mode,
                             ObjectLockRetainUntilDate=FUTURE, ChecksumAlgorithm="SHA256")["VersionId"])


def test_compliance_blocks_deletes_even_with_bypass(s3: S3Client) -> None:
    bucket = versioned_bucket(s3, "locked", lock=True)
    version = _locked_put(s3, bucket, "k", "COMPLIANCE")
    for bypass in (False, True):
        with pytest.raises(botocore.exceptions.ClientError) as err:
            s3.delete_object(Bucket=bucket, Key="k", VersionId=version, BypassGovernanceRetention=bypass)
        assert code(err.value) == "AccessDenied"
    resp = s3.delete_objects(Bucket=bucket, BypassGovernanceRetention=True,
                             Delete={"Objects": [{"Key": "k", "VersionId": version}]})
    assert [e["Code"] for e in resp["Errors"]] == ["AccessDenied"]
    assert s3.head_object(Bucket=bucket, Key="k", VersionId=version)["ObjectLockMode"] == "COMPLIANCE"


def test_compliance_retention_cannot_be_shortened_or_weakened(s3: S3Client) -> None:
    bucket = versioned_bucket(s3, "locked", lock=True)
    version = _locked_put(s3, bucket, "k", "COMPLIANCE")
    weaker: tuple[ObjectLockRetentionTypeDef, ...] = ({"Mode": "COMPLIANCE", "RetainUntilDate": "2090-01-01T00:00:00Z"},
                                                      {"Mode": "GOVERNANCE", "RetainUntilDate": FUTURE})
    for retention in weaker:
        with pytest.raises(botocore.exceptions.ClientError) as err:
            s3.put_object_retention(Bucket=bucket, Key="k", VersionId=version, Retention=retention,
                                    BypassGovernanceRetention=True)
        assert code(err.value) == "AccessDenied"
    s3.put_object_retention(Bucket=bucket, Key="k", VersionId=version,
                            Retention={"Mode": "COMPLIANCE", "RetainUntilDate": "2100-01-01T00:00:00Z"})
    got = s3.get_object_retention(Bucket=bucket, Key="k", VersionId=version)["Retention"]
    assert got["Mode"] == "COMPLIANCE" and got["RetainUntilDate"].year == 2100


def test_governance_needs_bypass_to_delete_or_shorten(s3: S3Client) -> None:
    bucket = versioned_bucket(s3, "locked", lock=True)
    version = _locked_put(s3, bucket, "k", "GOVERNANCE")
    with pytest.raises(botocore.exceptions.ClientError):
        s3.delete_object(Bucket=bucket, Key="k", VersionId=version)
    shorter: ObjectLockRetentionTypeDef = {"Mode": "GOVERNANCE", "RetainUntilDate": "2090-01-01T00:00:00Z"}
    with pytest.raises(botocore.exceptions.ClientError) as err:
        s3.put_object_retention(Bucket=bucket, Key="k", VersionId=version, Retention=shorter)
    assert code(err.value) == "AccessDenied"
    s3.put_object_retention(Bucket=bucket, Key="k", VersionId=version, Retention=shorter,
                            BypassGovernanceRetention=True)
    s3.delete_object(Bucket=bucket, Key="k", VersionId=version, BypassGovernanceRetention=True)
    assert not s3.list_object_versions(Bucket=bucket).get("Versions")


def test_legal_hold_blocks_delete_until_released(s3: S3Client) -> None:
    bucket = versioned_bucket(s3, "locked", lock=True)
    version = s3.put_object(Bucket=bucket, Key="k", Body=b"x", ChecksumAlgorithm="SHA256")["VersionId"]
    s3.put_object_legal_hold(Bucket=bucket, Key="k", VersionId=version, LegalHold={"Status": "ON"})
    with pytest.raises(botocore.exceptions.ClientError):
        s3.delete_object(Bucket=bucket, Key="k", VersionId=version, BypassGovernanceRetention=True)
    s3.put_object_legal_hold(Bucket=bucket, Key="k", VersionId=version, LegalHold={"Status": "OFF"})
    s3.delete_object(Bucket=bucket, Key="k", VersionId=version)


def test_default_retention_can_change_on_a_bucket_with_objects(s3: S3Client) -> None:
    bucket = versioned_bucket(s3, "locked", lock=True)
    s3.put_object(Bucket=bucket, Key="before", Body=b"x")
    s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}}})
    rule = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]["Rule"]
    assert rule["DefaultRetention"]["Mode"] == "COMPLIANCE"


# --------------------------------------------------------------------------------------- replication

def _replicate_to(s3: S3Client, source: str, dest: str, prefix: str = "") -> None:
    s3.put_bucket_replication(Bucket=source, ReplicationConfiguration={
        "Role": "arn:aws:iam::123456789012:role/replication",
        "Rules": [{"ID": "to-backup", "Priority": 1, "Status": "Enabled", "Filter": {"Prefix": prefix},
                   "DeleteMarkerReplication": {"Status": "Disabled"},
                   "Destination": {"Bucket": f"arn:aws:s3:::{dest}"}}]})


def test_replication_configuration_needs_versioning(s3: S3Client) -> None:
    s3.create_bucket(Bucket="plain")
    versioned_bucket(s3, "backup")
    with pytest.raises(botocore.exceptions.ClientError) as err:
        _replicate_to(s3, "plain", "backup")
    assert code(err.value) == "InvalidRequest"
    s3.create_bucket(Bucket="plain-dest")
    versioned_bucket(s3, "primary")
    with pytest.raises(botocore.exceptions.ClientError):
        _replicate_to(s3, "primary", "plain-dest")


def test_replication_configuration_and_status(url: str, s3: S3Client) -> None:
    versioned_bucket(s3, "primary")
    versioned_bucket(s3, "backup")
    _replicate_to(s3, "primary", "backup", prefix="users/")
    rules = s3.get_bucket_replication(Bucket="primary")["ReplicationConfiguration"]["Rules"]
    assert rules[0]["Destination"]["Bucket"] == "arn:aws:s3:::backup"

    version = s3.put_object(Bucket="primary", Key="users/1", Body=b"alice")["VersionId"]
    outside = s3.put_object(Bucket="primary", Key="other/1", Body=b"x")
    assert s3.head_object(Bucket="primary", Key="users/1")["ReplicationStatus"] == "PENDING"
    assert "ReplicationStatus" not in s3.head_object(Bucket="primary", Key="other/1")
    assert outside["ETag"]

    done = control_post(url, "/_emulator/replicate", {"bucket": "primary", "key": "users/1"})
    assert done["replicas"] == [{"bucket": "backup", "key": "users/1", "version_id": version}]
    assert s3.head_object(Bucket="primary", Key="users/1")["ReplicationStatus"] == "COMPLETED"
    replica = s3.get_object(Bucket="backup", Key="users/1", VersionId=version)
    assert replica["ReplicationStatus"] == "REPLICA" and replica["Body"].read() == b"alice"

    control_post(url, "/_emulator/replication-status",
                 {"bucket": "primary", "key": "users/1", "version_id": version, "status": "FAILED"})
    assert s3.get_object(Bucket="primary", Key="users/1", VersionId=version)["ReplicationStatus"] == "FAILED"


def test_replication_status_can_be_seeded_on_any_object(url: str, s3: S3Client) -> None:
    s3.create_bucket(Bucket="seeded")
    s3.put_object(Bucket="seeded", Key="k", Body=b"x")
    control_post(url, "/_emulator/replication-status", {"bucket": "seeded", "key": "k", "status": "REPLICA"})
    assert s3.head_object(Bucket="seeded", Key="k")["ReplicationStatus"] == "REPLICA"


# ---------------------------------------------------------------------------------- archived classes

@pytest.mark.parametrize("storage_class", ["GLACIER", "DEEP_ARCHIVE"])
def test_archived_objects_refuse_get_until_restored(s3: S3Client, storage_class: StorageClassType) -> None:
    s3.create_bucket(Bucket="cold")
    s3.put_object(Bucket="cold", Key="k", Body=b"frozen", StorageClass=storage_class)
    with pytest.raises(botocore.exceptions.ClientError) as err:
        s3.get_object(Bucket="cold", Key="k")
    assert (code(err.value), status(err.value)) == ("InvalidObjectState", 403)
    head = s3.head_object(Bucket="cold", Key="k")
    assert head["StorageClass"] == storage_class and "Restore" not in head
    s3.restore_object(Bucket="cold", Key="k", RestoreRequest={"Days": 1})
    assert 'ongoing-request="false"' in s3.head_object(Bucket="cold", Key="k")["Restore"]
    assert s3.get_object(Bucket="cold", Key="k")["Body"].read() == b"frozen"


def test_restore_of_a_noncurrent_version(s3: S3Client) -> None:
    versioned_bucket(s3, "cold")
    old = s3.put_object(Bucket="cold", Key="k", Body=b"v1", StorageClass="GLACIER")["VersionId"]
    s3.put_object(Bucket="cold", Key="k", Body=b"v2", StorageClass="GLACIER")
    s3.restore_object(Bucket="cold", Key="k", VersionId=old, RestoreRequest={"Days": 1})
    assert s3.get_object(Bucket="cold", Key="k", VersionId=old)["Body"].read() == b"v1"
    with pytest.raises(botocore.exceptions.ClientError):
        s3.get_object(Bucket="cold", Key="k")  # the current version is still archived


# ---------------------------------------------------------------------------------------------- SSE-C

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


def test_sse_c_objects_refuse_reads_without_the_key(s3: S3Client) -> None:
    s3.create_bucket(Bucket="secret")
    put = s3.put_object(Bucket="secret", Key="k", Body=b"classified", SSECustomerAlgorithm="AES256",
                        SSECustomerKey=KEY)
    assert put["SSECustomerAlgorithm"] == "AES256"
    assert put["ETag"].strip('"') != hashlib.md5(b"classified").hexdigest()  # not an MD5 for SSE-C
    with pytest.raises(botocore.exceptions.ClientError) as err:
        s3.get_object(Bucket="secret", Key="k")
    assert (code(err.value), status(err.value)) == ("InvalidRequest", 400)
    with pytest.raises(botocore.exceptions.ClientError) as head_err:
        s3.head_object(Bucket="secret", Key="k")
    assert status(head_err.value) == 400
    with pytest.raises(botocore.exceptions.ClientError) as wrong:
        s3.get_object(Bucket="secret", Key="k", SSECustomerAlgorithm="AES256", SSECustomerKey=OTHER_KEY)
    assert status(wrong.value) == 403
    got = s3.get_object(Bucket="secret", Key="k", SSECustomerAlgorithm="AES256", SSECustomerKey=KEY)
    assert got["Body"].read() == b"classified"
    assert got["SSECustomerKeyMD5"] == b64(hashlib.md5(KEY).digest())
    with pytest.raises(botocore.exceptions.ClientError) as copy_err:
        s3.copy_object(Bucket="secret", Key="copy", CopySource={"Bucket": "secret", "Key": "k"})
    assert status(copy_err.value) == 400


def test_sse_c_multipart_parts_need_the_key(s3: S3Client) -> None:
    s3.create_bucket(Bucket="secret")
    upload = s3.create_multipart_upload(Bucket="secret", Key="big", SSECustomerAlgorithm="AES256",
                                        SSECustomerKey=KEY)["UploadId"]
    with pytest.raises(botocore.exceptions.ClientError) as err:
        s3.upload_part(Bucket="secret", Key="big", UploadId=upload, PartNumber=1, Body=b"part")
    assert status(err.value) == 400
    etag = s3.upload_part(Bucket="secret", Key="big", UploadId=upload, PartNumber=1, Body=b"part",
                          SSECustomerAlgorithm="AES256", SSECustomerKey=KEY)["ETag"]
    s3.complete_multipart_upload(Bucket="secret", Key="big", UploadId=upload,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    with pytest.raises(botocore.exceptions.ClientError):
        s3.get_object(Bucket="secret", Key="big")
    assert s3.head_object(Bucket="secret", Key="big", SSECustomerAlgorithm="AES256",
                          SSECustomerKey=KEY)["ContentLength"] == 4


# ------------------------------------------------------------------------------------- faults, counts

def test_full_rate_503_answers_slowdown_and_is_counted(url: str, s3: S3Client) -> None:
    s3.create_bucket(Bucket="faulty")
    s3.put_object(Bucket="faulty", Key="k", Body=b"x")
    set_faults(url, FaultPlan(rate=1.0, kinds=frozenset({"503-slowdown"})))
    try:
        for _ in range(3):
            with pytest.raises(botocore.exceptions.ClientError) as err:
                s3.get_object(Bucket="faulty", Key="k")
            assert (code(err.value), status(err.value)) == ("SlowDown", 503)
        assert get_faults(url)["injected"] == {"503-slowdown": 3}
    finally:
        clear_faults(url)
    assert s3.get_object(Bucket="faulty", Key="k")["Body"].read() == b"x"


def test_latency_is_added_to_every_request(url: str, s3: S3Client) -> None:
    s3.create_bucket(Bucket="slow")
    set_faults(url, FaultPlan(latency_ms=150))
    try:
        started = time.monotonic()
        s3.list_objects_v2(Bucket="slow")
        assert time.monotonic() - started >= 0.15  # a lower bound only
    finally:
        clear_faults(url)


def test_flip_get_changes_one_bit_of_the_body(url: str, s3: S3Client) -> None:
    s3.create_bucket(Bucket="flips")
    data = bytes(range(256)) * 16
    s3.put_object(Bucket="flips", Key="k", Body=data)
    set_faults(url, FaultPlan(rate=1.0, kinds=frozenset({"flip-get"}), seed=5))
    try:
        got = s3.get_object(Bucket="flips", Key="k")
        body = got["Body"].read()
    finally:
        clear_faults(url)
    assert len(body) == len(data) and got["ETag"].strip('"') == hashlib.md5(data).hexdigest()
    assert sum(bin(a ^ b).count("1") for a, b in zip(body, data, strict=True)) == 1


def test_flip_put_is_caught_by_content_md5(url: str, s3: S3Client) -> None:
    s3.create_bucket(Bucket="flips")
    set_faults(url, FaultPlan(rate=1.0, kinds=frozenset({"flip-put"})))
    try:
        with pytest.raises(botocore.exceptions.ClientError) as err:
            s3.put_object(Bucket="flips", Key="k", Body=b"abc", ContentMD5=b64(hashlib.md5(b"abc").digest()))
        assert code(err.value) == "BadDigest"
        s3.put_object(Bucket="flips", Key="unchecked", Body=b"abc")
    finally:
        clear_faults(url)
    assert s3.get_object(Bucket="flips", Key="unchecked")["Body"].read() != b"abc"  # stored corrupted


def test_truncate_and_resets_break_the_connection(url: str, s3: S3Client) -> None:
    s3.create_bucket(Bucket="broken")
    s3.put_object(Bucket="broken", Key="k", Body=b"y" * 4096)
    set_faults(url, FaultPlan(rate=1.0, kinds=frozenset({"truncate"})))
    try:
        with pytest.raises(botocore.exceptions.ResponseStreamingError):
            s3.get_object(Bucket="broken", Key="k")["Body"].read()
        set_faults(url, FaultPlan(rate=1.0, kinds=frozenset({"reset-before"}), operations=frozenset({"PutObject"})))
        with pytest.raises(botocore.exceptions.HTTPClientError):  # ConnectionClosedError
            s3.put_object(Bucket="broken", Key="before", Body=b"x")
        set_faults(url, FaultPlan(rate=1.0, kinds=frozenset({"reset-after"}), operations=frozenset({"PutObject"})))
        with pytest.raises(botocore.exceptions.HTTPClientError):
            s3.put_object(Bucket="broken", Key="after", Body=b"x")
    finally:
        clear_faults(url)
    with pytest.raises(botocore.exceptions.ClientError):
        s3.head_object(Bucket="broken", Key="before")  # reset before: never stored
    assert s3.head_object(Bucket="broken", Key="after")["ContentLength"] == 1  # reset after: stored


def test_timeout_holds_the_request_past_the_client_timeout(url: str) -> None:
    impatient = client_for(url, read_timeout=0.3)
    impatient.create_bucket(Bucket="held")
    set_faults(url, FaultPlan(rate=1.0, kinds=frozenset({"timeout"}), timeout_ms=1000,
                              operations=frozenset({"HeadBucket"})))
    try:
        with pytest.raises(botocore.exceptions.ReadTimeoutError):
            impatient.head_bucket(Bucket="held")
    finally:
        clear_faults(url)


def test_stats_count_requests_per_operation_and_reset_clears(url: str, s3: S3Client) -> None:
    s3.create_bucket(Bucket="counted")
    for i in range(3):
        s3.put_object(Bucket="counted", Key=f"k{i}", Body=b"x")
    s3.get_object(Bucket="counted", Key="k0")["Body"].read()
    s3.list_object_versions(Bucket="counted")
    stats = control_get(url, "/_emulator/stats")
    assert stats["requests"] == {"CreateBucket": 1, "PutObject": 3, "GetObject": 1, "ListObjectVersions": 1}
    assert stats["total"] == 6
    control_post(url, "/_emulator/reset", {})
    assert control_get(url, "/_emulator/stats")["total"] == 0
    assert s3.list_buckets()["Buckets"] == []


def test_fault_plan_is_validated_by_the_endpoint(url: str) -> None:
    req = urllib.request.Request(url + "/_emulator/faults", data=b'{"rate": 1, "kinds": ["nope"]}', method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        _OPENER.open(req, timeout=10)
    assert err.value.code == 400
    assert get_faults(url)["active"] is False


def test_fidelity_tests_use_their_own_process(s3_url: str, tmp_path: Path) -> None:
    # The endpoint under test is a separate process on loopback, like the sandbox's.
    assert s3_url.startswith("http://127.0.0.1:")
    assert tmp_path.exists()
