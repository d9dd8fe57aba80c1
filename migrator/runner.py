"""Run a wave end to end: validate, lock, journal, process, then write records and the signed attestation.

The attestation side reads the journal only; it never touches a store.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from migrator import __version__, crashpoints
from migrator.attest.canonical import canonical_json, record_line
from migrator.attest.dsse import sign_envelope
from migrator.attest.keys import Signer
from migrator.attest.merkle import MerkleBuilder
from migrator.attest.recindex import write_index
from migrator.attest.signers import load_signer_spec
from migrator.attest.statement import (
    PAYLOAD_TYPE,
    PREDICATE_TYPE_V2,
    RECORDS_SUBJECT,
    SUBJECTS_SUBJECT,
    RecordTally,
    build_predicate,
    build_statement,
)
from migrator.attest.subjects import SubjectHasher, SubjectIndexBuilder, missing_subjects
from migrator.config import EndpointSettings, TransferSettings, WavePolicy
from migrator.errors import InputError, StateError
from migrator.journal import Journal, RunLock, State
from migrator.manifest import ManifestSummary, iter_rows, manifest_sha256, validate
from migrator.pipeline import Wave
from migrator.stores.registry import Stores
from migrator.uri import parse_uri

RECORD_SCHEMA = 1
ATTESTATION_FILE = "attestation.json"
RECORDS_FILE = RECORDS_SUBJECT
# Keys of the journal's working data that are not part of a record.
_TRANSIENT = ("copying", "plan")


@dataclass(frozen=True)
class WaveResult:
    wave_id: str
    rows: int
    removed: int
    held: int
    failed: int
    bytes: int
    complete: bool
    attestation: Path
    records: Path
    exceptions: dict[str, int]
    held_rows: list[tuple[int, str, str]]  # (row, state, reason) for held and failed rows


def _atomic_write(path: Path, chunks: Callable[[Any], None]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        chunks(fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def record_of(row: int, state: str, reason: str | None, data: dict[str, Any]) -> dict[str, Any]:
    rec = {k: v for k, v in data.items() if k not in _TRANSIENT}
    rec["schema"] = RECORD_SCHEMA
    rec["row"] = row
    rec["state"] = state
    rec["reason"] = reason
    return rec


def write_attestation(journal: Journal, state_dir: Path, manifest: Path, summary: ManifestSummary,
                      signer: Signer, policy: dict[str, Any], scope: list[str],
                      subject_hasher: SubjectHasher | None = None) -> WaveResult:
    """Records (one canonical JSON line per manifest row, in row order), the subject index when rows name
    data subjects, and the signed DSSE envelope."""
    records_path = state_dir / RECORDS_FILE
    subjects = SubjectIndexBuilder(subject_hasher) if subject_hasher is not None else None
    tally = RecordTally()
    merkle = MerkleBuilder()
    sha = hashlib.sha256()
    total_bytes = 0
    held_rows: list[tuple[int, str, str]] = []
    searched: set[str] = set(scope)  # every source and replica location listed for versions and uploads

    def write_records(fh: Any) -> None:
        nonlocal total_bytes
        for entry in journal.entries():
            if entry.state not in State.TERMINAL:
                raise StateError(f"row {entry.row} is still {entry.state}; resume the run before attesting")
            rec = record_of(entry.row, entry.state, entry.reason, entry.data)
            line = record_line(rec)
            fh.write(line)
            sha.update(line)
            merkle.add(line[:-1])
            tally.add(rec)
            for uri in (rec.get("source"), *(rec.get("replicas") or [])):
                if isinstance(uri, str):
                    searched.add(parse_uri(uri).location)
            if subjects is not None:
                subjects.add(rec)
            elif rec.get("subject") is not None:
                raise InputError("rows name data subjects but no subject hashes were given")
            total_bytes += sum(int(v.get("size", 0)) for v in rec.get("versions", []))
            if entry.state != State.REMOVED:
                detail = entry.data.get("detail") or ""
                held_rows.append((entry.row, entry.state, f"{entry.reason}: {detail}" if detail else str(entry.reason)))

    _atomic_write(records_path, write_records)
    crashpoints.hit("during-attestation")
    if merkle.size != summary.rows:
        raise StateError(f"journal has {merkle.size} rows, manifest has {summary.rows}")
    statement_subjects = [(manifest.name, summary.sha256), (RECORDS_FILE, sha.hexdigest())]
    index_member = None
    if subjects is not None:
        index = subjects.finish()
        if index.records:
            data = index.to_bytes()
            _atomic_write(state_dir / SUBJECTS_SUBJECT, lambda fh: fh.write(data))
            statement_subjects.append((SUBJECTS_SUBJECT, index.sha256()))
            index_member = index.predicate_member()
    started = datetime.strptime(journal.get_meta("started") or "", "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    wave_id = journal.get_meta("wave_id") or ""
    predicate = build_predicate(
        wave_id=wave_id, tool_name="migrator", tool_version=__version__, started=started,
        finished=datetime.now(UTC), policy=policy, tally=tally, merkle_root=merkle.root(),
        tree_size=merkle.size, scope=sorted(searched),
        extra={"record_schema": RECORD_SCHEMA, "manifest_rows": summary.rows, "bytes": total_bytes,
               "subjects": index_member})
    statement = build_statement(subjects=statement_subjects, predicate_type=PREDICATE_TYPE_V2, predicate=predicate)
    envelope = sign_envelope(canonical_json(statement), PAYLOAD_TYPE, [signer])
    att_path = state_dir / ATTESTATION_FILE
    _atomic_write(att_path, lambda fh: fh.write(envelope))
    write_index(records_path)   # records.idx: lets `audit prove` find a record without a scan (untrusted)
    totals = tally.totals()
    return WaveResult(wave_id=wave_id, rows=totals["rows"], removed=totals["removed"], held=totals["held"],
                      failed=totals["failed"], bytes=total_bytes, complete=tally.complete,
                      attestation=att_path, records=records_path,
                      exceptions=tally.exceptions()["by_reason"], held_rows=held_rows)


def run_wave(manifest: Path, state_dir: Path, signing_key: Path | str, policy: WavePolicy,
             endpoints: EndpointSettings | None = None, transfer: TransferSettings | None = None,
             progress: Callable[[int, str], None] | None = None,
             subject_hasher: SubjectHasher | None = None) -> WaveResult:
    """``signing_key``: a key file or a signer spec (file:PATH, awskms:KEY, ocikms:OCID@ENDPOINT).
    ``subject_hasher``: the custodian's keyed hashes of the manifest's subjects (required when rows name
    subjects: the wave commits a per-subject index an auditor can prove completeness against)."""
    signer = load_signer_spec(str(signing_key))  # refuse a bad or world-readable key before any work
    summary = validate(manifest)                 # every row checked before anything is written
    if summary.subjects:
        if subject_hasher is None:
            raise InputError("rows name data subjects: pass the custodian's --subject-hashes FILE "
                             "(from `migrator subjects hash`) so the wave can commit its subject index",
                             file=str(manifest))
        missing = missing_subjects(subject_hasher, (r.subject for r in iter_rows(manifest) if r.subject))
        if missing:
            raise InputError(f"the subject hashes do not cover {len(missing)} subject(s) of this manifest; "
                             "ask the custodian for hashes of every subject", file=str(manifest))
    if state_dir.exists() and not state_dir.is_dir():
        raise StateError(f"--state {state_dir} exists and is not a folder")
    state_dir.mkdir(parents=True, exist_ok=True)
    with RunLock(state_dir):
        journal = Journal(state_dir)
        try:
            wave_id = "wave-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(4)
            journal.bind_manifest(summary.sha256, wave_id, policy.as_record())
            journal.ensure_rows(list(range(1, summary.rows + 1)))
            stores = Stores(endpoints or EndpointSettings.from_env(), transfer)
            Wave(journal, stores, policy, progress).run(iter_rows(manifest))
            if manifest_sha256(manifest) != summary.sha256:
                raise StateError(f"{manifest} changed while the wave ran; run it again to resume")
            scope = sorted(summary.sources_by_location)
            return write_attestation(journal, state_dir, manifest, summary, signer, policy.as_record(), scope,
                                     subject_hasher)
        finally:
            journal.close()
