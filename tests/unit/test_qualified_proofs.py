"""`audit prove` with URIs that name their location (``s3://dc@src/k``): the qualified form proves its record;
the unqualified form proves it when one location alone holds the object, and asks for the qualified form
when two do; old records without location names still prove. The same answers with records.idx, without it,
and with a sidecar written before it listed unqualified forms."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from migrator.attest import recindex
from migrator.attest.policy import Threshold
from migrator.attest.proofs import Lines, matching_uris, prove_record, unplaced, verify_proof
from migrator.attest.recindex import RecordIndex, index_path, prove_record_file, write_index
from migrator.errors import InputError
from tests.unit.test_predicate_v3 import LOCATIONS, located, out_of_scope
from tests.unit.test_proofs import Wave, make_wave, record

CLI = [sys.executable, "-m", "migrator"]


@pytest.fixture(scope="module")
def wave() -> Wave:
    recs: list[dict[str, Any]] = [located(record(i), "dc") for i in range(1, 9)]
    recs[3] = {**located(record(4), "eu"), "source": "s3://eu@src/users/nobody/0001 ü.bin"}   # same object, two places
    recs[5] = out_of_scope(6)
    return make_wave(recs=recs, locations=LOCATIONS)


Prove = Callable[..., dict[str, Any]]


def ways(tmp_path: Path, w: Wave) -> list[Prove]:
    """Proving from the bytes, from Lines with a URI index, and from the file with and without the sidecar."""
    path = tmp_path / "records.jsonl"
    path.write_bytes(w.records)
    write_index(path)
    lines = Lines(w.records, uri_index=True)
    return [lambda uri, **kw: prove_record(w.envelope, w.records, uri, **kw),
            lambda uri, **kw: prove_record(w.envelope, lines, uri, **kw),
            lambda uri, **kw: prove_record_file(w.envelope, path, uri, **kw),
            lambda uri, **kw: prove_record_file(w.envelope, path, uri, use_index=False, **kw)]


def prove_all_ways(tmp_path: Path, w: Wave, uri: str, **kw: Any) -> list[dict[str, Any]]:
    return [prove(uri, **kw) for prove in ways(tmp_path, w)]


def test_unplaced_drops_only_a_location_name() -> None:
    assert unplaced("s3://dc@users/a@b.jpg") == "s3://users/a@b.jpg"
    assert unplaced("oci://oci-us@ns/bkt/k") == "oci://ns/bkt/k"
    assert unplaced("gs://bk/user@example.com") == "gs://bk/user@example.com"   # '@' in the key is the key's
    assert matching_uris({"schema": 2, "row": 1, "state": "REMOVED", "reason": None,
                          "source": "s3://dc@users/k", "destination": "oci://o@ns/b/k", "replicas": []},
                         "s3://users/k") == ["s3://dc@users/k"]


def test_the_qualified_form_proves_its_record(tmp_path: Path, wave: Wave) -> None:
    for uri, row in (("s3://dc@src/users/nobody/0002 ü.bin", 2), ("oci://oci-us@ns/dst/users/0003", 3),
                     ("gs://gs-us@backup/users/0005", 5), ("s3://eu@eu-src/users/0006", 6)):
        proofs = prove_all_ways(tmp_path, wave, uri)
        assert all(p == proofs[0] for p in proofs) and proofs[0]["object_uri"] == uri
        assert verify_proof(json.dumps(proofs[0]), wave.envelope, Threshold(wave.pubs)).record["row"] == row


def test_an_unqualified_uri_proves_the_one_record_that_names_it(tmp_path: Path, wave: Wave) -> None:
    proofs = prove_all_ways(tmp_path, wave, "oci://ns/dst/users/0007")
    assert all(p == proofs[0] for p in proofs)
    # The proof names the URI as the record does, so a verifier finds it in the record.
    assert proofs[0]["object_uri"] == "oci://oci-us@ns/dst/users/0007"
    assert verify_proof(json.dumps(proofs[0]), wave.envelope, Threshold(wave.pubs)).record["row"] == 7


def test_a_qualified_uri_never_means_another_location(tmp_path: Path, wave: Wave) -> None:
    for uri in ("s3://eu@src/users/nobody/0002 ü.bin", "s3://dc@eu-src/users/0006"):
        for prove in ways(tmp_path, wave):
            with pytest.raises(InputError, match="no record of this wave names"):
                prove(uri)


def test_two_locations_holding_the_same_uri_ask_for_the_qualified_form(tmp_path: Path, wave: Wave) -> None:
    uri = "s3://src/users/nobody/0001 ü.bin"
    for prove in ways(tmp_path, wave):
        with pytest.raises(InputError, match=r"names no location, and the records name it in 2: "
                                             r"s3://dc@src/users/nobody/0001 ü.bin \(row 1\); "
                                             r"s3://eu@src/users/nobody/0001 ü.bin \(row 4\); give the qualified"):
            prove(uri)
        # Either qualified form, or the row, picks one.
        assert prove("s3://eu@src/users/nobody/0001 ü.bin")["leaf_index"] == 3
        assert prove(uri, row=1)["object_uri"] == "s3://dc@src/users/nobody/0001 ü.bin"


def test_the_sidecar_lists_qualified_uris_and_their_unqualified_forms(tmp_path: Path, wave: Wave) -> None:
    path = tmp_path / "records.jsonl"
    path.write_bytes(wave.records)
    with RecordIndex(write_index(path)) as ix:
        assert ix.lookup("oci://oci-us@ns/dst/users/0007") == [6]
        assert ix.lookup("oci://ns/dst/users/0007") == [6]
        assert ix.lookup("s3://src/users/nobody/0001 ü.bin") == [0, 3]


def test_a_sidecar_written_before_unqualified_forms_still_serves(tmp_path: Path, wave: Wave,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """An old records.idx lists the exact strings only: an unqualified URI misses it and a scan answers."""
    path = tmp_path / "records.jsonl"
    path.write_bytes(wave.records)
    new_uris_in = recindex._uris_in
    monkeypatch.setattr(recindex, "_uris_in",   # the strings as the line holds them, and no others
                        lambda line: {u for u in new_uris_in(line) if b'"' + u + b'"' in line})
    write_index(path)
    monkeypatch.setattr(recindex, "_uris_in", new_uris_in)
    with RecordIndex(index_path(path)) as ix:
        assert ix.lookup("oci://ns/dst/users/0007") == []            # not listed: the old form
        assert ix.lookup("oci://oci-us@ns/dst/users/0007") == [6]
    scans: list[str] = []
    real_scan = recindex._by_scan

    def scan(*a: Any) -> dict[str, Any]:
        scans.append(a[2])
        return real_scan(*a)

    monkeypatch.setattr(recindex, "_by_scan", scan)
    got = prove_record_file(wave.envelope, path, "oci://ns/dst/users/0007")
    assert scans == ["oci://ns/dst/users/0007"]
    assert got == prove_record(wave.envelope, wave.records, "oci://ns/dst/users/0007")
    scans.clear()
    assert prove_record_file(wave.envelope, path, "oci://oci-us@ns/dst/users/0007") == got and scans == []


def test_old_unqualified_records_keep_proving(tmp_path: Path) -> None:
    w = make_wave(6)
    uri = json.loads(w.records.splitlines()[2])["destination"]
    proofs = prove_all_ways(tmp_path, w, uri)
    assert all(p == proofs[0] for p in proofs) and proofs[0]["object_uri"] == uri
    with pytest.raises(InputError, match="no record of this wave names"):
        prove_record(w.envelope, w.records, uri.replace("oci://", "oci://oci-us@"))


def test_audit_prove_takes_both_forms(tmp_path: Path, wave: Wave) -> None:
    (tmp_path / "attestation.json").write_bytes(wave.envelope)
    (tmp_path / "records.jsonl").write_bytes(wave.records)
    write_index(tmp_path / "records.jsonl")

    def prove(uri: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CLI, "audit", "prove", str(tmp_path / "attestation.json"), uri],
                              capture_output=True, text=True, timeout=120)

    ok = prove("oci://ns/dst/users/0007")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["object_uri"] == "oci://oci-us@ns/dst/users/0007"
    two = prove("s3://src/users/nobody/0001 ü.bin")
    assert two.returncode == 2 and "give the qualified form" in two.stderr and "s3://eu@src" in two.stderr
    bad = prove("s3://Not_A_Name@src/k")
    assert bad.returncode == 2 and "invalid location name" in bad.stderr
