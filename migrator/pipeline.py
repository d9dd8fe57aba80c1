"""The per-object state machine of a wave, over a journal and stores.

PENDING -> COPYING -> COPIED -> VERIFIED -> DELETING -> REMOVED, or HELD / FAILED with a reason.

Each row is processed idempotently from what the journal already knows plus what the clouds show now:
versions already verified are not copied again, deletes already done are confirmed by listing, and a
source that changed since it was verified is reported, never deleted.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from migrator import crashpoints
from migrator.checksum import Algorithm, Checksum, MultiHasher, Provenance, find, from_hex
from migrator.config import WavePolicy
from migrator.errors import (
    ChecksumError,
    MigratorError,
    NotFound,
    PreconditionFailed,
    StoreError,
)
from migrator.evidence import destination_evidence, source_evidence
from migrator.journal import Journal, State, now
from migrator.manifest import ManifestRow
from migrator.removal import blocking_reason, blocking_reason_of, list_key, list_key_uploads, prove_removed
from migrator.stores.base import DeleteTarget, ObjectStore, ReplicationReporter, VersionEntry
from migrator.stores.registry import Stores
from migrator.transfer import copy_version, sha256_of
from migrator.uri import ObjectURI

# Batch-delete result codes that mean "nothing there any more" and "not what was pinned".
_GONE_CODES = frozenset({"NoSuchKey", "NoSuchVersion", "NotFound", "ObjectNotFound", "VersionNotFound"})
_CHANGED_CODES = frozenset({"PreconditionFailed", "IfMatchFailed", "conditionNotMet"})


class Outcome(MigratorError):
    """Ends one object's processing: ``reason`` is a short category (counted in the predicate),
    ``detail`` the specifics (URIs, versions) kept in the object's record."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class Held(Outcome):
    """This object cannot be removed now."""


class Failed(Outcome):
    """This object could not be processed."""


def _digests(cs: tuple[Checksum, ...] | list[Checksum]) -> list[dict[str, object]]:
    return [c.as_record() for c in cs]


def _computed(rec: dict[str, Any]) -> list[Checksum]:
    return [from_hex(Algorithm(d["algorithm"]), str(d["hex"]), Provenance.COMPUTED, d.get("parts"))
            for d in rec["digests"] if d.get("provenance") == Provenance.COMPUTED.value]


class Wave:
    def __init__(self, journal: Journal, stores: Stores, policy: WavePolicy,
                 progress: Callable[[int, str], None] | None = None) -> None:
        self.journal = journal
        self.stores = stores
        self.policy = policy
        self.progress = progress or (lambda row, state: None)
        self._soft_delete_cache: dict[str, bool | None] = {}
        self._bucket_cache: dict[str, Any] = {}
        self._cache_lock = threading.Lock()

    # -- driving ------------------------------------------------------------------------------------
    def run(self, rows: Iterator[ManifestRow]) -> None:
        """Process rows on a bounded pool; never more than 2 x concurrency rows in memory."""
        limit = max(1, self.policy.concurrency)
        with ThreadPoolExecutor(max_workers=limit, thread_name_prefix="wave") as pool:
            inflight: set[Future[None]] = set()
            for row in rows:
                if len(inflight) >= 2 * limit:
                    done, inflight = wait(inflight, return_when=FIRST_COMPLETED)
                    for f in done:
                        f.result()
                inflight.add(pool.submit(self.process, row))
            for f in inflight:
                f.result()

    def process(self, row: ManifestRow) -> None:
        entry = self.journal.get(row.row)
        if entry.state == State.REMOVED:
            return
        data: dict[str, Any] = dict(entry.data)
        data.setdefault("source", str(row.source))
        data.setdefault("destination", str(row.destination))
        data["replicas"] = [str(r) for r in row.replicas]
        if row.subject is not None:
            data["subject"] = row.subject
        if row.residency is not None:
            data["residency"] = row.residency
        data.setdefault("versions", [])
        data.setdefault("deletions", [])
        data.pop("detail", None)  # a previous run's hold is re-examined from scratch
        try:
            self._migrate(row, data)
            self._remove(row, data)
        except Held as exc:
            self._end(row.row, State.HELD, data, exc.reason, exc.detail)
        except Failed as exc:
            self._end(row.row, State.FAILED, data, exc.reason, exc.detail)
        except ChecksumError as exc:
            self._end(row.row, State.HELD, data, "checksum not proven", str(exc))
        except StoreError as exc:
            self._end(row.row, State.FAILED, data, "cloud error", f"{type(exc).__name__}: {exc}")

    def _end(self, row: int, state: str, data: dict[str, Any], reason: str, detail: str) -> None:
        data.pop("copying", None)
        data["detail"] = detail
        self.journal.transition(row, state, data, reason=reason)
        self.progress(row, state)

    # -- copy and verify ----------------------------------------------------------------------------
    def _migrate(self, row: ManifestRow, data: dict[str, Any]) -> None:
        src = self.stores.for_uri(row.source)
        entries = list_key(src, row.source)
        live = [e for e in entries if not e.is_delete_marker]
        verified = {(v["version"], v["etag"]): v for v in data["versions"]}
        if not live:
            if data["versions"]:
                return  # everything was verified and has since been deleted: removal confirms it
            raise Failed("source not found", str(row.source))
        if self.policy.versions == "current":
            latest = [e for e in live if e.is_latest]
            to_copy = latest or live[-1:]
        else:
            to_copy = live
        for e in to_copy:
            if (e.version, e.etag) in verified:
                continue
            self._copy_one(row, data, src, e, is_latest=e is to_copy[-1])

    def _copy_one(self, row: ManifestRow, data: dict[str, Any], src: ObjectStore, e: VersionEntry,
                  is_latest: bool) -> None:
        dst = self.stores.for_uri(row.destination)
        data["copying"] = {"version": e.version, "etag": e.etag, "size": e.size, "at": now()}
        self.journal.transition(row.row, State.COPYING, data, detail={"version": e.version})
        self.progress(row.row, State.COPYING)
        info = src.stat(row.source, e.version)
        if info.etag != e.etag and e.etag is not None:
            raise Held("changed at source", f"{row.source} version {e.version} etag {info.etag} != listed {e.etag}")
        if info.encryption in ("SSE-C", "CSEK"):
            raise Held("customer-supplied encryption key", f"{row.source} is {info.encryption}; migrator has no key")
        if info.storage_class and info.storage_class.upper() in ("GLACIER", "DEEP_ARCHIVE", "ARCHIVE") and \
                info.extra.get("Restore", "").find('ongoing-request="false"') < 0:
            raise Held("archived", f"{row.source} is {info.storage_class}: restore it first")
        previous = data["versions"][-1] if data["versions"] else None
        overwrite = previous["destination_etag"] if previous else None
        attempts = 2
        for attempt in range(1, attempts + 1):
            try:
                outcome = copy_version(src, row.source, e.version, dst, row.destination,
                                       expected_size=info.size, overwrite_etag=overwrite)
                put_version, put_etag = outcome.put.version, outcome.put.etag
                reported = list(outcome.put.checksums)
                reported_size = outcome.put.size
            except PreconditionFailed:
                # Already there (an earlier, interrupted attempt of ours) or a different object: decide by digests.
                outcome = None
                put_version = put_etag = None
                reported = []
                reported_size = -1
            crashpoints.hit("after-copy-before-commit")
            if outcome is None:
                computed, tier, src_matched = self._existing_destination(row, src, e, info.size)
                dinfo = dst.stat(row.destination)
                put_version, put_etag, reported, reported_size = (dinfo.version, dinfo.etag,
                                                                  list(dinfo.checksums), dinfo.size)
            else:
                computed = list(outcome.computed)
                data["copying"]["computed"] = _digests(computed)
                data["copying"]["destination_version"] = put_version
                self.journal.transition(row.row, State.COPIED, data, detail={"version": e.version})
                try:
                    tier, src_matched = source_evidence(
                        computed, [c for c in outcome.source.checksums],
                        list(row.declared) if is_latest else [],
                        outcome.source.size, row.size if is_latest else None,
                        (lambda: self._reread(src, row.source, e.version)) if self.policy.second_read else None)
                except ChecksumError as exc:
                    self._discard_destination(dst, row.destination, put_version, put_etag)
                    if attempt < attempts:
                        continue
                    raise Held("source evidence failed", f"after {attempts} reads: {exc}") from exc
            try:
                dst_matched = destination_evidence(computed, reported, info.size, reported_size)
            except ChecksumError as exc:
                if outcome is None:
                    raise Held("destination holds a different object", f"{row.destination}: {exc}") from exc
                self._discard_destination(dst, row.destination, put_version, put_etag)
                if attempt < attempts:
                    continue
                raise Held("destination evidence failed", f"after {attempts} writes: {exc}") from exc
            record = {
                "version": e.version, "etag": e.etag, "size": info.size,
                "destination_version": put_version, "destination_etag": put_etag,
                "digests": _digests(computed) + _digests([c for c in reported if c.is_whole_object]),
                "evidence": {"source_tier": tier, "source": src_matched, "destination": dst_matched},
                "storage_class": info.storage_class, "encryption": info.encryption,
                "extra": dict(info.extra),
                "verified_at": now(),
            }
            data["versions"].append(record)
            data.pop("copying", None)
            self.journal.transition(row.row, State.VERIFIED, data, detail={"version": e.version})
            self.progress(row.row, State.VERIFIED)
            return

    def _reread(self, store: ObjectStore, uri: ObjectURI, version: str | None) -> Checksum:
        sha, _ = sha256_of(store, uri, version)
        return Checksum(sha.algorithm, sha.value, Provenance.REREAD)

    def _existing_destination(self, row: ManifestRow, src: ObjectStore, e: VersionEntry,
                              size: int) -> tuple[list[Checksum], str, list[str]]:
        """The destination already has an object: hash the source again to compare it with."""
        copy_src = src.open_read(row.source, e.version)
        try:
            hasher = MultiHasher()
            while chunk := copy_src.read(1 << 20):
                hasher.update(chunk)
            claims = list(copy_src.info.checksums)
        finally:
            copy_src.close()
        computed = hasher.digests()
        tier, matched = source_evidence(computed, claims, list(row.declared), hasher.size, row.size,
                                        (lambda: self._reread(src, row.source, e.version))
                                        if self.policy.second_read else None)
        return computed, tier, matched

    def _discard_destination(self, dst: ObjectStore, uri: ObjectURI, version: str | None,
                             etag: str | None) -> None:
        """Remove a copy this wave just wrote and could not verify (pinned to what we wrote)."""
        try:
            dst.delete_version(uri, version, if_match=None if version else etag)
        except NotFound:
            pass

    # -- removal ------------------------------------------------------------------------------------
    def _soft_delete_blocks(self, store: ObjectStore, uri: ObjectURI) -> tuple[str, str] | None:
        if uri.scheme != "gs" or self.policy.soft_delete != "require-off":
            return None
        key = uri.location
        with self._cache_lock:
            cached = self._soft_delete_cache.get(key, "unset")
        if cached == "unset":
            caps = store.capabilities(uri.bucket)
            on: bool | None = None if caps.soft_delete_seconds is None else caps.soft_delete_seconds > 0
            with self._cache_lock:
                self._soft_delete_cache[key] = on
            cached = on
        fix = "set its soft-delete retention to 0 (gcloud storage buckets update --clear-soft-delete) before the wave"
        if cached is None:
            return "GCS soft delete unknown", f"{key}: {fix}"
        if cached:
            return "GCS soft delete on", f"{key}: {fix}"
        return None

    def _cached(self, key: str, compute: Callable[[], Any]) -> Any:
        with self._cache_lock:
            if key in self._bucket_cache:
                return self._bucket_cache[key]
        value = compute()
        with self._cache_lock:
            self._bucket_cache[key] = value
        return value

    def _location_blocks(self, store: ObjectStore, uri: ObjectURI, row: ManifestRow) -> tuple[str, str] | None:
        """Bucket-level reasons not to delete here: soft delete, retention rules, unlisted replication."""
        soft = self._soft_delete_blocks(store, uri)
        if soft:
            return soft
        caps = self._cached(f"caps {uri.location}", lambda: store.capabilities(uri.bucket))
        if uri.scheme == "oci" and caps.retention:
            return "OCI retention rule", f"{uri.location} has retention rules; deletes would be refused"
        if isinstance(store, ReplicationReporter):
            targets: list[str] = self._cached(f"repl {uri.location}", lambda: store.replication_targets(uri.bucket))
            listed = {r.location for r in row.replicas} | {row.source.location}
            for target in targets:
                if target not in listed:
                    return "unlisted replication target", f"{uri.location} replicates to {target}"
        return None

    def _destination_unprotected(self, row: ManifestRow) -> str | None:
        if not self.policy.require_destination_protection:
            return None
        dst = self.stores.for_uri(row.destination)
        caps = self._cached(f"caps {row.destination.location}", lambda: dst.capabilities(row.destination.bucket))
        if caps.versioning or caps.retention:
            return None
        return (f"{row.destination.location} is neither versioned nor under retention: after the delete it "
                "would hold the only copy unprotected (enable versioning, or --allow-unprotected-destination)")

    def _remove(self, row: ManifestRow, data: dict[str, Any]) -> None:
        src = self.stores.for_uri(row.source)
        verified = {(v["version"], v["etag"]): v for v in data["versions"]}
        verified_sha = {d["hex"] for v in data["versions"] for d in v["digests"]
                        if d["algorithm"] == "sha256"}
        unprotected = self._destination_unprotected(row)
        if unprotected:
            raise Held("destination unprotected", unprotected)
        blocked_here = self._location_blocks(src, row.source, row)
        if blocked_here:
            raise Held(*blocked_here)
        targets: list[tuple[ObjectStore, ObjectURI, DeleteTarget, str]] = []
        locations: list[tuple[ObjectStore, ObjectURI]] = [(src, row.source)]
        entries = list_key(src, row.source)
        disposed: list[dict[str, Any]] = []
        for e in entries:
            if e.is_delete_marker:
                targets.append((src, row.source, DeleteTarget(row.source.key, e.version), "delete-marker"))
                continue
            if (e.version, e.etag) not in verified:
                if self.policy.versions == "current" and not e.is_latest:
                    info = src.stat(row.source, e.version)
                    blocked = blocking_reason(info)
                    if blocked:
                        raise Held(blocked, f"{row.source} noncurrent version {e.version}")
                    disposed.append({"uri": str(row.source), "version": e.version, "size": info.size,
                                     "etag": e.etag, "digests": [c.as_record() for c in info.checksums]})
                    targets.append((src, row.source, DeleteTarget(row.source.key, e.version),
                                    "noncurrent-disposed-by-policy"))
                    continue
                raise Held("changed at source", f"{row.source} has version {e.version} (etag {e.etag}) "
                           "that this wave did not verify")
            # Lock and hold state as the verified read saw it; one placed since then makes the pinned
            # delete answer AccessDenied, which holds the object below.
            seen = verified[(e.version, e.etag)]
            target = self._pinned(e)
            blocked = blocking_reason_of(seen.get("extra") or {})
            if blocked:
                if self._may_bypass(seen.get("extra") or {}):
                    target = DeleteTarget(target.key, target.version, target.if_match, bypass_governance=True)
                else:
                    raise Held(blocked, f"{row.source} version {e.version}")
            targets.append((src, row.source, target, "version"))
        # Replicas: each version must hold bytes this wave verified, or the object is held.
        replica_results: list[dict[str, Any]] = []
        for ruri in row.replicas:
            rstore = self.stores.for_uri(ruri)
            rblock = self._location_blocks(rstore, ruri, row)
            if rblock:
                raise Held(rblock[0], f"replica {ruri}: {rblock[1]}")
            locations.append((rstore, ruri))
            rentries = list_key(rstore, ruri)
            if not rentries:
                replica_results.append({"uri": str(ruri), "result": "absent", "listed_at": now(),
                                        "listing": "no version, delete marker or upload of this key"})
                continue
            rversions = []
            for e in rentries:
                if e.is_delete_marker:
                    targets.append((rstore, ruri, DeleteTarget(ruri.key, e.version), "delete-marker"))
                    continue
                rinfo = rstore.stat(ruri, e.version)
                blocked = blocking_reason(rinfo)
                if blocked:
                    raise Held(blocked, f"replica {ruri} version {e.version}")
                how = self._replica_matches(rstore, ruri, e, rinfo.checksums, data["versions"], verified_sha)
                if how is None:
                    raise Held("divergent replica", f"{ruri} version {e.version} matches no verified digest")
                rversions.append({"version": e.version, "etag": e.etag, "matched": how})
                targets.append((rstore, ruri, self._pinned(e), "replica-version"))
            replica_results.append({"uri": str(ruri), "result": "matched", "versions": rversions})
        data["replica_results"] = replica_results
        if disposed:
            data["disposed"] = disposed
        # Leftover incomplete uploads under the key hold bytes too: abort them.
        uploads = [(store, uri, u) for store, uri in locations for u in list_key_uploads(store, uri)]
        data["plan"] = [{"uri": str(uri), "version": t.version, "if_match": t.if_match, "kind": kind}
                        for _, uri, t, kind in targets] + \
                       [{"uri": str(uri), "upload_id": u.upload_id, "kind": "upload"} for _, uri, u in uploads]
        self.journal.transition(row.row, State.DELETING, data, detail={"targets": len(data["plan"])})
        self.progress(row.row, State.DELETING)
        for store, uri, u in uploads:
            try:
                store.abort_upload(uri.bucket, uri.key, u.upload_id)
                result = "aborted"
            except NotFound:
                result = "already gone"
            data["deletions"].append({"uri": str(uri), "upload_id": u.upload_id, "kind": "upload",
                                      "at": now(), "result": result})
        first = True
        for store, uri, target, kind in targets:
            if not first:
                crashpoints.hit("between-version-deletes")
            first = False
            outcome = store.delete_versions(uri.bucket, [target])[0]
            if outcome.ok:
                result = "deleted"
            elif outcome.code in _GONE_CODES:
                result = "already absent"
            else:
                self.journal.transition(row.row, State.DELETING, data)
                if outcome.code in _CHANGED_CODES:
                    raise Held("changed at source", f"{uri} no longer matches version {target.version}")
                raise Held("delete refused", f"{uri} version {target.version}: {outcome.code} {outcome.message}")
            crashpoints.hit("after-delete-before-commit")
            entry: dict[str, Any] = {"uri": str(uri), "version": target.version, "kind": kind, "at": now(),
                                     "result": result}
            if target.if_match:
                entry["if_match"] = target.if_match
            if target.bypass_governance:
                entry["governance_bypassed"] = True
            data["deletions"].append(entry)
            self.journal.transition(row.row, State.DELETING, data, detail={"deleted": target.version})
        # Confirm versions verified earlier but gone before this plan (a resumed run) are recorded.
        listed = {(e.version, e.etag) for e in entries}
        done = {(d.get("uri"), d.get("version")) for d in data["deletions"]}
        for v in data["versions"]:
            if (v["version"], v["etag"]) not in listed and (str(row.source), v["version"]) not in done:
                data["deletions"].append({"uri": str(row.source), "version": v["version"], "kind": "version",
                                          "at": now(), "result": "absent on resume (deleted by an interrupted step)"})
        proof = prove_removed(locations)
        data["proof"] = proof.as_record()
        data.pop("plan", None)
        if proof.soft_deleted:
            raise Held("soft-deleted, pending hard deletion",
                       "; ".join(proof.soft_deleted) + " (run the wave again after that time to confirm)")
        if not proof.empty:
            raise Held("left after delete", "; ".join(proof.leftovers))
        self.journal.transition(row.row, State.REMOVED, data)
        self.progress(row.row, State.REMOVED)

    def _may_bypass(self, extra: dict[str, str]) -> bool:
        """Only GOVERNANCE retention, only by explicit policy; legal holds and COMPLIANCE never."""
        return (self.policy.bypass_governance and str(extra.get("object_lock_mode", "")).upper() == "GOVERNANCE"
                and str(extra.get("object_lock_legal_hold", "")).upper() != "ON")

    @staticmethod
    def _pinned(e: VersionEntry) -> DeleteTarget:
        # An unversioned S3 object lists as version "null": pin it by ETag instead.
        if e.version in (None, "null"):
            return DeleteTarget(e.key, None, if_match=e.etag)
        return DeleteTarget(e.key, e.version)

    def _replica_matches(self, store: ObjectStore, uri: ObjectURI, e: VersionEntry,
                         claims: tuple[Checksum, ...], versions: list[dict[str, Any]],
                         verified_sha: set[str]) -> str | None:
        for v in versions:
            computed = _computed(v)
            if v["size"] != e.size:
                continue
            comparable = [c for c in claims if c.is_whole_object and find(computed, c.algorithm)]
            if comparable:
                try:
                    if all(c.matches(find(computed, c.algorithm)) for c in comparable):  # type: ignore[arg-type]
                        return "reported " + ",".join(c.algorithm.value for c in comparable)
                except ChecksumError:
                    continue
        sha, _ = sha256_of(store, uri, e.version)
        if sha.hex in verified_sha:
            return "read sha256"
        return None
