"""One conformance suite that every ObjectStore passes (as rclone's fstests): each cloud adapter on its sandbox
endpoint, and the in-memory reference store with no sandbox at all.

Every feature a store claims in ``store.features`` is checked to be true here; a feature it lacks is skipped
for that store, by name. Setup that a cloud's console would do (buckets, holds, replication rules, an upload
left behind) goes through the cloud's own client, never through the adapter under test.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Unpack

import pytest

from migrator.checksum import Algorithm, MultiHasher, find
from migrator.errors import InputError, NotFound, PreconditionFailed, UnsafeEndpointError
from migrator.stores.base import (
    NO_PROTECTION,
    DeleteOutcome,
    DeleteTarget,
    ObjectStore,
    Protection,
    PutRequest,
    PutResult,
    VersionEntry,
)
from migrator.stores.memory import MemoryStore
from migrator.uri import Location, ObjectURI, parse_location
from tests.conftest import PutOptions, found, store_transfer, unique

CLOUD_SCHEMES = ["s3", "gs", "oci"]
SCHEMES = [*CLOUD_SCHEMES, "memory"]
EDGE_KEYS = ["sp ace.txt", "pct%41", "plus+sign", "q?x#y", "a/../b", "/leading", "ünï/çødé.bin",
             "deep/" + "k" * 200 + "/end", "x" * 1000]
MIB = 1024 * 1024
ONE_REQUEST = 16 * MIB   # the threshold every backend here is built with (tests/conftest.py's stores)


@dataclass
class Backend:
    """A store under test plus the out-of-band setup its cloud allows (None where the cloud has no such thing)."""

    scheme: str
    store: ObjectStore
    make_bucket: Callable[..., str]                                 # (versioned=, soft_delete_seconds=, lock=)
    location: Callable[[str], Location]                             # (bucket): what bucket-level calls take
    enable_versioning: Callable[[str], None]                        # (bucket), keeping what it holds
    begin_upload: Callable[[str, str], str] | None = None           # leaves an incomplete upload: its id
    hold: Callable[[ObjectURI, str | None, bool], None] | None = None   # (uri, version, on): a delete-refusing hold
    replicate: Callable[[str], str] | None = None                   # (source): a new bucket it replicates to

    def uri(self, bucket: str, key: str) -> ObjectURI:
        return self.location(bucket).uri(key)


def _memory() -> Backend:
    store = MemoryStore(transfer=store_transfer(part_size=8 * MIB, multipart_threshold=ONE_REQUEST))

    def make_bucket(*, versioned: bool = False, soft_delete_seconds: int = 0, lock: bool = False) -> str:
        name = unique("mem")
        store.create_bucket(name, versioned=versioned or lock, retention=lock, soft_delete_seconds=soft_delete_seconds)
        return name

    def hold(uri: ObjectURI, version: str | None, on: bool) -> None:
        store.protect(uri, version, Protection(legal_hold=True) if on else NO_PROTECTION)

    def replicate(source: str) -> str:
        dest = make_bucket()
        store.configure_bucket(source, replicates_to=[Location("memory", dest)])
        return dest

    return Backend("memory", store, make_bucket, lambda b: Location("memory", b),
                   lambda b: store.configure_bucket(b, versioned=True), store.begin_upload, hold, replicate)


def _cloud(request: pytest.FixtureRequest, scheme: str) -> Backend:
    from migrator.sandbox.buckets import create_bucket, gcs_client, oci_client, s3_client
    from migrator.sandbox.control import SandboxState
    from migrator.stores.registry import Stores

    sandbox: SandboxState = request.getfixturevalue("sandbox")
    stores: Stores = request.getfixturevalue("stores")

    def make_bucket(*, versioned: bool = False, soft_delete_seconds: int = 0, lock: bool = False) -> str:
        name = unique("conf")
        create_bucket(sandbox, scheme, name, versioned=versioned, soft_delete_seconds=soft_delete_seconds,
                      object_lock=lock)
        return name

    def location(bucket: str) -> Location:
        if scheme == "oci":
            return parse_location(f"oci://{sandbox.oci_namespace}/{bucket}")
        return parse_location(f"{scheme}://{bucket}")

    def enable_versioning(bucket: str) -> None:
        if scheme == "s3":
            s3_client(sandbox).put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        elif scheme == "gs":
            found = gcs_client(sandbox).get_bucket(bucket)
            found.versioning_enabled = True
            found.patch()
        else:
            import oci

            client, _ = oci_client(sandbox)
            client.update_bucket(sandbox.oci_namespace, bucket,
                                 oci.object_storage.models.UpdateBucketDetails(versioning="Enabled"))

    backend = Backend(scheme, stores.get(scheme), make_bucket, location, enable_versioning)
    if scheme == "s3":
        s3 = s3_client(sandbox)
        backend.begin_upload = lambda b, k: str(s3.create_multipart_upload(Bucket=b, Key=k)["UploadId"])
        backend.hold = lambda u, v, on: s3.put_object_legal_hold(
            Bucket=u.bucket, Key=u.key, VersionId=v, LegalHold={"Status": "ON" if on else "OFF"})

        def s3_replicate(source: str) -> str:
            dest = make_bucket(versioned=True)   # S3 replicates between versioned buckets only
            s3.put_bucket_replication(Bucket=source, ReplicationConfiguration={
                "Role": "arn:aws:iam::123456789012:role/replication",
                "Rules": [{"ID": "conformance", "Priority": 1, "Status": "Enabled", "Filter": {"Prefix": ""},
                           "DeleteMarkerReplication": {"Status": "Disabled"},
                           "Destination": {"Bucket": f"arn:aws:s3:::{dest}"}}]})
            return dest

        backend.replicate = s3_replicate
    elif scheme == "gs":
        gcs = gcs_client(sandbox)

        def gcs_hold(u: ObjectURI, version: str | None, on: bool) -> None:
            blob = gcs.bucket(u.bucket).get_blob(u.key, generation=int(version) if version else None)
            blob.temporary_hold = on
            blob.patch()

        backend.hold = gcs_hold
    else:
        import oci

        client, _ = oci_client(sandbox)
        models = oci.object_storage.models
        backend.begin_upload = lambda b, k: str(client.create_multipart_upload(
            sandbox.oci_namespace, b, models.CreateMultipartUploadDetails(object=k)).data.upload_id)

        def oci_replicate(source: str) -> str:
            dest = make_bucket(versioned=False)   # OCI's destinations must not be versioned
            client.create_replication_policy(sandbox.oci_namespace, source, models.CreateReplicationPolicyDetails(
                name="conformance", destination_region_name="us-phoenix-1", destination_bucket_name=dest))
            return dest

        backend.replicate = oci_replicate
    return backend


@pytest.fixture(params=SCHEMES)
def backend(request: pytest.FixtureRequest) -> Backend:
    scheme = str(request.param)
    return _memory() if scheme == "memory" else _cloud(request, scheme)


@pytest.fixture
def store(backend: Backend) -> ObjectStore:
    return backend.store


@pytest.fixture
def bucket(backend: Backend) -> str:
    return backend.make_bucket(versioned=False)


@pytest.fixture
def vbucket(backend: Backend) -> str:
    return backend.make_bucket(versioned=True)


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


def _entries(backend: Backend, bucket: str, key: str) -> list[VersionEntry]:
    return [e for e in backend.store.list_versions(backend.location(bucket), key) if e.key == key]


# --- required calls ----------------------------------------------------------------------------------------

def test_round_trip_reports_whole_object_checksum(backend: Backend, store: ObjectStore, bucket: str) -> None:
    uri = backend.uri(bucket, "plain/object.bin")
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
def test_edge_keys_round_trip(backend: Backend, store: ObjectStore, bucket: str, key: str) -> None:
    uri = backend.uri(bucket, key)
    _put(store, uri, key.encode())
    assert store.stat(uri).size == len(key.encode())
    assert _read(store, uri) == key.encode()
    listed = [e.key for e in store.list_versions(backend.location(bucket), key)]
    assert key in listed


def test_zero_byte_object(backend: Backend, store: ObjectStore, bucket: str) -> None:
    uri = backend.uri(bucket, "empty")
    _put(store, uri, b"")
    assert store.stat(uri).size == 0
    assert _read(store, uri) == b""


def test_multipart_24mib(backend: Backend, store: ObjectStore, bucket: str) -> None:
    uri = backend.uri(bucket, "big/24mib.bin")
    data = os.urandom(24 * MIB + 12345)
    put = _put(store, uri, data)
    computed = _digests(data).digests()
    crc = find(put.checksums, Algorithm.CRC32C)
    assert crc is not None and crc.matches(found(computed, Algorithm.CRC32C))
    assert put.size == len(data)
    got = _read(store, uri)
    assert len(got) == len(data) and got == data


def test_unversioned_objects_have_no_version_id(backend: Backend, store: ObjectStore, bucket: str) -> None:
    """Where a bucket keeps no versions, none is reported anywhere (S3's "null" stays in its adapter); the
    object is pinned by its ETag instead. Stores whose objects always carry an id (GCS, OCI) report it."""
    uri = backend.uri(bucket, "unversioned")
    put = _put(store, uri, b"bytes")
    assert put.version != "null"
    assert store.stat(uri).version == put.version
    (entry,) = _entries(backend, bucket, "unversioned")
    assert entry.version == put.version and entry.etag == put.etag
    target = DeleteTarget.pinned(entry)
    assert (target.version, target.if_match) == ((None, put.etag) if put.version is None else (put.version, None))


def test_a_version_from_before_versioning_is_deleted_not_hidden(backend: Backend, store: ObjectStore,
                                                                bucket: str) -> None:
    """An object written while the bucket kept no versions, then versioning turned on: its pinned delete
    removes its bytes (on S3 as the "null" version under its ETag), and never leaves a delete marker."""
    uri = backend.uri(bucket, "old")
    old = _put(store, uri, b"written before versioning")
    backend.enable_versioning(bucket)
    assert store.bucket_facts(backend.location(bucket)).versioning
    (entry,) = _entries(backend, bucket, "old")
    assert entry.version == old.version and entry.etag == old.etag and not entry.is_delete_marker
    (done,) = store.delete_versions(backend.location(bucket), [DeleteTarget.pinned(entry)])
    assert done.outcome is DeleteOutcome.DELETED
    assert _entries(backend, bucket, "old") == []
    with pytest.raises(NotFound):
        store.stat(uri)


def test_if_none_match_refuses_overwrite(backend: Backend, store: ObjectStore, bucket: str) -> None:
    assert store.features.conditional_write
    uri = backend.uri(bucket, "once")
    _put(store, uri, b"first")
    with pytest.raises(PreconditionFailed):
        _put(store, uri, b"second")
    assert _read(store, uri) == b"first"


def test_conditional_write_overwrites_only_the_named_object(backend: Backend, store: ObjectStore,
                                                           vbucket: str) -> None:
    """The claim ``conditional_write``: an overwrite names the current object (ETag, and the version where
    the store conditions on it) and is refused when that is not what is there."""
    assert store.features.conditional_write
    uri = backend.uri(vbucket, "cond")
    first = _put(store, uri, b"first")
    with pytest.raises(PreconditionFailed):
        _put(store, uri, b"stale", if_none_match=False, if_match='"0123456789abcdef0123456789abcdef"',
             if_match_version="1")
    assert _read(store, uri) == b"first"
    second = _put(store, uri, b"second", if_none_match=False, if_match=first.etag, if_match_version=first.version)
    assert _read(store, uri) == b"second" and second.etag != first.etag


def test_stat_missing_is_not_found(backend: Backend, store: ObjectStore, bucket: str) -> None:
    with pytest.raises(NotFound):
        store.stat(backend.uri(bucket, "nope"))


def test_versions_listed_oldest_first_and_pinned_delete(backend: Backend, store: ObjectStore,
                                                        vbucket: str) -> None:
    uri = backend.uri(vbucket, "doc.txt")
    first = _put(store, uri, b"v1")
    _put(store, uri, b"v2", if_none_match=False)
    entries = _entries(backend, vbucket, "doc.txt")
    live = [e for e in entries if not e.is_delete_marker]
    assert len(live) == 2
    assert live[0].version == first.version
    assert live[-1].is_latest and not live[0].is_latest
    assert _read(store, uri, live[0].version) == b"v1"
    store.delete_version(uri, live[0].version)
    left = _entries(backend, vbucket, "doc.txt")
    assert [e.version for e in left] == [live[1].version]
    assert _read(store, uri) == b"v2"


def test_batch_delete_names_each_result(backend: Backend, store: ObjectStore, vbucket: str) -> None:
    targets = []
    for i in range(3):
        uri = backend.uri(vbucket, f"batch/{i}")
        put = _put(store, uri, f"b{i}".encode())
        targets.append(DeleteTarget(uri.key, put.version))
    results = store.delete_versions(backend.location(vbucket), targets)
    assert [r.target for r in results] == targets
    assert all(r.ok for r in results)
    assert not [e for e in store.list_versions(backend.location(vbucket), "batch/")]


def test_bucket_facts_discovered(backend: Backend, store: ObjectStore, bucket: str, vbucket: str) -> None:
    plain, versioned = store.bucket_facts(backend.location(bucket)), store.bucket_facts(backend.location(vbucket))
    assert versioned.versioning and not plain.versioning
    assert not plain.retention
    assert plain.soft_delete_seconds == 0   # the sandbox's buckets are made without soft delete


def test_a_location_of_another_scheme_is_refused(backend: Backend, store: ObjectStore, bucket: str) -> None:
    """Bucket-level calls take the whole location: one of another cloud is the caller's mistake, refused with
    InputError, never taken for this store's bucket of the same name."""
    other = Location("s3" if backend.scheme == "gs" else "gs", bucket)
    features = store.features
    calls: list[Callable[[], object]] = [
        lambda: store.bucket_facts(other),
        lambda: list(store.list_versions(other, "")),
        lambda: store.delete_versions(other, [DeleteTarget("k", "1")]),
    ]
    if (uploads := features.uploads) is not None:
        calls += [lambda: list(uploads.list(other, "")), lambda: uploads.abort(other, "k", "u1")]
    if (soft_deleted := features.soft_deleted) is not None:
        calls.append(lambda: list(soft_deleted(other, "")))
    if (replication_targets := features.replication_targets) is not None:
        calls.append(lambda: replication_targets(other))
    for call in calls:
        with pytest.raises(InputError, match=f"{backend.scheme}:// store cannot reach {other}"):
            call()


# --- claimed features: each one true ------------------------------------------------------------------------

def test_batch_delete_honours_its_max(backend: Backend, store: ObjectStore, bucket: str) -> None:
    """More targets than one request takes: the store splits them and still answers each, in order."""
    most = store.features.batch_delete_max
    assert most >= 1
    keys = [f"many/{i:05d}" for i in range(most + 1)]
    for key in keys:
        _put(store, backend.uri(bucket, key), key.encode())
    targets = [DeleteTarget.pinned(e) for e in store.list_versions(backend.location(bucket), "many/")]
    assert [t.key for t in targets] == keys
    results = store.delete_versions(backend.location(bucket), targets)
    assert [r.target for r in results] == targets
    assert [r.outcome for r in results] == [DeleteOutcome.DELETED] * len(targets)
    assert not list(store.list_versions(backend.location(bucket), "many/"))


def test_conditional_delete_refuses_a_mismatch(backend: Backend, store: ObjectStore, bucket: str,
                                               vbucket: str) -> None:
    """The claim ``conditional_delete``: a target's ETag is a precondition; a mismatch is CHANGED and keeps
    the bytes, the right ETag deletes them, and deleting again finds nothing (never CHANGED or REFUSED)."""
    assert store.features.conditional_delete
    for where in (bucket, vbucket):
        uri = backend.uri(where, "pinned")
        put = _put(store, uri, b"pinned bytes")
        wrong = DeleteTarget(uri.key, put.version, if_match='"0123456789abcdef0123456789abcdef"')
        (refused,) = store.delete_versions(backend.location(where), [wrong])
        assert refused.outcome is DeleteOutcome.CHANGED and not refused.ok and refused.code
        assert _read(store, uri) == b"pinned bytes"
        right = DeleteTarget(uri.key, put.version, if_match=put.etag)
        (done,) = store.delete_versions(backend.location(where), [right])
        assert done.outcome is DeleteOutcome.DELETED
        assert _entries(backend, where, "pinned") == []   # removed, not hidden behind a delete marker
        (again,) = store.delete_versions(backend.location(where), [right])
        assert again.outcome in (DeleteOutcome.ABSENT, DeleteOutcome.DELETED)


def test_one_request_limit_is_one_request(backend: Backend, store: ObjectStore, bucket: str) -> None:
    limit = store.features.one_request_limit
    if limit is None:
        pytest.skip(f"{backend.scheme} claims no one-request limit")
    assert limit == ONE_REQUEST
    put = _put(store, backend.uri(bucket, "at-limit"), os.urandom(limit))
    assert put.parts is None and put.size == limit


def test_part_sizes_rebuild_the_multipart_etag(backend: Backend, store: ObjectStore, bucket: str) -> None:
    part_sizes = store.features.part_sizes
    if part_sizes is None:
        pytest.skip(f"{backend.scheme} has no part_sizes feature")
    uri = backend.uri(bucket, "parts/20mib.bin")
    data = os.urandom(20 * MIB + 7)
    put = _put(store, uri, data)
    info = store.stat(uri)
    assert info.multipart_parts is not None and info.multipart_parts > 1
    sizes = part_sizes(uri, info.version, info.multipart_parts)
    assert sum(sizes) == len(data) and len(sizes) == info.multipart_parts
    hasher = MultiHasher(part_sizes=sizes)
    hasher.update(data)
    reported = find(put.checksums, Algorithm.MULTIPART_MD5, parts=len(sizes))
    assert reported is not None and reported.matches(find(hasher.digests(), Algorithm.MULTIPART_MD5,  # type: ignore[arg-type]
                                                          parts=len(sizes)))


def test_uploads_list_and_abort(backend: Backend, store: ObjectStore, bucket: str) -> None:
    uploads = store.features.uploads
    if uploads is None:
        pytest.skip(f"{backend.scheme} has no listable incomplete uploads (GCS resumable sessions expire)")
    assert backend.begin_upload is not None, "a store with uploads needs a way to leave one in the test"
    key = "partial/upload.bin"
    upload_id = backend.begin_upload(bucket, key)
    ups = list(uploads.list(backend.location(bucket), "partial/"))
    assert [(u.key, u.upload_id) for u in ups] == [(key, upload_id)]
    uploads.abort(backend.location(bucket), key, upload_id)
    assert not list(uploads.list(backend.location(bucket), "partial/"))
    with pytest.raises(NotFound):
        uploads.abort(backend.location(bucket), key, upload_id)


def test_soft_deleted_versions_are_listed(backend: Backend, store: ObjectStore) -> None:
    soft_deleted = store.features.soft_deleted
    if soft_deleted is None:
        pytest.skip(f"{backend.scheme} has no soft delete")
    week = 7 * 24 * 3600   # GCS's shortest soft-delete retention
    soft = backend.make_bucket(versioned=False, soft_delete_seconds=week)
    assert store.bucket_facts(backend.location(soft)).soft_delete_seconds == week
    uri = backend.uri(soft, "soft")
    put = _put(store, uri, b"restorable")
    (entry,) = _entries(backend, soft, "soft")
    (done,) = store.delete_versions(backend.location(soft), [DeleteTarget.pinned(entry)])
    assert done.ok
    assert _entries(backend, soft, "soft") == []
    listed = soft_deleted(backend.location(soft), "soft")
    assert [(e.key, e.version, e.is_latest) for e in listed] == [("soft", put.version, False)]


def test_protection_is_reported_and_refuses_the_delete(backend: Backend, store: ObjectStore) -> None:
    if not store.features.reports_protection:
        pytest.skip(f"{backend.scheme} reports no per-version protection (its retention is per bucket)")
    assert backend.hold is not None, "a store that reports protection needs a way to place one in the test"
    locked = backend.make_bucket(versioned=True, lock=True)
    uri = backend.uri(locked, "held")
    put = _put(store, uri, b"held bytes")
    assert store.stat(uri, put.version).protection.blocking_reason() is None
    backend.hold(uri, put.version, True)
    try:
        info = store.stat(uri, put.version)
        assert info.protection != NO_PROTECTION and info.protection.blocking_reason() is not None
        (refused,) = store.delete_versions(backend.location(locked), [DeleteTarget(uri.key, put.version)])
        assert refused.outcome is DeleteOutcome.REFUSED and not refused.ok
        assert _read(store, uri, put.version) == b"held bytes"
    finally:
        backend.hold(uri, put.version, False)
    assert store.stat(uri, put.version).protection.blocking_reason() is None
    (done,) = store.delete_versions(backend.location(locked), [DeleteTarget(uri.key, put.version)])
    assert done.ok


def test_replication_targets_are_reported(backend: Backend, store: ObjectStore, vbucket: str) -> None:
    replication_targets = store.features.replication_targets
    if replication_targets is None:
        pytest.skip(f"{backend.scheme} buckets cannot replicate by configuration")
    assert backend.replicate is not None, "a store with replication needs a way to configure it in the test"
    assert replication_targets(backend.location(vbucket)) == []
    dest = backend.replicate(vbucket)
    assert replication_targets(backend.location(vbucket)) == [backend.uri(dest, "k").location]


# --- the sandbox's promise -----------------------------------------------------------------------------------

@pytest.mark.parametrize("scheme", CLOUD_SCHEMES)
def test_sandbox_refuses_non_loopback(request: pytest.FixtureRequest, scheme: str) -> None:
    from migrator.config import load_wave
    from migrator.sandbox.control import SandboxState
    from migrator.stores.registry import Stores

    sandbox: SandboxState = request.getfixturevalue("sandbox")
    env = dict(sandbox.env())
    key = {"s3": "AWS_ENDPOINT_URL", "gs": "STORAGE_EMULATOR_HOST", "oci": "MIGRATOR_OCI_ENDPOINT"}[scheme]
    env[key] = "https://storage.example.com"
    with pytest.raises(UnsafeEndpointError):
        Stores(load_wave(None, {}, env).stores).get(scheme)
