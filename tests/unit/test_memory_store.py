"""The in-memory reference store: the rules the conformance suite does not reach (no emulator needed)."""

from __future__ import annotations

import hashlib
import io
import threading
from datetime import UTC, datetime, timedelta

import pytest

from migrator.checksum import Algorithm, Checksum, MultiHasher, Provenance, find, parse_s3_etag
from migrator.errors import AccessDenied, InputError, NotFound, PreconditionFailed, StoreError
from migrator.stores.base import (
    DeleteOutcome,
    DeleteTarget,
    ObjectStore,
    Protection,
    PutRequest,
    PutResult,
)
from migrator.stores.memory import MemoryStore
from migrator.stores.protection import protection_from_extra
from migrator.uri import Location, ObjectURI
from tests.conftest import store_transfer

MIB = 1024 * 1024


def _put(store: MemoryStore, uri: ObjectURI, data: bytes, **kw: object) -> PutResult:
    return store.put(uri, io.BytesIO(data), PutRequest(size=len(data), **kw))  # type: ignore[arg-type]


def at(store: MemoryStore, bucket: str) -> Location:
    """The bucket as bucket-level calls take it."""
    return Location(store.scheme, bucket)


def _store(**kw: object) -> MemoryStore:
    store = MemoryStore("s3", **{"transfer": store_transfer(), **kw})  # type: ignore[arg-type]
    store.create_bucket("plain")
    store.create_bucket("ver", versioned=True)
    return store


def test_is_an_object_store_whose_features_are_its_own_calls() -> None:
    store: ObjectStore = _store()
    assert store.features.soft_deleted is not None and store.features.uploads is not None
    assert store.features.one_request_limit == store.multipart_threshold  # type: ignore[attr-defined]


def test_reports_the_checksums_it_is_told_to() -> None:
    data = b"some bytes"
    full = _put(_store(), ObjectURI("s3", "plain", "k"), data)
    assert {c.algorithm for c in full.checksums} == {Algorithm.MD5, Algorithm.CRC32C, Algorithm.SHA256}
    assert all(c.provenance is Provenance.DESTINATION for c in full.checksums)
    assert full.etag == f'"{hashlib.md5(data).hexdigest()}"'
    crc_only = _store(reports=frozenset({Algorithm.CRC32C}))
    put = _put(crc_only, ObjectURI("s3", "plain", "k"), data)
    assert [c.algorithm for c in put.checksums] == [Algorithm.CRC32C]
    assert [c.provenance for c in crc_only.stat(ObjectURI("s3", "plain", "k")).checksums] == [Provenance.SOURCE]


def test_multipart_write_reports_the_s3_etag_and_part_sizes() -> None:
    store = _store(transfer=store_transfer(part_size=5 * MIB, multipart_threshold=6 * MIB))
    uri = ObjectURI("s3", "plain", "big")
    data = bytes(range(256)) * (12 * MIB // 256) + b"tail"
    put = _put(store, uri, data)
    assert put.parts == 3 and store.requests["UploadPart"] == 3
    assert put.etag is not None and parse_s3_etag(put.etag).parts == 3
    assert find(put.checksums, Algorithm.MD5) is None   # a multipart write has no whole-object MD5
    sizes = store.part_sizes(uri, None, 3)
    assert sizes == [5 * MIB, 5 * MIB, len(data) - 10 * MIB]
    hasher = MultiHasher(part_sizes=sizes)
    hasher.update(data)
    mine = find(hasher.digests(), Algorithm.MULTIPART_MD5, parts=3)
    assert mine is not None and mine.matches(parse_s3_etag(put.etag))
    assert not list(store.list_uploads(at(store, "plain"), ""))   # completed, not left behind


def test_a_body_that_fails_its_declared_digest_is_refused_and_nothing_kept() -> None:
    store = _store()
    uri = ObjectURI("s3", "plain", "k")
    wrong = Checksum(Algorithm.MD5, hashlib.md5(b"other").digest(), Provenance.COMPUTED)
    with pytest.raises(StoreError) as err:
        _put(store, uri, b"bytes", body_digests=(wrong,))
    assert err.value.code == "BadDigest"
    with pytest.raises(NotFound):
        store.stat(uri)


def test_a_failed_multipart_write_is_aborted() -> None:
    store = _store(transfer=store_transfer(part_size=5 * MIB, multipart_threshold=5 * MIB))
    with pytest.raises(InputError):   # the body ends before its declared size
        store.put(ObjectURI("s3", "plain", "short"), io.BytesIO(b"x" * (6 * MIB)), PutRequest(size=7 * MIB))
    assert not list(store.list_uploads(at(store, "plain"), ""))


def test_conditional_puts() -> None:
    store = _store()
    uri = ObjectURI("s3", "ver", "k")
    first = _put(store, uri, b"one")
    with pytest.raises(PreconditionFailed):
        _put(store, uri, b"two")
    with pytest.raises(PreconditionFailed):
        _put(store, uri, b"two", if_none_match=False, if_match='"stale"')
    with pytest.raises(PreconditionFailed):
        _put(store, uri, b"two", if_none_match=False, if_match=first.etag, if_match_version="m999")
    second = _put(store, uri, b"two", if_none_match=False, if_match=first.etag, if_match_version=first.version)
    assert first.version is not None and second.version is not None and second.version > first.version
    assert store.stat(uri).version == second.version


def test_unversioned_bucket_holds_one_object_per_key_without_a_version() -> None:
    store = _store()
    uri = ObjectURI("s3", "plain", "k")
    _put(store, uri, b"one")
    _put(store, uri, b"two", if_none_match=False)
    (entry,) = store.list_versions(at(store, "plain"), "k")
    assert entry.version is None and entry.is_latest
    with pytest.raises(InputError):
        store.delete_version(uri, None)   # unpinned
    with pytest.raises(PreconditionFailed):
        store.delete_version(uri, None, if_match='"stale"')
    store.delete_version(uri, None, if_match=entry.etag)
    assert not list(store.list_versions(at(store, "plain"), "k"))


def test_delete_markers_come_only_from_a_plain_delete() -> None:
    store = _store()
    uri = ObjectURI("s3", "ver", "k")
    put = _put(store, uri, b"one")
    marker = store.delete_current(uri)
    entries = list(store.list_versions(at(store, "ver"), "k"))
    assert [(e.version, e.is_delete_marker, e.is_latest) for e in entries] == [
        (put.version, False, False), (marker, True, True)]
    with pytest.raises(NotFound):
        store.stat(uri)                    # the current version is a marker
    assert store.stat(uri, put.version).size == 3
    results = store.delete_versions(at(store, "ver"), [DeleteTarget.pinned(e) for e in entries])
    assert [r.outcome for r in results] == [DeleteOutcome.DELETED, DeleteOutcome.DELETED]
    assert not list(store.list_versions(at(store, "ver"), "k"))


def test_protection_refuses_deletes_except_a_bypassed_governance_retention() -> None:
    store = _store()
    uri = ObjectURI("s3", "ver", "k")
    put = _put(store, uri, b"one")
    until = datetime.now(UTC) + timedelta(days=1)
    store.protect(uri, put.version, Protection(retention_mode="GOVERNANCE", retain_until=until))
    info = store.stat(uri, put.version)
    assert info.protection.under_governance()
    assert protection_from_extra(info.extra) == info.protection   # the raw evidence says the same
    (listed,) = store.list_versions(at(store, "ver"), "k")
    assert listed.protection == info.protection
    with pytest.raises(AccessDenied):
        store.delete_version(uri, put.version)
    (refused,) = store.delete_versions(at(store, "ver"), [DeleteTarget("k", put.version)])
    assert refused.outcome is DeleteOutcome.REFUSED and refused.code == "AccessDenied"
    store.protect(uri, put.version, Protection(retention_mode="GOVERNANCE", retain_until=until, legal_hold=True))
    (held,) = store.delete_versions(at(store, "ver"), [DeleteTarget("k", put.version, bypass_governance=True)])
    assert held.outcome is DeleteOutcome.REFUSED
    store.protect(uri, put.version, Protection(retention_mode="GOVERNANCE", retain_until=until,
                                                replication_pending=True))
    (bypassed,) = store.delete_versions(at(store, "ver"), [DeleteTarget("k", put.version, bypass_governance=True)])
    assert bypassed.outcome is DeleteOutcome.DELETED   # pending replication is reported, not enforced


def test_soft_deleted_versions_stay_listed_until_their_time() -> None:
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    store = MemoryStore("gs", transfer=store_transfer(), clock=lambda: now[0])
    store.create_bucket("soft", soft_delete_seconds=3600)
    uri = ObjectURI("gs", "soft", "k")
    _put(store, uri, b"x")
    (entry,) = store.list_versions(at(store, "soft"), "k")
    (done,) = store.delete_versions(at(store, "soft"), [DeleteTarget.pinned(entry)])
    assert done.ok and not list(store.list_versions(at(store, "soft"), "k"))
    assert [(e.key, e.is_latest) for e in store.list_soft_deleted(at(store, "soft"), "")] == [("k", False)]
    now[0] += timedelta(seconds=3601)
    assert not list(store.list_soft_deleted(at(store, "soft"), ""))


def test_listing_is_paged_lazily_and_in_code_point_order() -> None:
    store = _store(list_page_size=2)
    keys = ["b", "a", "ä", "a/b", "a+b", "c"]
    for key in keys:
        _put(store, ObjectURI("s3", "plain", key), key.encode())
    assert [e.key for e in store.list_versions(at(store, "plain"), "")] == sorted(keys)
    assert store.requests["ListObjectVersions"] == 3
    listing = store.list_versions(at(store, "plain"), "", start="b")
    assert next(listing).key == "b"
    assert store.requests["ListObjectVersions"] == 4   # one page so far: the caller may stop here
    assert [e.key for e in store.list_versions(at(store, "plain"), "a")] == ["a", "a+b", "a/b"]


def test_missing_bucket_and_upload_are_not_found() -> None:
    store = _store()
    with pytest.raises(NotFound):
        list(store.list_versions(at(store, "nope"), ""))
    with pytest.raises(NotFound):
        store.bucket_facts(at(store, "nope"))
    upload = store.begin_upload("plain", "k")
    with pytest.raises(NotFound):
        store.abort_upload(at(store, "plain"), "other-key", upload)
    store.abort_upload(at(store, "plain"), "k", upload)
    with pytest.raises(NotFound):
        store.abort_upload(at(store, "plain"), "k", upload)


def test_concurrent_writers_and_deleters_leave_consistent_state() -> None:
    store = _store()
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(50):
                uri = ObjectURI("s3", "ver", f"k{i % 5}")
                put = _put(store, uri, f"{n}-{i}".encode(), if_none_match=False)
                if i % 3 == 0:
                    store.delete_version(uri, put.version)
        except BaseException as exc:  # noqa: BLE001 - collected, and asserted absent in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    entries = list(store.list_versions(at(store, "ver"), ""))
    assert len(entries) == 8 * (50 - 17)   # 17 of each writer's 50 versions were deleted
    assert len({e.version for e in entries}) == len(entries)
    for key in {e.key for e in entries}:
        mine = [e for e in entries if e.key == key]
        assert [e.is_latest for e in mine] == [False] * (len(mine) - 1) + [True]
