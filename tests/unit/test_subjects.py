"""Subject completeness: the custodian's key and hashes, the keyed index, and subject proofs."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from migrator.attest import dsse
from migrator.attest.canonical import canonical_json, loads_canonical
from migrator.attest.merkle import MerkleBuilder
from migrator.attest.policy import AllOf, Inputs, RequireManifest, RequireRecords, RequireSubjectIndex, Threshold
from migrator.attest.proofs import (
    SUBJECT_PROOF_TYPE,
    VerifiedProof,
    VerifiedSubjectProof,
    prove_record,
    prove_subject,
    verify_any_proof,
    verify_subject_proof,
)
from migrator.attest.statement import PAYLOAD_TYPE, PREDICATE_TYPE_V1, PREDICATE_TYPE_V2, SUBJECTS_SUBJECT
from migrator.attest.subjects import (
    SubjectIndex,
    SubjectKey,
    build_subject_index,
    check_subject_index,
    generate_subject_key,
    load_subject_hashes,
    load_subject_key,
    missing_subjects,
    write_subject_hashes,
)
from migrator.attest.verify import verify_attestation
from migrator.errors import InputError, VerificationError
from tests.unit.test_proofs import Wave, make_wave, record, subject_of


@pytest.fixture(scope="module")
def wave() -> Wave:
    return make_wave(20, states={9: ("HELD", "legal hold")})


def rows_of(subject: str, n: int = 20) -> list[int]:
    return [i for i in range(1, n + 1) if subject_of(i) == subject]


# ---- keys and the custodian's hashes ---------------------------------------------------------------------

def test_key_folder_is_made_0700_when_missing(tmp_path: Path) -> None:
    """`subjects key --out custodian/subject.key` makes custodian/ (0700), as `keys generate` makes its own."""
    key_path = tmp_path / "custodian" / "keys" / "subject.key"
    previous = os.umask(0)
    try:
        generate_subject_key(key_path)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(key_path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(InputError, match="a-file or a folder above it is a file"):
        generate_subject_key(tmp_path / "a-file" / "subject.key")


def test_key_is_written_0600_and_refused_when_others_can_read_it(tmp_path: Path) -> None:
    key = generate_subject_key(tmp_path / "subject.key")
    assert stat.S_IMODE((tmp_path / "subject.key").stat().st_mode) == 0o600
    again = load_subject_key(tmp_path / "subject.key")
    assert again.key_id == key.key_id and again.hash("u1") == key.hash("u1") != key.hash("u2")
    assert "key_id" in repr(key) and (tmp_path / "subject.key").read_text().strip() not in repr(key)
    with pytest.raises(InputError, match="already exists"):
        generate_subject_key(tmp_path / "subject.key")
    os.chmod(tmp_path / "subject.key", 0o640)
    with pytest.raises(InputError, match="chmod 600"):
        load_subject_key(tmp_path / "subject.key")
    (tmp_path / "bad.key").write_text("not a key\n")
    os.chmod(tmp_path / "bad.key", 0o600)
    with pytest.raises(InputError, match="not a subject key"):
        load_subject_key(tmp_path / "bad.key")


def test_hmac_is_the_documented_one() -> None:
    key = SubjectKey(bytes(range(32)))
    assert key.hash("user-1") == hmac.new(bytes(range(32)), b"user-1", hashlib.sha256).hexdigest()
    assert key.key_id == hmac.new(bytes(range(32)), b"migrator subject key id v1", hashlib.sha256).hexdigest()


def test_the_operator_builds_the_same_index_from_the_custodians_hashes(tmp_path: Path, wave: Wave) -> None:
    subjects = [s for i in range(1, 21) if (s := subject_of(i))]
    n = write_subject_hashes(wave.subject_key, subjects, tmp_path / "hashes.jsonl")
    assert n == 3 and stat.S_IMODE((tmp_path / "hashes.jsonl").stat().st_mode) == 0o600
    hashes = load_subject_hashes(tmp_path / "hashes.jsonl")
    assert hashes.key_id == wave.subject_key.key_id and len(hashes) == 3
    from_hashes = make_wave(20, states={9: ("HELD", "legal hold")}, hasher=hashes, signers=wave.signers)
    assert from_hashes.index == wave.index
    assert missing_subjects(hashes, ["user-1", "someone-else"]) == ["someone-else"]
    with pytest.raises(InputError, match="do not cover"):
        hashes.hash("someone-else")


# ---- the index -------------------------------------------------------------------------------------------

def test_index_format(wave: Wave) -> None:
    lines = wave.index.splitlines()
    entries = [loads_canonical(line) for line in lines]
    assert len(entries) == 3
    assert [e["hash"] for e in entries] == sorted(e["hash"] for e in entries)
    for e in entries:
        assert set(e) == {"count", "hash", "leaves"} and e["count"] == len(e["leaves"])
    by_hash = {e["hash"]: e for e in entries}
    for subject in ("user-0", "user-1", "user-2"):
        assert by_hash[wave.subject_key.hash(subject)]["leaves"] == [r - 1 for r in rows_of(subject)]
    idx, root = build_subject_index((json.loads(x) for x in wave.records.splitlines()), wave.subject_key)
    assert b"".join(idx) == wave.index
    v = verify_attestation(wave.envelope, Inputs(), Threshold(wave.pubs))
    m = v.predicate["subjects"]
    assert m["merkle"]["root"] == root.hex() and m["entries"] == 3 and m["records"] == 16
    assert m["key_id"] == wave.subject_key.key_id and m["hash"] == "hmac-sha256"
    assert v.subjects[SUBJECTS_SUBJECT] and v.predicate_type == PREDICATE_TYPE_V2


def test_full_verification_with_records_index_and_key(wave: Wave) -> None:
    v = verify_attestation(wave.envelope, Inputs(records=wave.records, manifest=wave.manifest, subjects=wave.index),
                           AllOf(Threshold(wave.pubs), RequireRecords(), RequireManifest(),
                                 RequireSubjectIndex(wave.subject_key)))
    assert v.subjects_checked and v.records_checked


def test_a_wave_without_subjects_commits_no_index() -> None:
    w = make_wave(recs=[record(i) for i in range(1, 4)])
    v = verify_attestation(w.envelope, Inputs(records=w.records), AllOf(Threshold(w.pubs), RequireRecords()))
    assert v.predicate["subjects"] is None and SUBJECTS_SUBJECT not in v.subjects
    with pytest.raises(VerificationError, match=r"^subject index"):
        verify_attestation(w.envelope, Inputs(subjects=b""), AllOf(Threshold(w.pubs), RequireSubjectIndex()))


def test_v1_attestations_still_verify() -> None:
    w = make_wave(6, v1=True)
    v = verify_attestation(w.envelope, Inputs(records=w.records, manifest=w.manifest),
                           AllOf(Threshold(w.pubs), RequireRecords(), RequireManifest()))
    assert v.predicate_type == PREDICATE_TYPE_V1 and "subjects" not in v.predicate


RecordsEdit = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]


def _index_with(wave: Wave, edit: RecordsEdit) -> Wave:
    """A wave whose signed index was built wrongly (by ``edit`` on the records the index sees)."""
    recs = [json.loads(x) for x in wave.records.splitlines()]
    lines, _ = build_subject_index(edit([dict(r) for r in recs]), wave.subject_key)
    tampered = make_wave(recs=recs, signers=wave.signers, subject_key=wave.subject_key)
    # Re-sign with the wrong index in place of the right one: the attester lies consistently.
    b = MerkleBuilder()
    for line in lines:
        b.add(line[:-1])
    bad = SubjectIndex(lines, b.root(), sum(json.loads(x)["count"] for x in lines), wave.subject_key.key_id)
    st = json.loads(dsse.parse_envelope_strict(tampered.envelope).payload)
    st["predicate"]["subjects"] = bad.predicate_member()
    st["subject"] = [s if s["name"] != SUBJECTS_SUBJECT else {"name": SUBJECTS_SUBJECT, "digest": {
        "sha256": hashlib.sha256(bad.to_bytes()).hexdigest()}} for s in st["subject"]]
    env = dsse.sign_envelope(canonical_json(st), PAYLOAD_TYPE, wave.signers)
    return Wave(env, tampered.records, tampered.manifest, bad.to_bytes(), wave.signers, wave.subject_key)


def _omit_row(row: int) -> RecordsEdit:
    def edit(recs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        recs[row - 1].pop("subject", None)
        return recs
    return edit


def test_an_index_that_omits_a_record_is_detected(wave: Wave) -> None:
    bad = _index_with(wave, _omit_row(rows_of("user-1")[1]))
    # Well-formed on its own:
    verify_attestation(bad.envelope, Inputs(subjects=bad.index), AllOf(Threshold(bad.pubs), RequireSubjectIndex()))
    with pytest.raises(VerificationError, match=r"subject index: .*records are missing"):
        verify_attestation(bad.envelope, Inputs(records=bad.records, subjects=bad.index),
                           AllOf(Threshold(bad.pubs), RequireRecords(), RequireSubjectIndex()))
    # ... and the prover refuses to claim completeness for that subject.
    with pytest.raises(VerificationError, match=r"^subject index"):
        prove_subject(bad.envelope, bad.records, bad.index, "user-1", bad.subject_key)


def test_an_index_that_splits_or_mislabels_a_subject_is_detected(wave: Wave) -> None:
    def split(recs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        recs[rows_of("user-2")[0] - 1]["subject"] = "user-2-other"
        return recs
    bad = _index_with(wave, split)
    with pytest.raises(VerificationError, match="split over two entries"):
        verify_attestation(bad.envelope, Inputs(records=bad.records, subjects=bad.index),
                           AllOf(Threshold(bad.pubs), RequireRecords(), RequireSubjectIndex()))

    def relabel(recs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for r in recs:
            if r.get("subject") == "user-2":
                r["subject"] = "user-9"
        return recs
    bad = _index_with(wave, relabel)
    # The partition holds:
    verify_attestation(bad.envelope, Inputs(records=bad.records, subjects=bad.index),
                       AllOf(Threshold(bad.pubs), RequireRecords(), RequireSubjectIndex()))
    with pytest.raises(VerificationError, match="not the keyed hash"):
        verify_attestation(bad.envelope, Inputs(records=bad.records, subjects=bad.index),
                           AllOf(Threshold(bad.pubs), RequireRecords(), RequireSubjectIndex(bad.subject_key)))


@pytest.mark.parametrize("how", ["unsorted", "dup leaf", "count", "dropped line", "changed byte"])
def test_malformed_index_is_detected(wave: Wave, how: str) -> None:
    v = verify_attestation(wave.envelope, Inputs(), Threshold(wave.pubs))
    member = v.predicate["subjects"]
    lines = wave.index.splitlines(keepends=True)
    if how == "unsorted":
        lines[0], lines[1] = lines[1], lines[0]
    elif how == "dup leaf":
        e = json.loads(lines[1])
        e["leaves"] = sorted(set(e["leaves"]) | {json.loads(lines[0])["leaves"][0]})
        e["count"] = len(e["leaves"])
        lines[1] = canonical_json(e) + b"\n"
    elif how == "count":
        e = json.loads(lines[1])
        e["count"] += 1
        lines[1] = canonical_json(e) + b"\n"
    elif how == "dropped line":
        del lines[2]
    else:
        lines[0] = lines[0].replace(b'"count":', b'"count": ')
    with pytest.raises(VerificationError, match=r"^subject index"):
        check_subject_index(b"".join(lines), member, v.tree_size)
    with pytest.raises(VerificationError, match=r"^subject index"):
        verify_attestation(wave.envelope, Inputs(subjects=b"".join(lines)),
                           AllOf(Threshold(wave.pubs), RequireSubjectIndex()))


def test_a_wrong_subject_key_is_named(wave: Wave) -> None:
    other = SubjectKey(bytes(32))
    with pytest.raises(VerificationError, match="key_id differs"):
        verify_attestation(wave.envelope, Inputs(records=wave.records, subjects=wave.index),
                           AllOf(Threshold(wave.pubs), RequireRecords(), RequireSubjectIndex(other)))
    with pytest.raises(InputError, match="key_id differs"):
        prove_subject(wave.envelope, wave.records, wave.index, "user-1", other)


# ---- subject proofs --------------------------------------------------------------------------------------

@pytest.mark.parametrize("subject", ["user-0", "user-1", "user-2"])
def test_subject_proof_shows_all_records_and_no_others(wave: Wave, subject: str) -> None:
    proof = prove_subject(wave.envelope, wave.records, wave.index, subject, wave.subject_key)
    assert proof["type"] == SUBJECT_PROOF_TYPE and proof["subject"] == subject
    v = verify_subject_proof(json.dumps(proof), wave.envelope, Threshold(wave.pubs), subject_key=wave.subject_key)
    assert v.keyed and v.count == len(rows_of(subject))
    assert [r["row"] for r in v.records] == rows_of(subject)
    assert all(r["subject"] == subject for r in v.records)
    # Without the key the records still check, but the link from the id to the hash is not shown.
    assert not verify_subject_proof(proof, wave.envelope, Threshold(wave.pubs)).keyed


def test_a_subject_with_no_records_is_shown_to_have_none(wave: Wave) -> None:
    proof = prove_subject(wave.envelope, wave.records, wave.index, "nobody-here", wave.subject_key)
    assert proof["entry"] is None and proof["records"] == []
    v = verify_subject_proof(proof, wave.envelope, Threshold(wave.pubs), subject_key=wave.subject_key)
    assert v.count == 0
    with pytest.raises(VerificationError, match="needs the subject key"):
        verify_subject_proof(proof, wave.envelope, Threshold(wave.pubs))


def test_tampered_subject_proofs_fail(wave: Wave) -> None:
    proof = prove_subject(wave.envelope, wave.records, wave.index, "user-1", wave.subject_key)
    other = prove_subject(wave.envelope, wave.records, wave.index, "user-2", wave.subject_key)
    bad = {
        "dropped record": {**proof, "records": proof["records"][:-1]},
        "record of another subject": {**proof, "records": [*proof["records"][:-1], other["records"][0]]},
        "other subject's entry": {**proof, "entry": other["entry"]},
        "renamed subject": {**proof, "subject": "user-2"},
        "neighbour dropped": {**proof, "previous": None, "next": None},
        "neighbour swapped": {**proof, "previous": proof["next"], "next": proof["previous"]},
        "other attestation": {**proof, "payload_sha256": "00" * 32},
    }
    for name, p in bad.items():
        with pytest.raises(VerificationError):
            verify_subject_proof(p, wave.envelope, Threshold(wave.pubs), subject_key=wave.subject_key)
        assert name
    # A proof made against another wave (same keys) fails against this one.
    w2 = make_wave(20, signers=wave.signers, subject_key=wave.subject_key, wave_id="wave-2")
    theirs = prove_subject(w2.envelope, w2.records, w2.index, "user-1", w2.subject_key)
    with pytest.raises(VerificationError, match="another attestation"):
        verify_subject_proof(theirs, wave.envelope, Threshold(wave.pubs), subject_key=wave.subject_key)


def test_subject_proofs_need_an_index() -> None:
    w = make_wave(recs=[record(i) for i in range(1, 4)])
    with pytest.raises(InputError, match="no subject index"):
        prove_subject(w.envelope, w.records, b"", "user-1", w.subject_key)


def test_verify_any_proof_tells_the_kinds_apart(wave: Wave) -> None:
    subject_proof = prove_subject(wave.envelope, wave.records, wave.index, "user-2", wave.subject_key)
    record_proof = prove_record(wave.envelope, wave.records, json.loads(wave.records.splitlines()[0])["source"])
    assert isinstance(verify_any_proof(json.dumps(subject_proof), wave.envelope, Threshold(wave.pubs),
                                       subject_key=wave.subject_key), VerifiedSubjectProof)
    assert isinstance(verify_any_proof(json.dumps(record_proof), wave.envelope, Threshold(wave.pubs)), VerifiedProof)


def test_records_with_subjects_need_an_index(wave: Wave) -> None:
    recs = [json.loads(x) for x in wave.records.splitlines()]
    st = json.loads(dsse.parse_envelope_strict(wave.envelope).payload)
    st["predicate"]["subjects"] = None
    st["subject"] = [s for s in st["subject"] if s["name"] != SUBJECTS_SUBJECT]
    env = dsse.sign_envelope(canonical_json(st), PAYLOAD_TYPE, wave.signers)
    verify_attestation(env, Inputs(), Threshold(wave.pubs))                 # the claims alone are consistent
    with pytest.raises(VerificationError, match="records name subjects"):
        verify_attestation(env, Inputs(records=wave.records), AllOf(Threshold(wave.pubs), RequireRecords()))
    assert len(recs) == 20
