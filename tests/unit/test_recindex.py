"""The records sidecar (records.idx) and bounded-memory proofs; the bulk Merkle fold; the streamed manifest.

The sidecar is untrusted: proofs made with it must equal the ones ``proofs.prove_record`` makes from the
records alone, and a sidecar that does not fit must never change an answer, only its cost.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest

from migrator import manifest_rows
from migrator.attest import merkle, recindex, scan, verify
from migrator.attest.policy import AllOf, Inputs, RequireManifest, RequireRecords, Threshold
from migrator.attest.proofs import prove_record, verify_proof
from migrator.attest.recindex import RecordIndex, index_path, prove_record_file, write_index
from migrator.errors import InputError, VerificationError
from tests.unit.test_proofs import Wave, make_wave, record


@pytest.fixture(scope="module")
def wave() -> Wave:
    recs = [record(i) for i in range(1, 41)]
    recs[6]["replicas"] = [recs[2]["source"]]                     # a URI two records name
    recs[9]["source"] = 's3://src/odd "quoted" \\ key'            # a URI only a scan can find
    recs[11]["detail"] = 'see "s3://src/not-a-record" and "https://example.invalid/x://y"'   # escaped quotes
    recs[11]["extra"] = {"https://example.invalid/k": 1}       # a key: listed too, harmlessly
    return make_wave(recs=recs)


def files(tmp_path: Path, w: Wave, *, sidecar: bool = True) -> Path:
    path = tmp_path / "records.jsonl"
    path.write_bytes(w.records)
    if sidecar:
        write_index(path)
    return path


def uris(w: Wave) -> list[tuple[str, int]]:
    out = []
    for line in w.records.splitlines():
        rec = json.loads(line)
        out += [(u, rec["row"]) for u in (rec["source"], rec["destination"], *rec["replicas"])]
    return out


def test_sidecar_proofs_equal_proofs_from_the_records(tmp_path: Path, wave: Wave) -> None:
    path = files(tmp_path, wave)
    assert index_path(path) == tmp_path / "records.idx"
    shared = json.loads(wave.records.splitlines()[2])["source"]
    for uri, row in uris(wave):
        expected = prove_record(wave.envelope, wave.records, uri, row=row if uri == shared else None)
        for use_index in (True, False):
            got = prove_record_file(wave.envelope, path, uri, row=row if uri == shared else None,
                                    use_index=use_index)
            assert got == expected
        assert verify_proof(json.dumps(expected), wave.envelope, Threshold(wave.pubs)).record["row"] == row


def test_refusals_are_the_same_with_and_without_the_sidecar(tmp_path: Path, wave: Wave) -> None:
    path = files(tmp_path, wave)
    shared = json.loads(wave.records.splitlines()[2])["source"]
    for use_index in (True, False):
        with pytest.raises(InputError, match="2 records name"):
            prove_record_file(wave.envelope, path, shared, use_index=use_index)
        with pytest.raises(InputError, match="no record of this wave names"):
            prove_record_file(wave.envelope, path, "s3://src/nobody/here", use_index=use_index)
        with pytest.raises(InputError, match="no record of this wave names"):
            prove_record_file(wave.envelope, path, "s3://src/not-a-record", use_index=use_index)


def test_the_sidecar_lists_every_plain_uri_and_its_lines(tmp_path: Path, wave: Wave) -> None:
    path = files(tmp_path, wave)
    with RecordIndex(index_path(path)) as ix:
        assert ix.tree_size == 40 and ix.records_size == len(wave.records)
        assert ix.root == merkle.root(wave.records.splitlines())
        lines = wave.records.splitlines()
        for i, line in enumerate(lines):
            start, end = ix.span(i)
            assert wave.records[start:end] == line
            assert ix.tree.inclusion_proof(i) == merkle.inclusion_proof(lines, i)
        for uri, row in uris(wave):
            if recindex._INDEXED.fullmatch(uri):
                assert row - 1 in ix.lookup(uri)
        assert ix.lookup("https://example.invalid/k") == [11]           # keys too: a superset
        assert ix.lookup("https://example.invalid/x://y") == ix.lookup("s3://src/not-a-record") == []


@pytest.mark.parametrize("damage", ["garbage", "truncated", "other records", "records changed"])
def test_a_sidecar_that_does_not_fit_changes_nothing_but_the_cost(tmp_path: Path, wave: Wave, damage: str) -> None:
    path = files(tmp_path, wave)
    idx = index_path(path)
    uri = json.loads(wave.records.splitlines()[20])["destination"]
    if damage == "garbage":
        idx.write_bytes(b"MIGRIDX1" + bytes(200))
    elif damage == "truncated":
        idx.write_bytes(idx.read_bytes()[:-5])
    elif damage == "other records":
        other = make_wave(40)
        (tmp_path / "other.jsonl").write_bytes(other.records)
        write_index(tmp_path / "other.jsonl", idx)
    else:                                              # same size, one byte differs
        data = bytearray(wave.records)
        data[data.index(b"nobody/0022")] = ord("N")
        path.write_bytes(bytes(data))
        # Another line changed: the proof still holds (it is checked against the signed root, line and all),
        # so the sidecar answers without reading the rest. The changed line itself: the scan refuses it.
        assert prove_record_file(wave.envelope, path, uri) == prove_record(wave.envelope, wave.records, uri)
        uri = json.loads(wave.records.splitlines()[21])["destination"]
        with pytest.raises(VerificationError, match="not the records this attestation signs"):
            prove_record_file(wave.envelope, path, uri)
        return
    assert prove_record_file(wave.envelope, path, uri) == prove_record(wave.envelope, wave.records, uri)


def test_a_lying_sidecar_cannot_make_a_proof_that_does_not_check(tmp_path: Path, wave: Wave) -> None:
    path = files(tmp_path, wave)
    idx = index_path(path)
    data = bytearray(idx.read_bytes())
    n = 40
    level0 = recindex._HEADER.size + 8 * (n + 1)
    data[level0 + 32 * 21] ^= 1                        # a stored hash on the path of leaf 20
    idx.write_bytes(bytes(data))
    uri = json.loads(wave.records.splitlines()[20])["destination"]
    assert prove_record_file(wave.envelope, path, uri) == prove_record(wave.envelope, wave.records, uri)


def test_scan_refuses_records_that_are_not_the_attested_ones(tmp_path: Path, wave: Wave) -> None:
    path = tmp_path / "records.jsonl"
    path.write_bytes(wave.records[:-1])
    with pytest.raises(VerificationError, match="last line does not end"):
        prove_record_file(wave.envelope, path, "s3://x/y")
    path.write_bytes(wave.records.replace(b"0001", b"0009", 1))
    with pytest.raises(VerificationError, match="not the records this attestation signs"):
        prove_record_file(wave.envelope, path, "s3://x/y")


def test_many_chunks(tmp_path: Path, wave: Wave, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scan, "CHUNK", 700)
    path = files(tmp_path, wave)
    for uri, _ in uris(wave)[30:40]:
        with_index = prove_record_file(wave.envelope, path, uri)
        assert with_index == prove_record_file(wave.envelope, path, uri, use_index=False)


def test_empty_records(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    path.write_bytes(b"")
    with RecordIndex(write_index(path)) as ix:
        assert ix.tree_size == 0 and ix.root == merkle.EMPTY_ROOT and ix.lookup("s3://a/b") == []


# ---- the bulk Merkle fold ----------------------------------------------------------------------------------

def test_bulk_fold_equals_leaf_by_leaf() -> None:
    rng = random.Random(7)
    for _ in range(200):
        hashes = [rng.randbytes(32) for _ in range(rng.randint(0, 140))]
        one, bulk = merkle.MerkleBuilder(), merkle.MerkleBuilder()
        for h in hashes:
            one.add_leaf_hash(h)
        i = 0
        while i < len(hashes):
            k = rng.randint(0, 37)
            if rng.random() < 0.3:
                bulk.add_leaf_hash(hashes[i])
                k = 1
            else:
                bulk.add_leaf_hashes(b"".join(hashes[i:i + k]))
            i = min(i + k, len(hashes))
            assert bulk.size == i
        assert bulk.root() == one.root() == merkle.MerkleTree(b"".join(hashes)).root()


# ---- the manifest, read in pieces -------------------------------------------------------------------------

def test_streamed_manifest_counts_equal_the_whole_file_counts(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(11)
    alphabet = [b"a", b",", b" ", b"\n", b"\n", b"\r", b'"', b"{", b"\t", "é".encode(), b"\xff", b"\x00",
                b"\xef\xbb\xbf", b"\x1c"]
    path = tmp_path / "m"
    for _ in range(1500):
        monkeypatch.setattr(manifest_rows, "_PIECE", rng.randint(1, 9))
        pool = alphabet if rng.random() < 0.5 else alphabet[:5]
        data = b"".join(rng.choice(pool) for _ in range(rng.randint(0, 40)))
        path.write_bytes(data)
        for name in ("m.csv", "m.jsonl", "m"):
            expected: int | str
            try:
                expected = manifest_rows.count_manifest_rows(data, name)
            except VerificationError as exc:
                expected = str(exc)
            digest, got = manifest_rows.manifest_facts(path, name)
            assert digest == hashlib.sha256(data).hexdigest()
            assert (str(got) if isinstance(got, VerificationError) else got) == expected, (name, data)


def test_verify_with_a_manifest_file_equals_verify_with_its_bytes(tmp_path: Path, wave: Wave) -> None:
    (tmp_path / "manifest.csv").write_bytes(wave.manifest)
    path = files(tmp_path, wave, sidecar=False)
    policy = AllOf(Threshold(wave.pubs), RequireRecords(), RequireManifest())
    by_file = verify.verify_attestation(wave.envelope, Inputs(records=path, manifest=tmp_path / "manifest.csv"), policy)
    by_bytes = verify.verify_attestation(wave.envelope, Inputs(records=wave.records, manifest=wave.manifest), policy)
    assert by_file == by_bytes and by_file.manifest_checked
    (tmp_path / "manifest.csv").write_bytes(wave.manifest + b"s3://a/b,oci://n/b/k,\n")
    with pytest.raises(VerificationError, match="subject manifest"):
        verify.verify_attestation(wave.envelope, Inputs(records=path, manifest=tmp_path / "manifest.csv"), policy)


def test_every_damaged_byte_of_the_sidecar_gives_the_scans_answer(tmp_path: Path, wave: Wave) -> None:
    # The sidecar is untrusted: a flipped byte anywhere may cost a scan, never a crash, a wrong proof or a
    # refusal the records would not give.
    path = files(tmp_path, wave)
    good = index_path(path).read_bytes()
    shared = json.loads(wave.records.splitlines()[2])["source"]
    asks = [(uris(wave)[0][0], None), (shared, 7), (shared, None), ("s3://src/nobody/here", None)]

    def answer(uri: str, row: int | None, use_index: bool) -> object:
        try:
            return prove_record_file(wave.envelope, path, uri, row=row, use_index=use_index)
        except InputError as exc:
            return ("refused", str(exc))

    expected = [answer(uri, row, False) for uri, row in asks]
    for at in range(0, len(good), 3):
        for flip in (0x01, 0xFF):
            damaged = bytearray(good)
            damaged[at] ^= flip
            index_path(path).write_bytes(bytes(damaged))
            for (uri, row), want in zip(asks, expected, strict=True):
                got = answer(uri, row, True)
                if got != want:
                    # The one allowed difference: an entry hidden by the damage leaves one record where the
                    # scan finds two and asks for --row. The proof given must still check and name the URI.
                    assert isinstance(want, tuple) and "2 records name" in want[1], f"byte {at} ^ {flip:#x}"
                    assert isinstance(got, dict) and verify_proof(json.dumps(got), wave.envelope, Threshold(wave.pubs))
