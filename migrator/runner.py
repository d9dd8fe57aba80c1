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
from migrator.attest.keys import FileSigner, load_signer
from migrator.attest.merkle import MerkleBuilder
from migrator.attest.statement import (
    PAYLOAD_TYPE,
    PREDICATE_TYPE_V1,
    RECORDS_SUBJECT,
    RecordTally,
    build_predicate,
    build_statement,
)
from migrator.config import EndpointSettings, TransferSettings, WavePolicy
from migrator.errors import StateError
from migrator.journal import Journal, RunLock, State
from migrator.manifest import ManifestSummary, iter_rows, manifest_sha256, validate
from migrator.pipeline import Wave
from migrator.stores.registry import Stores

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
                      signer: FileSigner, policy: dict[str, Any], scope: list[str]) -> WaveResult:
    """Records (one canonical JSON line per manifest row, in row order) and the signed DSSE envelope."""
    records_path = state_dir / RECORDS_FILE
    tally = RecordTally()
    merkle = MerkleBuilder()
    sha = hashlib.sha256()
    total_bytes = 0
    held_rows: list[tuple[int, str, str]] = []

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
            total_bytes += sum(int(v.get("size", 0)) for v in rec.get("versions", []))
            if entry.state != State.REMOVED:
                detail = entry.data.get("detail") or ""
                held_rows.append((entry.row, entry.state, f"{entry.reason}: {detail}" if detail else str(entry.reason)))

    _atomic_write(records_path, write_records)
    crashpoints.hit("during-attestation")
    if merkle.size != summary.rows:
        raise StateError(f"journal has {merkle.size} rows, manifest has {summary.rows}")
    started = datetime.strptime(journal.get_meta("started") or "", "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    wave_id = journal.get_meta("wave_id") or ""
    predicate = build_predicate(
        wave_id=wave_id, tool_name="migrator", tool_version=__version__, started=started,
        finished=datetime.now(UTC), policy=policy, tally=tally, merkle_root=merkle.root(),
        tree_size=merkle.size, scope=scope,
        extra={"record_schema": RECORD_SCHEMA, "manifest_rows": summary.rows, "bytes": total_bytes})
    statement = build_statement(subjects=[(manifest.name, summary.sha256), (RECORDS_FILE, sha.hexdigest())],
                                predicate_type=PREDICATE_TYPE_V1, predicate=predicate)
    envelope = sign_envelope(canonical_json(statement), PAYLOAD_TYPE, [signer])
    att_path = state_dir / ATTESTATION_FILE
    _atomic_write(att_path, lambda fh: fh.write(envelope))
    totals = tally.totals()
    return WaveResult(wave_id=wave_id, rows=totals["rows"], removed=totals["removed"], held=totals["held"],
                      failed=totals["failed"], bytes=total_bytes, complete=tally.complete,
                      attestation=att_path, records=records_path,
                      exceptions=tally.exceptions()["by_reason"], held_rows=held_rows)


def run_wave(manifest: Path, state_dir: Path, signing_key: Path, policy: WavePolicy,
             endpoints: EndpointSettings | None = None, transfer: TransferSettings | None = None,
             progress: Callable[[int, str], None] | None = None) -> WaveResult:
    signer = load_signer(signing_key)        # refuse a bad or world-readable key before any work
    summary = validate(manifest)             # every row checked before anything is written
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
            return write_attestation(journal, state_dir, manifest, summary, signer, policy.as_record(), scope)
        finally:
            journal.close()
