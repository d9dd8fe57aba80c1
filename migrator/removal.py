"""Removal, after every version of a row is verified: plan the deletes, delete pinned to versions, prove
that nothing is left.

Three steps over typed values; the pipeline journals between them (pipeline.py) and nothing here writes
the journal:

1. ``plan_removal`` checks what holds the row (bucket rules, object locks and holds, replicas that differ,
   versions this wave did not verify) from fresh listings of every location, and returns a
   ``RemovalPlan``: every version, delete marker and incomplete upload to remove, each pinned (a version
   id, or an ETag precondition on an object without one). A reason to keep anything raises ``Held``.
2. ``delete_batches`` sends the pinned deletes in batches per bucket and yields each batch's results
   before it sends the next, so that every result is on record before another delete goes out;
   ``judge`` turns one result into a ``Deletion`` for the record, or a ``Held``.
3. ``prove`` reads listings made after the deletes and returns the ``RemovalProof``: a row is REMOVED
   only when no version, delete marker, incomplete upload or soft-deleted copy is left anywhere.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

from migrator import crashpoints
from migrator.bucket_checks import BucketChecks
from migrator.checksum import find
from migrator.config import WavePolicy
from migrator.errors import ChecksumError, StateError, StoreError
from migrator.manifest import ManifestRow
from migrator.outcome import Held
from migrator.records import (
    Deletion,
    DeletionKind,
    Disposal,
    PlannedStep,
    Reason,
    Record,
    RemovalProof,
    ReplicaResult,
    ReplicaVersion,
    VersionCopy,
    digests_of,
    pinned_version,
)
from migrator.stores.base import (
    DeleteOutcome,
    DeleteResult,
    DeleteTarget,
    ObjectInfo,
    ObjectStore,
    Protection,
    UploadInfo,
    VersionEntry,
)
from migrator.stores.protection import protection_from_extra
from migrator.transfer import sha256_of
from migrator.uri import ObjectURI

StoreFor = Callable[[ObjectURI], ObjectStore]
Listings = Mapping[ObjectURI, list[VersionEntry]]
Uploads = Mapping[ObjectURI, list[UploadInfo]]

# ---- what blocks a delete -------------------------------------------------------------------------------------

ARCHIVED_CLASSES = frozenset({"GLACIER", "DEEP_ARCHIVE", "ARCHIVE"})


def is_archived(storage_class: str | None) -> bool:
    """A storage class whose bytes cannot be read until restored."""
    return (storage_class or "").upper() in ARCHIVED_CLASSES


def _hold_or_bypass(protections: Sequence[Protection], policy: WavePolicy) -> tuple[Reason | None, bool]:
    """(why the version must be held, or None; whether its delete bypasses GOVERNANCE retention), from every
    account of its protection. Only GOVERNANCE may be bypassed, only by explicit policy; legal holds,
    COMPLIANCE and the rest never."""
    bypass = False
    for p in protections:
        blocked = p.blocking_reason()
        if blocked is None:
            continue
        still = p.blocking_reason(bypass_governance=True) if policy.bypass_governance else blocked
        if still is not None:
            return still, False
        bypass = True
    return None, bypass


# ---- 1. the plan -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    """One pinned delete at one location."""

    uri: ObjectURI
    delete: DeleteTarget
    kind: DeletionKind


@dataclass(frozen=True)
class RemovalPlan:
    locations: tuple[ObjectURI, ...]                 # the source, then each replica: what the proof lists
    targets: tuple[Target, ...]
    uploads: tuple[tuple[ObjectURI, UploadInfo], ...]  # incomplete uploads under the keys: aborted too
    listed: tuple[VersionEntry, ...]                 # the source's entries the plan saw
    replica_results: tuple[ReplicaResult, ...]
    disposed: tuple[Disposal, ...]

    def steps(self) -> tuple[PlannedStep, ...]:
        """The plan as the journal keeps it while the deletes run."""
        return tuple([PlannedStep(str(t.uri), t.kind.value, t.delete.version, t.delete.if_match)
                      for t in self.targets] +
                     [PlannedStep(str(u), DeletionKind.UPLOAD.value, upload_id=up.upload_id)
                      for u, up in self.uploads])


def plan_removal(row: ManifestRow, record: Record, listed: Listings, uploads: Uploads, *, checks: BucketChecks,
                 store_for: StoreFor, policy: WavePolicy, now: Callable[[], str]) -> RemovalPlan:
    """What must be deleted for ``row`` to be removed, every delete pinned; raises Held when something
    keeps it. ``listed`` and ``uploads`` are fresh listings of the source and every replica."""
    src = store_for(row.source)
    bucket_hold = checks.row_hold(row)   # the same checks, in the same order, as `migrator plan` reports
    if bucket_hold:
        raise Held(*bucket_hold)
    targets: list[Target] = []
    disposed: list[Disposal] = []
    entries = listed.get(row.source, [])
    for e in entries:
        if e.is_delete_marker:
            targets.append(Target(row.source, DeleteTarget.pinned(e), DeletionKind.DELETE_MARKER))
            continue
        copy = record.verified(e.version, e.etag)
        if copy is None:
            if policy.versions == "current" and not e.is_latest:
                info = src.stat(row.source, e.version)
                blocked = info.protection.blocking_reason()
                if blocked:
                    raise Held(blocked, f"{row.source} noncurrent version {e.version}")
                disposed.append(Disposal(str(row.source), e.version, info.size, e.etag, digests_of(info.checksums)))
                targets.append(Target(row.source, DeleteTarget(row.source.key, e.version),
                                      DeletionKind.NONCURRENT_DISPOSED))
                continue
            raise Held(Reason.CHANGED_AT_SOURCE, f"{row.source} has version {e.version} (etag {e.etag}) "
                       "that this wave did not verify")
        # Lock and hold state as the verified read saw it (S3 lists none) and as the listing says (GCS);
        # one placed since then makes the pinned delete answer AccessDenied, which holds the object.
        blocked, bypass = _hold_or_bypass(
            (protection_from_extra({**copy.extra, **e.extra}), e.protection), policy)
        if blocked:
            raise Held(blocked, f"{row.source} version {e.version}")
        target = DeleteTarget.pinned(e)
        if bypass:
            target = replace(target, bypass_governance=True)
        targets.append(Target(row.source, target, DeletionKind.VERSION))
    locations = [row.source]
    replica_results: list[ReplicaResult] = []
    for ruri in row.replicas:
        rstore = store_for(ruri)
        locations.append(ruri)
        rentries = listed.get(ruri, [])
        if not rentries:
            replica_results.append(ReplicaResult(str(ruri), "absent", listed_at=now(),
                                                 listing="no version or delete marker of this key"))
            continue
        rversions = []
        for e in rentries:
            if e.is_delete_marker:
                targets.append(Target(ruri, DeleteTarget.pinned(e), DeletionKind.DELETE_MARKER))
                continue
            rinfo = rstore.stat(ruri, e.version)
            blocked = rinfo.protection.blocking_reason()
            if blocked:
                raise Held(blocked, f"replica {ruri} version {e.version}")
            how = _replica_matches(rstore, ruri, e, rinfo, record.versions)
            if how is None:
                raise Held(Reason.DIVERGENT_REPLICA, f"{ruri} version {e.version} matches no verified digest")
            rversions.append(ReplicaVersion(e.version, e.etag, how))
            targets.append(Target(ruri, DeleteTarget.pinned(e), DeletionKind.REPLICA_VERSION))
        replica_results.append(ReplicaResult(str(ruri), "matched", versions=tuple(rversions)))
    return RemovalPlan(locations=tuple(locations), targets=tuple(targets),
                       uploads=tuple((u, up) for u in locations for up in uploads.get(u, [])),
                       listed=tuple(entries), replica_results=tuple(replica_results), disposed=tuple(disposed))


def _replica_matches(store: ObjectStore, uri: ObjectURI, e: VersionEntry, info: ObjectInfo,
                     versions: Sequence[VersionCopy]) -> str | None:
    """How a replica's version is shown to hold bytes this wave verified: whole-object checksums the replica
    reports that equal a verified copy's computed ones, else a read of its bytes whose SHA-256 is verified."""
    for v in versions:
        if v.size != e.size:
            continue
        computed = v.computed()
        comparable = [(c, mine) for c in info.checksums if c.is_whole_object
                      for mine in [find(computed, c.algorithm)] if mine is not None]
        if comparable:
            try:
                if all(c.matches(mine) for c, mine in comparable):
                    return "reported " + ",".join(c.algorithm.value for c, _ in comparable)
            except ChecksumError:
                continue
    verified_sha = {d.hex for v in versions for d in v.digests if d.algorithm == "sha256"}
    sha, _ = sha256_of(store, uri, e.version)
    if sha.hex in verified_sha:
        return "read sha256"
    return None


# ---- 2. the deletes ------------------------------------------------------------------------------------------

K = TypeVar("K")


@dataclass(frozen=True)
class DeleteBatch(Generic[K]):
    """One batch request's items and their results, or the error that failed the whole request."""

    items: list[tuple[K, Target]]
    results: list[DeleteResult]
    error: StoreError | None = None


def delete_batches(items: Sequence[tuple[K, Target]], store_for: StoreFor, batch: int,
                   skip: Callable[[K], bool]) -> Iterator[DeleteBatch[K]]:
    """Send the pinned deletes, ``batch`` targets per request and bucket. Each batch is yielded before the
    next is sent: the caller journals its results first. ``skip(owner)`` drops the targets of rows that
    ended (held or failed) since the plan."""
    by_bucket: dict[tuple[str, str], list[tuple[K, Target]]] = defaultdict(list)
    for owner, t in items:
        by_bucket[(t.uri.scheme, t.uri.location)].append((owner, t))
    first = True
    for group in by_bucket.values():
        for start in range(0, len(group), batch):
            chunk = [it for it in group[start:start + batch] if not skip(it[0])]
            if not chunk:
                continue
            if not first:
                crashpoints.hit("between-version-deletes")
            first = False
            uri = chunk[0][1].uri
            try:
                results = store_for(uri).delete_versions(uri.bucket, [t.delete for _, t in chunk])
            except StoreError as exc:
                yield DeleteBatch(chunk, [], exc)
                continue
            crashpoints.hit("after-delete-before-commit")
            yield DeleteBatch(chunk, results)


def judge(t: Target, result: DeleteResult, at: str) -> Deletion:
    """The record of one delete's result; raises Held when the source changed or the store refused."""
    if result.outcome in (DeleteOutcome.DELETED, DeleteOutcome.ABSENT):
        return Deletion(uri=str(t.uri), kind=t.kind.value, at=at, result="deleted" if result.ok else "already absent",
                        version=t.delete.version, if_match=t.delete.if_match,
                        governance_bypassed=t.delete.bypass_governance)
    if result.outcome is DeleteOutcome.CHANGED:
        raise Held(Reason.CHANGED_AT_SOURCE, f"{t.uri} no longer matches version {t.delete.version}")
    raise Held(Reason.DELETE_REFUSED, f"{t.uri} version {t.delete.version}: {result.code} {result.message}")


def abort_upload(store: ObjectStore, uri: ObjectURI, up: UploadInfo, at: str) -> Deletion:
    """Abort one incomplete upload under a removed key (one that is gone already counts as aborted). Only
    stores with uploads list any, so the store has the feature."""
    uploads = store.features.uploads
    try:
        if uploads is None:
            raise StateError(f"{uri}: the store lists uploads it cannot abort")
        uploads.abort(uri.bucket, uri.key, up.upload_id)
        result = "aborted"
    except StoreError as exc:
        if exc.status != 404:
            raise
        result = "already gone"
    return Deletion(uri=str(uri), kind=DeletionKind.UPLOAD.value, at=at, result=result, upload_id=up.upload_id)


# ---- 3. the proof ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Proven:
    """The proof, the deletions it confirms, and, when something is left, why the row is held."""

    proof: RemovalProof
    confirmed: tuple[Deletion, ...]
    held: Held | None


def prove(row: ManifestRow, record: Record, plan: RemovalPlan, after: Listings, uploads: Uploads,
          soft: Listings, at: str) -> Proven:
    """Listings of every location after the deletes: what is left, if anything. ``at`` is when they ran."""
    locations = plan.locations
    leftovers = [f"{u} {'delete marker' if e.is_delete_marker else 'version'} {e.version}"
                 for u in locations for e in after.get(u, [])]
    leftovers += [f"{u} upload {up.upload_id}" for u in locations for up in uploads.get(u, [])]
    soft_left = [f"{u} generation {e.version}" for u in locations for e in soft.get(u, [])]
    proof = RemovalProof(listed_at=at, locations=tuple(str(u) for u in locations), leftovers=tuple(leftovers),
                         soft_deleted=tuple(soft_left))
    if proof.soft_deleted:
        wait = " (run the wave again after that time to confirm)"
        return Proven(proof, (), Held(Reason.SOFT_DELETED_PENDING, "; ".join(proof.soft_deleted) + wait))
    if proof.leftovers:
        changed = [e for e in after.get(row.source, [])
                   if not e.is_delete_marker and record.verified(e.version, e.etag) is None]
        reason = Reason.CHANGED_AT_SOURCE if changed else Reason.LEFT_AFTER_DELETE
        return Proven(proof, (), Held(reason, "; ".join(proof.leftovers)))
    # Versions verified earlier but gone before this plan (a resumed run) are recorded as such, now that
    # the proof has shown them gone.
    seen = {(pinned_version(e.version), e.etag) for e in plan.listed}
    done = {(d.uri, d.pin) for d in record.deletions}
    confirmed = tuple(
        Deletion(uri=str(row.source), kind=DeletionKind.VERSION.value, at=at, version=v.version,
                 result="absent on resume (deleted by an interrupted step)")
        for v in record.versions if (v.pin, v.etag) not in seen and (str(row.source), v.pin) not in done)
    return Proven(proof, confirmed, None)


__all__ = ["ARCHIVED_CLASSES", "DeleteBatch", "Proven", "RemovalPlan", "Target", "abort_upload", "delete_batches",
           "is_archived", "judge", "plan_removal", "prove"]
