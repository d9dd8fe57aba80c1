"""The attestation log: RFC 9162 proofs against the vectors, C2SP signed notes and vkeys, and tampering
(a rewritten entry, a dropped entry, a forked checkpoint) detected."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from migrator import logstore
from migrator.attest import notes, tlog
from migrator.attest.canonical import canonical_json
from migrator.attest.dsse import add_signature, sign_envelope
from migrator.attest.keys import FileSigner, KeyAlgorithm, new_private_key
from migrator.attest.statement import PAYLOAD_TYPE
from migrator.errors import InputError, StateError, VerificationError
from migrator.logstore import DirectoryLog

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "merkle-rfc9162.json"
ORIGIN = "migrator.example/log-test"

# golang.org/x/mod/sumdb/note's documented example (a well-formed signed note and its keys).
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_TEXT = (b"If you think cryptography is the answer to your problem,\n"
           b"then you don't know what your problem is.\n")
GO_NOTE = GO_TEXT + ("\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotp"
                     "RZb6KE6RyyBwJnAM=\n").encode()
# transparency-dev/formats' Pixel 6 log key: an ECDSA P-256 vkey with its published key hash.
PIXEL_VKEY = ("pixel6_transparency_log+91c16e30+AjBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABN+4x0Jk1yTwvLFI9A4NDdGZcX0aiWVdW"
              "M5XJVy0M4VWD3AvyW5Q6Hs9A0mcDkpUoYgn+KKPNzFC0H3nN3q6JQ8=")


@pytest.fixture(scope="module")
def vec() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(VECTORS.read_text())
    return data


@pytest.fixture(scope="module")
def signer() -> FileSigner:
    return FileSigner(new_private_key("ed25519"))


@pytest.fixture(scope="module")
def vkey(signer: FileSigner) -> str:
    return notes.vkey(ORIGIN, signer.public_key)


def attestation(wave: str, n: int, signer: FileSigner) -> bytes:
    statement = {"_type": "https://in-toto.io/Statement/v1", "subject": [],
                 "predicateType": "https://provable-migrator.dev/removal/v1",
                 "predicate": {"wave_id": wave, "n": n}}
    return sign_envelope(canonical_json(statement), PAYLOAD_TYPE, [signer])


def payload_digest(envelope: bytes) -> bytes:
    return hashlib.sha256(base64.b64decode(json.loads(envelope)["payload"])).digest()


def build(path: Path, signer: FileSigner, waves: list[tuple[str, int]]) -> list[bytes]:
    atts = [attestation(w, n, signer) for w, n in waves]
    for a in atts:
        tlog.append(DirectoryLog(path), a, signer, ORIGIN)
    return atts


# ---- RFC 9162 proofs, through the log's checkpoint checks, against the shared vectors ---------------------

def _cp(vec: dict[str, Any], size: int) -> tlog.Checkpoint:
    return tlog.Checkpoint(ORIGIN, size, bytes.fromhex(vec["roots"][str(size)]))


def test_inclusion_against_vectors(vec: dict[str, Any]) -> None:
    leaves = [bytes.fromhex(h) for h in vec["leaves_hex"]]
    for case in vec["inclusion"]:
        n, i = case["tree_size"], case["leaf_index"]
        path = [bytes.fromhex(p) for p in case["path"]]
        tlog.check_inclusion(_cp(vec, n), leaves[i], i, path)
        if path:
            with pytest.raises(VerificationError, match="inclusion"):
                tlog.check_inclusion(_cp(vec, n), leaves[i], i, path[:-1])
        with pytest.raises(VerificationError, match="inclusion"):
            tlog.check_inclusion(_cp(vec, n), leaves[i] + b"x", i, path)


def test_consistency_against_vectors(vec: dict[str, Any]) -> None:
    leaves = [bytes.fromhex(h) for h in vec["leaves_hex"]]
    for case in vec["consistency"]:
        m, n = case["old_size"], case["new_size"]
        proof = tlog.check_consistency(_cp(vec, m), _cp(vec, n), leaves[:n])
        assert [p.hex() for p in proof] == case["proof"]
        if 0 < m < n:
            forked = tlog.Checkpoint(ORIGIN, m, hashlib.sha256(b"fork").digest())
            with pytest.raises(VerificationError, match="consistency"):
                tlog.check_consistency(forked, _cp(vec, n), leaves[:n])
    with pytest.raises(VerificationError, match="shrank"):
        tlog.check_consistency(_cp(vec, 5), _cp(vec, 3), leaves[:3])


# ---- the log end to end -----------------------------------------------------------------------------------

def test_append_verify_prove(tmp_path: Path, signer: FileSigner, vkey: str) -> None:
    log = tmp_path / "log"
    atts = build(log, signer, [("wave-a", 1), ("wave-b", 1), ("wave-a", 2)])
    state = tlog.verify_log(DirectoryLog(log), vkey)
    assert state.size == 3 and state.origin == ORIGIN
    assert [e.seq for e in state.entries] == [0, 1, 2]
    assert state.entries[2].supersedes == state.entries[0].payload_sha256
    assert state.entries[0].supersedes is None and state.entries[1].supersedes is None
    assert state.waves()["wave-a"].seq == 2
    # The leaf is SHA-256 of the payload, hashed as an RFC 9162 leaf.
    assert state.entries[1].leaf == payload_digest(atts[1])
    proof = tlog.prove_wave(DirectoryLog(log), "wave-a")
    assert proof["leaf_index"] == 2 and proof["earlier_entries"] == [0] and proof["tree_size"] == 3
    json.dumps(proof)  # plain JSON
    assert tlog.verify_wave_proof(proof, vkey, atts[2]).wave_id == "wave-a"
    with pytest.raises(VerificationError, match="not the logged one"):
        tlog.verify_wave_proof(proof, vkey, atts[0])
    bad = dict(proof, inclusion_path=["00" * 32, *proof["inclusion_path"][1:]])
    with pytest.raises(VerificationError, match="inclusion"):
        tlog.verify_wave_proof(bad, vkey)
    with pytest.raises(InputError, match="no entry"):
        tlog.prove_wave(DirectoryLog(log), "wave-z")


def test_cosigned_attestation_is_the_same_leaf(tmp_path: Path, signer: FileSigner, vkey: str) -> None:
    log = tmp_path / "log"
    att = build(log, signer, [("wave-a", 1)])[0]
    before = tlog.checkpoint(DirectoryLog(log))
    cosigned = add_signature(att, FileSigner(new_private_key("ecdsa-p256")))
    entry = tlog.append(DirectoryLog(log), cosigned, signer, ORIGIN)
    assert entry.seq == 0 and tlog.checkpoint(DirectoryLog(log)) == before
    assert tlog.verify_wave_proof(tlog.prove_wave(DirectoryLog(log), "wave-a"), vkey, cosigned).seq == 0


def test_verify_since_saved_checkpoint(tmp_path: Path, signer: FileSigner, vkey: str) -> None:
    log = tmp_path / "log"
    build(log, signer, [("w1", 1), ("w2", 1)])
    saved = tlog.checkpoint(DirectoryLog(log))
    assert tlog.verify_log(DirectoryLog(log), vkey, saved).since_size == 2
    build(log, signer, [("w3", 1), ("w4", 1), ("w5", 1)])
    state = tlog.verify_log(DirectoryLog(log), vkey, saved)
    assert (state.since_size, state.size) == (2, 5) and state.consistency_proof


def test_ecdsa_log_key(tmp_path: Path) -> None:
    ec_signer = FileSigner(new_private_key("ecdsa-p256"))
    log = tmp_path / "log"
    build(log, ec_signer, [("w1", 1), ("w2", 1)])
    ec_vkey = notes.vkey(ORIGIN, ec_signer.public_key)
    assert base64.b64decode(ec_vkey.split("+", 2)[2])[0] == 0x02
    assert tlog.verify_log(DirectoryLog(log), ec_vkey).size == 2
    # By hand: key ID = SHA-256(SPKI DER)[:4]; ECDSA P-256 over SHA-256 of the note text.
    note = tlog.checkpoint(DirectoryLog(log))
    text, _, sig_line = note.decode().rpartition("\n\n")
    raw = base64.b64decode(sig_line.rstrip("\n").rsplit(" ", 1)[1])
    spki = ec_signer.public_key.public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
    assert raw[:4] == hashlib.sha256(spki).digest()[:4]
    pub = ec_signer.public_key
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    pub.verify(raw[4:], (text + "\n").encode(), ec.ECDSA(hashes.SHA256()))


# ---- tampering ---------------------------------------------------------------------------------------------

def test_rewritten_attestation_detected(tmp_path: Path, signer: FileSigner, vkey: str) -> None:
    log = tmp_path / "log"
    build(log, signer, [("w1", 1), ("w2", 1), ("w3", 1)])
    forged = attestation("w2", 99, signer)
    (log / tlog.attestation_name(1)).write_bytes(forged)
    with pytest.raises(VerificationError, match=r"entry 1.*rewritten"):
        tlog.verify_log(DirectoryLog(log), vkey)
    # Rewriting the entry's digest too: the tree no longer hashes to the signed root.
    entry = json.loads((log / tlog.entry_name(1)).read_bytes())
    entry["payload_sha256"] = payload_digest(forged).hex()
    (log / tlog.entry_name(1)).write_bytes(canonical_json(entry))
    with pytest.raises(VerificationError, match="do not hash to the signed root"):
        tlog.verify_log(DirectoryLog(log), vkey)
    with pytest.raises(StateError, match="does not match its signed checkpoint"):
        tlog.append(DirectoryLog(log), attestation("w4", 1, signer), signer, ORIGIN)


def test_rewritten_and_resigned_history_fails_since(tmp_path: Path, signer: FileSigner, vkey: str) -> None:
    log = tmp_path / "log"
    build(log, signer, [("w1", 1), ("w2", 1), ("w3", 1)])
    saved = tlog.checkpoint(DirectoryLog(log))
    shutil.rmtree(log)  # the operator, holding the key, rebuilds the log with wave 2 rewritten
    build(log, signer, [("w1", 1), ("w2", 2), ("w3", 1), ("w4", 1)])
    assert tlog.verify_log(DirectoryLog(log), vkey).size == 4  # alone, a re-signed log is self-consistent...
    with pytest.raises(VerificationError, match=r"consistency.*rewritten or forked"):
        tlog.verify_log(DirectoryLog(log), vkey, saved)  # ...but not with what the auditor saw


def test_dropped_entry_detected(tmp_path: Path, signer: FileSigner, vkey: str) -> None:
    log = tmp_path / "log"
    build(log, signer, [("w1", 1), ("w2", 1), ("w3", 1)])
    saved = tlog.checkpoint(DirectoryLog(log))
    middle = tmp_path / "middle"
    shutil.copytree(log, middle)
    (middle / tlog.entry_name(1)).unlink()
    (middle / tlog.attestation_name(1)).unlink()
    with pytest.raises(VerificationError, match="entry 1 is missing"):
        tlog.verify_log(DirectoryLog(middle), vkey)
    (log / tlog.entry_name(2)).unlink()
    with pytest.raises(VerificationError, match=r"covers 3 entries.*removed"):
        tlog.verify_log(DirectoryLog(log), vkey)
    # Dropped and re-signed: only the saved checkpoint shows it.
    shutil.rmtree(log)
    build(log, signer, [("w1", 1), ("w3", 1)])
    tlog.verify_log(DirectoryLog(log), vkey)
    with pytest.raises(VerificationError, match="shrank from 3 to 2"):
        tlog.verify_log(DirectoryLog(log), vkey, saved)


def test_forked_checkpoint_detected(tmp_path: Path, signer: FileSigner, vkey: str) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    build(a, signer, [("w1", 1)])
    shutil.copytree(a, b)
    build(a, signer, [("w2", 1)])
    build(b, signer, [("w2", 7)])  # same size, another history: a fork
    seen_a = tlog.checkpoint(DirectoryLog(a))
    assert notes.parse_note(seen_a).text.split(b"\n")[1] == b"2"
    with pytest.raises(VerificationError, match="consistency"):
        tlog.verify_log(DirectoryLog(b), vkey, seen_a)
    build(b, signer, [("w3", 1)])  # a longer fork does not help
    with pytest.raises(VerificationError, match="consistency"):
        tlog.verify_log(DirectoryLog(b), vkey, seen_a)
    # Serving fork B's checkpoint over log A: the entries do not match it.
    (a / tlog.CHECKPOINT_FILE).write_bytes(tlog.checkpoint(DirectoryLog(b)))
    with pytest.raises(VerificationError, match=r"signed checkpoint|signed root"):
        tlog.verify_log(DirectoryLog(a), vkey)


def test_checkpoint_signature_and_key(tmp_path: Path, signer: FileSigner, vkey: str) -> None:
    log = tmp_path / "log"
    build(log, signer, [("w1", 1), ("w2", 1)])
    note = tlog.checkpoint(DirectoryLog(log))
    lines = note.split(b"\n")
    lines[1] = b"1"
    with pytest.raises(VerificationError, match="does not verify"):
        tlog.verify_log(DirectoryLog(log), vkey, b"\n".join(lines))
    other = notes.vkey(ORIGIN, FileSigner(new_private_key()).public_key)
    with pytest.raises(VerificationError, match="no signature by a trusted key"):
        tlog.verify_log(DirectoryLog(log), other)
    with pytest.raises(InputError, match="origin"):
        tlog.append(DirectoryLog(log), attestation("w3", 1, signer), signer, "another.example/log")


def test_store_errors_are_typed(tmp_path: Path, signer: FileSigner, vkey: str) -> None:
    with pytest.raises(VerificationError, match="not a log"):
        tlog.verify_log(DirectoryLog(tmp_path / "none"), vkey)
    with pytest.raises(StateError, match="no checkpoint"):
        tlog.checkpoint(DirectoryLog(tmp_path / "none"))
    with pytest.raises(InputError, match="needs the OCI store"):
        logstore.open_log("oci://ns/bucket/logs")
    assert logstore.parse_location("oci://ns/bucket").key == ""
    assert logstore.parse_location("oci://ns/bucket/a/b").key == "a/b"
    with pytest.raises(InputError):
        logstore.parse_location("s3://bucket/x")


# ---- checkpoints, notes and vkeys -----------------------------------------------------------------------

def test_checkpoint_text_is_strict() -> None:
    root = base64.b64encode(bytes(32)).decode()
    assert tlog.parse_checkpoint(f"o\n0\n{root}\n".encode()).size == 0
    for bad in (f"o\n01\n{root}\n", f"o\n1\n{root}", f"o\n1\n{root}\next\n", f"\n1\n{root}\n",
                "o\n1\nAAAA\n", f"o\n-1\n{root}\n", f"o\n1\n{root[:-1]}\n"):
        with pytest.raises(VerificationError, match="checkpoint"):
            tlog.parse_checkpoint(bad.encode())


def test_go_note_vector_signs_and_verifies() -> None:
    raw = base64.b64decode(GO_SKEY.split("+", 4)[4])
    assert raw[0] == 0x01
    key = ed25519.Ed25519PrivateKey.from_private_bytes(raw[1:])
    signer = notes.NoteSigner("PeterNeumann", FileSigner(key))
    assert signer.verifier.vkey() == GO_VKEY
    assert notes.sign_note(GO_TEXT, [signer]) == GO_NOTE  # Ed25519 is deterministic: byte for byte
    verifier = notes.parse_vkey(GO_VKEY)
    assert notes.open_note(GO_NOTE, [verifier]) == (GO_TEXT, ("PeterNeumann",))
    with pytest.raises(VerificationError, match="does not verify"):
        notes.open_note(GO_NOTE.replace(b"cryptography", b"cryptographY"), [verifier])


def test_vkey_round_trip() -> None:
    algorithms: tuple[KeyAlgorithm, ...] = ("ed25519", "ecdsa-p256")
    for algorithm in algorithms:
        pub = FileSigner(new_private_key(algorithm)).public_key
        text = notes.vkey(ORIGIN, pub)
        parsed = notes.parse_vkey(text)
        assert parsed.vkey() == text and parsed.name == ORIGIN
        assert parsed.key_id == notes.verifier_for(ORIGIN, pub).key_id
        assert parsed.sig_type == (0x01 if algorithm == "ed25519" else 0x02)
    pixel = notes.parse_vkey(PIXEL_VKEY)
    assert pixel.sig_type == 0x02 and pixel.key_id.hex() == "91c16e30" and pixel.vkey() == PIXEL_VKEY
    go = notes.parse_vkey(GO_VKEY)
    assert go.sig_type == 0x01 and go.key_id.hex() == "c74f20a3"


@pytest.mark.parametrize("bad", [
    "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",   # wrong key hash
    "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",   # hash not lowercase
    "Peter+Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # '+' in the name
    "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",    # not strict base64
    "PeterNeumann+c74f20a3+BRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",   # unknown type 0x05
    "PeterNeumann+c74f20a3",
    "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
])
def test_bad_vkeys_refused(bad: str) -> None:
    with pytest.raises(InputError):
        notes.parse_vkey(bad)


def test_unknown_signatures_are_ignored(signer: FileSigner) -> None:
    text = b"origin\n1\n" + base64.b64encode(bytes(32)) + b"\n"
    mine = notes.NoteSigner(ORIGIN, signer)
    stranger = notes.NoteSigner("witness.example", FileSigner(new_private_key()))
    # Same name, another key (so another key ID): not ours, ignored.
    impostor = notes.NoteSigner(ORIGIN, FileSigner(new_private_key()))
    note = notes.sign_note(text, [stranger, impostor, mine])
    assert notes.open_note(note, [mine.verifier]) == (text, (ORIGIN,))
    with pytest.raises(VerificationError, match="no signature by a trusted key"):
        notes.open_note(notes.sign_note(text, [stranger, impostor]), [mine.verifier])
    for bad in (note.replace(b"\n\n", b"\n"), note[:-1], note.replace("\u2014".encode(), b"-"),
                note.replace(b"origin", b"orig\x01in")):
        with pytest.raises(VerificationError, match="signed note"):
            notes.open_note(bad, [mine.verifier])


def test_signed_checkpoint_by_an_independent_reader(tmp_path: Path, signer: FileSigner) -> None:
    """Parse the checkpoint by hand, as an auditor's own script would, and check it from first principles."""
    log = tmp_path / "log"
    atts = build(log, signer, [("w1", 1), ("w2", 1), ("w3", 1)])
    note = tlog.checkpoint(DirectoryLog(log)).decode("utf-8")
    body, sep, signatures = note.rpartition("\n\n")
    assert sep
    text = body + "\n"
    origin, size, root_b64 = body.split("\n")
    assert (origin, size) == (ORIGIN, "3")
    [line] = signatures.rstrip("\n").split("\n")
    dash, name, sig_b64 = line.split(" ")
    assert dash == "\u2014" and name == ORIGIN
    blob = base64.b64decode(sig_b64)
    pub = signer.public_key
    assert isinstance(pub, ed25519.Ed25519PublicKey)
    raw_pub = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert blob[:4] == hashlib.sha256(name.encode() + b"\n\x01" + raw_pub).digest()[:4]
    pub.verify(blob[4:], text.encode())
    # The root, recomputed with hashlib alone from the attestations' payloads.
    def h(data: bytes) -> bytes:
        return hashlib.sha256(data).digest()
    l0, l1, l2 = (h(b"\x00" + payload_digest(a)) for a in atts)
    assert base64.b64decode(root_b64) == h(b"\x01" + h(b"\x01" + l0 + l1) + l2)
    # And the vkey an auditor is handed is name+keyid+base64(0x01||key).
    typed_key = base64.b64encode(b"\x01" + raw_pub).decode()
    assert notes.vkey(ORIGIN, pub) == f"{ORIGIN}+{blob[:4].hex()}+{typed_key}"
