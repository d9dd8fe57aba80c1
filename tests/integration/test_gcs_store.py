"""GcsStore against the project's GCS JSON API emulator on 127.0.0.1, through the real SDK client.

The documented behaviours the product depends on (pinned deletes of noncurrent generations, stale
generation preconditions, soft delete) are asserted as GCS documents them.
"""

from __future__ import annotations

import gzip
import io
import random
import socket
import uuid
from collections.abc import Iterator
from typing import Any, Unpack

import pytest
import requests
import urllib3.exceptions
from google.api_core import exceptions as gexc
from google.cloud import storage
from google.cloud.storage.exceptions import DataCorruption

from migrator.checksum import Algorithm, Checksum, MultiHasher, Provenance, find
from migrator.errors import (
    AccessDenied,
    ChecksumMismatch,
    InputError,
    NotFound,
    PreconditionFailed,
    StoreError,
    UnsafeEndpointError,
)
from migrator.sandbox.gcs.server import GcsEmulator
from migrator.stores.base import DeleteOutcome, DeleteTarget, ObjectStore, PutRequest
from migrator.stores.gcs import GcsStore, translate
from migrator.uri import Location, ObjectURI
from tests.conftest import PutOptions, store_transfer

MiB = 1024 * 1024
EDGE_KEYS = ["sp ace.txt", "pct%41", "plus+sign", "q?x#y", "a/../b", "/leading", "ünï/çødé.bin"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    emulator = GcsEmulator().start()
    try:
        yield emulator.url
    finally:
        emulator.stop()


@pytest.fixture(scope="module")
def store(endpoint: str) -> GcsStore:
    return GcsStore(endpoint=endpoint, allow_non_loopback=False, transfer=store_transfer(multipart_threshold=16 * MiB))


def _bucket(store: GcsStore, *, versioned: bool = False) -> str:
    name = f"b-{uuid.uuid4().hex[:12]}"
    bucket = store.client.bucket(name)
    bucket.versioning_enabled = versioned
    store.client.create_bucket(bucket)
    return name


@pytest.fixture
def bucket(store: GcsStore) -> str:
    return _bucket(store)


@pytest.fixture
def vbucket(store: GcsStore) -> str:
    return _bucket(store, versioned=True)


def _put(store: GcsStore, uri: ObjectURI, data: bytes, **kw: Unpack[PutOptions]) -> tuple[str, list[Checksum]]:
    req = PutRequest(size=len(data), **kw)
    result = store.put(uri, io.BytesIO(data), req)
    assert result.size == len(data) and result.version
    return result.version, list(result.checksums)


def _read_all(store: GcsStore, uri: ObjectURI, version: str | None = None,
              byte_range: tuple[int, int] | None = None) -> bytes:
    stream = store.open_read(uri, version, byte_range)
    try:
        chunks = []
        while chunk := stream.read(1 * MiB):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        stream.close()


def _computed(data: bytes) -> list[Checksum]:
    hasher = MultiHasher()
    for i in range(0, len(data), 4 * MiB):
        hasher.update(data[i:i + 4 * MiB])
    return hasher.digests()


def _assert_same(computed: list[Checksum], reported: list[Checksum] | tuple[Checksum, ...],
                 provenance: Provenance, *, md5: bool = True) -> None:
    for algorithm in (Algorithm.CRC32C, Algorithm.MD5) if md5 else (Algorithm.CRC32C,):
        mine, theirs = find(computed, algorithm), find(reported, algorithm)
        assert mine is not None and theirs is not None, algorithm
        assert theirs.provenance == provenance
        assert mine.matches(theirs), algorithm


def at(bucket: str) -> Location:
    """The bucket as bucket-level calls take it."""
    return Location("gs", bucket)


def test_is_an_object_store(store: GcsStore) -> None:
    # mypy --strict checks this assignment against every method of the protocol, signatures included;
    # a runtime_checkable isinstance sees only attribute names.
    as_protocol: ObjectStore = store
    assert as_protocol.scheme == "gs"


def test_round_trip_digests_and_metadata(store: GcsStore, bucket: str) -> None:
    uri = ObjectURI("gs", bucket, "dir/obj.bin")
    data = random.Random(1).randbytes(300_000)
    version, reported = _put(store, uri, data, content_type="application/x-test", metadata={"who": "u1"})
    computed = _computed(data)
    _assert_same(computed, reported, Provenance.DESTINATION)

    info = store.stat(uri)
    assert (info.size, info.version, info.content_type) == (len(data), version, "application/x-test")
    assert info.metadata == {"who": "u1"} and info.is_latest and info.multipart_parts is None
    assert info.metageneration == "1" and info.last_modified is not None
    assert info.extra["temporaryHold"] == "false" and info.extra["eventBasedHold"] == "false"
    _assert_same(computed, info.checksums, Provenance.SOURCE)

    stream = store.open_read(uri, version)
    assert stream.info.version == version and stream.info.size == len(data)
    _assert_same(computed, stream.info.checksums, Provenance.SOURCE)
    stream.close()
    assert _read_all(store, uri, version) == data


def test_large_object_streams_through_resumable_upload(store: GcsStore, bucket: str) -> None:
    uri = ObjectURI("gs", bucket, "large.bin")
    data = random.Random(2).randbytes(24 * MiB + 123)
    assert len(data) > store.multipart_threshold
    version, reported = _put(store, uri, data)
    computed = _computed(data)
    _assert_same(computed, reported, Provenance.DESTINATION)
    _assert_same(computed, store.stat(uri, version).checksums, Provenance.SOURCE)

    hasher = MultiHasher()
    stream = store.open_read(uri, version)
    while chunk := stream.read(MiB):
        assert len(chunk) <= MiB
        hasher.update(chunk)
    stream.close()
    assert hasher.size == len(data)
    _assert_same(hasher.digests(), reported, Provenance.DESTINATION)


def test_large_put_refuses_to_overwrite(store: GcsStore, bucket: str) -> None:
    uri = ObjectURI("gs", bucket, "large-twice.bin")
    small = GcsStore(endpoint=store.endpoint,
                     transfer=store_transfer(part_size=256 * 1024, multipart_threshold=256 * 1024))
    data = b"z" * (600 * 1024)
    _put(small, uri, data)
    with pytest.raises(PreconditionFailed):
        _put(small, uri, data)


def test_byte_ranges_read_exactly_the_bytes_asked_and_a_reversed_range_is_bad_input(store: GcsStore,
                                                                                    bucket: str) -> None:
    uri = ObjectURI("gs", bucket, "ranged")
    data = bytes(range(256)) * 40
    version, _ = _put(store, uri, data)
    for first, last in [(0, 0), (5, 9), (100, 4095), (len(data) - 1, len(data) - 1)]:
        stream = store.open_read(uri, version, (first, last))
        assert stream.info.size == len(data)  # the whole object's size, not the range's
        assert stream.read() == data[first:last + 1]
        stream.close()
    with pytest.raises(InputError):
        store.open_read(uri, version, (9, 5))


def test_gzip_object_is_read_raw(store: GcsStore, bucket: str) -> None:
    uri = ObjectURI("gs", bucket, "logs/app.log.gz")
    plain = b"line of text\n" * 5000
    packed = gzip.compress(plain)
    version, reported = _put(store, uri, packed, content_type="text/plain", content_encoding="gzip")
    _assert_same(_computed(packed), reported, Provenance.DESTINATION)
    assert store.stat(uri).content_encoding == "gzip"
    stream = store.open_read(uri, version)
    assert stream.info.content_encoding == "gzip"
    body = stream.read()
    stream.close()
    assert body == packed and gzip.decompress(body) == plain


@pytest.mark.parametrize("key", EDGE_KEYS)
def test_edge_keys_taken_literally(store: GcsStore, bucket: str, key: str) -> None:
    uri = ObjectURI("gs", bucket, key)
    data = key.encode() * 7
    version, _ = _put(store, uri, data)
    assert store.stat(uri, version).uri.key == key
    assert _read_all(store, uri, version) == data
    assert _read_all(store, uri, version, (1, 3)) == data[1:4]
    listed = [e for e in store.list_versions(at(bucket), key) if e.key == key]
    assert [e.version for e in listed] == [version]
    store.delete_version(uri, version)
    with pytest.raises(NotFound):
        store.stat(uri)


def test_zero_byte_object(store: GcsStore, bucket: str) -> None:
    uri = ObjectURI("gs", bucket, "empty")
    version, reported = _put(store, uri, b"")
    _assert_same(_computed(b""), reported, Provenance.DESTINATION)
    assert store.stat(uri).size == 0
    assert _read_all(store, uri, version) == b""


def test_short_and_long_bodies_are_refused(store: GcsStore, bucket: str) -> None:
    uri = ObjectURI("gs", bucket, "sized")
    with pytest.raises(InputError):
        store.put(uri, io.BytesIO(b"abc"), PutRequest(size=4))
    with pytest.raises(InputError):
        store.put(uri, io.BytesIO(b"abcde"), PutRequest(size=4))
    with pytest.raises(NotFound):
        store.stat(uri)


def test_put_if_none_match_on_existing(store: GcsStore, bucket: str) -> None:
    uri = ObjectURI("gs", bucket, "once")
    first, _ = _put(store, uri, b"first")
    with pytest.raises(PreconditionFailed) as err:
        _put(store, uri, b"second")
    assert err.value.status == 412 and not err.value.retryable
    assert store.stat(uri).version == first
    second, _ = _put(store, uri, b"second", if_none_match=False)
    assert int(second) > int(first)


def test_versions_listing_and_pinned_reads(store: GcsStore, vbucket: str) -> None:
    uri = ObjectURI("gs", vbucket, "doc.txt")
    bodies = [b"one", b"two!", b"three"]
    versions = [_put(store, uri, b, if_none_match=False)[0] for b in bodies]
    _put(store, ObjectURI("gs", vbucket, "doc.txt.other"), b"x")

    listed = [e for e in store.list_versions(at(vbucket), "doc.txt") if e.key == "doc.txt"]
    assert [e.version for e in listed] == versions  # oldest first
    assert [e.is_latest for e in listed] == [False, False, True]
    assert [e.size for e in listed] == [3, 4, 5]
    assert not any(e.is_delete_marker for e in listed)

    old = store.stat(uri, versions[0])
    assert not old.is_latest and "timeDeleted" in old.extra
    assert _read_all(store, uri, versions[0]) == b"one"
    assert store.bucket_facts(at(vbucket)).versioning
    with pytest.raises(NotFound):
        store.stat(uri, "1")


def test_pinned_delete_of_live_generation(store: GcsStore, bucket: str) -> None:
    uri = ObjectURI("gs", bucket, "gone")
    version, _ = _put(store, uri, b"bytes")
    store.delete_version(uri, version)
    assert list(store.list_versions(at(bucket), "gone")) == []
    with pytest.raises(NotFound):
        store.delete_version(uri, version)


def test_unpinned_delete_is_refused(store: GcsStore, bucket: str) -> None:
    uri = ObjectURI("gs", bucket, "kept")
    _put(store, uri, b"x")
    with pytest.raises(InputError):
        store.delete_version(uri, None)
    with pytest.raises(InputError):
        store.delete_version(uri, "not-a-generation")
    assert store.stat(uri).size == 1


def test_delete_if_match_checks_the_etag(store: GcsStore, bucket: str) -> None:
    uri = ObjectURI("gs", bucket, "etagged")
    version, _ = _put(store, uri, b"x")
    with pytest.raises(PreconditionFailed):
        store.delete_version(uri, version, if_match="not-the-etag")
    etag = store.stat(uri, version).etag
    store.delete_version(uri, version, if_match=etag)
    with pytest.raises(NotFound):
        store.stat(uri)


def test_delete_versions_reports_each_target(store: GcsStore, bucket: str) -> None:
    a, _ = _put(store, ObjectURI("gs", bucket, "a"), b"a")
    b, _ = _put(store, ObjectURI("gs", bucket, "b"), b"b")
    results = store.delete_versions(at(bucket), [DeleteTarget("a", a), DeleteTarget("b", b),
                                             DeleteTarget("c", "123"), DeleteTarget("b", None)])
    assert [(r.ok, r.code) for r in results] == [(True, None), (True, None), (False, "NotFound"),
                                                 (False, "InvalidTarget")]
    assert [r.outcome for r in results] == [DeleteOutcome.DELETED, DeleteOutcome.DELETED, DeleteOutcome.ABSENT,
                                            DeleteOutcome.REFUSED]
    assert list(store.list_versions(at(bucket), "")) == []


def test_uploads_are_not_a_feature(store: GcsStore) -> None:
    assert store.features.uploads is None   # the JSON API cannot list incomplete resumable uploads


def test_features_and_bucket_facts_match_what_gcs_offers_and_a_missing_bucket_is_not_found(
        store: GcsStore, bucket: str) -> None:
    facts, features = store.bucket_facts(at(bucket)), store.features
    assert not facts.versioning and features.conditional_write and features.conditional_delete
    assert features.batch_delete_max == 1 and not facts.retention
    # A bucket created without a policy gets GCS's default 7-day soft delete.
    assert features.soft_deleted is not None and facts.soft_delete_seconds == 7 * 24 * 3600
    with pytest.raises(NotFound):
        store.bucket_facts(at("no-such-bucket-here"))


def test_missing_object_and_bucket(store: GcsStore, bucket: str) -> None:
    with pytest.raises(NotFound):
        store.stat(ObjectURI("gs", bucket, "nope"))
    with pytest.raises(NotFound):
        store.open_read(ObjectURI("gs", bucket, "nope"))
    with pytest.raises(NotFound):
        store.open_read(ObjectURI("gs", "no-such-bucket-here", "nope"))


def test_connection_failures_are_retryable(bucket: str) -> None:
    dead = GcsStore(endpoint=f"http://127.0.0.1:{_free_port()}", allow_non_loopback=False, transfer=store_transfer())
    with pytest.raises(StoreError) as err:
        dead.stat(ObjectURI("gs", bucket, "x"))
    assert err.value.retryable and err.value.code == "ConnectionError"


def test_lost_response_then_412_is_recognised_as_our_own_write(
        store: GcsStore, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The first upload lands but its response is "lost"; the retry meets ifGenerationMatch=0.
    real = storage.Blob.upload_from_file
    calls = {"n": 0}

    def flaky(self: storage.Blob, *args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        real(self, *args, **kwargs)
        if calls["n"] == 1:
            raise requests.ConnectionError("connection reset after upload")

    monkeypatch.setattr(storage.Blob, "upload_from_file", flaky)
    uri = ObjectURI("gs", bucket, "lost-response")
    version, _ = _put(store, uri, b"payload")
    assert calls["n"] == 2 and store.stat(uri).version == version
    # A different object already there is still a precondition failure.
    calls["n"] = 0
    with pytest.raises(PreconditionFailed):
        _put(store, uri, b"other payload")


def _http_error(status: int, message: str, **kwargs: Any) -> gexc.GoogleAPICallError:
    """google-api-core's from_http_status (kwargs go to the exception)."""
    # from_http_status has no annotations in google-api-core: the declared type is its documented one.
    exc: gexc.GoogleAPICallError = gexc.from_http_status(status, message, **kwargs)  # type: ignore[no-untyped-call]
    return exc


@pytest.mark.parametrize(("exc", "kind", "retryable", "code"), [
    (_http_error(503, "busy"), StoreError, True, "HTTP503"),
    (_http_error(429, "slow down"), StoreError, True, "HTTP429"),
    (_http_error(500, "oops"), StoreError, True, "HTTP500"),
    (_http_error(400, "bad"), StoreError, False, "HTTP400"),
    (_http_error(404, "nope"), NotFound, False, "NotFound"),
    (_http_error(412, "stale"), PreconditionFailed, False, "PreconditionFailed"),
    (_http_error(403, "held", errors=[{"reason": "retentionPolicyNotMet"}]), AccessDenied, False,
     "retentionPolicyNotMet"),
    (requests.exceptions.ChunkedEncodingError("cut"), StoreError, True, "ConnectionError"),
    (urllib3.exceptions.ProtocolError("reset"), StoreError, True, "ConnectionError"),
])
def test_error_translation_by_status_and_type(exc: BaseException, kind: type[StoreError], retryable: bool,
                                              code: str) -> None:
    err = translate(exc, "gs://b/k")
    assert type(err) is kind and isinstance(err, StoreError)
    assert (err.retryable, err.code) == (retryable, code)


def test_data_corruption_is_a_checksum_mismatch() -> None:
    assert isinstance(translate(DataCorruption(None, "crc32c differs"), "gs://b/k"), ChecksumMismatch)


def test_non_loopback_endpoints_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    for url in ("http://10.1.2.3:4443", "https://storage.googleapis.com", "http://127.example.com:80"):
        with pytest.raises(UnsafeEndpointError):
            GcsStore(endpoint=url, allow_non_loopback=False, transfer=store_transfer())
    with pytest.raises(UnsafeEndpointError):
        GcsStore(allow_non_loopback=False, transfer=store_transfer())
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://192.168.1.1:9000")
    with pytest.raises(UnsafeEndpointError):
        GcsStore(allow_non_loopback=False, transfer=store_transfer())
    for url in ("http://localhost:1", "http://127.0.0.2:1", "http://[::1]:1"):
        GcsStore(endpoint=url, allow_non_loopback=False, transfer=store_transfer())  # constructing makes no request


def test_part_size_must_be_chunk_aligned() -> None:
    with pytest.raises(InputError):
        GcsStore(endpoint="http://127.0.0.1:1", transfer=store_transfer(part_size=5 * MiB + 1))


# --- documented GCS behaviour that fake-gcs-server lacked ---------------------------------------------

def test_delete_noncurrent_generation_removes_exactly_it(store: GcsStore, vbucket: str) -> None:
    uri = ObjectURI("gs", vbucket, "k")
    old, _ = _put(store, uri, b"old", if_none_match=False)
    live, _ = _put(store, uri, b"live", if_none_match=False)
    store.delete_version(uri, old)
    assert [(e.version, e.is_latest) for e in store.list_versions(at(vbucket), "k")] == [(live, True)]


def test_delete_live_generation_on_versioned_bucket_is_permanent(store: GcsStore, vbucket: str) -> None:
    uri = ObjectURI("gs", vbucket, "k2")
    version, _ = _put(store, uri, b"x")
    store.delete_version(uri, version)
    assert list(store.list_versions(at(vbucket), "k2")) == []


def test_delete_of_replaced_generation_leaves_live_object(store: GcsStore, bucket: str) -> None:
    uri = ObjectURI("gs", bucket, "replaced")
    old, _ = _put(store, uri, b"old")
    live, _ = _put(store, uri, b"new", if_none_match=False)
    with pytest.raises(NotFound):
        store.delete_version(uri, old)
    assert store.stat(uri).version == live


def test_soft_deleted_generations_are_listed(store: GcsStore, bucket: str) -> None:
    uri = ObjectURI("gs", bucket, "soft")
    version, _ = _put(store, uri, b"x")
    store.delete_version(uri, version)
    assert [(e.key, e.version) for e in store.list_soft_deleted(at(bucket), "soft")] == [("soft", version)]
    assert store.features.soft_deleted == store.list_soft_deleted


def test_sdk_client_is_exposed_for_setup(store: GcsStore) -> None:
    assert isinstance(store.client, storage.Client)
