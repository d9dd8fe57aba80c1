"""The per-object state machine of a wave, run over batches of rows.

PENDING -> COPYING -> VERIFIED -> DELETING -> REMOVED, or HELD / FAILED with a reason.

Rows are taken in batches. Within a batch the work that the clouds let us share is shared: one prefix
listing per bucket finds the versions of many keys, deletes go out in batches of pinned targets, and the
removal proof is one listing per bucket after the deletes. Copies run concurrently, one object each.
This module drives the batches, journals every step, and copies and verifies; what removal decides (the
plan, the pinned deletes, the proof) lives in removal.py, and each row's record is a records.Record.

Each row is processed idempotently from what the journal already knows plus what the clouds show now:
versions already verified are not copied again, deletes already done are confirmed by listing, and a
source that changed since it was verified is reported, never deleted.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from migrator import crashpoints, removal, retry
from migrator.bucket_checks import BucketChecks
from migrator.checksum import Checksum, MultiHasher, Provenance
from migrator.config import TransferSettings, WavePolicy
from migrator.errors import ChecksumError, DigestRefused, PreconditionFailed, SourceChanged, StoreError
from migrator.evidence import destination_evidence, source_evidence
from migrator.journal import Journal, now
from migrator.listing import Failures, list_soft_deleted_many, list_uploads_many, list_versions_many
from migrator.manifest import ManifestRow, batched
from migrator.observe import Observer
from migrator.outcome import Failed, Held, Outcome
from migrator.preflight import residency_of
from migrator.records import (
    Copying,
    Evidence,
    PendingCopy,
    Reason,
    Record,
    State,
    Transition,
    UploadAbort,
    VersionCopy,
    digests_of,
)
from migrator.stopping import Stopper
from migrator.stores.base import DeleteTarget, ObjectInfo, ObjectStore, VersionEntry
from migrator.stores.registry import Stores
from migrator.transfer import BufferBudget, copy_version, sha256_of
from migrator.uri import ObjectURI

T = TypeVar("T")


@dataclass
class Work:
    """One row in flight through a batch: its manifest row, its record as it stands, and the step's values."""

    row: ManifestRow
    record: Record
    done: bool = False
    plan: removal.RemovalPlan | None = None
    to_copy: list[VersionEntry] = field(default_factory=list)  # versions still to copy and verify
    latest: VersionEntry | None = None                          # the version the manifest's claims describe
    resumed_copy: bool = False                                  # the last run stopped during a copy

    def to(self, state: State, **detail: Any) -> Transition:
        self.record = replace(self.record, state=state)
        return Transition(self.record, detail)


def _searched(w: Work) -> tuple[ObjectURI, ...]:
    return (w.row.source, *w.row.replicas)


def _proved(w: Work) -> tuple[ObjectURI, ...]:
    return tuple(w.plan.locations) if w.plan is not None else ()


class Wave:
    """Runs a wave's rows through the state machine, journaling each step before the next."""

    def __init__(self, journal: Journal, stores: Stores, policy: WavePolicy, transfer: TransferSettings,
                 observer: Observer | None = None, stopper: Stopper | None = None) -> None:
        self.journal = journal
        self.stores = stores
        self.policy = policy
        self.transfer = transfer
        self.buffers = BufferBudget(transfer.buffer_memory)   # shared by every copy of the wave
        self.observer = observer
        self.stopper = stopper or Stopper()
        self.checks = BucketChecks(stores, policy)

    # -- driving ------------------------------------------------------------------------------------
    def run(self, rows: Iterator[ManifestRow]) -> None:
        """Process rows in batches on a bounded pool. One batch's removal (listings, deletes, proof: mostly
        round trips in turn) overlaps the next batch's copies, so the pool does not idle through it; at most
        two batches of rows are in memory. Batches are independent: a URI is in one row of a manifest."""
        with ThreadPoolExecutor(max_workers=self.transfer.concurrency, thread_name_prefix="wave") as pool, \
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="removal") as remover:
            removing: Future[None] | None = None
            for batch in batched(rows, self.transfer.batch_rows):
                self.stopper.check()   # a stop takes no new batch; the one being removed finishes its step
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
        untouched = [w for w in work if w.done]   # out of scope: one commit for the batch's, then nothing more
        if untouched:
            self._commit([w.to(State.OUT_OF_SCOPE) for w in untouched])
            work = [w for w in work if not w.done]
        if not work:
            return work
        # 1. Find every version of every source key: one listing per bucket.
        found = self._shared(work, lambda w: (w.row.source,), lambda f: list_versions_many(
            self.stores.for_uri, [w.row.source for w in work], failures=f))
        # 2. Copy and verify, concurrently. Every row about to be copied is journaled COPYING in one
        # commit first, so that a copy cut by a kill is found and cleaned up on resume.
        for w in work:
            if not w.done:
                self._guarded(w, functools.partial(self._choose, w, found.get(w.row.source, [])))
        copying = [w for w in work if not w.done and w.to_copy]
        for w in copying:
            w.record = replace(w.record, copying=Copying(tuple(PendingCopy(e.version, e.etag, e.size)
                                                               for e in w.to_copy), now()))
        self.stopper.check()   # before any row is journaled COPYING: a stop here leaves nothing to clean up
        self._commit([w.to(State.COPYING, versions=[e.version for e in w.to_copy]) for w in copying])
        self._each(pool, copying, self._migrate)
        self.journal.flush()   # every verified version durable before anything is planned or deleted
        return work

    def _remove_batch(self, work: list[Work], pool: ThreadPoolExecutor) -> None:
        self.checks.forget()   # bucket settings are read again before this batch's deletes
        # 3. Plan removal from fresh listings of every location: checks, replicas, pinned targets.
        live = [w for w in work if not w.done]
        uris = [u for w in live for u in (w.row.source, *w.row.replicas)]
        listed = self._shared(live, _searched, lambda f: list_versions_many(self.stores.for_uri, uris, failures=f))
        uploads = self._shared(live, _searched, lambda f: list_uploads_many(self.stores.for_uri, uris, failures=f))
        self._each(pool, live, lambda w: self._plan(w, listed, uploads))
        planned = [w for w in work if not w.done]
        self.stopper.check()   # planned, nothing deleted: the rows stay VERIFIED and are planned again
        self._commit([w.to(State.DELETING, targets=len(w.record.plan or ())) for w in planned])
        # 4. Delete, in batches of pinned targets per bucket; each result journaled before the next batch.
        self._delete(planned)
        self.stopper.check()
        # 5. Prove: list every location again after the deletes.
        proving = [w for w in planned if not w.done]
        locs = [u for w in proving if w.plan is not None for u in w.plan.locations]
        after = self._shared(proving, _proved, lambda f: list_versions_many(self.stores.for_uri, locs,
                                                                             use_start=False, failures=f))
        left_uploads = self._shared(proving, _proved,
                                    lambda f: list_uploads_many(self.stores.for_uri, locs, failures=f))
        soft = self._shared(proving, _proved, lambda f: list_soft_deleted_many(self.stores.for_uri, locs, failures=f))
        at = now()
        ends = [self._prove(w, after, left_uploads, soft, at) for w in proving if not w.done]
        self._commit(ends)

    def _commit(self, items: list[Transition], *, wait: bool = True) -> None:
        """Journal transitions (durable on return unless ``wait`` is False: then by the batch's flush),
        then tell the observer."""
        if wait:
            self.journal.transition_many(items)
        else:
            self.journal.submit(items)
        if self.observer is not None and items:
            self.observer.committed(items)

    def _start(self, row: ManifestRow) -> Work | None:
        entry = self.journal.get(row.row)
        if self.observer is not None:
            earlier = entry.record() if entry.state != State.PENDING else None   # its verified bytes count
            self.observer.begin(row.row, entry.state, str(row.source.location), earlier)
        if entry.state in (State.REMOVED, State.OUT_OF_SCOPE):
            return None
        rec = Record.from_journal(row.row, entry.state, None,
                                  {"source": str(row.source), "destination": str(row.destination), **entry.data})
        rec = replace(rec, replicas=tuple(str(r) for r in row.replicas),
                      subject=row.subject if row.subject is not None else rec.subject,
                      residency=row.residency if row.residency is not None else rec.residency,
                      detail=None)  # a previous run's hold is re-examined from scratch
        w = Work(row=row, record=rec, resumed_copy=rec.copying is not None)
        if entry.state == State.PENDING and residency_of(self.policy, row) == "out-of-scope":
            # Another residency, left untouched by policy: never listed, copied or deleted (journaled by the batch).
            w.done = True
            w.record = replace(rec, reason=Reason.OTHER_RESIDENCY,
                               detail=f"residency {row.residency}; the wave moves {self.policy.residency} rows only")
        return w

    def _guarded(self, w: Work, step: Callable[[], None]) -> None:
        try:
            step()
        except Outcome as exc:
            self._commit([self._ending(w, exc)])
        except ChecksumError as exc:
            self._commit([self._ending(w, Held(Reason.CHECKSUM_NOT_PROVEN, str(exc)))])
        except StoreError as exc:
            self._commit([self._ending(w, Failed(Reason.CLOUD_ERROR, f"{type(exc).__name__}: {exc}"),
                                       request_id=exc.request_id)])

    def _ending(self, w: Work, exc: Outcome, *, request_id: str | None = None) -> Transition:
        w.done = True
        w.record = replace(w.record, reason=exc.reason, detail=exc.detail, copying=None, plan=None)
        # The cloud's id of the failed request, for a support case: in the journal's event and the log.
        return w.to(exc.state, **({"request_id": request_id} if request_id else {}))

    def _each(self, pool: ThreadPoolExecutor, work: list[Work], step: Callable[[Work], None]) -> None:
        """Run ``step`` for each row on the pool, at most ``concurrency`` queued at a time: the copy phase and
        the previous batch's removal share the pool, and neither may wait behind the other's whole batch."""
        slots = threading.Semaphore(self.transfer.concurrency)
        futures = []
        for w in work:
            if w.done:
                continue
            slots.acquire()
            if self.stopper.requested:   # no new row to a worker; those under way finish or stop at a read
                slots.release()
                break
            f = pool.submit(self._guarded, w, functools.partial(step, w))
            f.add_done_callback(lambda _: slots.release())
            futures.append(f)
        for f in futures:
            f.result()
        self.stopper.check()

    def _shared(self, work: list[Work], needs: Callable[[Work], Iterable[ObjectURI]],
                listing: Callable[[Failures], Mapping[ObjectURI, list[T]]]) -> Mapping[ObjectURI, list[T]]:
        """A listing shared by rows. Where a location's listing fails after retries, the rows that needed that
        location fail (and resume later); rows of the other locations go on."""
        if not work:
            return {}
        failures: Failures = {}
        try:
            found = listing(failures)
        except StoreError as exc:
            ends = [self._ending(w, Failed(Reason.CLOUD_ERROR, f"{type(exc).__name__}: {exc}"))
                    for w in work if not w.done]
            self._commit(ends)
            return {}
        ends = []
        for w in work:
            failed = None if w.done else next((u.location for u in needs(w) if u.location in failures), None)
            if failed is not None:
                why = failures[failed]
                ends.append(self._ending(w, Failed(Reason.CLOUD_ERROR, f"{failed}: {type(why).__name__}: {why}"),
                                             request_id=getattr(why, "request_id", None)))
        self._commit(ends)
        return found

    # -- copy and verify ----------------------------------------------------------------------------
    def _choose(self, w: Work, entries: list[VersionEntry]) -> None:
        """Which listed versions this row still has to copy (none when all are verified)."""
        row, rec = w.row, w.record
        live = [e for e in entries if not e.is_delete_marker]
        if not live:
            if rec.versions:
                return  # everything was verified and has since been deleted: removal confirms it
            raise Failed(Reason.SOURCE_NOT_FOUND, str(row.source))
        if self.policy.versions == "current":
            latest = [e for e in live if e.is_latest]
            to_copy = latest or live[-1:]
        else:
            to_copy = live
        w.latest = to_copy[-1]
        w.to_copy = [e for e in to_copy if rec.verified(e.version, e.etag) is None]
        for e in w.to_copy:
            if removal.is_archived(e.storage_class):
                raise Held(Reason.ARCHIVED, f"{row.source} version {e.version} is {e.storage_class}: restore it first")

    def _migrate(self, w: Work) -> None:
        if w.resumed_copy:
            # A copy was under way when the last run stopped: a multipart upload it began at the destination
            # would keep its parts (and bytes) forever. The destination key is this wave's to write.
            self._abort_destination_uploads(w, self.stores.for_uri(w.row.destination), w.row.destination)
        for i, e in enumerate(w.to_copy):
            if i:
                self.stopper.check()   # the versions copied so far are journaled; the row stays COPYING
            self._copy_one(w, e, is_latest=e is w.latest, last=i == len(w.to_copy) - 1)

    def _copy_one(self, w: Work, e: VersionEntry, is_latest: bool, last: bool) -> None:
        """Copy one version and verify it; one commit records it verified (the row stays COPYING while
        further versions remain). A kill before that commit leaves the row COPYING: the resumed copy finds
        the written object by its precondition and compares digests."""
        row = w.row
        src = self.stores.for_uri(row.source)
        dst = self.stores.for_uri(row.destination)
        previous = w.record.versions[-1] if w.record.versions else None
        overwrite = previous.destination_etag if previous else None
        overwrite_version = previous.destination_version if previous else None
        attempts = 2
        for attempt in range(1, attempts + 1):
            try:
                # A stream cut mid-copy (reset, truncation, timeout) is retried whole: the source is read
                # again from the start and an unfinished multipart upload was aborted by the store.
                outcome = retry.call(functools.partial(
                    copy_version, src, row.source, e.version, dst, row.destination, expected_size=e.size,
                    expected_etag=e.etag, overwrite_etag=overwrite, overwrite_version=overwrite_version,
                    budget=self.buffers, check=self.stopper.check))
            except SourceChanged as exc:
                raise Held(Reason.CHANGED_AT_SOURCE, str(exc)) from exc
            except PreconditionFailed:
                # Already there (an earlier, interrupted attempt of ours) or a different object: decide by digests.
                outcome = None
            except DigestRefused as exc:
                # The destination refused bytes that did not match the digests they were sent with:
                # damaged on the way. Nothing was stored; read and send again, once.
                if attempt < attempts:
                    continue
                raise Held(Reason.DESTINATION_REFUSED,
                           f"{row.destination} refused the bytes {attempts} times: {exc}") from exc
            except StoreError as exc:
                if exc.status in (400, 403):
                    raise Held(Reason.SOURCE_UNREADABLE, f"{row.source} version {e.version}: {exc} (an SSE-C/CSEK "
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
                    raise Held(Reason.SOURCE_EVIDENCE_FAILED, f"after {attempts} reads: {exc}") from exc
            try:
                dst_matched = destination_evidence(computed, reported, info.size, reported_size)
            except ChecksumError as exc:
                if outcome is None:
                    raise Held(Reason.DESTINATION_HOLDS_OTHER, f"{row.destination}: {exc}") from exc
                self._discard_destination(dst, row.destination, put_version, put_etag)
                if attempt < attempts:
                    continue
                raise Held(Reason.DESTINATION_EVIDENCE_FAILED, f"after {attempts} writes: {exc}") from exc
            copy = VersionCopy(
                version=e.version, etag=e.etag, size=info.size,
                destination_version=put_version, destination_etag=put_etag,
                digests=digests_of(computed) + digests_of(c for c in reported if c.is_whole_object),
                evidence=Evidence(tier, tuple(src_matched), tuple(dst_matched)),
                storage_class=info.storage_class, encryption=info.encryption, extra=dict(info.extra),
                verified_at=now())
            w.record = replace(w.record, versions=(*w.record.versions, copy),
                               copying=None if last else w.record.copying)
            item = w.to(State.VERIFIED if last else State.COPYING, version=e.version, verified=True)
            if last:
                # Not waited for: nothing acts on "verified" before the batch's flush, and the worker's next
                # object (another key) need not wait for this fsync. A kill before it leaves COPYING.
                self._commit([item], wait=False)
            else:
                # The next version goes to the same destination key: this one must be on record first, or a
                # resume would find the newer version there and take it for a different object.
                self._commit([item])
            return

    def _abort_destination_uploads(self, w: Work, dst: ObjectStore, uri: ObjectURI) -> None:
        uploads = dst.features.uploads
        if uploads is None:
            return
        for up in uploads.list(uri.location, uri.key):
            if up.key == uri.key:
                uploads.abort(uri.location, uri.key, up.upload_id)
                aborted = UploadAbort(str(uri), up.upload_id, now())
                w.record = replace(w.record, destination_uploads_aborted=(
                    *(w.record.destination_uploads_aborted or ()), aborted))

    def _reread(self, store: ObjectStore, uri: ObjectURI, version: str | None) -> Checksum:
        sha, _ = sha256_of(store, uri, version)
        return Checksum(sha.algorithm, sha.value, Provenance.REREAD)

    def _existing_destination(self, row: ManifestRow, src: ObjectStore, e: VersionEntry) -> tuple[
            list[Checksum], str, list[str], ObjectInfo]:
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
        target = DeleteTarget(uri.key, version) if version is not None else DeleteTarget(uri.key, None, etag)
        dst.delete_versions(uri.location, [target])

    # -- removal: each step is removal.py's; here they are journaled ---------------------------------
    def _plan(self, w: Work, listed: removal.Listings, uploads: removal.Uploads) -> None:
        plan = removal.plan_removal(w.row, w.record, listed, uploads, checks=self.checks,
                                    store_for=self.stores.for_uri, policy=self.policy, now=now)
        w.plan = plan
        w.record = replace(w.record, replica_results=plan.replica_results,
                           disposed=plan.disposed or w.record.disposed, plan=plan.steps())

    def _delete(self, planned: list[Work]) -> None:
        for w in planned:
            for u, up in w.plan.uploads if w.plan is not None else ():
                deletion = removal.abort_upload(self.stores.for_uri(u), u, up, now())
                w.record = replace(w.record, deletions=(*w.record.deletions, deletion))
        items = [(w, t) for w in planned if not w.done and w.plan is not None for t in w.plan.targets]
        for batch in removal.delete_batches(items, self.stores.for_uri, self.transfer.delete_batch,
                                            skip=lambda w: w.done):
            if batch.error is not None:
                owners = {id(w): w for w, _ in batch.items}.values()
                failed = Failed(Reason.CLOUD_ERROR, f"delete batch: {batch.error}")
                self._commit([self._ending(w, failed) for w in owners if not w.done])
                continue
            touched: dict[int, Work] = {}
            ends = []
            for (w, t), res in zip(batch.items, batch.results, strict=True):
                if w.done:
                    continue
                touched[id(w)] = w
                try:
                    deletion = removal.judge(t, res, now())
                except Held as exc:
                    ends.append(self._ending(w, exc))
                    continue
                w.record = replace(w.record, deletions=(*w.record.deletions, deletion))
            self._commit(ends + [w.to(State.DELETING) for w in touched.values() if not w.done])
            # Only here, once this batch's results are journaled (the generator sends the next batch when
            # asked for it): the rows keep DELETING and are listed and planned again on resume.
            self.stopper.check()

    def _prove(self, w: Work, after: removal.Listings, uploads: removal.Uploads, soft: removal.Listings,
               at: str) -> Transition:
        plan = w.plan if w.plan is not None else removal.RemovalPlan((w.row.source,), (), (), (), (), ())
        proven = removal.prove(w.row, w.record, plan, after, uploads, soft, at)
        w.record = replace(w.record, proof=proven.proof, plan=None,
                           deletions=(*w.record.deletions, *proven.confirmed))
        if proven.held is not None:
            return self._ending(w, proven.held)
        w.done = True
        return w.to(State.REMOVED)
