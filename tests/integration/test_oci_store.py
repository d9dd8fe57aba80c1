"""OciStore end to end against the OCI emulator on 127.0.0.1, through the real ``oci`` SDK."""

from __future__ import annotations

import gzip
import io
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Unpack

import oci
import pytest

from migrator import oci_config, retry
from migrator.checksum import Algorithm, MultiHasher, Provenance, find
from migrator.errors import (
    AccessDenied,
    InputError,
    NotFound,
    PreconditionFailed,
    StoreError,
    UnsafeEndpointError,
)
from migrator.sandbox.oci.server import OciEmulator
from migrator.sandbox.oci_auth import OciSandboxCredentials, write_sandbox_config
from migrator.stores.base import DeleteOutcome, DeleteTarget, ObjectStore, PutRequest, PutResult
from migrator.stores.oci import OciStore
from migrator.stores.registry import Stores
from migrator.stores.settings import EndpointSettings, StoreSettings
from migrator.uri import Location, ObjectURI
from tests.conftest import PutOptions, found, store_transfer

NAMESPACE = "sandboxns"
MiB = 1024 * 1024
PART = 8 * MiB
EDGE_KEYS = ["sp ace.txt", "pct%41", "plus+sign", "q?x#y", "a/../b", "/leading", "ünï/çødé.bin"]


def _config(creds: OciSandboxCredentials) -> dict[str, object]:
    """The profile's SDK config, read as the store registry reads it."""
    return dict(oci_config.load(str(creds.config_path), "DEFAULT"))


@pytest.fixture(scope="module")
def creds(tmp_path_factory: pytest.TempPathFactory) -> OciSandboxCredentials:
    return write_sandbox_config(tmp_path_factory.mktemp("oci-store-creds"), NAMESPACE)


@pytest.fixture(scope="module")
def emulator(creds: OciSandboxCredentials) -> Iterator[OciEmulator]:
    emu = OciEmulator(public_key_pem=creds.public_key_path.read_bytes(), namespace=NAMESPACE).start()
    yield emu
    emu.stop()


@pytest.fixture(scope="module")
def store(creds: OciSandboxCredentials, emulator: OciEmulator) -> OciStore:
    return OciStore(_config(creds), emulator.url, allow_non_loopback=False,
                    transfer=store_transfer(part_size=PART, multipart_threshold=2 * PART, parts_in_flight=3))


def _bucket(store: OciStore, versioning: str) -> str:
    name = f"s-{uuid.uuid4().hex[:12]}"
    store.client.create_bucket(NAMESPACE, oci.object_storage.models.CreateBucketDetails(
        name=name, compartment_id="ocid1.compartment.oc1..sandbox", versioning=versioning))
    return name


@pytest.fixture()
def bucket(store: OciStore) -> str:
    return _bucket(store, "Disabled")


@pytest.fixture()
def vbucket(store: OciStore) -> str:
    return _bucket(store, "Enabled")


def at(bucket: str) -> Location:
    """The bucket as bucket-level calls take it."""
    return Location("oci", bucket, NAMESPACE)


def uri(bucket: str, key: str) -> ObjectURI:
    return ObjectURI("oci", bucket, key, NAMESPACE)


def put(store: OciStore, u: ObjectURI, data: bytes, **kw: Unpack[PutOptions]) -> PutResult:
    return store.put(u, io.BytesIO(data), PutRequest(size=len(data), **kw))


def read(store: OciStore, u: ObjectURI, version: str | None = None,
         byte_range: tuple[int, int] | None = None) -> bytes:
    stream = store.open_read(u, version, byte_range)
    try:
        chunks = []
        while chunk := stream.read(MiB):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        stream.close()


def test_is_an_object_store(store: OciStore) -> None:
    assert isinstance(store, ObjectStore)
    assert store.namespace == NAMESPACE


def test_round_trip_with_checksums_and_metadata(store: OciStore, bucket: str) -> None:
    u = uri(bucket, "docs/report.txt")
    data = os.urandom(100_000)
    res = put(store, u, data, content_type="text/plain", metadata={"owner": "u1"})
    computed = MultiHasher()
    computed.update(data)
    digests = computed.digests()
    for alg in (Algorithm.MD5, Algorithm.CRC32C):
        reported = find(res.checksums, alg)
        assert reported is not None and reported.provenance == Provenance.DESTINATION
        assert reported.matches(found(digests, alg))
    assert res.version and res.etag and res.size == len(data) and res.parts is None
    info = store.stat(u)
    assert (info.size, info.version, info.etag) == (len(data), res.version, res.etag)
    assert info.content_type == "text/plain" and info.metadata == {"owner": "u1"}
    assert info.storage_class == "Standard" and info.multipart_parts is None
    md5 = find(info.checksums, Algorithm.MD5)
    assert md5 is not None and md5.provenance == Provenance.SOURCE
    assert md5.matches(found(digests, Algorithm.MD5))
    assert found(info.checksums, Algorithm.CRC32C).matches(found(digests, Algorithm.CRC32C))
    assert read(store, u) == data
    assert read(store, u, byte_range=(10, 19)) == data[10:20]
    stream = store.open_read(u, byte_range=(5, 9))
    assert stream.info.size == len(data) and stream.info.version == res.version
    stream.close()


def test_gzip_object_is_read_as_stored(store: OciStore, bucket: str) -> None:
    u = uri(bucket, "zipped.json")
    packed = gzip.compress(b'{"a": 1}' * 1000)
    put(store, u, packed, content_type="application/json", content_encoding="gzip")
    assert read(store, u) == packed
    assert store.stat(u).content_encoding == "gzip"


@pytest.mark.parametrize("key", [*EDGE_KEYS, "zero-byte"])
def test_edge_keys_and_zero_bytes(store: OciStore, bucket: str, key: str) -> None:
    u = uri(bucket, key)
    data = b"" if key == "zero-byte" else key.encode()
    res = put(store, u, data)
    assert store.stat(u).size == len(data)
    assert read(store, u) == data
    entries = [e for e in store.list_versions(at(bucket), key) if e.key == key]
    assert [e.version for e in entries] == [res.version]
    store.delete_version(u, res.version)
    with pytest.raises(NotFound):
        store.stat(u)


def test_multipart_24mib(store: OciStore, emulator: OciEmulator, vbucket: str) -> None:
    u = uri(vbucket, "big/24mib.bin")
    data = os.urandom(24 * MiB + 12345)
    before = emulator.stats()["requests"].get("UploadPart", 0)
    res = put(store, u, data, metadata={"k": "v"}, content_type="application/x-big")
    sizes = [PART, PART, PART, len(data) - 3 * PART]
    hasher = MultiHasher(part_sizes=sizes)
    hasher.update(data)
    computed = hasher.digests()
    assert res.parts == 4 and res.size == len(data)
    crc = find(res.checksums, Algorithm.CRC32C)
    assert crc is not None and crc.provenance == Provenance.DESTINATION
    assert crc.matches(found(computed, Algorithm.CRC32C))
    mp = find(res.checksums, Algorithm.MULTIPART_MD5, parts=4)
    assert mp is not None and mp.matches(found(computed, Algorithm.MULTIPART_MD5, parts=4))
    assert find(res.checksums, Algorithm.MD5) is None  # OCI has no whole-object MD5 for multipart
    assert emulator.stats()["requests"]["UploadPart"] - before == 4
    info = store.stat(u)
    assert info.multipart_parts == 4 and info.version == res.version
    assert info.metadata == {"k": "v"} and info.content_type == "application/x-big"
    assert found(info.checksums, Algorithm.CRC32C).matches(crc)
    assert find(info.checksums, Algorithm.MD5) is None
    assert read(store, u) == data
    assert list(store.list_uploads(at(vbucket), "")) == []


def test_if_none_match_single_and_multipart(store: OciStore, bucket: str) -> None:
    u = uri(bucket, "once")
    put(store, u, b"first")
    with pytest.raises(PreconditionFailed):
        put(store, u, b"second")
    with pytest.raises(PreconditionFailed):
        put(store, u, os.urandom(2 * PART + 1))
    assert read(store, u) == b"first"
    assert list(store.list_uploads(at(bucket), "")) == []
    put(store, u, b"third", if_none_match=False)
    assert read(store, u) == b"third"


def test_short_body_aborts_multipart(store: OciStore, bucket: str) -> None:
    u = uri(bucket, "short")
    with pytest.raises(InputError):
        store.put(u, io.BytesIO(b"x" * (2 * PART + 10)), PutRequest(size=3 * PART))
    with pytest.raises(InputError):
        store.put(u, io.BytesIO(b"x" * 11), PutRequest(size=10))  # longer than declared
    assert list(store.list_uploads(at(bucket), "")) == []
    with pytest.raises(NotFound):
        store.stat(u)


def test_versions_markers_and_pinned_deletes(store: OciStore, vbucket: str) -> None:
    u = uri(vbucket, "doc.txt")
    v1 = put(store, u, b"v1").version
    v2 = put(store, u, b"v2", if_none_match=False).version
    store.client.delete_object(NAMESPACE, vbucket, "doc.txt")  # someone leaves a delete marker
    put(store, uri(vbucket, "doc.txt2"), b"other")
    entries = [e for e in store.list_versions(at(vbucket), "doc.txt") if e.key == "doc.txt"]
    assert [e.version for e in entries[:2]] == [v1, v2]
    assert [e.is_delete_marker for e in entries] == [False, False, True]
    assert [e.is_latest for e in entries] == [False, False, True]
    assert entries[0].size == 2 and entries[0].last_modified is not None
    with pytest.raises(NotFound):
        store.stat(u)
    assert store.stat(u, v1).version == v1
    assert read(store, u, v1) == b"v1"
    results = store.delete_versions(at(vbucket), [DeleteTarget("doc.txt", e.version) for e in entries])
    assert all(r.ok for r in results) and [r.target.version for r in results] == [e.version for e in entries]
    assert [e.key for e in store.list_versions(at(vbucket), "doc.txt")] == ["doc.txt2"]
    with pytest.raises(NotFound):
        store.delete_version(u, v1)  # already gone, not a retry: say so


def test_conditional_deletes(store: OciStore, bucket: str) -> None:
    u = uri(bucket, "cond")
    res = put(store, u, b"data")
    with pytest.raises(InputError):
        store.delete_version(u, None)
    with pytest.raises(PreconditionFailed):
        store.delete_version(u, None, if_match="stale-etag")
    results = store.delete_versions(at(bucket), [DeleteTarget("cond", None, if_match="stale-etag"),
                                             DeleteTarget("cond", None)])
    assert [(r.ok, r.code) for r in results] == [(False, "IfMatchFailed"), (False, "InvalidTarget")]
    assert [r.outcome for r in results] == [DeleteOutcome.CHANGED, DeleteOutcome.REFUSED]
    store.delete_version(u, None, if_match=res.etag)
    with pytest.raises(NotFound):
        store.stat(u)


def test_features_and_bucket_facts_match_what_oci_offers_and_a_missing_bucket_is_not_found(
        store: OciStore, bucket: str, vbucket: str) -> None:
    plain, versioned = store.bucket_facts(at(bucket)), store.bucket_facts(at(vbucket))
    assert not plain.versioning and versioned.versioning
    features = store.features
    assert features.conditional_write and features.conditional_delete and not features.reports_protection
    assert features.batch_delete_max == 1 and not plain.retention and plain.soft_delete_seconds == 0
    assert features.soft_deleted is None and features.part_sizes is None and features.uploads is not None
    with pytest.raises(NotFound):
        store.bucket_facts(at("no-such-bucket"))


def test_bucket_level_calls_go_to_the_namespace_the_location_names(
        creds: OciSandboxCredentials, emulator: OciEmulator, store: OciStore, vbucket: str) -> None:
    """The namespace of a listing, delete, facts or uploads call is the location's, never the store's own: a
    store configured for another tenancy's namespace still reaches the bucket its location names, and a
    location naming a namespace the emulator does not serve is answered 404, though the store's own
    namespace holds a bucket of that name (before, both went to the store's namespace)."""
    here = at(vbucket)
    assert here.namespace == NAMESPACE
    put(store, uri(vbucket, "doc"), b"v1")
    store.client.create_multipart_upload(NAMESPACE, vbucket,
                                         oci.object_storage.models.CreateMultipartUploadDetails(object="doc"))
    elsewhere = OciStore(_config(creds), endpoint=emulator.url, namespace="othertenancy", transfer=store_transfer())
    assert elsewhere.namespace == "othertenancy"
    assert elsewhere.bucket_facts(here).versioning
    assert elsewhere.replication_targets(here) == []
    (upload,) = elsewhere.list_uploads(here, "doc")
    elsewhere.abort_upload(here, upload.key, upload.upload_id)
    (entry,) = [e for e in elsewhere.list_versions(here, "doc") if e.key == "doc"]
    (done,) = elsewhere.delete_versions(here, [DeleteTarget.pinned(entry)])
    assert done.ok
    assert list(store.list_versions(here, "doc")) == [] and list(store.list_uploads(here, "")) == []

    put(store, uri(vbucket, "kept"), b"kept")
    (kept,) = store.list_versions(here, "kept")
    stranger = Location("oci", vbucket, "othertenancy")
    calls: list[Callable[[], object]] = [
        lambda: store.bucket_facts(stranger), lambda: store.replication_targets(stranger),
        lambda: list(store.list_versions(stranger, "")), lambda: list(store.list_uploads(stranger, "")),
        lambda: store.abort_upload(stranger, "kept", "u1")]
    for call in calls:
        with pytest.raises(NotFound) as info:
            call()
        assert info.value.code == "NamespaceNotFound"
    (refused,) = store.delete_versions(stranger, [DeleteTarget.pinned(kept)])
    assert refused.outcome is DeleteOutcome.REFUSED and refused.code == "NamespaceNotFound"
    assert [e.version for e in store.list_versions(here, "kept")] == [kept.version]


def test_uploads_list_and_abort(store: OciStore, bucket: str) -> None:
    created = [store.client.create_multipart_upload(
        NAMESPACE, bucket, oci.object_storage.models.CreateMultipartUploadDetails(object=key)).data.upload_id
        for key in ("partial/a", "partial/b", "elsewhere")]
    ups = list(store.list_uploads(at(bucket), "partial/"))
    assert sorted((u.key, u.upload_id) for u in ups) == sorted(zip(["partial/a", "partial/b"], created[:2],
                                                                   strict=True))
    assert all(u.initiated is not None for u in ups)
    for u in ups:
        store.abort_upload(at(bucket), u.key, u.upload_id)
    assert list(store.list_uploads(at(bucket), "partial/")) == []
    assert [u.key for u in store.list_uploads(at(bucket), "")] == ["elsewhere"]
    with pytest.raises(NotFound):
        store.abort_upload(at(bucket), "partial/a", created[0])


def test_errors_translate(tmp_path: Path, store: OciStore, emulator: OciEmulator, bucket: str) -> None:
    with pytest.raises(NotFound):
        store.stat(uri(bucket, "missing"))
    with pytest.raises(NotFound):
        store.stat(uri("no-such-bucket", "k"))
    other = write_sandbox_config(tmp_path, NAMESPACE)  # a key the emulator does not know
    stranger = OciStore(_config(other), endpoint=emulator.url, namespace=NAMESPACE, transfer=store_transfer())
    with pytest.raises(AccessDenied):
        stranger.stat(uri(bucket, "k"))


def test_connection_failure_is_retryable(creds: OciSandboxCredentials) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    dead = OciStore(_config(creds), endpoint=f"http://127.0.0.1:{port}", namespace=NAMESPACE,
                    transfer=store_transfer())
    counts = dict(retry.retry_counts)
    with pytest.raises(StoreError) as info:
        dead.stat(uri("b", "k"))
    assert info.value.retryable and info.value.code == "ConnectionError"
    assert retry.retry_counts.get("ConnectionError", 0) > counts.get("ConnectionError", 0)


def test_refuses_non_loopback_endpoint(creds: OciSandboxCredentials) -> None:
    for endpoint in ("https://objectstorage.us-ashburn-1.oraclecloud.com", "http://10.0.0.5:8080", None):
        with pytest.raises(UnsafeEndpointError):
            OciStore(_config(creds), endpoint=endpoint, allow_non_loopback=False, transfer=store_transfer())
    for endpoint in ("http://localhost:1", "http://127.0.0.2:1", "http://[::1]:1"):
        OciStore(_config(creds), endpoint=endpoint, allow_non_loopback=False, transfer=store_transfer())


def test_bad_config_is_input_error(tmp_path: Path) -> None:
    # The store takes a config read above it: the registry reads the file when an oci:// store is first needed.
    endpoints = EndpointSettings(oci_endpoint="http://127.0.0.1:1", oci_config=str(tmp_path / "no-such-config"))
    stores = Stores(StoreSettings(endpoints, store_transfer(), oci_config.load))
    with pytest.raises(InputError):
        stores.get("oci")
