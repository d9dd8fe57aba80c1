"""The per-object state machine of a wave, run over batches of rows.

PENDING -> COPYING -> VERIFIED -> DELETING -> REMOVED, or HELD / FAILED with a reason.

Rows are taken in batches. Within a batch the work that the clouds let us share is shared: one prefix
listing per bucket finds the versions of many keys, deletes go out in batches of pinned targets, and the
removal proof is one listing per bucket after the deletes. Copies run concurrently, one object each.

Each row is processed idempotently from what the journal already knows plus what the clouds show now:
versions already verified are not copied again, deletes already done are confirmed by listing, and a
source that changed since it was verified is reported, never deleted.
"""

from __future__ import annotations

import functools
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from migrator import crashpoints, retry
from migrator.bucket_checks import BucketChecks
from migrator.checksum import Algorithm, Checksum, MultiHasher, Provenance, find, from_hex
from migrator.config import WavePolicy
from migrator.errors import ChecksumError, MigratorError, PreconditionFailed, SourceChanged, StoreError
from migrator.evidence import destination_evidence, source_evidence
from migrator.journal import Journal, State, now
from migrator.listing import list_soft_deleted_many, list_uploads_many, list_versions_many
from migrator.manifest import ManifestRow, batched
from migrator.removal import Proof, blocking_reason, blocking_reason_of, is_archived
from migrator.stores.base import DeleteTarget, ObjectStore, UploadInfo, VersionEntry
from migrator.stores.registry import Stores
from migrator.transfer import copy_version, sha256_of
from migrator.uri import ObjectURI

# Batch-delete result codes that mean "nothing there any more" and "not what was pinned".
_GONE_CODES = frozenset({"NoSuchKey", "NoSuchVersion", "NotFound", "ObjectNotFound", "VersionNotFound"})
_CHANGED_CODES = frozenset({"PreconditionFailed", "IfMatchFailed", "conditionNotMet"})
_REFUSED_DIGEST_CODES = frozenset({"BadDigest", "InvalidDigest", "InvalidChecksum"})


End = tuple[int, str, dict[str, Any], str | None, dict[str, Any]]  # a journal transition_many item


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


def _digests(cs: Iterable[Checksum]) -> list[dict[str, object]]:
    return [c.as_record() for c in cs]


def _computed(rec: dict[str, Any]) -> list[Checksum]:
    return [from_hex(Algorithm(d["algorithm"]), str(d["hex"]), Provenance.COMPUTED, d.get("parts"))
            for d in rec["digests"] if d.get("provenance") == Provenance.COMPUTED.value]


@dataclass
class Work:
    """One row in flight through a batch."""

    row: ManifestRow
    data: dict[str, Any]
    done: bool = False
    targets: list[tuple[ObjectURI, DeleteTarget, str]] = field(default_factory=list)
    uploads: list[tuple[ObjectURI, UploadInfo]] = field(default_factory=list)
    locations: list[ObjectURI] = field(default_factory=list)
    listed: list[VersionEntry] = field(default_factory=list)   # the source's entries seen by the plan
    to_copy: list[VersionEntry] = field(default_factory=list)  # versions still to copy and verify
    latest: VersionEntry | None = None                          # the version the manifest's claims describe
    resumed_copy: bool = False                                  # the last run stopped during a copy


class Wave:
    def __init__(self, journal: Journal, stores: Stores, policy: WavePolicy,
                 progress: Callable[[int, str], None] | None = None) -> None:
        self.journal = journal
        self.stores = stores
        self.policy = policy
        self.progress = progress or (lambda row, state: None)
        self.checks = BucketChecks(stores, policy)

    # -- driving ------------------------------------------------------------------------------------
    def run(self, rows: Iterator[ManifestRow]) -> None:
        """Process rows in batches on a bounded pool. One batch's removal (listings, deletes, proof: mostly
        round trips in turn) overlaps the next batch's copies, so the pool does not idle through it; at most
        two batches of rows are in memory. Batches are independent: a URI is in one row of a manifest."""
        with ThreadPoolExecutor(max_workers=self.policy.concurrency, thread_name_prefix="wave") as pool, \
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="removal") as remover:
            removing: Future[None] | None = None
            for batch in batched(rows, self.policy.batch_rows):
                removing = self._next(batch, pool, remover, removing)
            if removing is not None:
                removing.result()

    def _next(self, rows: list[ManifestRow], pool: ThreadPoolExecutor, remover: ThreadPoolExecutor,
              removing: Future[None] | None) -> Future[None]:
        work = self._copy_batch(rows, pool)
        if removing is not None:
            removing.result()   # the previous batch's removal is done (or its error raised) first
        return remover.submit(self._remove_batch, work, pool)

    def _copy_batch(self, rows: list[ManifestRow], pool: ThreadPoolExecutor) -> list[Work]:
        work = [w for w in (self._start(row) for row in rows) if w is not None]
        if not work:
            return work
        # 1. Find every version of every source key: one listing per bucket.
        found = self._for_all(work, lambda ws: list_versions_many(self.stores.for_uri, [w.row.source for w in ws]))
        # 2. Copy and verify, concurrently. Every row about to be copied is journaled COPYING in one
        # commit first, so that a copy cut by a kill is found and cleaned up on resume.
        for w in work:
            if not w.done:
                self._guarded(w, functools.partial(self._choose, w, found.get(w.row.source, [])))
        copying = [w for w in work if not w.done and w.to_copy]
        for w in copying:
            w.data["copying"] = {"versions": [{"version": e.version, "etag": e.etag, "size": e.size}
                                              for e in w.to_copy], "at": now()}
        self.journal.transition_many([(w.row.row, State.COPYING, w.data, None,
                                       {"versions": [e.version for e in w.to_copy]}) for w in copying])
        for w in copying:
            self.progress(w.row.row, State.COPYING)
        self._each(pool, copying, self._migrate)
        self.journal.flush()   # every verified version durable before anything is planned or deleted
        return work

    def _remove_batch(self, work: list[Work], pool: ThreadPoolExecutor) -> None:
        # 3. Plan removal from fresh listings of every location: checks, replicas, pinned targets.
        live = [w for w in work if not w.done]
        uris = [u for w in live for u in (w.row.source, *w.row.replicas)]
        listed = self._for_all(live, lambda ws: list_versions_many(self.stores.for_uri, uris))
        uploads = self._for_all(live, lambda ws: list_uploads_many(self.stores.for_uri, uris))
        self._each(pool, live, lambda w: self._plan(w, listed, uploads))
        planned = [w for w in work if not w.done]
        self.journal.transition_many([(w.row.row, State.DELETING, w.data, None, {"targets": len(w.data["plan"])})
                                      for w in planned])
        # 4. Delete, in batches of pinned targets per bucket; each result journaled before the next batch.
        self._delete(planned)
        # 5. Prove: list every location again after the deletes.
        proving = [w for w in planned if not w.done]
        locs = [u for w in proving for u in w.locations]
        after = self._for_all(proving, lambda ws: list_versions_many(self.stores.for_uri, locs, use_start=False))
        left_uploads = self._for_all(proving, lambda ws: list_uploads_many(self.stores.for_uri, locs))
        soft = self._for_all(proving, lambda ws: list_soft_deleted_many(self.stores.for_uri, locs))
        ends = []
        for w in proving:
            if w.done:
                continue
            try:
                ends.append(self._prove(w, after, left_uploads, soft))
            except Outcome as exc:
                ends.append(self._ending(w, exc))
        self.journal.transition_many(ends)
        for w, end in zip([w for w in proving], ends, strict=False):
            if end[1] == State.REMOVED:
                self.progress(w.row.row, State.REMOVED)

    def _start(self, row: ManifestRow) -> Work | None:
        entry = self.journal.get(row.row)
        if entry.state == State.REMOVED:
            return None
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
        return Work(row=row, data=data, resumed_copy=bool(data.get("copying")))

    def _guarded(self, w: Work, step: Callable[[], None]) -> None:
        try:
            step()
        except Outcome as exc:
            end = self._ending(w, exc)
            self.journal.transition_many([end])
        except ChecksumError as exc:
            self.journal.transition_many([self._ending(w, Held("checksum not proven", str(exc)))])
        except StoreError as exc:
            self.journal.transition_many([self._ending(w, Failed("cloud error", f"{type(exc).__name__}: {exc}"))])

    def _ending(self, w: Work, exc: Outcome) -> End:
        w.done = True
        state = State.HELD if isinstance(exc, Held) else State.FAILED
        w.data.pop("copying", None)
        w.data.pop("plan", None)
        w.data["detail"] = exc.detail
        self.progress(w.row.row, state)
        return (w.row.row, state, w.data, exc.reason, {})

    def _each(self, pool: ThreadPoolExecutor, work: list[Work], step: Callable[[Work], None]) -> None:
        """Run ``step`` for each row on the pool, at most ``concurrency`` queued at a time: the copy phase and
        the previous batch's removal share the pool, and neither may wait behind the other's whole batch."""
        slots = threading.Semaphore(self.policy.concurrency)
        futures = []
        for w in work:
            if w.done:
                continue
            slots.acquire()
            f = pool.submit(self._guarded, w, functools.partial(step, w))
            f.add_done_callback(lambda _: slots.release())
            futures.append(f)
        for f in futures:
            f.result()

    def _for_all(self, work: list[Work], listing: Callable[[list[Work]], dict[ObjectURI, Any]]) -> dict[ObjectURI, Any]:
        """A shared listing; if it fails after retries, every row that needed it fails (and resumes later)."""
        if not work:
            return {}
        try:
            return listing(work)
        except StoreError as exc:
            ends = [self._ending(w, Failed("cloud error", f"{type(exc).__name__}: {exc}")) for w in work if not w.done]
            self.journal.transition_many(ends)
            return {}

    # -- copy and verify ----------------------------------------------------------------------------
    def _choose(self, w: Work, entries: list[VersionEntry]) -> None:
        """Which listed versions this row still has to copy (none when all are verified)."""
        row, data = w.row, w.data
        live = [e for e in entries if not e.is_delete_marker]
        verified = {(v["version"], v["etag"]) for v in data["versions"]}
        if not live:
            if data["versions"]:
                return  # everything was verified and has since been deleted: removal confirms it
            raise Failed("source not found", str(row.source))
        if self.policy.versions == "current":
            latest = [e for e in live if e.is_latest]
            to_copy = latest or live[-1:]
        else:
            to_copy = live
        w.latest = to_copy[-1]
        w.to_copy = [e for e in to_copy if (e.version, e.etag) not in verified]
        for e in w.to_copy:
            if is_archived(e.storage_class):
                raise Held("archived", f"{row.source} version {e.version} is {e.storage_class}: restore it first")

    def _migrate(self, w: Work) -> None:
        if w.resumed_copy:
            # A copy was under way when the last run stopped: a multipart upload it began at the destination
            # would keep its parts (and bytes) forever. The destination key is this wave's to write.
            self._abort_destination_uploads(w.data, self.stores.for_uri(w.row.destination), w.row.destination)
        for i, e in enumerate(w.to_copy):
            self._copy_one(w.row, w.data, e, is_latest=e is w.latest, last=i == len(w.to_copy) - 1)

    def _copy_one(self, row: ManifestRow, data: dict[str, Any], e: VersionEntry, is_latest: bool,
                  last: bool) -> None:
        """Copy one version and verify it; one commit records it verified (the row stays COPYING while
        further versions remain). A kill before that commit leaves the row COPYING: the resumed copy finds
        the written object by its precondition and compares digests."""
        src = self.stores.for_uri(row.source)
        dst = self.stores.for_uri(row.destination)
        previous = data["versions"][-1] if data["versions"] else None
        overwrite = previous["destination_etag"] if previous else None
        overwrite_version = previous["destination_version"] if previous else None
        attempts = 2
        for attempt in range(1, attempts + 1):
            try:
                # A stream cut mid-copy (reset, truncation, timeout) is retried whole: the source is read
                # again from the start and an unfinished multipart upload was aborted by the store.
                outcome = retry.call(functools.partial(
                    copy_version, src, row.source, e.version, dst, row.destination, expected_size=e.size,
                    expected_etag=e.etag, overwrite_etag=overwrite, overwrite_version=overwrite_version))
            except SourceChanged as exc:
                raise Held("changed at source", str(exc)) from exc
            except PreconditionFailed:
                # Already there (an earlier, interrupted attempt of ours) or a different object: decide by digests.
                outcome = None
            except StoreError as exc:
                if exc.code in _REFUSED_DIGEST_CODES:
                    # The destination refused bytes that did not match the digests they were sent with:
                    # damaged on the way. Nothing was stored; read and send again.
                    if attempt < attempts:
                        continue
                    raise Held("destination evidence failed",
                               f"{row.destination} refused the bytes {attempts} times: {exc}") from exc
                if exc.status in (400, 403):
                    raise Held("source unreadable", f"{row.source} version {e.version}: {exc} (an SSE-C/CSEK "
                               "object needs its key; an archived one needs a restore)") from exc
                raise
            crashpoints.hit("after-copy-before-commit")
            if outcome is None:
                computed, tier, src_matched, info = self._existing_destination(row, src, e)
                dinfo = dst.stat(row.destination)
                put_version, put_etag, reported, reported_size = (dinfo.version, dinfo.etag,
                                                                  list(dinfo.checksums), dinfo.size)
            else:
                info = outcome.source
                computed = list(outcome.computed)
                put_version, put_etag = outcome.put.version, outcome.put.etag
                reported, reported_size = list(outcome.put.checksums), outcome.put.size
                try:
                    tier, src_matched = source_evidence(
                        computed, list(info.checksums), list(row.declared) if is_latest else [],
                        info.size, row.size if is_latest else None,
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
            data["versions"].append({
                "version": e.version, "etag": e.etag, "size": info.size,
                "destination_version": put_version, "destination_etag": put_etag,
                "digests": _digests(computed) + _digests(c for c in reported if c.is_whole_object),
                "evidence": {"source_tier": tier, "source": src_matched, "destination": dst_matched},
                "storage_class": info.storage_class, "encryption": info.encryption,
                "extra": dict(info.extra),
                "verified_at": now(),
            })
            if last:
                data.pop("copying", None)
            item = (row.row, State.VERIFIED if last else State.COPYING, data, None,
                    {"version": e.version, "verified": True})
            if last:
                # Not waited for: nothing acts on "verified" before the batch's flush, and the worker's next
                # object (another key) need not wait for this fsync. A kill before it leaves COPYING.
                self.journal.submit([item])
            else:
                # The next version goes to the same destination key: this one must be on record first, or a
                # resume would find the newer version there and take it for a different object.
                self.journal.transition_many([item])
            self.progress(row.row, item[1])
            return

    def _abort_destination_uploads(self, data: dict[str, Any], dst: ObjectStore, uri: ObjectURI) -> None:
        uploads = dst.features.uploads
        if uploads is None:
            return
        for up in uploads.list(uri.bucket, uri.key):
            if up.key == uri.key:
                uploads.abort(uri.bucket, uri.key, up.upload_id)
                data.setdefault("destination_uploads_aborted", []).append(
                    {"uri": str(uri), "upload_id": up.upload_id, "at": now()})

    def _reread(self, store: ObjectStore, uri: ObjectURI, version: str | None) -> Checksum:
        sha, _ = sha256_of(store, uri, version)
        return Checksum(sha.algorithm, sha.value, Provenance.REREAD)

    def _existing_destination(self, row: ManifestRow, src: ObjectStore, e: VersionEntry) -> tuple[
            list[Checksum], str, list[str], Any]:
        """The destination already has an object: hash the source again to compare it with."""
        stream = src.open_read(row.source, e.version)
        try:
            hasher = MultiHasher()
            while chunk := stream.read(1 << 20):
                hasher.update(chunk)
            info = stream.info
        finally:
            stream.close()
        computed = hasher.digests()
        tier, matched = source_evidence(computed, list(info.checksums), list(row.declared), hasher.size, row.size,
                                        (lambda: self._reread(src, row.source, e.version))
                                        if self.policy.second_read else None)
        return computed, tier, matched, info

    def _discard_destination(self, dst: ObjectStore, uri: ObjectURI, version: str | None,
                             etag: str | None) -> None:
        """Remove a copy this wave just wrote and could not verify (pinned to what we wrote)."""
        target = DeleteTarget(uri.key, version) if version not in (None, "null") else DeleteTarget(uri.key, None, etag)
        dst.delete_versions(uri.bucket, [target])

    # -- removal: checks and plan ---------------------------------------------------------------------
    def _plan(self, w: Work, listed: dict[ObjectURI, list[VersionEntry]],
              uploads: dict[ObjectURI, list[UploadInfo]]) -> None:
        row, data = w.row, w.data
        src = self.stores.for_uri(row.source)
        verified = {(v["version"], v["etag"]): v for v in data["versions"]}
        verified_sha = {d["hex"] for v in data["versions"] for d in v["digests"] if d["algorithm"] == "sha256"}
        unprotected = self.checks.destination_unprotected(row)
        if unprotected:
            raise Held("destination unprotected", unprotected)
        blocked_here = self.checks.location_blocks(src, row.source, row)
        if blocked_here:
            raise Held(*blocked_here)
        w.locations = [row.source]
        w.listed = entries = listed.get(row.source, [])
        disposed: list[dict[str, Any]] = []
        for e in entries:
            if e.is_delete_marker:
                w.targets.append((row.source, DeleteTarget(row.source.key, e.version, delete_marker=True),
                                  "delete-marker"))
                continue
            if (e.version, e.etag) not in verified:
                if self.policy.versions == "current" and not e.is_latest:
                    info = src.stat(row.source, e.version)
                    blocked = blocking_reason(info)
                    if blocked:
                        raise Held(blocked, f"{row.source} noncurrent version {e.version}")
                    disposed.append({"uri": str(row.source), "version": e.version, "size": info.size,
                                     "etag": e.etag, "digests": _digests(info.checksums)})
                    w.targets.append((row.source, DeleteTarget(row.source.key, e.version),
                                      "noncurrent-disposed-by-policy"))
                    continue
                raise Held("changed at source", f"{row.source} has version {e.version} (etag {e.etag}) "
                           "that this wave did not verify")
            # Lock and hold state as the verified read saw it; one placed since then makes the pinned
            # delete answer AccessDenied, which holds the object.
            extra = {**(verified[(e.version, e.etag)].get("extra") or {}), **e.extra}
            target = self._pinned(e)
            blocked = blocking_reason_of(extra)
            if blocked:
                if not self._may_bypass(extra):
                    raise Held(blocked, f"{row.source} version {e.version}")
                target = DeleteTarget(target.key, target.version, target.if_match, bypass_governance=True)
            w.targets.append((row.source, target, "version"))
        replica_results: list[dict[str, Any]] = []
        for ruri in row.replicas:
            rstore = self.stores.for_uri(ruri)
            rblock = self.checks.location_blocks(rstore, ruri, row)
            if rblock:
                raise Held(rblock[0], f"replica {ruri}: {rblock[1]}")
            w.locations.append(ruri)
            rentries = listed.get(ruri, [])
            if not rentries:
                replica_results.append({"uri": str(ruri), "result": "absent", "listed_at": now(),
                                        "listing": "no version or delete marker of this key"})
                continue
            rversions = []
            for e in rentries:
                if e.is_delete_marker:
                    w.targets.append((ruri, DeleteTarget(ruri.key, e.version, delete_marker=True), "delete-marker"))
                    continue
                rinfo = rstore.stat(ruri, e.version)
                blocked = blocking_reason(rinfo)
                if blocked:
                    raise Held(blocked, f"replica {ruri} version {e.version}")
                how = self._replica_matches(rstore, ruri, e, rinfo.checksums, data["versions"], verified_sha)
                if how is None:
                    raise Held("divergent replica", f"{ruri} version {e.version} matches no verified digest")
                rversions.append({"version": e.version, "etag": e.etag, "matched": how})
                w.targets.append((ruri, self._pinned(e), "replica-version"))
            replica_results.append({"uri": str(ruri), "result": "matched", "versions": rversions})
        data["replica_results"] = replica_results
        if disposed:
            data["disposed"] = disposed
        # Leftover incomplete uploads under the key hold bytes too: they are aborted.
        w.uploads = [(u, up) for u in w.locations for up in uploads.get(u, [])]
        data["plan"] = [{"uri": str(u), "version": t.version, "if_match": t.if_match, "kind": kind}
                        for u, t, kind in w.targets] + \
                       [{"uri": str(u), "upload_id": up.upload_id, "kind": "upload"} for u, up in w.uploads]

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
            comparable = [(c, mine) for c in claims if c.is_whole_object
                          for mine in [find(computed, c.algorithm)] if mine is not None]
            if comparable:
                try:
                    if all(c.matches(mine) for c, mine in comparable):
                        return "reported " + ",".join(c.algorithm.value for c, _ in comparable)
                except ChecksumError:
                    continue
        sha, _ = sha256_of(store, uri, e.version)
        if sha.hex in verified_sha:
            return "read sha256"
        return None

    # -- removal: deletes and proof -------------------------------------------------------------------
    def _delete(self, planned: list[Work]) -> None:
        for w in planned:
            for u, up in w.uploads:
                uploads = self.stores.for_uri(u).features.uploads
                try:
                    if uploads is not None:   # always: only stores with uploads list any
                        uploads.abort(u.bucket, u.key, up.upload_id)
                    result = "aborted"
                except StoreError as exc:
                    if exc.status != 404:
                        raise
                    result = "already gone"
                w.data["deletions"].append({"uri": str(u), "upload_id": up.upload_id, "kind": "upload",
                                            "at": now(), "result": result})
        by_bucket: dict[tuple[str, str], list[tuple[Work, ObjectURI, DeleteTarget, str]]] = defaultdict(list)
        for w in planned:
            if not w.done:
                for u, t, kind in w.targets:
                    by_bucket[(u.scheme, u.location)].append((w, u, t, kind))
        first = True
        for items in by_bucket.values():
            size = self.policy.delete_batch
            for start in range(0, len(items), size):
                chunk = [it for it in items[start:start + size] if not it[0].done]
                if not chunk:
                    continue
                if not first:
                    crashpoints.hit("between-version-deletes")
                first = False
                store = self.stores.for_uri(chunk[0][1])
                try:
                    results = store.delete_versions(chunk[0][1].bucket, [t for _, _, t, _ in chunk])
                except StoreError as exc:
                    ends = [self._ending(w, Failed("cloud error", f"delete batch: {exc}"))
                            for w in {id(it[0]): it[0] for it in chunk}.values() if not w.done]
                    self.journal.transition_many(ends)
                    continue
                crashpoints.hit("after-delete-before-commit")
                touched: dict[int, Work] = {}
                ends = []
                for (w, u, t, kind), res in zip(chunk, results, strict=True):
                    if w.done:
                        continue
                    touched[id(w)] = w
                    if res.ok or res.code in _GONE_CODES:
                        entry: dict[str, Any] = {"uri": str(u), "version": t.version, "kind": kind, "at": now(),
                                                 "result": "deleted" if res.ok else "already absent"}
                        if t.if_match:
                            entry["if_match"] = t.if_match
                        if t.bypass_governance:
                            entry["governance_bypassed"] = True
                        w.data["deletions"].append(entry)
                    elif res.code in _CHANGED_CODES:
                        ends.append(self._ending(w, Held("changed at source",
                                                         f"{u} no longer matches version {t.version}")))
                    else:
                        ends.append(self._ending(w, Held("delete refused",
                                                         f"{u} version {t.version}: {res.code} {res.message}")))
                self.journal.transition_many(
                    ends + [(w.row.row, State.DELETING, w.data, None, {}) for w in touched.values() if not w.done])

    def _prove(self, w: Work, after: dict[ObjectURI, list[VersionEntry]],
               uploads: dict[ObjectURI, list[UploadInfo]],
               soft: dict[ObjectURI, list[VersionEntry]]) -> End:
        row, data = w.row, w.data
        leftovers = [f"{u} {'delete marker' if e.is_delete_marker else 'version'} {e.version}"
                     for u in w.locations for e in after.get(u, [])]
        leftovers += [f"{u} upload {up.upload_id}" for u in w.locations for up in uploads.get(u, [])]
        soft_left = [f"{u} generation {e.version}" for u in w.locations for e in soft.get(u, [])]
        proof = Proof(listed_at=now(), locations=tuple(str(u) for u in w.locations), leftovers=tuple(leftovers),
                      soft_deleted=tuple(soft_left))
        data["proof"] = proof.as_record()
        data.pop("plan", None)
        if proof.soft_deleted:
            raise Held("soft-deleted, pending hard deletion",
                       "; ".join(proof.soft_deleted) + " (run the wave again after that time to confirm)")
        if proof.leftovers:
            changed = [e for e in after.get(row.source, []) if not e.is_delete_marker
                       and (e.version, e.etag) not in {(v["version"], v["etag"]) for v in data["versions"]}]
            if changed:
                raise Held("changed at source", "; ".join(proof.leftovers))
            raise Held("left after delete", "; ".join(proof.leftovers))
        # Versions verified earlier but gone before this plan (a resumed run) are recorded as such, now
        # that the proof has shown them gone.
        listed = {(e.version, e.etag) for e in w.listed}
        done = {(d.get("uri"), d.get("version")) for d in data["deletions"]}
        for v in data["versions"]:
            if (v["version"], v["etag"]) not in listed and (str(row.source), v["version"]) not in done:
                data["deletions"].append({"uri": str(row.source), "version": v["version"], "kind": "version",
                                          "at": now(), "result": "absent on resume (deleted by an interrupted step)"})
        w.done = True
        return (row.row, State.REMOVED, data, None, {})
