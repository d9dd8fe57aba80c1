"""Batched listings (listing.py) on the in-memory store: one prefix listing per bucket, the budget that stops
a sparse batch from reading a whole bucket, the per-key fallback, and stores without an optional listing."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable, Iterator

import pytest

from migrator.errors import StoreError
from migrator.listing import Failures, _budget, list_soft_deleted_many, list_uploads_many, list_versions_many
from migrator.stores.base import DeleteTarget, ObjectStore, PutRequest, VersionEntry
from migrator.stores.memory import MemoryStore
from migrator.uri import Location, ObjectURI
from tests.conftest import store_transfer


def _put(store: MemoryStore, bucket: str, key: str, data: bytes = b"x", **kw: object) -> None:
    store.put(ObjectURI("s3", bucket, key), io.BytesIO(data), PutRequest(size=len(data), **kw))  # type: ignore[arg-type]


def _one(store: ObjectStore) -> Callable[[ObjectURI], ObjectStore]:
    return lambda uri: store


def _uris(bucket: str, *keys: str) -> list[ObjectURI]:
    return [ObjectURI("s3", bucket, k) for k in keys]


def _truth(store: MemoryStore, uri: ObjectURI) -> list[tuple[str | None, bool]]:
    return [(e.version, e.is_delete_marker) for e in store.list_versions(uri.location, uri.key) if e.key == uri.key]


def test_dense_batch_is_one_listing_and_exact_keys_only() -> None:
    store = MemoryStore("s3", transfer=store_transfer())
    store.create_bucket("b", versioned=True)
    for key in ("k/1", "k/10", "k/2", "k/3"):
        _put(store, "b", key)
        _put(store, "b", key, b"again", if_none_match=False)
    store.delete_current(ObjectURI("s3", "b", "k/2"))
    before = store.requests["ListObjectVersions"]
    found = list_versions_many(_one(store), _uris("b", "k/1", "k/2", "k/3"))
    assert store.requests["ListObjectVersions"] - before == 1
    for uri, entries in found.items():
        assert [(e.version, e.is_delete_marker) for e in entries] == _truth(store, uri)
    assert [e.is_delete_marker for e in found[ObjectURI("s3", "b", "k/2")]] == [False, False, True]
    assert all(e.key != "k/10" for entries in found.values() for e in entries)   # a prefix of k/1, not k/1


def test_sparse_batch_falls_back_to_one_listing_per_key_after_the_budget() -> None:
    store = MemoryStore("s3", transfer=store_transfer(), list_page_size=100)
    store.create_bucket("b")
    keys = ["k/a", "k/m", "k/z"]
    for key in keys:
        _put(store, "b", key, key.encode())
    for i in range(1500):                    # between k/a and k/m: more than the budget
        _put(store, "b", f"k/b{i:05d}")
    for i in range(5000):                    # between k/m and k/z: what the fallback never reads
        _put(store, "b", f"k/n{i:05d}")
    assert _budget(len(keys)) < 1500
    before = store.requests["ListObjectVersions"]
    found = list_versions_many(_one(store), _uris("b", *keys))
    pages = store.requests["ListObjectVersions"] - before
    assert [[e.key for e in found[u]] for u in _uris("b", *keys)] == [["k/a"], ["k/m"], ["k/z"]]
    # The prefix listing stopped after ~budget entries (11 pages), then k/m and k/z took one page each;
    # reading on through the bucket would have taken 66 pages.
    assert pages <= (_budget(len(keys)) // 100 + 1) + 2


def test_proof_listing_without_start_marker_reads_from_the_prefix_and_still_falls_back() -> None:
    store = MemoryStore("s3", transfer=store_transfer(), list_page_size=500)
    store.create_bucket("b")
    for i in range(3000):                    # before the batch's first key, under its common prefix
        _put(store, "b", f"k/0{i:05d}")
    for key in ("k/x", "k/y"):
        _put(store, "b", key)
    uris = _uris("b", "k/x", "k/y")
    with_start = list_versions_many(_one(store), uris)
    without = list_versions_many(_one(store), uris, use_start=False)
    assert with_start == without
    assert [[e.key for e in without[u]] for u in uris] == [["k/x"], ["k/y"]]


def test_single_key_and_missing_bucket() -> None:
    store = MemoryStore("s3", transfer=store_transfer())
    store.create_bucket("b")
    _put(store, "b", "solo")
    _put(store, "b", "solo2")
    found = list_versions_many(_one(store), _uris("b", "solo") + _uris("gone", "k"))
    assert [e.key for e in found[ObjectURI("s3", "b", "solo")]] == ["solo"]
    assert found[ObjectURI("s3", "gone", "k")] == []   # a missing bucket holds nothing


def test_uploads_per_key_with_budget_fallback_and_stores_without_uploads() -> None:
    store = MemoryStore("s3", transfer=store_transfer())
    store.create_bucket("b")
    mine = {key: store.begin_upload("b", key) for key in ("u/a", "u/z")}
    for i in range(_budget(2) + 10):          # other keys' uploads under the same prefix
        store.begin_upload("b", f"u/m{i:05d}")
    found = list_uploads_many(_one(store), _uris("b", "u/a", "u/z", "u/none"))
    assert {u.key: [x.upload_id for x in ups] for u, ups in found.items()} == {
        "u/a": [mine["u/a"]], "u/z": [mine["u/z"]], "u/none": []}
    without = MemoryStore("s3", transfer=store_transfer())
    without.create_bucket("b")
    without.begin_upload("b", "u/a")
    without.features = dataclasses.replace(without.features, uploads=None)
    assert list_uploads_many(_one(without), _uris("b", "u/a")) == {ObjectURI("s3", "b", "u/a"): []}


def test_soft_deleted_only_where_the_store_has_soft_delete() -> None:
    store = MemoryStore("gs", transfer=store_transfer())
    store.create_bucket("b", soft_delete_seconds=3600)
    uri = ObjectURI("gs", "b", "k")
    store.put(uri, io.BytesIO(b"x"), PutRequest(size=1))
    (entry,) = store.list_versions(uri.location, "k")
    store.delete_versions(uri.location, [DeleteTarget.pinned(entry)])
    assert [e.key for e in list_soft_deleted_many(_one(store), [uri])[uri]] == ["k"]
    store.features = dataclasses.replace(store.features, soft_deleted=None)
    assert list_soft_deleted_many(_one(store), [uri]) == {uri: []}


class _Down(MemoryStore):
    """A store whose listings fail, as an outage would after its retries."""

    def list_versions(self, location: Location, prefix: str, start: str | None = None) -> Iterator[VersionEntry]:
        raise StoreError("connection refused", code="ConnectionError")


def test_a_failing_location_is_noted_and_the_others_still_listed() -> None:
    up = MemoryStore("s3", transfer=store_transfer())
    up.create_bucket("b")
    _put(up, "b", "k")
    down = _Down("s3", transfer=store_transfer())
    good, bad = ObjectURI("s3", "b", "k", at="aws"), ObjectURI("s3", "b", "k", at="dc")
    failures: Failures = {}
    found = list_versions_many(lambda u: down if u.at == "dc" else up, [good, bad], failures=failures)
    assert [e.key for e in found[good]] == ["k"] and bad not in found
    assert list(failures) == [bad.location] and "connection refused" in str(failures[bad.location])
    # Without a place to note it, the failure is raised, as before.
    with pytest.raises(StoreError):
        list_versions_many(lambda u: down, [bad])
