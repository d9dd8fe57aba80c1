"""Listings for many keys at once: one prefix listing per bucket rather than one request per key.

The keys of a batch are sorted per bucket; one listing starts at the first key under their common prefix
and stops after the last. If the bucket holds many other objects between them, the listing gives up after
a budget and falls back to one listing per remaining key, so a sparse batch never reads a whole bucket.
"""

from __future__ import annotations

import functools
import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

from migrator.errors import NotFound, StoreError
from migrator.stores.base import ObjectStore, UploadInfo, VersionEntry
from migrator.uri import Location, ObjectURI

StoreFor = Callable[[ObjectURI], ObjectStore]
# Where a caller passes one, a listing that fails in one location is noted here (after its retries) and the
# other locations are still listed: an outage in one store must not fail the rows of another.
Failures = dict[Location, StoreError]


def _common_prefix(keys: Sequence[str]) -> str:
    """The longest string prefix of all keys: object keys are strings, not paths."""
    return os.path.commonprefix(list(keys))  # noqa: RUF071 - a string prefix is what a listing takes


def _budget(n: int) -> int:
    return 1000 + 4 * n


def _by_location(uris: Iterable[ObjectURI]) -> dict[Location, list[ObjectURI]]:
    groups: dict[Location, list[ObjectURI]] = defaultdict(list)
    for u in set(uris):
        groups[u.location].append(u)
    for g in groups.values():
        g.sort(key=lambda u: u.key)
    return groups


def _scan(listing: Iterator[VersionEntry], keys: Sequence[str]) -> tuple[dict[str, list[VersionEntry]], int]:
    """Consume a sorted listing; returns what it found for ``keys`` and the index of the first key it did
    not cover (len(keys) when it covered them all)."""
    wanted = set(keys)
    found: dict[str, list[VersionEntry]] = defaultdict(list)
    last = keys[-1]
    budget = _budget(len(keys))
    seen = 0
    covered_upto = ""
    for item in listing:
        k = item.key
        if k > last:
            return found, len(keys)
        if k in wanted:
            found[k].append(item)
        seen += 1
        covered_upto = k
        if seen > budget:
            # Everything up to covered_upto is complete only for keys strictly before it.
            first_open = next(i for i, key in enumerate(keys) if key >= covered_upto)
            for key in keys[first_open:]:
                found.pop(key, None)
            return found, first_open
    return found, len(keys)


def list_versions_many(store_for: StoreFor, uris: Iterable[ObjectURI], *, use_start: bool = True,
                       failures: Failures | None = None) -> dict[ObjectURI, list[VersionEntry]]:
    """Every version and delete marker of each URI's exact key, oldest first.

    ``use_start=False`` lists from the start of the common prefix, with no start marker: the removal
    proof uses that form, so that it never rests on a store's marker handling (an emulator's marker bug
    once hid a version from a batched listing)."""
    out: dict[ObjectURI, list[VersionEntry]] = {}
    for location, group in _by_location(uris).items():
        store = store_for(group[0])
        keys = [u.key for u in group]
        try:
            if len(keys) == 1:
                found: dict[str, list[VersionEntry]] = {
                    keys[0]: [e for e in store.list_versions(location, keys[0]) if e.key == keys[0]]}
            else:
                prefix = _common_prefix(keys)
                listing = store.list_versions(location, prefix, start=keys[0] if use_start else None)
                found, done = _scan(listing, keys)
                for key in keys[done:]:
                    found[key] = [e for e in store.list_versions(location, key) if e.key == key]
        except NotFound:
            found = {}
        except StoreError as exc:
            if failures is None:
                raise
            failures[location] = exc
            continue
        for u in group:
            out[u] = list(found.get(u.key, []))
    return out


T = TypeVar("T", UploadInfo, VersionEntry)


def _prefix_or_per_key(keys: Sequence[str], listing: Callable[[str], Iterator[T]],
                       key_of: Callable[[T], str]) -> dict[str, list[T]]:
    """One listing of the keys' common prefix, or, past the budget, one listing per key."""
    wanted = set(keys)
    found: dict[str, list[T]] = defaultdict(list)
    prefix = _common_prefix(keys) if len(keys) > 1 else keys[0]
    for seen, item in enumerate(listing(prefix)):
        if seen >= _budget(len(keys)):
            return {key: [i for i in listing(key) if key_of(i) == key] for key in keys}
        if key_of(item) in wanted:
            found[key_of(item)].append(item)
    return found


def _many(store_for: StoreFor, uris: Iterable[ObjectURI],
          lister_of: Callable[[ObjectStore], Callable[[Location, str], Iterator[T]] | None],
          key_of: Callable[[T], str], failures: Failures | None) -> dict[ObjectURI, list[T]]:
    """What an optional listing shows for each URI's exact key; empty where the store lacks the feature."""
    out: dict[ObjectURI, list[T]] = {}
    for location, group in _by_location(uris).items():
        lister = lister_of(store_for(group[0]))
        found: dict[str, list[T]] = {}
        if lister is not None:
            try:
                found = _prefix_or_per_key([u.key for u in group], functools.partial(lister, location),
                                           key_of)
            except NotFound:
                found = {}
            except StoreError as exc:
                if failures is None:
                    raise
                failures[location] = exc
                continue
        for u in group:
            out[u] = list(found.get(u.key, []))
    return out


def _upload_lister(store: ObjectStore) -> Callable[[Location, str], Iterator[UploadInfo]] | None:
    return store.features.uploads.list if store.features.uploads is not None else None


def list_uploads_many(store_for: StoreFor, uris: Iterable[ObjectURI], *,
                      failures: Failures | None = None) -> dict[ObjectURI, list[UploadInfo]]:
    """Incomplete multipart uploads of each URI's exact key, for stores that have them; empty elsewhere."""
    return _many(store_for, uris, _upload_lister, lambda up: up.key, failures)


def list_soft_deleted_many(store_for: StoreFor, uris: Iterable[ObjectURI], *,
                           failures: Failures | None = None) -> dict[ObjectURI, list[VersionEntry]]:
    """Soft-deleted generations of each key, for stores that have soft delete; empty elsewhere."""
    return _many(store_for, uris, lambda store: store.features.soft_deleted, lambda e: e.key, failures)
