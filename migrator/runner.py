"""Run a wave end to end: validate, lock, journal, process, then hand the final records to the attestation
producer (attest/produce.py), which writes records.jsonl and the signed attestation.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from migrator.attest.keys import Signer
from migrator.attest.produce import ATTESTATION_FILE, RECORDS_FILE, WaveFacts, write_attestation
from migrator.attest.subjects import SubjectHasher, missing_subjects
from migrator.config import WaveSettings
from migrator.errors import InputError, StateError, VerificationError, WaveStopped
from migrator.events import EventSink
from migrator.journal import Journal, RunLock
from migrator.manifest import ManifestSummary, iter_rows, manifest_sha256, validate
from migrator.observe import Observer, Ticker
from migrator.pipeline import Wave
from migrator.preflight import RowCheck, check_buckets
from migrator.progress import Snapshot, WaveProgress
from migrator.records import State
from migrator.stopping import Stopper
from migrator.stores.registry import Stores

__all__ = ["ATTESTATION_FILE", "RECORDS_FILE", "RunControls", "WaveResult", "attest_journal", "run_wave"]


@dataclass(frozen=True)
class RunControls:
    """How the run reports and stops; none of it is policy, none of it is bound to the wave.

    ``events``: every event of the wave (events.py). ``stopper``: set by the CLI's signal handler.
    ``progress_interval``: seconds between progress snapshots (events and STATE/progress.json).
    ``reattest``: sign again a wave that is already finished and attested (default: report it as it is)."""

    events: EventSink | None = None
    stopper: Stopper | None = None
    progress_interval: float = 1.0
    reattest: bool = False


@dataclass(frozen=True)
class WaveResult:
    wave_id: str
    rows: int
    removed: int
    held: int
    failed: int
    out_of_scope: int
    bytes: int
    complete: bool
    attestation: Path
    records: Path
    exceptions: dict[str, int]
    held_rows: list[tuple[int, str, str]]  # (row, state, reason) for held and failed rows
    reused: bool = False                   # finished by an earlier run: its attestation, not signed again
    snapshot: Snapshot | None = None       # the run's last progress figures (None when reused)

    def as_record(self) -> dict[str, Any]:
        """The result as `run --json` prints it."""
        return {"wave_id": self.wave_id, "rows": self.rows, "removed": self.removed, "held": self.held,
                "failed": self.failed, "out_of_scope": self.out_of_scope, "bytes": self.bytes,
                "complete": self.complete, "attestation": str(self.attestation), "records": str(self.records),
                "exceptions": dict(sorted(self.exceptions.items())), "reused": self.reused,
                "rows_not_removed": [{"row": r, "state": st, "reason": why} for r, st, why in self.held_rows],
                "progress": self.snapshot.as_record() if self.snapshot is not None else None}


def attest_journal(journal: Journal, state_dir: Path, manifest: Path, manifest_sha256: str, rows: int,
                   signer: Signer, policy: Mapping[str, Any], scope: list[str],
                   subject_hasher: SubjectHasher | None = None,
                   locations: list[dict[str, Any]] | None = None) -> WaveResult:
    """Attest a finished journal: its records, in row order, go to the producer."""
    facts = WaveFacts(wave_id=journal.get_meta("wave_id") or "", started=journal.started(),
                      manifest_name=manifest.name, manifest_sha256=manifest_sha256, manifest_rows=rows,
                      policy=policy, scope=tuple(scope), locations=locations,
                      policy_changes=tuple(journal.policy_changes()))
    out = write_attestation((e.record() for e in journal.entries()), state_dir, facts, signer, subject_hasher)
    totals = out.tally.totals()
    return WaveResult(wave_id=facts.wave_id, rows=totals["rows"], removed=totals["removed"], held=totals["held"],
                      failed=totals["failed"], out_of_scope=totals["out_of_scope"], bytes=out.bytes,
                      complete=out.tally.complete,
                      attestation=out.attestation, records=out.records,
                      exceptions=out.tally.exceptions()["by_reason"], held_rows=out.held_rows)


def _check_state_dir(state_dir: Path) -> None:
    """The state folder exists as a folder, or can be made: checked without making it, so a wave refused
    before any write leaves nothing behind."""
    if state_dir.exists():
        if not state_dir.is_dir():
            raise StateError(f"--state {state_dir} exists and is not a folder")
        return
    ancestor = state_dir.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise StateError(f"--state {state_dir}: cannot create the folder: {ancestor} is not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise StateError(f"--state {state_dir}: cannot create the folder: {ancestor} is not writable")


def finished_result(journal: Journal, state_dir: Path) -> WaveResult | None:
    """The result of a wave an earlier run finished: every row removed or out of scope, and an attestation
    of this wave saying complete, made after the last policy change. None when there is work (or signing)
    left to do."""
    if any(st not in (State.REMOVED, State.OUT_OF_SCOPE) for st in journal.counts()):
        return None
    att, recs = state_dir / ATTESTATION_FILE, state_dir / RECORDS_FILE
    if not (att.is_file() and recs.is_file()):
        return None
    from migrator.attest.verify import parse_attestation

    try:
        predicate = parse_attestation(att.read_bytes())[1].get("predicate", {})
    except (OSError, VerificationError):
        return None   # damaged or unreadable: sign again
    if (predicate.get("wave_id") != journal.get_meta("wave_id") or predicate.get("complete") is not True
            or len(predicate.get("policy_changes") or []) != len(journal.policy_changes())):
        return None
    t = predicate.get("totals", {})
    untouched = [(e.row, e.state, e.record().exception) for e in journal.entries() if e.state != State.REMOVED]
    return WaveResult(wave_id=str(predicate["wave_id"]), rows=int(t.get("rows", 0)), removed=int(t.get("removed", 0)),
                      held=int(t.get("held", 0)), failed=int(t.get("failed", 0)),
                      out_of_scope=int(t.get("out_of_scope", 0)), bytes=int(predicate.get("bytes", 0)),
                      complete=True, attestation=att, records=recs,
                      exceptions=dict((predicate.get("exceptions") or {}).get("by_reason", {})),
                      held_rows=untouched, reused=True)


def run_wave(manifest: Path, state_dir: Path, signer: Signer, settings: WaveSettings, *,
             controls: RunControls | None = None,
             subject_hasher: SubjectHasher | None = None, allow_changed_policy: bool = False) -> WaveResult:
    """``signer``: resolved once by the caller (a bad or world-readable key is refused there, before any work).
    ``settings``: the entry point's ``WaveSettings``; nothing here reads the environment or the wave file.
    ``subject_hasher``: the custodian's keyed hashes of the manifest's subjects (required when rows name
    subjects: the wave commits a per-subject index an auditor can prove completeness against).
    ``allow_changed_policy``: a resume may change the bound policy or estate; the attestation records it.
    ``controls``: events, the stop flag, re-attesting (RunControls). A stop raises WaveStopped once every
    step in flight is journaled."""
    controls = controls or RunControls()
    stores = Stores(settings.stores)   # with settings.endpoints.sandbox, a non-loopback endpoint stops here
    estate = settings.estate
    row_check = RowCheck(settings, str(manifest))      # residency, and the buckets named: on the same pass
    summary = validate(manifest, estate=estate, visit=row_check)   # every row checked before anything is written
    if summary.subjects:
        if subject_hasher is None:
            raise InputError("rows name data subjects: pass the custodian's --subject-hashes FILE "
                             "(from `migrator subjects hash`) so the wave can commit its subject index",
                             file=str(manifest))
        subjects = (r.subject for r in iter_rows(manifest, estate=None) if r.subject)
        missing = missing_subjects(subject_hasher, subjects)
        if missing:
            raise InputError(f"the subject hashes do not cover {len(missing)} subject(s) of this manifest; "
                             "ask the custodian for hashes of every subject", file=str(manifest))
    _check_state_dir(state_dir)   # cheap, before any cloud is asked
    # Residency, destinations and regions: refused here, before any cloud is written, the journal begun
    # or even the state folder made.
    pre = row_check.pre
    check_buckets(pre, settings, stores)
    pre.name_rows(iter_rows(manifest, estate=estate), str(manifest))
    pre.raise_if_refused(str(manifest))
    try:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)   # the wave's state is confidential
    except OSError as exc:
        raise StateError(f"--state {state_dir}: cannot create the folder: {exc.strerror}") from None
    policy = settings.policy.as_record()
    with RunLock(state_dir):
        journal = Journal(state_dir)
        try:
            new_id = "wave-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(4)
            # The first run's id, and a resume with another policy refused: the predicate names one policy.
            wave_id = journal.bind_manifest(summary.sha256, new_id, settings.binding(),
                                            allow_changed=allow_changed_policy)
            journal.ensure_rows(list(range(1, summary.rows + 1)))
            done = None if controls.reattest else finished_result(journal, state_dir)
            if done is not None:
                _emit(controls, wave_id, "wave.finished", **_finished_members(done))
                return done
            observer = Observer(wave_id, _progress(journal, summary), controls.events)
            ticker = Ticker(observer, state_dir, {"manifest": str(manifest), "manifest_sha256": summary.sha256},
                            controls.progress_interval, controls.stopper)
            observer.emit("wave.started", manifest=str(manifest), manifest_sha256=summary.sha256,
                          rows=summary.rows, declared_bytes=summary.declared_bytes, state=str(state_dir),
                          resumed=any(st != State.PENDING for st in journal.counts()),
                          locations=dict(sorted(summary.sources_by_location.items())))
            ticker.start()
            try:
                wave = Wave(journal, stores, settings.policy, settings.transfer, observer, controls.stopper)
                wave.run(iter_rows(manifest, estate=estate))
            except WaveStopped as exc:
                journal.flush()
                snap = ticker.stop("stopped")
                observer.emit("wave.stopped", signal=exc.signal_name, exit_code=exc.exit_code,
                              done=snap.done, rows=snap.rows,
                              resume="run the same command again: the journal holds every step")
                raise
            except BaseException:
                ticker.stop("interrupted")
                raise
            if manifest_sha256(manifest) != summary.sha256:
                ticker.stop("interrupted")
                raise StateError(f"{manifest} changed while the wave ran; run it again to resume")
            scope = sorted(str(loc) for loc, b in pre.buckets.items() if b.roles & {"source", "replica"})
            result = attest_journal(journal, state_dir, manifest, summary.sha256, summary.rows, signer, policy,
                                    scope, subject_hasher, pre.identities(estate))
            result = replace(result, snapshot=ticker.stop("finished"))
            observer.emit("wave.finished", **_finished_members(result))
        finally:
            journal.close()
    if result.wave_id != wave_id:   # the attestation must name the wave this run bound itself to
        raise StateError(f"the journal in {state_dir} names wave {result.wave_id}, bound as {wave_id}")
    return result


def _progress(journal: Journal, summary: ManifestSummary) -> WaveProgress:
    return WaveProgress(summary.rows, journal.counts(), bytes_total=summary.declared_bytes or None,
                        locations=summary.sources_by_location)


def _finished_members(result: WaveResult) -> dict[str, Any]:
    return {"complete": result.complete, "reused": result.reused, "rows": result.rows, "removed": result.removed,
            "held": result.held, "failed": result.failed, "out_of_scope": result.out_of_scope,
            "bytes": result.bytes, "attestation": str(result.attestation), "records": str(result.records)}


def _emit(controls: RunControls, wave_id: str, kind: str, **members: Any) -> None:
    if controls.events is not None:
        from migrator.events import event

        controls.events.emit(event(kind, wave_id, **members))
