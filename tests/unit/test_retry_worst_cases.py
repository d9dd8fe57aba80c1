"""The worst cases of the one retry layer, through each adapter, without an emulator.

Each test copies one object the way the pipeline does (``retry.call`` around ``transfer.copy_version``,
pipeline.py's ``_copy_one``) into an adapter whose SDK client is replaced by a fake that answers every
request of one kind with the same error, and counts the requests:

- a persistent 503 makes at most 6 attempts in all: 6 PUTs for a one-request copy (it was 6 x 6 = 36);
  for a multipart copy the whole copy runs 6 times and no part is sent more than 6 times;
- a refused digest is not retried by the policy: one transfer per copy (the pipeline's own single re-send
  makes that at most 2).
"""

from __future__ import annotations

import functools
import io
import threading
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import oci
import pytest
from botocore.exceptions import ClientError
from google.api_core import exceptions as gexc
from google.cloud import storage

from migrator import retry
from migrator.config import TransferSettings
from migrator.errors import DigestRefused, StoreError
from migrator.limits import NO_LIMITS
from migrator.oci_config import load as load_oci_config
from migrator.sandbox.oci_auth import write_sandbox_config
from migrator.stores.base import Features, ObjectInfo, ObjectStore
from migrator.stores.gcs import GcsStore
from migrator.stores.oci import OciStore
from migrator.stores.s3 import S3Store
from migrator.transfer import BufferBudget, CopyOutcome, copy_version
from migrator.uri import ObjectURI
from tests.conftest import store_transfer

MiB = 1024 * 1024
NOWHERE = "http://127.0.0.1:1"  # never contacted: every request goes to a fake client


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(retry._backoff, "enabled", False)
    # Credentials in the environment, so that botocore never asks the instance metadata endpoint for some.
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_SESSION_TOKEN", "testing")):
        monkeypatch.setenv(name, value)


class _Stream:
    def __init__(self, info: ObjectInfo, data: bytes) -> None:
        self.info = info
        self._body = io.BytesIO(data)

    def read(self, n: int = -1) -> bytes:
        return self._body.read(n)

    def close(self) -> None:
        self._body.close()


class Source:
    """A source that serves one object and counts how often it was read."""

    scheme = "s3"
    features = Features(conditional_write=False, conditional_delete=False, batch_delete_max=1,
                        reports_protection=False)
    limits = NO_LIMITS

    def __init__(self, size: int) -> None:
        self.data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
        self.reads = 0

    def open_read(self, uri: ObjectURI, version: str | None = None,
                  byte_range: tuple[int, int] | None = None) -> _Stream:
        self.reads += 1
        return _Stream(ObjectInfo(uri=uri, size=len(self.data), version="v1", etag='"e"'), self.data)


def copy_as_the_pipeline_does(src: Source, dst: Any, dst_uri: ObjectURI) -> CopyOutcome:
    source = ObjectURI("s3", "src", "k")
    # Source serves reads only: the copy reads it through the protocol's open_read and nothing else.
    return retry.call(functools.partial(copy_version, cast(ObjectStore, src), source, "v1", dst, dst_uri,
                                        expected_size=len(src.data), expected_etag='"e"',
                                        budget=BufferBudget(TransferSettings().buffer_memory)))


class Requests:
    """Requests by operation (and by part number), counted from any thread."""

    def __init__(self) -> None:
        self.ops: Counter[str] = Counter()
        self.parts: Counter[int] = Counter()
        self._lock = threading.Lock()

    def count(self, op: str, part: int | None = None) -> None:
        with self._lock:
            self.ops[op] += 1
            if part is not None:
                self.parts[part] += 1


# --------------------------------------------------------------------------------------------------- S3

def _client_error(status: int, code: str, op: str) -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": code},
                     "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": {}}}
    return ClientError(response, op)


class FakeS3:
    """Answers ``failing`` operations with ``error`` (status, code); the others as S3 would."""

    def __init__(self, failing: set[str], status: int = 503, code: str = "SlowDown") -> None:
        self.failing, self.status, self.code = failing, status, code
        self.flaky: set[str] = set()   # operations whose first request fails with a 503
        self.requests = Requests()

    def _answer(self, op: str, part: int | None = None) -> None:
        self.requests.count(op, part)
        if op in self.failing:
            raise _client_error(self.status, self.code, op)

    def put_object(self, **kw: Any) -> dict[str, Any]:
        self._answer("PutObject")
        return {"ETag": '"e"'}

    def create_multipart_upload(self, **kw: Any) -> dict[str, Any]:
        self._answer("CreateMultipartUpload")
        return {"UploadId": "u1", "ChecksumType": "FULL_OBJECT"}

    def upload_part(self, **kw: Any) -> dict[str, Any]:
        self._answer("UploadPart", kw["PartNumber"])
        return {"ETag": f'"p{kw["PartNumber"]}"'}

    def complete_multipart_upload(self, **kw: Any) -> dict[str, Any]:
        self._answer("CompleteMultipartUpload")
        return {"ETag": '"m-3"'}

    def abort_multipart_upload(self, **kw: Any) -> dict[str, Any]:
        self._answer("AbortMultipartUpload")
        if self.requests.ops["AbortMultipartUpload"] == 1 and "AbortMultipartUpload" in self.flaky:
            raise _client_error(503, "SlowDown", "AbortMultipartUpload")
        return {}


def s3_store(fake: FakeS3, *, parts_in_flight: int = 2) -> S3Store:
    store = S3Store(endpoint_url=NOWHERE, region="us-east-1", allow_non_loopback=False, transfer=store_transfer(
        part_size=5 * MiB, multipart_threshold=5 * MiB, parts_in_flight=parts_in_flight))
    store._client = fake
    return store


DST_S3 = ObjectURI("s3", "dst", "k")


def test_s3_one_request_copy_under_a_persistent_503_makes_6_requests() -> None:
    fake = FakeS3({"PutObject"})
    src = Source(1 * MiB)
    with pytest.raises(StoreError) as err:
        copy_as_the_pipeline_does(src, s3_store(fake), DST_S3)
    assert err.value.retryable and err.value.status == 503
    assert fake.requests.ops == {"PutObject": 6} and src.reads == 1   # the bytes read once, sent 6 times


@pytest.mark.parametrize("parts_in_flight", [1, 3])
def test_s3_multipart_copy_under_a_persistent_503_on_parts(parts_in_flight: int) -> None:
    fake = FakeS3({"UploadPart"})
    src = Source(12 * MiB)   # three parts of 5, 5 and 2 MiB
    with pytest.raises(StoreError):
        copy_as_the_pipeline_does(src, s3_store(fake, parts_in_flight=parts_in_flight), DST_S3)
    ops = fake.requests.ops
    # One upload, its parts retried where they failed, from one budget of 6 failed attempts for the copy
    # (parts already in flight when it runs out still finish theirs).
    assert ops["CreateMultipartUpload"] == 1 and ops["AbortMultipartUpload"] == 1 and src.reads == 1
    assert 6 <= ops["UploadPart"] <= 6 + parts_in_flight - 1
    if parts_in_flight == 1:
        assert fake.requests.parts == {1: 6}                 # was 6 x 6 = 36 sends of part 1


def test_s3_multipart_copy_under_a_persistent_503_on_completion() -> None:
    fake = FakeS3({"CompleteMultipartUpload"})
    src = Source(12 * MiB)
    with pytest.raises(StoreError):
        copy_as_the_pipeline_does(src, s3_store(fake), DST_S3)
    assert fake.requests.ops["CompleteMultipartUpload"] == 6
    assert fake.requests.parts == {1: 1, 2: 1, 3: 1}          # the parts were sent once: only completion retried


def test_s3_abort_after_a_failed_attempt_has_retries_of_its_own() -> None:
    # The retried copy starts a new upload: the failed attempt's upload is aborted now or never.
    fake = FakeS3({"UploadPart"}, status=400, code="InvalidArgument")
    fake.flaky = {"AbortMultipartUpload"}
    with pytest.raises(StoreError):
        copy_as_the_pipeline_does(Source(12 * MiB), s3_store(fake, parts_in_flight=1), DST_S3)
    assert fake.requests.ops["CreateMultipartUpload"] == 1 and fake.requests.ops["AbortMultipartUpload"] == 2


@pytest.mark.parametrize("code", ["BadDigest", "InvalidDigest"])
def test_s3_refused_digest_is_one_transfer(code: str) -> None:
    fake = FakeS3({"PutObject"}, status=400, code=code)
    src = Source(1 * MiB)
    with pytest.raises(DigestRefused) as err:
        copy_as_the_pipeline_does(src, s3_store(fake), DST_S3)
    assert not err.value.retryable and err.value.code == code
    assert fake.requests.ops == {"PutObject": 1} and src.reads == 1   # was 6 x 6 for BadDigest


def test_s3_refused_part_digest_is_one_transfer() -> None:
    fake = FakeS3({"UploadPart"}, status=400, code="BadDigest")
    src = Source(12 * MiB)
    with pytest.raises(DigestRefused):
        copy_as_the_pipeline_does(src, s3_store(fake, parts_in_flight=1), DST_S3)
    assert fake.requests.ops["CreateMultipartUpload"] == 1 and fake.requests.parts == {1: 1}


# -------------------------------------------------------------------------------------------------- OCI

class FakeOci:
    def __init__(self, failing: set[str], status: int = 503, code: str = "ServiceUnavailable") -> None:
        self.failing, self.status, self.code = failing, status, code
        self.requests = Requests()

    def _answer(self, op: str, part: int | None = None) -> None:
        self.requests.count(op, part)
        if op in self.failing:
            raise oci.exceptions.ServiceError(self.status, self.code, {}, f"{self.code} (fake)")

    def put_object(self, *args: Any, **kw: Any) -> Any:
        self._answer("PutObject")
        raise AssertionError("not reached: every PutObject fails in these tests")

    def create_multipart_upload(self, *args: Any, **kw: Any) -> Any:
        self._answer("CreateMultipartUpload")
        return SimpleNamespace(data=SimpleNamespace(upload_id="u1"))

    def upload_part(self, ns: str, bucket: str, key: str, upload_id: str, num: int, data: bytes,
                    **kw: Any) -> Any:
        self._answer("UploadPart", num)
        return SimpleNamespace(headers={"etag": f"p{num}"})

    def commit_multipart_upload(self, *args: Any, **kw: Any) -> Any:
        self._answer("CommitMultipartUpload")
        raise AssertionError("not reached: every copy here fails before or at the commit")

    def abort_multipart_upload(self, *args: Any, **kw: Any) -> Any:
        self._answer("AbortMultipartUpload")
        return SimpleNamespace(headers={})


@pytest.fixture(scope="module")
def oci_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sandbox_config(tmp_path_factory.mktemp("oci-fake"), "ns").config_path


def oci_store(config: Path, fake: FakeOci, *, parts_in_flight: int = 2) -> OciStore:
    store = OciStore(load_oci_config(str(config), "DEFAULT"), NOWHERE, namespace="ns", allow_non_loopback=False,
                     transfer=store_transfer(part_size=1 * MiB, multipart_threshold=1 * MiB,
                                             parts_in_flight=parts_in_flight))
    store._client = fake
    return store


DST_OCI = ObjectURI("oci", "dst", "k", "ns")


def test_oci_one_request_copy_under_a_persistent_503_makes_6_requests(oci_config: Path) -> None:
    fake = FakeOci({"PutObject"})
    src = Source(512 * 1024)
    with pytest.raises(StoreError) as err:
        copy_as_the_pipeline_does(src, oci_store(oci_config, fake), DST_OCI)
    assert err.value.retryable and err.value.status == 503
    assert fake.requests.ops == {"PutObject": 6} and src.reads == 1   # the bytes read once, sent 6 times


@pytest.mark.parametrize("parts_in_flight", [1, 3])
def test_oci_multipart_copy_under_a_persistent_503_on_parts(oci_config: Path, parts_in_flight: int) -> None:
    fake = FakeOci({"UploadPart"})
    src = Source(3 * MiB + 5)   # four parts
    with pytest.raises(StoreError):
        copy_as_the_pipeline_does(src, oci_store(oci_config, fake, parts_in_flight=parts_in_flight), DST_OCI)
    ops = fake.requests.ops
    assert ops["CreateMultipartUpload"] == 1 and ops["AbortMultipartUpload"] == 1 and src.reads == 1
    assert 6 <= ops["UploadPart"] <= 6 + parts_in_flight   # OCI reads one part ahead of a failure it sees
    if parts_in_flight == 1:
        assert fake.requests.parts[1] == 6


def test_oci_multipart_copy_under_a_persistent_503_on_commit(oci_config: Path) -> None:
    fake = FakeOci({"CommitMultipartUpload"})
    src = Source(3 * MiB + 5)
    with pytest.raises(StoreError):
        copy_as_the_pipeline_does(src, oci_store(oci_config, fake), DST_OCI)
    assert fake.requests.ops["CommitMultipartUpload"] == 6
    assert fake.requests.parts == {1: 1, 2: 1, 3: 1, 4: 1}    # the parts were sent once: only the commit retried


@pytest.mark.parametrize("code", ["UnmatchedContentMD5", "UnmatchedContentCRC32C"])
def test_oci_refused_digest_is_one_transfer(oci_config: Path, code: str) -> None:
    fake = FakeOci({"PutObject"}, status=400, code=code)
    src = Source(512 * 1024)
    with pytest.raises(DigestRefused) as err:
        copy_as_the_pipeline_does(src, oci_store(oci_config, fake), DST_OCI)
    assert not err.value.retryable and err.value.code == code
    assert fake.requests.ops == {"PutObject": 1} and src.reads == 1


# -------------------------------------------------------------------------------------------------- GCS

class Uploads:
    """What every GCS upload answers, and how many were sent."""

    def __init__(self) -> None:
        self.error: Exception = gexc.ServiceUnavailable("busy")  # type: ignore[no-untyped-call]  # untyped in api-core
        self.sent = 0


@pytest.fixture
def gcs_uploads(monkeypatch: pytest.MonkeyPatch) -> Uploads:
    uploads = Uploads()

    def upload_from_file(self: storage.Blob, *args: Any, **kwargs: Any) -> None:
        uploads.sent += 1
        raise uploads.error

    monkeypatch.setattr(storage.Blob, "upload_from_file", upload_from_file)
    return uploads


def gcs_store() -> GcsStore:
    return GcsStore(endpoint=NOWHERE, allow_non_loopback=False,
                    transfer=store_transfer(part_size=256 * 1024, multipart_threshold=1 * MiB))


DST_GCS = ObjectURI("gs", "dst", "k")


@pytest.mark.parametrize("size", [512 * 1024, 2 * MiB], ids=["one-request", "resumable"])
def test_gcs_copy_under_a_persistent_503_makes_6_uploads(gcs_uploads: Uploads, size: int) -> None:
    src = Source(size)
    with pytest.raises(StoreError) as err:
        copy_as_the_pipeline_does(src, gcs_store(), DST_GCS)
    assert err.value.retryable and err.value.status == 503
    # A one-request upload sends its buffered bytes again; a resumable one streams, so the copy reads again.
    assert gcs_uploads.sent == 6 and src.reads == (1 if size < 1 * MiB else 6)


@pytest.mark.parametrize("size", [512 * 1024, 2 * MiB], ids=["one-request", "resumable"])
def test_gcs_refused_digest_is_one_transfer(gcs_uploads: Uploads, size: int) -> None:
    gcs_uploads.error = gexc.BadRequest(  # type: ignore[no-untyped-call]  # untyped in api-core
        "Provided CRC32C does not match calculated CRC32C.")
    src = Source(size)
    with pytest.raises(DigestRefused) as err:
        copy_as_the_pipeline_does(src, gcs_store(), DST_GCS)
    assert not err.value.retryable and err.value.status == 400
    assert gcs_uploads.sent == 1 and src.reads == 1


@pytest.mark.parametrize("status", [501, 505, 507])
def test_gcs_other_5xx_are_no_longer_retried(gcs_uploads: Uploads, status: int) -> None:
    gcs_uploads.error = gexc.from_http_status(status, "no")  # type: ignore[no-untyped-call]  # untyped in api-core
    src = Source(512 * 1024)
    with pytest.raises(StoreError) as err:
        copy_as_the_pipeline_does(src, gcs_store(), DST_GCS)
    assert not err.value.retryable and err.value.status == status
    assert gcs_uploads.sent == 1 and src.reads == 1
