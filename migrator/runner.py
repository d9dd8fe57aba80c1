"""Run a wave end to end: validate, lock, journal, process, then hand the final records to the attestation
producer (attest/produce.py), which writes records.jsonl and the signed attestation.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from migrator.attest.keys import Signer
from migrator.attest.produce import ATTESTATION_FILE, RECORDS_FILE, WaveFacts, write_attestation
from migrator.attest.subjects import SubjectHasher, missing_subjects
from migrator.config import WaveSettings
from migrator.errors import InputError, StateError
from migrator.journal import Journal, RunLock
from migrator.manifest import iter_rows, manifest_sha256, validate
from migrator.pipeline import Wave
from migrator.preflight import RowCheck, check_buckets
from migrator.stores.registry import Stores

__all__ = ["ATTESTATION_FILE", "RECORDS_FILE", "WaveResult", "attest_journal", "run_wave"]


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


def run_wave(manifest: Path, state_dir: Path, signer: Signer, settings: WaveSettings, *,
             progress: Callable[[int, str], None] | None = None,
             subject_hasher: SubjectHasher | None = None, allow_changed_policy: bool = False) -> WaveResult:
    """``signer``: resolved once by the caller (a bad or world-readable key is refused there, before any work).
    ``settings``: the entry point's ``WaveSettings``; nothing here reads the environment or the wave file.
    ``subject_hasher``: the custodian's keyed hashes of the manifest's subjects (required when rows name
    subjects: the wave commits a per-subject index an auditor can prove completeness against).
    ``allow_changed_policy``: a resume may change the bound policy or estate; the attestation records it."""
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
            wave = Wave(journal, stores, settings.policy, settings.transfer, progress)
            wave.run(iter_rows(manifest, estate=estate))
            if manifest_sha256(manifest) != summary.sha256:
                raise StateError(f"{manifest} changed while the wave ran; run it again to resume")
            scope = sorted(str(loc) for loc, b in pre.buckets.items() if b.roles & {"source", "replica"})
            result = attest_journal(journal, state_dir, manifest, summary.sha256, summary.rows, signer, policy,
                                    scope, subject_hasher, pre.identities(estate))
        finally:
            journal.close()
    if result.wave_id != wave_id:   # the attestation must name the wave this run bound itself to
        raise StateError(f"the journal in {state_dir} names wave {result.wave_id}, bound as {wave_id}")
    return result
