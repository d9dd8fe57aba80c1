"""Bucket-level reasons a row's sources may not be deleted, looked up once per bucket.

Shared by the wave (which holds such rows) and ``migrator plan`` (which reports them before a wave):
GCS soft delete, OCI retention rules, replication to a bucket the manifest does not list, and a
destination that would hold the only copy unprotected.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from migrator.config import WavePolicy
from migrator.manifest import ManifestRow
from migrator.records import Reason
from migrator.stores.base import Capabilities, ObjectStore, ReplicationReporter
from migrator.stores.registry import Stores
from migrator.uri import ObjectURI


class BucketChecks:
    def __init__(self, stores: Stores, policy: WavePolicy) -> None:
        self.stores = stores
        self.policy = policy
        self._bucket_cache: dict[str, Any] = {}
        self._cache_lock = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}

    def cached(self, key: str, compute: Callable[[], Any]) -> Any:
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

    def caps(self, store: ObjectStore, uri: ObjectURI) -> Capabilities:
        caps: Capabilities = self.cached(f"caps {uri.location}", lambda: store.capabilities(uri.bucket))
        return caps

    def soft_delete_blocks(self, store: ObjectStore, uri: ObjectURI) -> tuple[Reason, str] | None:
        if uri.scheme != "gs" or self.policy.soft_delete != "require-off":
            return None
        caps = self.caps(store, uri)
        fix = "set its soft-delete retention to 0 (gcloud storage buckets update --clear-soft-delete) before the wave"
        if caps.soft_delete_seconds is None:
            return Reason.GCS_SOFT_DELETE_UNKNOWN, f"{uri.location}: {fix}"
        if caps.soft_delete_seconds > 0:
            return Reason.GCS_SOFT_DELETE_ON, f"{uri.location}: {fix}"
        return None

    def location_blocks(self, store: ObjectStore, uri: ObjectURI, row: ManifestRow) -> tuple[Reason, str] | None:
        """Bucket-level reasons not to delete here: soft delete, retention rules, unlisted replication."""
        soft = self.soft_delete_blocks(store, uri)
        if soft:
            return soft
        if uri.scheme == "oci" and self.caps(store, uri).retention:
            return Reason.OCI_RETENTION_RULE, f"{uri.location} has retention rules; deletes would be refused"
        if isinstance(store, ReplicationReporter):
            targets: list[str] = self.cached(f"repl {uri.location}", lambda: store.replication_targets(uri.bucket))
            listed = {r.location for r in row.replicas} | {row.source.location}
            for target in targets:
                if target not in listed:
                    return Reason.UNLISTED_REPLICATION, f"{uri.location} replicates to {target}"
        return None

    def destination_unprotected(self, row: ManifestRow) -> str | None:
        if not self.policy.require_destination_protection:
            return None
        caps = self.caps(self.stores.for_uri(row.destination), row.destination)
        if caps.versioning or caps.retention:
            return None
        return (f"{row.destination.location} is neither versioned nor under retention: after the delete it "
                "would hold the only copy unprotected (enable versioning, or --allow-unprotected-destination)")
