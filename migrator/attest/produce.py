"""The attestation producer: a wave's final records become records.jsonl, the subject index, the Merkle
tree and the signed statement. The attestation package owns both ends of its format: this writes it,
verify.py, proofs.py and live.py read it.

It takes the records as values (from the journal, by the runner) and never touches a store.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from migrator import __version__, crashpoints
from migrator.attest.canonical import canonical_json, record_line
from migrator.attest.dsse import sign_envelope
from migrator.attest.keys import Signer
from migrator.attest.merkle import MerkleBuilder
from migrator.attest.recindex import write_index
from migrator.attest.statement import (
    PAYLOAD_TYPE,
    PREDICATE_TYPE_V3,
    RECORDS_SUBJECT,
    SUBJECTS_SUBJECT,
    RecordTally,
    build_predicate,
    build_statement,
)
from migrator.attest.subjects import SubjectHasher, SubjectIndexBuilder
from migrator.errors import InputError, StateError
from migrator.files import replace_atomically
from migrator.records import SCHEMA, Record, State
from migrator.uri import parse_uri

ATTESTATION_FILE = "attestation.json"
# Everything in the state folder is private to its owner, as the keys are: records and the subject index
# name users' objects (docs/attestation.md §6); the attestation is published by copying it out.
STATE_FILE_MODE = 0o600
RECORDS_FILE = RECORDS_SUBJECT


@dataclass(frozen=True)
class WaveFacts:
    """What the attestation says about the wave beyond its records."""

    wave_id: str
    started: datetime
    manifest_name: str
    manifest_sha256: str
    manifest_rows: int
    policy: Mapping[str, Any]
    scope: tuple[str, ...]          # every location the wave searched (sources and replicas)
    locations: list[dict[str, Any]] | None = None   # the named locations' identities; None: none named
    policy_changes: tuple[Mapping[str, Any], ...] = ()   # resumes allowed to change the bound policy or estate


@dataclass(frozen=True)
class Produced:
    attestation: Path
    records: Path
    tally: RecordTally
    bytes: int
    held_rows: list[tuple[int, str, str]]  # (row, state, reason: detail) for held and failed rows


def write_attestation(records: Iterable[Record], state_dir: Path, wave: WaveFacts, signer: Signer,
                      subject_hasher: SubjectHasher | None = None) -> Produced:
    """Records (one canonical JSON line per manifest row, in row order), the subject index when rows name
    data subjects, and the signed DSSE envelope. Every record must be final."""
    records_path = state_dir / RECORDS_FILE
    subjects = SubjectIndexBuilder(subject_hasher) if subject_hasher is not None else None
    tally = RecordTally()
    merkle = MerkleBuilder()
    sha = hashlib.sha256()
    total_bytes = 0
    held_rows: list[tuple[int, str, str]] = []
    searched: set[str] = set(wave.scope)  # every source and replica location listed for versions and uploads

    def write_records(fh: IO[bytes]) -> None:
        nonlocal total_bytes
        for rec in records:
            if not rec.final:
                raise StateError(f"row {rec.row} is still {rec.state}; resume the run before attesting")
            obj = rec.to_json()   # working members (copying, plan) are never part of it
            line = record_line(obj)
            fh.write(line)
            sha.update(line)
            merkle.add(line[:-1])
            tally.add(rec)
            for uri in (rec.source, *rec.replicas):
                if uri and rec.state != State.OUT_OF_SCOPE:   # untouched: never searched
                    searched.add(str(parse_uri(uri).location))
            if subjects is not None:
                subjects.add(obj)
            elif rec.subject is not None:
                raise InputError("rows name data subjects but no subject hashes were given")
            total_bytes += rec.bytes
            if rec.state != State.REMOVED:
                held_rows.append((rec.row, str(rec.state), rec.exception))

    replace_atomically(records_path, write_records, mode=STATE_FILE_MODE)
    crashpoints.hit("during-attestation")
    if merkle.size != wave.manifest_rows:
        raise StateError(f"journal has {merkle.size} rows, manifest has {wave.manifest_rows}")
    statement_subjects = [(wave.manifest_name, wave.manifest_sha256), (RECORDS_FILE, sha.hexdigest())]
    index_member = None
    if subjects is not None:
        index = subjects.finish()
        if index.records:
            data = index.to_bytes()
            replace_atomically(state_dir / SUBJECTS_SUBJECT, data, mode=STATE_FILE_MODE)
            statement_subjects.append((SUBJECTS_SUBJECT, index.sha256()))
            index_member = index.predicate_member()
    predicate = build_predicate(
        wave_id=wave.wave_id, tool_name="migrator", tool_version=__version__, started=wave.started,
        finished=datetime.now(UTC), policy=wave.policy, tally=tally, merkle_root=merkle.root(),
        tree_size=merkle.size, scope=sorted(searched),
        extra={"record_schema": SCHEMA, "manifest_rows": wave.manifest_rows, "bytes": total_bytes,
               "subjects": index_member, "locations": wave.locations,
               **({"policy_changes": list(wave.policy_changes)} if wave.policy_changes else {})})
    statement = build_statement(subjects=statement_subjects, predicate_type=PREDICATE_TYPE_V3, predicate=predicate)
    envelope = sign_envelope(canonical_json(statement), PAYLOAD_TYPE, [signer])
    att_path = state_dir / ATTESTATION_FILE
    replace_atomically(att_path, envelope, mode=STATE_FILE_MODE)
    write_index(records_path)   # records.idx: lets `audit prove` find a record without a scan (untrusted)
    return Produced(attestation=att_path, records=records_path, tally=tally, bytes=total_bytes, held_rows=held_rows)
