"""One conformance suite that every ObjectStore adapter passes on its sandbox endpoint (as rclone's fstests)."""

from __future__ import annotations

import io
import os
from typing import Unpack

import pytest

from migrator.checksum import Algorithm, MultiHasher, find
from migrator.errors import NotFound, PreconditionFailed, UnsafeEndpointError
from migrator.sandbox.buckets import create_bucket
from migrator.sandbox.control import SandboxState
from migrator.stores.base import Capabilities, DeleteTarget, ObjectStore, PutRequest, PutResult
from migrator.stores.registry import Stores
from migrator.uri import ObjectURI, parse_uri
from tests.conftest import PutOptions, found, unique

SCHEMES = ["s3", "gs", "oci"]
EDGE_KEYS = ["sp ace.txt", "pct%41", "plus+sign", "q?x#y", "a/../b", "/leading", "ünï/çødé.bin",
             "deep/" + "k" * 200 + "/end", "x" * 1000]


def _uri(sandbox: SandboxState, scheme: str, bucket: str, key: str) -> ObjectURI:
    if scheme == "oci":
        return parse_uri(f"oci://{sandbox.oci_namespace}/{bucket}/{key}")
    return parse_uri(f"{scheme}://{bucket}/{key}")


@pytest.fixture(params=SCHEMES)
def scheme(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def bucket(sandbox: SandboxState, scheme: str) -> str:
    name = unique("conf")
    create_bucket(sandbox, scheme, name, versioned=False)
    return name


@pytest.fixture
def vbucket(sandbox: SandboxState, scheme: str) -> str:
    name = unique("confv")
    create_bucket(sandbox, scheme, name, versioned=True)
    return name


def _put(store: ObjectStore, uri: ObjectURI, data: bytes, **kw: Unpack[PutOptions]) -> PutResult:
    return store.put(uri, io.BytesIO(data), PutRequest(size=len(data), **kw))


def _read(store: ObjectStore, uri: ObjectURI, version: str | None = None,
          byte_range: tuple[int, int] | None = None) -> bytes:
    stream = store.open_read(uri, version, byte_range)
    try:
        chunks = []
        while chunk := stream.read(1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        stream.close()


def _digests(data: bytes) -> MultiHasher:
    h = MultiHasher()
    h.update(data)
    return h


def test_round_trip_reports_whole_object_checksum(sandbox: SandboxState, stores: Stores, scheme: str,
                                                  bucket: str) -> None:
    store = stores.get(scheme)
    uri = _uri(sandbox, scheme, bucket, "plain/object.bin")
    data = os.urandom(100_000)
    put = _put(store, uri, data, content_type="application/x-test", metadata={"owner": "u1"})
    computed = _digests(data).digests()
    reported = [c for c in put.checksums if c.is_whole_object]
    assert reported, "the destination must report a whole-object checksum"
    for c in reported:
        mine = find(computed, c.algorithm)
        if mine is not None:
            assert mine.matches(c)
    info = store.stat(uri)
    assert info.size == len(data)
    assert info.content_type == "application/x-test"
    assert info.metadata.get("owner") == "u1"
    assert any(c.is_whole_object and find(computed, c.algorithm) and c.matches(found(computed, c.algorithm))
               for c in info.checksums)
    assert _read(store, uri) == data
    assert _read(store, uri, byte_range=(10, 19)) == data[10:20]


@pytest.mark.parametrize("key", EDGE_KEYS, ids=lambda k: k[:20])
def test_edge_keys_round_trip(sandbox: SandboxState, stores: Stores, scheme: str, bucket: str, key: str) -> None:
    store = stores.get(scheme)
    uri = _uri(sandbox, scheme, bucket, key)
    _put(store, uri, key.encode())
    assert store.stat(uri).size == len(key.encode())
    assert _read(store, uri) == key.encode()
    listed = [e.key for e in store.list_versions(bucket, key)]
    assert key in listed


def test_zero_byte_object(sandbox: SandboxState, stores: Stores, scheme: str, bucket: str) -> None:
    store = stores.get(scheme)
    uri = _uri(sandbox, scheme, bucket, "empty")
    _put(store, uri, b"")
    assert store.stat(uri).size == 0
    assert _read(store, uri) == b""


def test_multipart_24mib(sandbox: SandboxState, stores: Stores, scheme: str, bucket: str) -> None:
    store = stores.get(scheme)
    uri = _uri(sandbox, scheme, bucket, "big/24mib.bin")
    data = os.urandom(24 * 1024 * 1024 + 12345)
    put = _put(store, uri, data)
    computed = _digests(data).digests()
    crc = find(put.checksums, Algorithm.CRC32C)
    assert crc is not None and crc.matches(found(computed, Algorithm.CRC32C))
    assert put.size == len(data)
    got = _read(store, uri)
    assert len(got) == len(data) and got == data


def test_if_none_match_refuses_overwrite(sandbox: SandboxState, stores: Stores, scheme: str,
                                         bucket: str) -> None:
    store = stores.get(scheme)
    uri = _uri(sandbox, scheme, bucket, "once")
    _put(store, uri, b"first")
    with pytest.raises(PreconditionFailed):
        _put(store, uri, b"second")
    assert _read(store, uri) == b"first"


def test_stat_missing_is_not_found(sandbox: SandboxState, stores: Stores, scheme: str, bucket: str) -> None:
    with pytest.raises(NotFound):
        stores.get(scheme).stat(_uri(sandbox, scheme, bucket, "nope"))


def test_versions_listed_oldest_first_and_pinned_delete(sandbox: SandboxState, stores: Stores, scheme: str,
                                                        vbucket: str) -> None:
    store = stores.get(scheme)
    uri = _uri(sandbox, scheme, vbucket, "doc.txt")
    first = _put(store, uri, b"v1")
    _put(store, uri, b"v2", if_none_match=False)
    entries = [e for e in store.list_versions(vbucket, "doc.txt") if e.key == "doc.txt"]
    live = [e for e in entries if not e.is_delete_marker]
    assert len(live) == 2
    assert live[0].version == first.version
    assert live[-1].is_latest and not live[0].is_latest
    assert _read(store, uri, live[0].version) == b"v1"
    store.delete_version(uri, live[0].version)
    left = [e for e in store.list_versions(vbucket, "doc.txt") if e.key == "doc.txt"]
    assert [e.version for e in left] == [live[1].version]
    assert _read(store, uri) == b"v2"


def test_batch_delete_names_each_result(sandbox: SandboxState, stores: Stores, scheme: str, vbucket: str) -> None:
    store = stores.get(scheme)
    targets = []
    for i in range(3):
        uri = _uri(sandbox, scheme, vbucket, f"batch/{i}")
        put = _put(store, uri, f"b{i}".encode())
        targets.append(DeleteTarget(uri.key, put.version))
    results = store.delete_versions(vbucket, targets)
    assert [r.target for r in results] == targets
    assert all(r.ok for r in results)
    assert not [e for e in store.list_versions(vbucket, "batch/")]


def test_capabilities_discovered(stores: Stores, scheme: str, bucket: str, vbucket: str) -> None:
    store = stores.get(scheme)
    assert isinstance(store.capabilities(bucket), Capabilities)
    assert store.capabilities(vbucket).versioning
    assert not store.capabilities(bucket).versioning


def test_uploads_list_and_abort(sandbox: SandboxState, stores: Stores, scheme: str, bucket: str) -> None:
    if scheme == "gs":
        pytest.skip("GCS JSON API has no listable incomplete uploads (resumable sessions expire by themselves)")
    key = "partial/upload.bin"
    if scheme == "s3":
        from migrator.sandbox.buckets import s3_client

        upload_id = s3_client(sandbox).create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    else:
        import oci

        from migrator.sandbox.buckets import oci_client

        client, _ = oci_client(sandbox)
        upload_id = client.create_multipart_upload(
            sandbox.oci_namespace, bucket,
            oci.object_storage.models.CreateMultipartUploadDetails(object=key)).data.upload_id
    store = stores.get(scheme)
    ups = [u for u in store.list_uploads(bucket, "partial/")]
    assert [(u.key, u.upload_id) for u in ups] == [(key, upload_id)]
    store.abort_upload(bucket, key, upload_id)
    assert not list(store.list_uploads(bucket, "partial/"))


def test_sandbox_refuses_non_loopback(sandbox: SandboxState, scheme: str) -> None:
    from migrator.config import load_wave

    env = dict(sandbox.env())
    key = {"s3": "AWS_ENDPOINT_URL", "gs": "STORAGE_EMULATOR_HOST", "oci": "MIGRATOR_OCI_ENDPOINT"}[scheme]
    env[key] = "https://storage.example.com"
    with pytest.raises(UnsafeEndpointError):
        Stores(load_wave(None, {}, env).stores).get(scheme)
