"""S3Store against a real moto server on 127.0.0.1, through the real boto3 client."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Unpack

import pytest

from migrator.checksum import Algorithm, Checksum, MultiHasher, Provenance, find, parse_s3_etag
from migrator.endpoints import is_loopback_url
from migrator.errors import (
    AccessDenied,
    InputError,
    NotFound,
    PreconditionFailed,
    StoreError,
    UnsafeEndpointError,
)
from migrator.stores.base import DeleteOutcome, DeleteTarget, ObjectStore, PutRequest, PutResult
from migrator.stores.s3 import S3Store
from migrator.uri import Location, ObjectURI
from tests.conftest import PutOptions, store_transfer

MIB = 1024 * 1024
VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "checksums.json"
EDGE_KEYS = ["sp ace.txt", "pct%41", "plus+sign", "q?x#y", "a/../b", "/leading", "ünï/çødé.bin", "zero-byte"]


def det_bytes(size: int) -> bytes:
    """The vectors' generator: SHA-256(b'migrator-vector-' || uint64_be(i)) concatenated, truncated."""
    out = bytearray()
    i = 0
    while len(out) < size:
        out += hashlib.sha256(b"migrator-vector-" + i.to_bytes(8, "big")).digest()
        i += 1
    return bytes(out[:size])


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
        for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
            mp.delenv(name, raising=False)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()  # port 0: the OS picked a free one
        try:
            yield f"http://{host}:{port}"
        finally:
            server.stop()


@pytest.fixture(scope="module")
def store(endpoint: str) -> S3Store:
    return S3Store(endpoint_url=endpoint, allow_non_loopback=False,
                   transfer=store_transfer(multipart_threshold=16 * MIB))


def _bucket(store: S3Store, kind: str, *, versioned: bool, lock: bool = False) -> str:
    name = f"mig-{kind}-{uuid.uuid4().hex[:10]}"  # moto's state is process-wide: keep names unique
    if lock:
        store.client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    else:
        store.client.create_bucket(Bucket=name)
    if versioned and not lock:
        store.client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


@pytest.fixture(scope="module")
def vbucket(store: S3Store) -> str:
    return _bucket(store, "ver", versioned=True)


@pytest.fixture(scope="module")
def ubucket(store: S3Store) -> str:
    return _bucket(store, "unv", versioned=False)


def at(bucket: str) -> Location:
    """The bucket as bucket-level calls take it."""
    return Location("s3", bucket)


def uri(bucket: str, key: str) -> ObjectURI:
    return ObjectURI("s3", bucket, key)


def put_bytes(store: S3Store, target: ObjectURI, data: bytes, **kw: Unpack[PutOptions]) -> PutResult:
    return store.put(target, io.BytesIO(data), PutRequest(size=len(data), **kw))


def must(value: Checksum | None) -> Checksum:
    assert value is not None
    return value


def read_all(store: S3Store, target: ObjectURI, version: str | None = None, chunk: int = 1 * MIB,
             byte_range: tuple[int, int] | None = None) -> bytes:
    stream = store.open_read(target, version, byte_range)
    try:
        pieces: list[bytes] = []
        while True:
            piece = stream.read(chunk)
            if not piece:
                return b"".join(pieces)
            assert len(piece) <= chunk
            pieces.append(piece)
    finally:
        stream.close()


def test_s3store_is_an_object_store_for_the_s3_scheme(store: S3Store) -> None:
    # mypy --strict checks this assignment against every method of the protocol, signatures included;
    # a runtime_checkable isinstance sees only attribute names.
    as_protocol: ObjectStore = store
    assert as_protocol.scheme == "s3"


def test_single_put_stat_read_round_trip(store: S3Store, vbucket: str) -> None:
    data = det_bytes(100_000)
    target = uri(vbucket, "single/obj.bin")
    result = store.put(target, io.BytesIO(data), PutRequest(
        size=len(data), content_type="application/x-test", metadata={"subject": "u-1"}))
    hasher = MultiHasher()
    hasher.update(data)
    computed = hasher.digests()
    assert result.size == len(data) and result.parts is None and result.version
    for algo in (Algorithm.MD5, Algorithm.CRC32C):
        reported = find(result.checksums, algo)
        assert reported is not None and reported.provenance is Provenance.DESTINATION
        assert reported.matches(must(find(computed, algo)))

    info = store.stat(target)
    assert info.size == len(data) and info.version == result.version and info.etag == result.etag
    assert info.content_type == "application/x-test" and info.metadata == {"subject": "u-1"}
    assert info.storage_class == "STANDARD" and info.encryption is None and info.multipart_parts is None
    assert info.last_modified is not None
    for algo in (Algorithm.MD5, Algorithm.CRC32C):
        source = find(info.checksums, algo)
        assert source is not None and source.provenance is Provenance.SOURCE
        assert source.matches(must(find(computed, algo)))

    stream = store.open_read(target, result.version)
    assert stream.info.version == result.version and stream.info.size == len(data)
    assert find(stream.info.checksums, Algorithm.CRC32C) == find(info.checksums, Algorithm.CRC32C)
    stream.close()
    assert read_all(store, target, result.version, chunk=7_777) == data


def test_multipart_24mib_checksums_and_part_sizes(store: S3Store, vbucket: str) -> None:
    data = det_bytes(24 * MIB)
    target = uri(vbucket, "multi/24.bin")
    result = put_bytes(store, target, data)
    hasher = MultiHasher(part_sizes=[8 * MIB] * 3)
    hasher.update(data)
    computed = hasher.digests()
    assert result.parts == 3 and result.size == len(data)
    crc = find(result.checksums, Algorithm.CRC32C)
    assert crc is not None and crc.is_whole_object  # FULL_OBJECT multipart checksum
    assert crc.matches(must(find(computed, Algorithm.CRC32C)))
    etag = find(result.checksums, Algorithm.MULTIPART_MD5, parts=3)
    assert etag is not None and etag.matches(must(find(computed, Algorithm.MULTIPART_MD5, parts=3)))
    assert find(result.checksums, Algorithm.MD5) is None

    info = store.stat(target)
    assert info.multipart_parts == 3 and info.size == len(data)
    assert must(find(info.checksums, Algorithm.CRC32C)).matches(crc)
    assert store.part_sizes(target, info.version, 3) == [8 * MIB] * 3

    reread = MultiHasher(part_sizes=store.part_sizes(target, info.version, 3))
    reread.update(read_all(store, target, info.version))
    assert [c.value for c in reread.digests()] == [c.value for c in computed]


def test_multipart_matches_vector_etag(endpoint: str, ubucket: str) -> None:
    vector = next(o for o in json.loads(VECTORS.read_text())["objects"] if o["name"] == "det-20MiB-8MiB-parts")
    store = S3Store(endpoint_url=endpoint, allow_non_loopback=False,
                    transfer=store_transfer(part_size=vector["part_size"], multipart_threshold=16 * MIB))
    target = uri(ubucket, "vector/20mib.bin")
    result = put_bytes(store, target, det_bytes(vector["size"]))
    assert result.etag == vector["s3_multipart_etag"]
    assert result.version in (None, "null")  # moto says "null"; S3 omits it
    crc = find(result.checksums, Algorithm.CRC32C)
    assert crc is not None and crc.b64 == vector["crc32c_base64_be"]
    assert store.stat(target).checksums == tuple(
        c.__class__(c.algorithm, c.value, Provenance.SOURCE, c.parts) for c in result.checksums)
    assert parse_s3_etag(vector["s3_multipart_etag"]).parts == 3


def test_multipart_memory_is_bounded(endpoint: str, ubucket: str) -> None:
    store = S3Store(endpoint_url=endpoint, allow_non_loopback=False,
                    transfer=store_transfer(part_size=5 * MIB, multipart_threshold=5 * MIB, parts_in_flight=2))
    lock = threading.Lock()
    state = {"read": 0, "done": 0, "peak_ahead": 0, "in_flight": 0, "peak_in_flight": 0}

    class CountingBody(io.BytesIO):
        def read(self, n: int | None = -1) -> bytes:
            data = super().read(n)
            with lock:
                state["read"] += len(data)
                state["peak_ahead"] = max(state["peak_ahead"], state["read"] - state["done"])
            return data

    def before(params: dict[str, dict[str, str]], context: dict[str, int], **_: object) -> None:
        context["part_len"] = int(params["headers"]["Content-Length"])
        with lock:
            state["in_flight"] += 1
            state["peak_in_flight"] = max(state["peak_in_flight"], state["in_flight"])

    def after(context: dict[str, int], **_: object) -> None:
        with lock:
            state["in_flight"] -= 1
            state["done"] += context["part_len"]

    store.client.meta.events.register("before-call.s3.UploadPart", before)
    store.client.meta.events.register("after-call.s3.UploadPart", after)
    data = det_bytes(23 * MIB)
    store.put(uri(ubucket, "bounded.bin"), CountingBody(data), PutRequest(size=len(data)))
    assert state["read"] == len(data) and state["done"] == len(data)
    assert 1 <= state["peak_in_flight"] <= 2
    assert state["peak_ahead"] <= 2 * 5 * MIB


def test_byte_ranges_read_exactly_the_bytes_asked_and_a_reversed_range_is_bad_input(store: S3Store,
                                                                                    vbucket: str) -> None:
    data = det_bytes(20 * MIB)
    target = uri(vbucket, "ranges.bin")
    result = put_bytes(store, target, data)
    version = result.version
    small = uri(vbucket, "ranges-small.txt")
    put_bytes(store, small, b"0123456789")
    assert read_all(store, small, byte_range=(0, 0)) == b"0"
    assert read_all(store, small, byte_range=(5, 9)) == b"56789"
    stream = store.open_read(small, byte_range=(2, 4))
    assert stream.info.size == 10 and stream.read() == b"234"
    stream.close()
    boundary = 8 * MIB
    assert read_all(store, target, version, byte_range=(boundary - 2, boundary + 1)) == \
        data[boundary - 2: boundary + 2]
    with pytest.raises(InputError):
        store.open_read(small, byte_range=(5, 4))


@pytest.mark.parametrize("key", EDGE_KEYS)
def test_edge_keys(store: S3Store, vbucket: str, key: str) -> None:
    data = b"" if key == "zero-byte" else f"content of {key!r}".encode()
    target = uri(vbucket, f"edge/{key}" if not key.startswith("/") else key)
    result = put_bytes(store, target, data)
    info = store.stat(target)
    assert info.size == len(data) and info.version == result.version
    assert must(find(info.checksums, Algorithm.MD5)).value == hashlib.md5(data).digest()
    assert read_all(store, target) == data
    listed = [e for e in store.list_versions(at(vbucket), target.key) if e.key == target.key]
    assert [(e.version, e.is_delete_marker) for e in listed] == [(result.version, False)]
    store.delete_version(target, result.version)
    assert [e for e in store.list_versions(at(vbucket), target.key) if e.key == target.key] == []
    with pytest.raises(NotFound):
        store.stat(target)


def test_versions_and_markers_oldest_first_across_pages(endpoint: str) -> None:
    store = S3Store(endpoint_url=endpoint, allow_non_loopback=False, list_page_size=2, transfer=store_transfer())
    bucket = _bucket(store, "vlist", versioned=True)
    key = uri(bucket, "doc")
    v1 = put_bytes(store, key, b"one", if_none_match=False).version
    v2 = put_bytes(store, key, b"two", if_none_match=False).version
    m1 = store.client.delete_object(Bucket=bucket, Key="doc")["VersionId"]
    v3 = put_bytes(store, key, b"three", if_none_match=False).version
    m2 = store.client.delete_object(Bucket=bucket, Key="doc")["VersionId"]
    other = put_bytes(store, uri(bucket, "doc2"), b"x").version

    entries = list(store.list_versions(at(bucket), "doc"))
    # Real S3 interleaves versions and markers newest first; moto lists all versions, then all markers,
    # with one-second timestamps. So only each kind's own order is checked here.
    assert [e.key for e in entries] == ["doc"] * 5 + ["doc2"]
    assert [e.version for e in entries if not e.is_delete_marker] == [v1, v2, v3, other]
    assert [e.version for e in entries if e.is_delete_marker] == [m1, m2]
    assert [e.version for e in entries if e.is_latest] == [m2, other]
    first = entries[0] if not entries[0].is_delete_marker else entries[1]
    assert first.size == 3 and first.etag == f'"{hashlib.md5(b"one").hexdigest()}"'

    with pytest.raises(NotFound):
        store.stat(key)  # current version is a delete marker
    with pytest.raises(NotFound):
        store.stat(key, m2)
    assert store.stat(key, v2).size == 3

    # Pinned delete of one version leaves the others.
    store.delete_version(key, v2)
    with pytest.raises(NotFound):
        store.stat(key, v2)
    assert {e.version for e in store.list_versions(at(bucket), "doc") if e.key == "doc"} == {v1, m1, v3, m2}

    rest = [DeleteTarget("doc", v) for v in (v1, m1, v3, m2)] + [DeleteTarget("doc2", other)]
    results = store.delete_versions(at(bucket), rest)
    assert [(r.target, r.ok) for r in results] == [(t, True) for t in rest]
    assert list(store.list_versions(at(bucket), "doc")) == []


def test_conditional_delete_and_write(store: S3Store, ubucket: str, vbucket: str) -> None:
    target = uri(ubucket, "cond.txt")
    result = put_bytes(store, target, b"payload")
    assert result.version is None
    with pytest.raises(PreconditionFailed):
        store.delete_version(target, None, if_match='"00000000000000000000000000000000"')
    assert store.stat(target).size == 7
    with pytest.raises(PreconditionFailed):
        put_bytes(store, target, b"other")  # IfNoneMatch on an existing object
    with pytest.raises(PreconditionFailed):
        put_bytes(store, target, det_bytes(16 * MIB))  # multipart: refused at completion, upload aborted
    assert [u for u in store.list_uploads(at(ubucket), "cond.txt")] == []
    assert read_all(store, target) == b"payload"
    with pytest.raises(InputError):
        store.delete_version(target, None)  # unpinned deletes are refused
    store.delete_version(target, None, if_match=result.etag)
    with pytest.raises(NotFound):
        store.stat(target)

    vtarget = uri(vbucket, "cond-v.txt")
    put_bytes(store, vtarget, b"v")
    with pytest.raises(PreconditionFailed):
        put_bytes(store, vtarget, b"w")


def test_uploads_list_and_abort(endpoint: str) -> None:
    store = S3Store(endpoint_url=endpoint, allow_non_loopback=False, list_page_size=1, transfer=store_transfer())
    bucket = _bucket(store, "upl", versioned=False)
    ids = {store.client.create_multipart_upload(Bucket=bucket, Key=f"up/{i}")["UploadId"]: f"up/{i}"
           for i in range(3)}
    store.client.create_multipart_upload(Bucket=bucket, Key="elsewhere")
    found = list(store.list_uploads(at(bucket), "up/"))
    assert {u.upload_id: u.key for u in found} == ids
    for u in found:
        store.abort_upload(at(bucket), u.key, u.upload_id)
    assert list(store.list_uploads(at(bucket), "up/")) == []
    with pytest.raises(NotFound):
        store.abort_upload(at(bucket), "up/0", next(iter(ids)))


def test_object_lock_facts_features_and_batch_errors(store: S3Store, vbucket: str, ubucket: str) -> None:
    assert store.bucket_facts(at(vbucket)).versioning is True
    facts = store.bucket_facts(at(ubucket))
    assert facts.versioning is False and facts.retention is False and facts.soft_delete_seconds == 0
    features = store.features
    assert features.batch_delete_max == 1000 and features.conditional_delete and features.soft_deleted is None
    locked = _bucket(store, "lock", versioned=True, lock=True)
    facts = store.bucket_facts(at(locked))
    assert facts.versioning and facts.retention
    target = uri(locked, "held.txt")
    version = put_bytes(store, target, b"held").version
    free = put_bytes(store, uri(locked, "free.txt"), b"free").version
    store.client.put_object_legal_hold(Bucket=locked, Key="held.txt", VersionId=version,
                                       LegalHold={"Status": "ON"})
    info = store.stat(target, version)
    assert info.extra.get("object_lock_legal_hold") == "ON"
    assert info.protection.legal_hold and info.protection.blocking_reason() == "S3 Object Lock legal hold"
    with pytest.raises(AccessDenied):
        store.delete_version(target, version)
    results = store.delete_versions(at(locked), [DeleteTarget("held.txt", version), DeleteTarget("free.txt", free)])
    assert [r.ok for r in results] == [False, True]
    assert results[0].code == "AccessDenied"
    assert [r.outcome for r in results] == [DeleteOutcome.REFUSED, DeleteOutcome.DELETED]
    store.client.put_object_legal_hold(Bucket=locked, Key="held.txt", VersionId=version,
                                       LegalHold={"Status": "OFF"})
    store.delete_version(target, version)


def test_not_found_and_body_size_checks(store: S3Store, ubucket: str) -> None:
    with pytest.raises(NotFound):
        store.stat(uri(ubucket, "missing"))
    with pytest.raises(NotFound):
        store.stat(uri("mig-no-such-bucket-x", "k"))
    with pytest.raises(NotFound):
        store.open_read(uri(ubucket, "missing"))
    with pytest.raises(InputError):
        store.put(uri(ubucket, "short"), io.BytesIO(b"abc"), PutRequest(size=4))
    with pytest.raises(InputError):
        store.put(uri(ubucket, "long"), io.BytesIO(b"abcde"), PutRequest(size=4))
    with pytest.raises(NotFound):
        store.stat(uri(ubucket, "short"))


def test_connection_refused_is_retryable(endpoint: str) -> None:
    import socket

    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = S3Store(endpoint_url=f"http://127.0.0.1:{port}", allow_non_loopback=False, transfer=store_transfer())
    with pytest.raises(StoreError) as info:
        store.stat(uri("some-bucket", "k"))
    assert info.value.retryable and info.value.code == "EndpointConnectionError"


@pytest.mark.parametrize("url", ["http://10.0.0.1:9000", "https://s3.amazonaws.com", "http://localhost.evil.test",
                                 "http://127.0.0.1.nip.io:80", "http://[::2]:80", "http://0.0.0.0:5000"])
def test_non_loopback_endpoint_refused(endpoint: str, url: str) -> None:
    assert not is_loopback_url(url)
    with pytest.raises(UnsafeEndpointError):
        S3Store(endpoint_url=url, allow_non_loopback=False, transfer=store_transfer())


def test_loopback_endpoints_and_env(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for url in ("http://127.0.0.1:1", "http://127.9.9.9:1", "http://localhost:1", "http://[::1]:1"):
        assert is_loopback_url(url)
    with pytest.raises(UnsafeEndpointError):
        S3Store(allow_non_loopback=False, transfer=store_transfer())  # no endpoint at all: boto3 would go to AWS
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://10.1.2.3:9000")
    with pytest.raises(UnsafeEndpointError):
        S3Store(allow_non_loopback=False, transfer=store_transfer())
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    store = S3Store(allow_non_loopback=False, transfer=store_transfer())  # boto3's own AWS_ENDPOINT_URL handling
    assert store.endpoint_url == endpoint
    bucket = _bucket(store, "env", versioned=False)
    put_bytes(store, uri(bucket, "k"), b"via env")
    assert store.stat(uri(bucket, "k")).size == 7


_S3_PAGES = {
    # Real S3 interleaves <Version> and <DeleteMarker> by key, newest first; a key may span pages.
    "": """<ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><EncodingType>url</EncodingType><Name>b</Name><Prefix></Prefix>
<KeyMarker></KeyMarker><VersionIdMarker></VersionIdMarker><NextKeyMarker>a%2Bb</NextKeyMarker>
<NextVersionIdMarker>v2</NextVersionIdMarker><MaxKeys>3</MaxKeys><IsTruncated>true</IsTruncated>
<DeleteMarker><Key>a%2Bb</Key><VersionId>m4</VersionId><IsLatest>true</IsLatest>
<LastModified>2026-01-01T00:00:04.000Z</LastModified></DeleteMarker>
<Version><Key>a%2Bb</Key><VersionId>v3</VersionId><IsLatest>false</IsLatest>
<LastModified>2026-01-01T00:00:03.000Z</LastModified><ETag>"e3"</ETag><Size>3</Size><StorageClass>STANDARD</StorageClass></Version>
<DeleteMarker><Key>a%2Bb</Key><VersionId>v2</VersionId><IsLatest>false</IsLatest>
<LastModified>2026-01-01T00:00:02.000Z</LastModified></DeleteMarker>
</ListVersionsResult>""",
    "a+b": """<ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><EncodingType>url</EncodingType><Name>b</Name><Prefix></Prefix>
<KeyMarker>a%2Bb</KeyMarker><VersionIdMarker>v2</VersionIdMarker><MaxKeys>3</MaxKeys><IsTruncated>false</IsTruncated>
<Version><Key>a%2Bb</Key><VersionId>v1</VersionId><IsLatest>false</IsLatest>
<LastModified>2026-01-01T00:00:01.000Z</LastModified><ETag>"e1"</ETag><Size>1</Size><StorageClass>STANDARD</StorageClass></Version>
<Version><Key>c</Key><VersionId>null</VersionId><IsLatest>true</IsLatest>
<LastModified>2026-01-01T00:00:05.000Z</LastModified><ETag>"e5"</ETag><Size>5</Size><StorageClass>STANDARD</StorageClass></Version>
</ListVersionsResult>""",
}


def test_interleaved_listing_like_real_s3(endpoint: str) -> None:
    """A canned loopback server answers as real S3 does, which moto does not (see above)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import parse_qs, urlsplit

    seen: list[dict[str, list[str]]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query, keep_blank_values=True)
            seen.append(query)
            body = _S3_PAGES[query.get("key-marker", [""])[0]].encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        store = S3Store(endpoint_url=f"http://127.0.0.1:{server.server_address[1]}", allow_non_loopback=False,
                        list_page_size=3, transfer=store_transfer())
        entries = list(store.list_versions(at("b"), ""))
    finally:
        server.shutdown()
        server.server_close()
    assert [(e.key, e.version, e.is_delete_marker) for e in entries] == [
        ("a+b", "v1", False), ("a+b", "v2", True), ("a+b", "v3", False), ("a+b", "m4", True),
        ("c", None, False)]   # S3's "null" version id: an unversioned object, version None
    assert [e.is_latest for e in entries] == [False, False, False, True, True]
    assert seen[1]["key-marker"] == ["a+b"] and seen[1]["version-id-marker"] == ["v2"]
