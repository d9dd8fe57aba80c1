"""removal.py on in-memory stores, no emulator: the plan pins every delete or holds the row, judge reads
outcomes, and the proof shows nothing left before a row is REMOVED."""

from __future__ import annotations

import dataclasses
import io
from typing import Any

import pytest

from migrator import removal
from migrator.bucket_checks import BucketChecks
from migrator.checksum import MultiHasher
from migrator.config import WavePolicy
from migrator.errors import StateError
from migrator.manifest import ManifestRow
from migrator.outcome import Held
from migrator.records import DeletionKind, Evidence, Reason, Record, State, VersionCopy, digests_of
from migrator.stores.base import (
    DeleteOutcome,
    DeleteResult,
    DeleteTarget,
    ObjectStore,
    Protection,
    PutRequest,
    UploadInfo,
)
from migrator.stores.memory import MemoryStore
from migrator.uri import ObjectURI
from tests.conftest import store_transfer

NOW = "2026-01-01T00:00:00.000000Z"
SRC = ObjectURI("s3", "src", "users/1/a.bin")
REPLICA = ObjectURI("gs", "backup", "users/1/a.bin")
DST = ObjectURI("oci", "dst", "users/1/a.bin", "ns")


class _Stores:
    def __init__(self, *stores: MemoryStore) -> None:
        self._by_scheme = {s.scheme: s for s in stores}

    def for_uri(self, uri: ObjectURI) -> ObjectStore:
        return self._by_scheme[uri.scheme]


class World:
    def __init__(self, **policy: Any) -> None:
        self.s3, self.gs, self.oci = (MemoryStore(scheme, transfer=store_transfer()) for scheme in ("s3", "gs", "oci"))
        self.s3.create_bucket("src", versioned=True)
        self.gs.create_bucket("backup", versioned=True, soft_delete_seconds=0)
        self.oci.create_bucket("dst", versioned=True)
        self.stores = _Stores(self.s3, self.gs, self.oci)
        self.policy = WavePolicy(**policy)
        self.checks = BucketChecks(self.stores, self.policy)  # type: ignore[arg-type]  # the one call it makes

    def put(self, store: MemoryStore, uri: ObjectURI, data: bytes) -> str | None:
        return store.put(uri, io.BytesIO(data), PutRequest(size=len(data), if_none_match=False)).version

    def verified(self, data: bytes, *versions: str | None) -> Record:
        """The record of a row whose listed source versions were copied and verified."""
        copies = []
        for v in versions:
            h = MultiHasher()
            h.update(data)
            entry = next(e for e in self.s3.list_versions(SRC.location, SRC.key) if e.version == v)
            copies.append(VersionCopy(version=v, etag=entry.etag, size=len(data), destination_version="d",
                                      destination_etag="de", digests=digests_of(h.digests()),
                                      evidence=Evidence("source-checksum", ("md5",), ("md5",)), storage_class=None,
                                      encryption=None, extra={}, verified_at=NOW))
        return Record(row=1, state=State.VERIFIED, reason=None, source=str(SRC), destination=str(DST),
                      versions=tuple(copies))

    def plan(self, row: ManifestRow, record: Record) -> removal.RemovalPlan:
        uris = [row.source, *row.replicas]
        listed = {u: list(self.stores.for_uri(u).list_versions(u.location, u.key)) for u in uris}
        return removal.plan_removal(row, record, listed, {}, checks=self.checks, store_for=self.stores.for_uri,
                                    policy=self.policy, now=lambda: NOW)


def _row(*replicas: ObjectURI) -> ManifestRow:
    return ManifestRow(line=2, row=1, source=SRC, destination=DST, replicas=replicas)


def test_every_verified_version_is_planned_pinned_to_its_id() -> None:
    w = World()
    v1, v2 = w.put(w.s3, SRC, b"one"), w.put(w.s3, SRC, b"one")
    plan = w.plan(_row(), w.verified(b"one", v1, v2))
    assert [(t.delete.version, t.kind) for t in plan.targets] == [(v1, "version"), (v2, "version")]
    assert plan.locations == (SRC,) and plan.replica_results == ()
    assert [s.version for s in plan.steps()] == [v1, v2]


def test_a_version_this_wave_did_not_verify_holds_the_row() -> None:
    w = World()
    v1 = w.put(w.s3, SRC, b"one")
    w.put(w.s3, SRC, b"written since")
    with pytest.raises(Held) as held:
        w.plan(_row(), w.verified(b"one", v1))
    assert held.value.reason is Reason.CHANGED_AT_SOURCE


def test_a_noncurrent_version_is_disposed_of_one_by_one_only_by_explicit_policy() -> None:
    w = World(versions="current")
    old, new = w.put(w.s3, SRC, b"old"), w.put(w.s3, SRC, b"new")
    plan = w.plan(_row(), w.verified(b"new", new))
    assert [(t.delete.version, t.kind) for t in plan.targets] == [(old, "noncurrent-disposed-by-policy"),
                                                                 (new, "version")]
    assert [(d.version, d.size) for d in plan.disposed] == [(old, 3)]


@pytest.mark.parametrize(("protection", "reason"), [
    (Protection(legal_hold=True), Reason.S3_LEGAL_HOLD),
    (Protection(temporary_hold=True), Reason.GCS_TEMPORARY_HOLD),
    (Protection(replication_pending=True), Reason.S3_REPLICATION_PENDING),
])
def test_a_protected_version_holds_the_row(protection: Protection, reason: Reason) -> None:
    w = World()
    v1 = w.put(w.s3, SRC, b"one")
    w.s3.protect(SRC, v1, protection)
    with pytest.raises(Held) as held:
        w.plan(_row(), w.verified(b"one", v1))
    assert held.value.reason is reason


def test_governance_retention_is_bypassed_only_by_policy_and_never_together_with_another_lock() -> None:
    from datetime import UTC, datetime, timedelta

    later = datetime.now(UTC) + timedelta(days=1)
    governance = Protection(retention_mode="GOVERNANCE", retain_until=later)
    w = World()
    v1 = w.put(w.s3, SRC, b"one")
    w.s3.protect(SRC, v1, governance)
    with pytest.raises(Held) as held:
        w.plan(_row(), w.verified(b"one", v1))
    assert held.value.reason is Reason.S3_GOVERNANCE_RETENTION
    bypassing = World(bypass_governance=True)
    v2 = bypassing.put(bypassing.s3, SRC, b"one")
    bypassing.s3.protect(SRC, v2, governance)
    (target,) = bypassing.plan(_row(), bypassing.verified(b"one", v2)).targets
    assert target.delete.bypass_governance
    bypassing.s3.protect(SRC, v2, Protection(retention_mode="GOVERNANCE", retain_until=later,
                                             replication_pending=True))
    with pytest.raises(Held) as pending:
        bypassing.plan(_row(), bypassing.verified(b"one", v2))
    assert pending.value.reason is Reason.S3_REPLICATION_PENDING
    bypassing.s3.protect(SRC, v2, Protection(retention_mode="COMPLIANCE", retain_until=later))
    with pytest.raises(Held) as compliance:
        bypassing.plan(_row(), bypassing.verified(b"one", v2))
    assert compliance.value.reason is Reason.S3_COMPLIANCE_RETENTION


def test_a_lock_recorded_when_the_copy_was_verified_still_holds_the_row() -> None:
    w = World()
    v1 = w.put(w.s3, SRC, b"one")
    rec = w.verified(b"one", v1)
    locked = dataclasses.replace(rec.versions[0], extra={"object_lock_legal_hold": "ON"})  # as S3's HEAD said
    with pytest.raises(Held) as held:
        w.plan(_row(), dataclasses.replace(rec, versions=(locked,)))
    assert held.value.reason is Reason.S3_LEGAL_HOLD


def test_delete_markers_are_planned_as_markers() -> None:
    w = World()
    v1 = w.put(w.s3, SRC, b"one")
    marker = w.s3.delete_current(SRC)
    plan = w.plan(_row(), w.verified(b"one", v1))
    kinds = {t.delete.version: (t.kind, t.delete.delete_marker) for t in plan.targets}
    assert kinds == {v1: ("version", False), marker: ("delete-marker", True)}


def test_a_replica_holding_verified_bytes_is_planned_and_a_divergent_one_holds_the_row() -> None:
    w = World()
    v1 = w.put(w.s3, SRC, b"one")
    r1 = w.put(w.gs, REPLICA, b"one")
    plan = w.plan(_row(REPLICA), w.verified(b"one", v1))
    assert plan.locations == (SRC, REPLICA)
    (result,) = plan.replica_results
    assert result.result == "matched" and result.versions is not None and result.versions[0].version == r1
    assert result.versions[0].matched.startswith("reported ")
    w.put(w.gs, REPLICA, b"something else")
    with pytest.raises(Held) as held:
        w.plan(_row(REPLICA), w.verified(b"one", v1))
    assert held.value.reason is Reason.DIVERGENT_REPLICA


def test_a_replica_with_nothing_there_is_recorded_absent_with_its_listing() -> None:
    w = World()
    v1 = w.put(w.s3, SRC, b"one")
    (result,) = w.plan(_row(REPLICA), w.verified(b"one", v1)).replica_results
    assert (result.result, result.listed_at, result.versions) == ("absent", NOW, None)


def test_a_bucket_level_hold_comes_first_as_the_plan_command_reports_it() -> None:
    w = World()
    w.gs.configure_bucket("backup", soft_delete_seconds=3600)
    v1 = w.put(w.s3, SRC, b"one")
    w.put(w.s3, SRC, b"unverified")   # a version hold too: the bucket's comes first, as `migrator plan` says
    with pytest.raises(Held) as held:
        w.plan(_row(REPLICA), w.verified(b"one", v1))
    assert held.value.reason is Reason.GCS_SOFT_DELETE_ON and held.value.detail.startswith(f"replica {REPLICA}")


@pytest.mark.parametrize(("outcome", "result"), [(DeleteOutcome.DELETED, "deleted"),
                                                 (DeleteOutcome.ABSENT, "already absent")])
def test_judge_records_a_delete_that_left_nothing(outcome: DeleteOutcome, result: str) -> None:
    t = removal.Target(SRC, DeleteTarget(SRC.key, None, if_match='"e"'), DeletionKind.VERSION)
    d = removal.judge(t, DeleteResult(t.delete, outcome), NOW)
    assert (d.result, d.version, d.if_match, d.kind) == (result, None, '"e"', "version")


@pytest.mark.parametrize(("outcome", "reason"), [(DeleteOutcome.CHANGED, Reason.CHANGED_AT_SOURCE),
                                                 (DeleteOutcome.REFUSED, Reason.DELETE_REFUSED)])
def test_judge_holds_a_delete_that_changed_or_was_refused(outcome: DeleteOutcome, reason: Reason) -> None:
    t = removal.Target(SRC, DeleteTarget(SRC.key, "v1"), DeletionKind.VERSION)
    with pytest.raises(Held) as held:
        removal.judge(t, DeleteResult(t.delete, outcome, "AccessDenied", "locked"), NOW)
    assert held.value.reason is reason
    assert outcome is DeleteOutcome.CHANGED or "AccessDenied locked" in held.value.detail


def test_deletes_go_out_in_batches_and_each_batch_is_seen_before_the_next_is_sent() -> None:
    w = World()
    versions = [w.put(w.s3, SRC, b"x") for _ in range(5)]
    targets = [("row", removal.Target(SRC, DeleteTarget(SRC.key, v), DeletionKind.VERSION)) for v in versions]
    seen = []
    for batch in removal.delete_batches(targets, w.stores.for_uri, 2, skip=lambda _: False):
        seen.append(len(batch.items))
        # What is not yet yielded is not yet deleted: the caller journals each batch first.
        left = len(list(w.s3.list_versions(SRC.location, SRC.key)))
        assert left == 5 - sum(seen)
    assert seen == [2, 2, 1]


def test_an_upload_the_store_cannot_abort_is_an_error_not_a_silent_success() -> None:
    w = World()
    store = MemoryStore("gs", transfer=store_transfer())
    store.features = dataclasses.replace(store.features, uploads=None)
    with pytest.raises(StateError):
        removal.abort_upload(store, REPLICA, UploadInfo(REPLICA.key, "u1"), NOW)
    upload = w.s3.begin_upload("src", SRC.key)
    assert removal.abort_upload(w.s3, SRC, UploadInfo(SRC.key, upload), NOW).result == "aborted"
    assert removal.abort_upload(w.s3, SRC, UploadInfo(SRC.key, upload), NOW).result == "already gone"


def test_the_proof_holds_a_row_with_anything_left_and_confirms_versions_gone_on_resume() -> None:
    w = World()
    v1 = w.put(w.s3, SRC, b"one")
    rec = w.verified(b"one", v1)
    plan = w.plan(_row(), rec)
    listed = {SRC: list(w.s3.list_versions(SRC.location, SRC.key))}
    left = removal.prove(_row(), rec, plan, listed, {}, {}, NOW)
    assert left.held is not None and left.held.reason is Reason.LEFT_AFTER_DELETE and not left.proof.empty
    w.put(w.s3, SRC, b"new since")
    changed = removal.prove(_row(), rec, plan, {SRC: list(w.s3.list_versions(SRC.location, SRC.key))}, {}, {}, NOW)
    assert changed.held is not None and changed.held.reason is Reason.CHANGED_AT_SOURCE
    soft = removal.prove(_row(), rec, plan, {}, {}, {SRC: listed[SRC]}, NOW)
    assert soft.held is not None and soft.held.reason is Reason.SOFT_DELETED_PENDING
    # Nothing left; the version was deleted by an interrupted earlier step, so this plan never listed it.
    resumed = removal.RemovalPlan((SRC,), (), (), (), (), ())
    clean = removal.prove(_row(), rec, resumed, {}, {}, {}, NOW)
    assert clean.held is None and clean.proof.empty and clean.proof.locations == (str(SRC),)
    gone = "absent on resume (deleted by an interrupted step)"
    assert [(d.version, d.result) for d in clean.confirmed] == [(v1, gone)]
