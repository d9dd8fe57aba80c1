"""Bucket-level reasons a row's sources may not be deleted, looked up once per bucket.

Shared by the wave (which holds such rows) and ``migrator plan`` (which reports them before a wave):
soft delete (stores whose buckets have it), retention a store cannot report per version (OCI retention
rules), replication to a bucket the manifest does not list, and a destination that would hold the only
copy unprotected. What a store can do comes from its ``features``; what a bucket is set to from its
``bucket_facts``, cached here until ``forget`` (call it before deleting, to act on the settings of now).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from migrator.config import WavePolicy
from migrator.manifest import ManifestRow
from migrator.records import Reason
from migrator.stores.base import BucketFacts, ObjectStore
from migrator.stores.registry import Stores
from migrator.uri import Location, ObjectURI


class BucketChecks:
    def __init__(self, stores: Stores, policy: WavePolicy) -> None:
        self.stores = stores
        self.policy = policy
        self._bucket_cache: dict[tuple[str, Location], Any] = {}
        self._cache_lock = threading.Lock()
        self._key_locks: dict[tuple[str, Location], threading.Lock] = {}

    def cached(self, key: tuple[str, Location], compute: Callable[[], Any]) -> Any:
        """One lookup per bucket setting: workers asking at once wait for the first one's answer."""
        with self._cache_lock:
            if key in self._bucket_cache:
                return self._bucket_cache[key]
            lock = self._key_locks.setdefault(key, threading.Lock())
        with lock:
            with self._cache_lock:
                if key in self._bucket_cache:
                    return self._bucket_cache[key]
            value = compute()
            with self._cache_lock:
                self._bucket_cache[key] = value
            return value

    def forget(self) -> None:
        """Drop every bucket setting looked up so far: the next checks read them again."""
        with self._cache_lock:
            self._bucket_cache.clear()

    def facts(self, store: ObjectStore, uri: ObjectURI) -> BucketFacts:
        location = uri.location
        facts: BucketFacts = self.cached(("facts", location), lambda: store.bucket_facts(location))
        return facts

    def soft_delete_blocks(self, store: ObjectStore, uri: ObjectURI) -> tuple[Reason, str] | None:
        if store.features.soft_deleted is None or self.policy.soft_delete != "require-off":
            return None   # the store has no soft delete, or the policy attests pending soft deletes
        facts = self.facts(store, uri)
        fix = "set its soft-delete retention to 0 (gcloud storage buckets update --clear-soft-delete) before the wave"
        if facts.soft_delete_seconds is None:
            return Reason.GCS_SOFT_DELETE_UNKNOWN, f"{uri.location}: {fix}"
        if facts.soft_delete_seconds > 0:
            return Reason.GCS_SOFT_DELETE_ON, f"{uri.location}: {fix}"
        return None

    def location_blocks(self, store: ObjectStore, uri: ObjectURI, row: ManifestRow) -> tuple[Reason, str] | None:
        """Bucket-level reasons not to delete here: soft delete, retention rules, unlisted replication."""
        soft = self.soft_delete_blocks(store, uri)
        if soft:
            return soft
        # Where versions report their own locks and retention, removal checks each one; elsewhere a
        # bucket under retention refuses deletes that nothing here can predict.
        if not store.features.reports_protection and self.facts(store, uri).retention:
            return Reason.OCI_RETENTION_RULE, f"{uri.location} has retention rules; deletes would be refused"
        replication_targets = store.features.replication_targets
        if replication_targets is not None:
            location = uri.location
            targets: list[Location] = self.cached(("repl", location), lambda: replication_targets(location))
            # A replication target names a bucket as its cloud does, without a location name.
            listed = {r.location.placed("") for r in (*row.replicas, row.source)}
            for target in targets:
                if target.placed("") not in listed:
                    return Reason.UNLISTED_REPLICATION, f"{uri.location} replicates to {target}"
        return None

    def row_hold(self, row: ManifestRow) -> tuple[Reason, str] | None:
        """The first bucket-level reason to hold a row, in the one order the wave and the plan both use: the
        destination's protection, then the source's bucket, then each replica's."""
        unprotected = self.destination_unprotected(row)
        if unprotected:
            return Reason.DESTINATION_UNPROTECTED, unprotected
        blocked = self.location_blocks(self.stores.for_uri(row.source), row.source, row)
        if blocked:
            return blocked
        for replica in row.replicas:
            rblock = self.location_blocks(self.stores.for_uri(replica), replica, row)
            if rblock:
                return rblock[0], f"replica {replica}: {rblock[1]}"
        return None

    def destination_unprotected(self, row: ManifestRow) -> str | None:
        if not self.policy.require_destination_protection:
            return None
        facts = self.facts(self.stores.for_uri(row.destination), row.destination)
        if facts.versioning or facts.retention:
            return None
        return (f"{row.destination.location} is neither versioned nor under retention: after the delete it "
                "would hold the only copy unprotected (enable versioning, or --allow-unprotected-destination)")
