"""Inclusion proofs, the fast canonical reader, the records scan, and the verifier's independence.

``make_wave`` builds a signed wave like the runner's (records like the pipeline's, predicate v2 with a
subject index); test_subjects.py and test_cosign.py use it too.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migrator.attest import dsse, keys, merkle, scan
from migrator.attest.canonical import (
    MISSING,
    CanonicalLines,
    NotCanonical,
    canonical_json,
    loads_canonical,
    record_line,
)
from migrator.attest.policy import AllOf, Inputs, RequireManifest, RequireRecords, Threshold
from migrator.attest.proofs import RECORD_PROOF_TYPE, Lines, prove_record, record_uris, verify_proof
from migrator.attest.statement import (
    PAYLOAD_TYPE,
    PREDICATE_TYPE_V1,
    PREDICATE_TYPE_V2,
    PREDICATE_TYPE_V3,
    RECORDS_SUBJECT,
    SUBJECTS_SUBJECT,
    RecordTally,
    build_predicate,
    build_statement,
)
from migrator.attest.subjects import SubjectHasher, SubjectIndexBuilder, SubjectKey
from migrator.attest.verify import verify_attestation
from migrator.errors import InputError, VerificationError
from migrator.records import Record
from migrator.uri import parse_uri

ROOT = Path(__file__).resolve().parents[2]


# ---- a wave, as the runner writes it ----------------------------------------------------------------------

def record(row: int, state: str = "REMOVED", reason: str | None = None, subject: str | None = None) -> dict[str, Any]:
    src = f"s3://src/users/{subject or 'nobody'}/{row:04d} ü.bin"
    rec: dict[str, Any] = {
        "schema": 1, "row": row, "source": src, "destination": f"oci://ns/dst/users/{row:04d}",
        "replicas": [f"gs://backup/users/{row:04d}"] if row % 2 else [],
        "state": state, "reason": reason,
        "versions": [{"version": f"v{row}", "etag": f'"{row:032x}"', "size": 100 + row,
                      "digests": [{"algorithm": "sha256", "hex": hashlib.sha256(b"%d" % row).hexdigest(),
                                   "provenance": "computed"}]}],
        "deletions": [{"at": "2025-01-31T12:00:00Z", "kind": "version", "uri": src, "version": f"v{row}"}],
        "proof": {"empty": state == "REMOVED", "listed_at": "2025-01-31T12:00:01Z", "locations": [src]},
    }
    if subject is not None:
        rec["subject"] = subject
    return rec


@dataclass
class Wave:
    envelope: bytes
    records: bytes
    manifest: bytes
    index: bytes
    signers: list[keys.Signer]
    subject_key: SubjectKey

    @property
    def pubs(self) -> list[keys.PublicKey]:
        return [keys.load_public_key_pem(s.public_key_pem()) for s in self.signers]


def subject_of(row: int) -> str | None:
    return None if row % 5 == 0 else f"user-{row % 3}"


def make_wave(n: int = 12, *, states: dict[int, tuple[str, str | None]] | None = None,
              signers: list[keys.Signer] | None = None, subject_key: SubjectKey | None = None,
              recs: list[dict[str, Any]] | None = None, wave_id: str = "wave-1",
              hasher: SubjectHasher | None = None, v1: bool = False,
              locations: list[dict[str, Any]] | bool | None = False) -> Wave:
    """``locations`` other than False makes it predicate v3, with that ``locations`` member (None or a list)."""
    signers = signers or [keys.FileSigner(keys.new_private_key("ed25519"))]
    subject_key = subject_key or SubjectKey(bytes(range(32)))
    states = states or {}
    if recs is None:
        recs = []
        for i in range(1, n + 1):
            state, reason = states.get(i, ("REMOVED", None))
            recs.append(record(i, state, reason, subject=subject_of(i)))
    tally, builder, index_builder = RecordTally(), merkle.MerkleBuilder(), SubjectIndexBuilder(hasher or subject_key)
    lines = []
    for r in recs:
        line = record_line(r)
        lines.append(line)
        builder.add(line[:-1])
        tally.add(Record.from_json(r))
        index_builder.add(r)
    records = b"".join(lines)
    index = index_builder.finish()
    manifest = ("source,destination,subject\n" + "".join(
        f"{r['source']},{r['destination']},{r.get('subject', '')}\n" for r in recs)).encode()
    t0 = datetime(2025, 1, 31, 12, 0, tzinfo=UTC)
    named = index.records > 0 and not v1
    v3 = locations is not False
    ptype = PREDICATE_TYPE_V1 if v1 else PREDICATE_TYPE_V3 if v3 else PREDICATE_TYPE_V2
    predicate = build_predicate(
        wave_id=wave_id, tool_name="migrator", tool_version="0.1.0", started=t0, finished=t0,
        policy={"versions": "all"}, tally=tally, merkle_root=builder.root(), tree_size=builder.size,
        scope=sorted({str(parse_uri(u).location) for r in recs if r["state"] != "OUT_OF_SCOPE"
                      for u in (r["source"], *r["replicas"])}) if v3 else ["s3://src", "gs://backup"],
        extra=None if v1 else {"subjects": index.predicate_member() if named else None,
                               **({"locations": locations} if v3 else {})},
        predicate_type=ptype)
    subjects = [("manifest.csv", hashlib.sha256(manifest).hexdigest()),
                (RECORDS_SUBJECT, hashlib.sha256(records).hexdigest())]
    if named:
        subjects.append((SUBJECTS_SUBJECT, index.sha256()))
    statement = build_statement(subjects=subjects, predicate_type=ptype, predicate=predicate)
    env = dsse.sign_envelope(canonical_json(statement), PAYLOAD_TYPE, signers)
    return Wave(env, records, manifest, index.to_bytes(), signers, subject_key)


# ---- the fast canonical reader ----------------------------------------------------------------------------

def test_reader_reads_members_and_takes_the_fast_path() -> None:
    w = make_wave(40)
    reader = CanonicalLines(("row", "state", "reason", "subject"))
    for n, line in enumerate(w.records.split(b"\n")[:-1], start=1):
        fields = reader.fields(line)
        assert fields is not None
        row, state, reason, subject = fields
        assert (row, state, reason) == (n, "REMOVED", None)
        assert subject == (subject_of(n) or MISSING)
    assert reader.slow <= 8              # a handful of shapes, each checked in full once
    assert reader.fields(b"[1,2]") is None
    with pytest.raises(NotCanonical):
        reader.fields(b'{"row": 1}')


_keys = st.sampled_from(["a", "b", "row", "state", "é", "\U0001f600", "\ue000", "x\"y", "k\\", "\x1f"])
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**60), 2**60), st.text(max_size=6),
                     st.floats(allow_nan=False, allow_infinity=False, width=32))
_json = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(_keys, inner, max_size=3)), max_leaves=8)


def _same_shape(value: Any, data: st.DataObject) -> Any:
    """The same structure and member names with fresh scalars of the same kinds."""
    if isinstance(value, dict):
        return {k: _same_shape(v, data) for k, v in value.items()}
    if isinstance(value, list):
        return [_same_shape(v, data) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return data.draw(st.integers(-(10**15), 10**15))
    if isinstance(value, str):
        return data.draw(st.text(max_size=8))
    return value


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(obj=st.dictionaries(_keys, _json, max_size=5), data=st.data())
def test_reader_accepts_exactly_what_the_full_check_accepts(obj: dict[str, Any], data: st.DataObject) -> None:
    try:
        first = canonical_json(obj)
    except InputError:
        return                            # floats/ints JCS cannot express
    reader = CanonicalLines(("row", "state", "a"))
    try:
        reader.fields(first)              # primes a template
    except NotCanonical:
        return                            # e.g. 2.0**53 prints as an integer JCS cannot read back
    try:
        second = canonical_json(_same_shape(obj, data))
    except InputError:
        return
    candidates = [second]
    for _ in range(4):                    # and single-byte changes of it
        i = data.draw(st.integers(0, len(second) - 1))
        b = data.draw(st.sampled_from(b' "\\0123456789-.eE{}[],:nu\x00\x1f\x7f\xc3\xa9\xff'))
        candidates.append(second[:i] + bytes([b]) + second[i + 1:])
    for line in candidates:
        try:
            expected: Any = loads_canonical(line)
        except NotCanonical:
            with pytest.raises(NotCanonical):
                reader.fields(line)
            continue
        got = reader.fields(line)
        if not isinstance(expected, dict):
            assert got is None
        else:
            assert got == tuple(expected.get(k, MISSING) for k in ("row", "state", "a"))


# ---- the records scan -------------------------------------------------------------------------------------

def test_scan_in_processes_equals_the_scan_in_this_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    w = make_wave(300, states={7: ("HELD", "legal hold"), 250: ("FAILED", "mismatch")})
    path = tmp_path / "records.jsonl"
    path.write_bytes(w.records)
    monkeypatch.setattr(scan, "CHUNK", 4096)    # many chunks from a small file
    alone = scan.scan_records(w.records, want_subjects=True)
    parallel = scan.scan_records(path, want_subjects=True, workers=2)
    assert alone == parallel
    assert alone.sha256 == hashlib.sha256(w.records).hexdigest()
    assert alone.root == merkle.root(w.records.split(b"\n")[:-1]) and alone.tree_size == 300
    assert alone.totals == {"rows": 300, "removed": 298, "held": 1, "failed": 1, "out_of_scope": 0}
    assert alone.subjects is not None and alone.subjects[:5] == [subject_of(i) for i in range(1, 6)]
    # a bad line deep in the file is reported by its line number, in file order
    lines = w.records.split(b"\n")
    lines[200] = lines[200].replace(b'"row":201', b'"row": 201')
    path.write_bytes(b"\n".join(lines))
    bad = scan.scan_records(path, workers=2)
    assert bad.error is not None and bad.error[0] == 201 and "not canonical" in bad.error[1]


# ---- record proofs ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def wave() -> Wave:
    return make_wave(13, states={4: ("HELD", "legal hold")})


def test_prove_and_verify_by_source_destination_and_replica(wave: Wave) -> None:
    recs = [json.loads(line) for line in wave.records.splitlines()]
    for uri, row in ((recs[3]["source"], 4), (recs[9]["destination"], 10), (recs[6]["replicas"][0], 7)):
        proof = prove_record(wave.envelope, wave.records, uri)
        assert proof["type"] == RECORD_PROOF_TYPE and proof["leaf_index"] == row - 1 and proof["tree_size"] == 13
        assert proof["line"].encode() + b"\n" == wave.records.splitlines(keepends=True)[row - 1]
        text = json.dumps(proof)                             # what `audit prove` prints
        v = verify_proof(text, wave.envelope, Threshold(wave.pubs))     # no records needed
        assert v.record["row"] == row and uri in record_uris(v.record) and v.object_uri == uri


@pytest.mark.parametrize("uri_index", [False, True])
def test_lines_built_once_make_further_proofs_cheap(wave: Wave, uri_index: bool) -> None:
    lines = Lines(wave.records, uri_index=uri_index)
    for row in range(1, 14):
        rec = json.loads(lines.line(row - 1))
        for uri in record_uris(rec):
            proof = prove_record(wave.envelope, lines, uri)
            assert proof["leaf_index"] == row - 1
            assert [bytes.fromhex(h) for h in proof["audit_path"]] == merkle.inclusion_proof(
                wave.records.split(b"\n")[:-1], row - 1)
    with pytest.raises(InputError, match="no record"):
        prove_record(wave.envelope, lines, "s3://nowhere/x")


def test_prove_refuses_unknown_objects_and_foreign_records(wave: Wave) -> None:
    with pytest.raises(InputError, match="no record"):
        prove_record(wave.envelope, wave.records, "s3://src/users/nobody/none")
    other = make_wave(13)
    with pytest.raises(VerificationError, match=r"^subject records"):
        prove_record(wave.envelope, other.records, "oci://ns/dst/users/0001")


def test_prove_picks_a_row_when_several_records_name_the_object() -> None:
    recs = [record(1), record(2)]
    recs[1]["replicas"] = [recs[0]["source"]]
    w = make_wave(recs=recs)
    with pytest.raises(InputError, match="rows 1, 2"):
        prove_record(w.envelope, w.records, recs[0]["source"])
    assert prove_record(w.envelope, w.records, recs[0]["source"], row=2)["leaf_index"] == 1


def _tampered(proof: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**proof, **changes}


def test_tampered_proofs_fail(wave: Wave) -> None:
    uri = json.loads(wave.records.splitlines()[5])["source"]
    p = prove_record(wave.envelope, wave.records, uri)
    path = list(p["audit_path"])
    path[1] = "00" * 32
    other_line = wave.records.splitlines()[6].decode()
    bad = {
        "audit path": _tampered(p, audit_path=path),
        "short path": _tampered(p, audit_path=p["audit_path"][:-1]),
        "leaf index": _tampered(p, leaf_index=p["leaf_index"] + 1),
        "tree size": _tampered(p, tree_size=14),
        "record": _tampered(p, line=p["line"].replace("REMOVED", "HELD")),
        "other record": _tampered(p, line=other_line),
        "object uri": _tampered(p, object_uri="s3://src/elsewhere"),
        "type": _tampered(p, type="x"),
        "extra member": _tampered(p, note="trust me"),
    }
    for name, proof in bad.items():
        with pytest.raises(VerificationError):
            verify_proof(proof, wave.envelope, Threshold(wave.pubs))
        assert name


def test_a_proof_for_a_different_root_fails(wave: Wave) -> None:
    other = make_wave(13, signers=wave.signers)     # same keys, same shape, different wave
    uri = json.loads(other.records.splitlines()[2])["destination"]
    theirs = prove_record(other.envelope, other.records, uri)
    verify_proof(theirs, other.envelope, Threshold(wave.pubs))
    with pytest.raises(VerificationError, match="another attestation"):
        verify_proof(theirs, wave.envelope, Threshold(wave.pubs))
    # Even claiming this attestation's payload digest, the root (and then the path) give it away.
    ours = verify_attestation(wave.envelope, Inputs(), Threshold(wave.pubs)).payload_sha256
    with pytest.raises(VerificationError, match="different root"):
        verify_proof(_tampered(theirs, payload_sha256=ours), wave.envelope, Threshold(wave.pubs))
    with pytest.raises(VerificationError, match=r"^inclusion"):
        verify_proof(_tampered(theirs, payload_sha256=ours, root=wave.records and
                               verify_attestation(wave.envelope, Inputs(), Threshold(wave.pubs)).merkle_root.hex()),
                     wave.envelope, Threshold(wave.pubs))


def test_a_proof_needs_a_trusted_signature(wave: Wave) -> None:
    uri = json.loads(wave.records.splitlines()[0])["source"]
    proof = prove_record(wave.envelope, wave.records, uri)
    stranger = keys.FileSigner(keys.new_private_key("ed25519"))
    with pytest.raises(VerificationError, match=r"^signature"):
        verify_proof(proof, wave.envelope, Threshold([stranger.public_key]))


# ---- records tampering (verify with the records) ------------------------------------------------------------

@pytest.mark.parametrize("how", ["changed", "removed", "duplicated", "reordered"])
def test_changed_removed_duplicated_reordered_records_are_detected(wave: Wave, how: str) -> None:
    lines = wave.records.splitlines(keepends=True)
    if how == "changed":
        lines[2] = lines[2].replace(b'"REMOVED"', b'"HELD"')
    elif how == "removed":
        del lines[2]
    elif how == "duplicated":
        lines.insert(2, lines[2])
    else:
        lines[2], lines[3] = lines[3], lines[2]
    with pytest.raises(VerificationError, match=r"^subject records"):
        verify_attestation(wave.envelope, Inputs(records=b"".join(lines)),
                           AllOf(Threshold(wave.pubs), RequireRecords()))


def test_records_from_a_path_verify_like_bytes(wave: Wave, tmp_path: Path) -> None:
    (tmp_path / "r.jsonl").write_bytes(wave.records)
    (tmp_path / "m.csv").write_bytes(wave.manifest)
    v = verify_attestation(wave.envelope, Inputs(records=tmp_path / "r.jsonl", manifest=tmp_path / "m.csv"),
                           AllOf(Threshold(wave.pubs), RequireRecords(), RequireManifest()))
    assert v.records_checked and v.manifest_checked and v.predicate_type == PREDICATE_TYPE_V2


# ---- the verifier side imports only the formats ----------------------------------------------------------

VERIFIER = ("migrator.attest.verify", "migrator.attest.proofs", "migrator.attest.subjects")
ALLOWED = {"migrator", "migrator.errors", "migrator.files", "migrator.manifest_rows", "migrator.records",
           "migrator.attest", *(f"migrator.attest.{m}" for m in (
               "canonical", "dsse", "keys", "merkle", "statement", "verify", "scan", "subjects", "proofs", "policy"))}


def test_verifier_imports_nothing_of_the_operator_side() -> None:
    code = ("import sys\n" + "".join(f"import {m}\n" for m in VERIFIER)
            + "print('\\n'.join(sorted(m for m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    loaded = set(out.stdout.split())
    ours = {m for m in loaded if m == "migrator" or m.startswith("migrator.")}
    assert ours <= ALLOWED, f"the verifier pulls in {sorted(ours - ALLOWED)}"
    for foreign in ("boto3", "botocore", "oci", "google", "tenacity", "sqlite3"):
        assert foreign not in loaded, f"the verifier pulls in {foreign}"


def test_verifier_is_small_enough_to_read_in_one_sitting() -> None:
    files = [ROOT / "migrator" / "attest" / f"{m.split('.')[-1]}.py" for m in ALLOWED if m.count(".") == 2]
    lines = sum(len(f.read_text().splitlines()) for f in files)
    assert lines < 2600, f"the verifier side has grown to {lines} lines"
