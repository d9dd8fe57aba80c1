"""An append-only log of every wave's attestation: an RFC 9162 Merkle tree with signed C2SP checkpoints.

Leaf i is the 32-byte SHA-256 of the DSSE payload of the i-th appended attestation (so a later
co-signature, which only adds to the envelope's signatures, does not change the leaf); the tree hashes it
as RFC 9162 does, SHA-256(0x00 || leaf). After each append the log signs a checkpoint
(c2sp.org/tlog-checkpoint) as a signed note (``notes.py``):

    <origin>\\n<tree size>\\n<base64 root>\\n\\n— <origin> <base64 key ID || signature>\\n

Layout, in a directory or under a prefix of an OCI bucket (``oci://namespace/bucket/prefix``):

    log.json                          {"format": "migrator-tlog/v1", "origin": ...}
    entries/000000000000.json         canonical JSON: seq, wave_id, payload_sha256, attestation, supersedes
    attestations/000000000000.dsse.json   the attestation envelope as appended
    checkpoint                        the latest signed checkpoint

Entries and attestations are written once and never replaced; only ``checkpoint`` is. docs/auditor.md
describes the format for auditors. This module holds the format and its verifier, and reaches the log only
through the ``LogStorage`` port; the back-ends (a folder, a bucket prefix) live in ``migrator/logstore.py``,
so nothing here imports the stores or the pipeline.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from migrator.attest import merkle
from migrator.attest.canonical import NotCanonical, canonical_json, loads_canonical
from migrator.attest.dsse import parse_envelope_strict
from migrator.attest.keys import Signer
from migrator.attest.notes import NoteSigner, NoteVerifier, check_key_name, open_note, parse_vkey, sign_note
from migrator.attest.statement import PAYLOAD_TYPE
from migrator.errors import InputError, MigratorError, StateError, VerificationError

FORMAT = "migrator-tlog/v1"
PROOF_FORMAT = "migrator-tlog-inclusion/v1"
LOG_FILE = "log.json"
CHECKPOINT_FILE = "checkpoint"
ENTRIES = "entries/"
ATTESTATIONS = "attestations/"
_ENTRY_NAME = re.compile(r"^entries/(\d{12})\.json$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_ENTRY_KEYS = {"seq", "wave_id", "payload_sha256", "attestation", "supersedes"}


# ---- where a log lives (the port; back-ends are in migrator/logstore.py) ----------------------------------

class LogStorage(Protocol):
    """Where a log lives. Names are relative paths such as ``entries/000000000000.json``."""

    def describe(self) -> str: ...

    def read(self, name: str) -> bytes | None:
        """The object's bytes, or None when it does not exist."""
        ...

    def create(self, name: str, data: bytes) -> None:
        """Write a new object; raise StateError if it exists already (entries are never replaced)."""
        ...

    def replace(self, name: str, data: bytes) -> None:
        """Write or atomically replace (only the checkpoint is replaced)."""
        ...

    def names(self, prefix: str) -> list[str]: ...

    def lock(self) -> AbstractContextManager[None]:
        """Serialize appends by this host; a no-op where the backend has no lock."""
        ...


# ---- entries ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Entry:
    seq: int
    wave_id: str
    payload_sha256: str        # hex; its 32 bytes are the Merkle leaf
    attestation: str           # the envelope's name inside the log
    supersedes: str | None     # payload_sha256 of the latest earlier entry of the same wave

    @property
    def leaf(self) -> bytes:
        return bytes.fromhex(self.payload_sha256)

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "wave_id": self.wave_id, "payload_sha256": self.payload_sha256,
                "attestation": self.attestation, "supersedes": self.supersedes}


def entry_name(seq: int) -> str:
    return f"{ENTRIES}{seq:012d}.json"


def attestation_name(seq: int) -> str:
    return f"{ATTESTATIONS}{seq:012d}.dsse.json"


def _payload_facts(attestation: bytes) -> tuple[str, str]:
    """(payload sha256 hex, wave_id) of an envelope, parsed strictly but not signature-checked."""
    env = parse_envelope_strict(attestation)
    if env.payload_type != PAYLOAD_TYPE:
        raise VerificationError(f"envelope form: payloadType is not {PAYLOAD_TYPE}")
    try:
        statement = loads_canonical(env.payload)
    except NotCanonical as exc:
        raise VerificationError(f"statement form: payload is not canonical JSON: {exc}") from None
    predicate = statement.get("predicate") if isinstance(statement, dict) else None
    wave_id = predicate.get("wave_id") if isinstance(predicate, dict) else None
    if not isinstance(wave_id, str) or not wave_id:
        raise VerificationError("statement form: the predicate has no wave_id")
    return hashlib.sha256(env.payload).hexdigest(), wave_id


def _parse_entry(data: bytes, where: str) -> Entry:
    try:
        obj = loads_canonical(data)
    except NotCanonical as exc:
        raise VerificationError(f"log: {where} is not canonical JSON: {exc}") from None
    if not isinstance(obj, dict) or set(obj) != _ENTRY_KEYS:
        raise VerificationError(f"log: {where} must have exactly {', '.join(sorted(_ENTRY_KEYS))}")
    seq, wave, digest, att, sup = (obj["seq"], obj["wave_id"], obj["payload_sha256"], obj["attestation"],
                                   obj["supersedes"])
    if (not isinstance(seq, int) or isinstance(seq, bool) or seq < 0 or not isinstance(wave, str) or not wave
            or not isinstance(digest, str) or not _HEX64.match(digest) or not isinstance(att, str)
            or not (sup is None or (isinstance(sup, str) and _HEX64.match(sup)))):
        raise VerificationError(f"log: {where} has a member of the wrong type")
    return Entry(seq, wave, digest, att, sup)


# ---- checkpoints -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def text(self) -> bytes:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode('ascii')}\n".encode()


def parse_checkpoint(text: bytes) -> Checkpoint:
    """The note text of a C2SP checkpoint: origin, decimal size, base64 root (extension lines refused)."""
    try:
        lines = text.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        raise VerificationError("checkpoint: not UTF-8") from None
    if len(lines) != 4 or lines[-1] != "":
        raise VerificationError("checkpoint: want exactly three lines (origin, size, root), each ending in \\n")
    origin, size_text, root_b64 = lines[:3]
    if not origin:
        raise VerificationError("checkpoint: empty origin")
    if not size_text.isascii() or not size_text.isdigit() or (size_text != "0" and size_text.startswith("0")):
        raise VerificationError("checkpoint: the tree size is not a decimal without leading zeros")
    try:
        root = base64.b64decode(root_b64, validate=True)
    except (binascii.Error, ValueError):
        raise VerificationError("checkpoint: the root hash is not base64") from None
    if len(root) != 32 or base64.b64encode(root).decode("ascii") != root_b64:
        raise VerificationError("checkpoint: the root hash is not strict base64 of 32 bytes")
    return Checkpoint(origin, int(size_text), root)


def open_checkpoint(note: bytes, verifier: NoteVerifier) -> Checkpoint:
    """Verify a signed checkpoint with the log's key and parse it."""
    text, _ = open_note(note, [verifier])
    return parse_checkpoint(text)


def _verifier(key: NoteVerifier | str) -> NoteVerifier:
    return key if isinstance(key, NoteVerifier) else parse_vkey(key)


# ---- reading a whole log ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Contents:
    origin: str
    entries: list[Entry]
    checkpoint: bytes | None


def _read_origin(log: LogStorage) -> str | None:
    raw = log.read(LOG_FILE)
    if raw is None:
        return None
    try:
        obj = loads_canonical(raw)
    except NotCanonical:
        raise VerificationError(f"log: {LOG_FILE} is not canonical JSON") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT or not isinstance(obj.get("origin"), str):
        raise VerificationError(f"log: {LOG_FILE} is not a {FORMAT} log description")
    return str(obj["origin"])


def _read(log: LogStorage) -> _Contents:
    origin = _read_origin(log)
    if origin is None:
        raise VerificationError(f"log: {log.describe()} holds no {LOG_FILE}: not a log, or an empty one")
    numbers: list[int] = []
    for name in log.names(ENTRIES):
        m = _ENTRY_NAME.match(name)
        if not m:
            raise VerificationError(f"log: unexpected file {name}")
        numbers.append(int(m.group(1)))
    numbers.sort()
    for expected, got in enumerate(numbers):
        if got != expected:
            raise VerificationError(f"log: entry {expected} is missing (entries run 0..{numbers[-1]}): "
                                    "an entry was removed")
    entries: list[Entry] = []
    for seq in numbers:
        raw = log.read(entry_name(seq))
        if raw is None:
            raise VerificationError(f"log: entry {seq} disappeared while reading")
        entry = _parse_entry(raw, entry_name(seq))
        if entry.seq != seq:
            raise VerificationError(f"log: {entry_name(seq)} says seq {entry.seq}")
        entries.append(entry)
    return _Contents(origin, entries, log.read(CHECKPOINT_FILE))


def _check_entries(log: LogStorage, entries: Sequence[Entry]) -> None:
    """Each entry matches its attestation file, and ``supersedes`` follows from the earlier entries."""
    latest: dict[str, str] = {}
    seen: dict[str, int] = {}
    for e in entries:
        if e.attestation != attestation_name(e.seq):
            raise VerificationError(f"log: entry {e.seq} names {e.attestation!r}, not {attestation_name(e.seq)}")
        raw = log.read(e.attestation)
        if raw is None:
            raise VerificationError(f"log: entry {e.seq}: attestation file {e.attestation} is missing")
        try:
            digest, wave_id = _payload_facts(raw)
        except VerificationError as exc:
            raise VerificationError(f"log: entry {e.seq}: attestation file: {exc}") from None
        if digest != e.payload_sha256:
            raise VerificationError(f"log: entry {e.seq}: the attestation's payload has SHA-256 {digest}, "
                                    f"the entry says {e.payload_sha256} (rewritten)")
        if wave_id != e.wave_id:
            raise VerificationError(f"log: entry {e.seq}: the attestation is of wave {wave_id}, "
                                    f"the entry says {e.wave_id}")
        if e.payload_sha256 in seen:
            raise VerificationError(f"log: entry {e.seq} repeats entry {seen[e.payload_sha256]}")
        seen[e.payload_sha256] = e.seq
        if e.supersedes != latest.get(e.wave_id):
            raise VerificationError(f"log: entry {e.seq}: supersedes {e.supersedes}, but the latest earlier "
                                    f"entry of wave {e.wave_id} is {latest.get(e.wave_id)}")
        latest[e.wave_id] = e.payload_sha256


def _root(entries: Sequence[Entry], size: int | None = None) -> bytes:
    builder = merkle.MerkleBuilder()
    for e in entries[: len(entries) if size is None else size]:
        builder.add(e.leaf)
    return builder.root()


# ---- append ----------------------------------------------------------------------------------------------

def check_appendable(log: LogStorage, origin: str) -> None:
    """Refuse, before a wave does any work, a log that ``append`` would refuse afterwards: a malformed
    origin, or a log that already has another one."""
    check_key_name(origin)
    stored_origin = _read_origin(log)
    if stored_origin is not None and stored_origin != origin:
        raise InputError(f"the log at {log.describe()} has origin {stored_origin!r}, not {origin!r}")


def append(log: LogStorage, attestation_bytes: bytes, signer: Signer, origin: str) -> Entry:
    """Add an attestation to the log and sign a new checkpoint; return its entry.

    Appending an attestation whose payload is already in the log (e.g. the same one, co-signed) changes
    nothing and returns the existing entry. Before signing, the log is checked against its current
    checkpoint with the signer's own key: the log never signs over entries that were altered.
    """
    check_key_name(origin)
    note_signer = NoteSigner(origin, signer)
    digest, wave_id = _payload_facts(attestation_bytes)
    with log.lock():
        stored_origin = _read_origin(log)
        if stored_origin is None:
            log.replace(LOG_FILE, canonical_json({"format": FORMAT, "origin": origin}))
        elif stored_origin != origin:
            raise InputError(f"the log at {log.describe()} has origin {stored_origin!r}, not {origin!r}")
        contents = _read(log)
        _check_entries(log, contents.entries)
        current: Checkpoint | None = None
        if contents.checkpoint is not None:
            current = open_checkpoint(contents.checkpoint, note_signer.verifier)
            if current.origin != origin:
                raise StateError(f"the log's checkpoint is for origin {current.origin!r}, not {origin!r}")
            if current.size > len(contents.entries) or _root(contents.entries, current.size) != current.root:
                raise StateError(f"the log at {log.describe()} does not match its signed checkpoint; "
                                 "refusing to append (run `audit log verify` to see why)")
        for e in contents.entries:
            if e.payload_sha256 == digest:
                if current is None or current.size != len(contents.entries):
                    _sign(log, contents.entries, note_signer)  # a tail left by an interrupted append
                return e
        supersedes = next((e.payload_sha256 for e in reversed(contents.entries) if e.wave_id == wave_id), None)
        seq = len(contents.entries)
        entry = Entry(seq, wave_id, digest, attestation_name(seq), supersedes)
        log.create(entry.attestation, attestation_bytes)
        log.create(entry_name(seq), canonical_json(entry.as_dict()))
        _sign(log, [*contents.entries, entry], note_signer)
        return entry


def _sign(log: LogStorage, entries: Sequence[Entry], signer: NoteSigner) -> bytes:
    cp = Checkpoint(signer.name, len(entries), _root(entries))
    note = sign_note(cp.text(), [signer])
    log.replace(CHECKPOINT_FILE, note)
    return note


def checkpoint(log: LogStorage) -> bytes:
    """The latest signed checkpoint, as the auditor should save it."""
    note = log.read(CHECKPOINT_FILE)
    if note is None:
        raise StateError(f"the log at {log.describe()} has no checkpoint yet")
    return note


# ---- proofs against checkpoints ---------------------------------------------------------------------------

def check_consistency(old: Checkpoint, new: Checkpoint, leaves: Sequence[bytes]) -> list[bytes]:
    """Prove, from the leaves of the new tree, that ``old`` is a prefix of ``new`` (RFC 9162 §2.1.4);
    return the proof. Raises VerificationError when the history was rewritten, forked or shrank."""
    if old.size > new.size:
        raise VerificationError(f"consistency: the log shrank from {old.size} to {new.size} entries")
    if len(leaves) != new.size:
        raise VerificationError(f"consistency: {len(leaves)} leaves for a tree of {new.size}")
    proof = merkle.consistency_proof(leaves, old.size)
    try:
        merkle.verify_consistency(old.size, new.size, old.root, new.root, proof)
    except VerificationError as exc:
        raise VerificationError(f"consistency with the saved checkpoint (size {old.size}) failed: {exc}; "
                                "the log's history was rewritten or forked") from None
    return proof


def check_inclusion(cp: Checkpoint, leaf: bytes, index: int, path: Sequence[bytes]) -> None:
    """RFC 9162 §2.1.3: ``leaf`` is entry ``index`` of the tree the checkpoint signs."""
    merkle.verify_inclusion(leaf, index, cp.size, path, cp.root)


# ---- verify ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LogState:
    origin: str
    size: int
    root: bytes
    checkpoint: bytes                  # the verified signed checkpoint
    entries: tuple[Entry, ...]
    since_size: int | None = None      # the size of the auditor's earlier checkpoint, when given
    consistency_proof: tuple[bytes, ...] = ()

    def waves(self) -> dict[str, Entry]:
        """The current (latest) entry of each wave."""
        out: dict[str, Entry] = {}
        for e in self.entries:
            out[e.wave_id] = e
        return out


def verify_log(log: LogStorage, vkey: NoteVerifier | str,
               since_checkpoint: bytes | None = None) -> LogState:
    """Verify the latest checkpoint's signature, recompute the tree from the entries (each checked against
    its attestation file), and prove the tree extends ``since_checkpoint`` (the one the auditor saw last).

    Raises VerificationError naming what failed: a removed, rewritten or reordered entry, a checkpoint
    that does not verify, or a history inconsistent with the earlier checkpoint.
    """
    verifier = _verifier(vkey)
    contents = _read(log)
    if contents.checkpoint is None:
        raise VerificationError(f"log: {log.describe()} has no checkpoint")
    cp = open_checkpoint(contents.checkpoint, verifier)
    if cp.origin != contents.origin:
        raise VerificationError(f"log: the checkpoint's origin {cp.origin!r} differs from the log's "
                                f"{contents.origin!r}")
    entries = contents.entries
    if len(entries) < cp.size:
        raise VerificationError(f"log: the signed checkpoint covers {cp.size} entries, the log holds "
                                f"{len(entries)}: entries were removed")
    if len(entries) > cp.size:
        raise VerificationError(f"log: entries {cp.size}..{len(entries) - 1} are not covered by the signed "
                                "checkpoint (an interrupted append: appending again re-signs them)")
    _check_entries(log, entries)
    if _root(entries) != cp.root:
        raise VerificationError("log: the entries do not hash to the signed root: an entry was rewritten, "
                                "removed or reordered")
    since_size: int | None = None
    proof: list[bytes] = []
    if since_checkpoint is not None:
        old = open_checkpoint(since_checkpoint, verifier)
        if old.origin != cp.origin:
            raise VerificationError(f"consistency: the saved checkpoint is of origin {old.origin!r}, "
                                    f"the log's is {cp.origin!r}")
        proof = check_consistency(old, cp, [e.leaf for e in entries])
        since_size = old.size
    return LogState(cp.origin, cp.size, cp.root, contents.checkpoint, tuple(entries), since_size, tuple(proof))


# ---- inclusion proofs ------------------------------------------------------------------------------------

def prove_wave(log: LogStorage, wave_id: str) -> dict[str, Any]:
    """An inclusion proof of the wave's latest attestation against the latest signed checkpoint.

    The answer is self-contained: the checkpoint note, the entry, and the RFC 9162 audit path (hex,
    the leaf's sibling first). ``verify_wave_proof`` checks it; docs/auditor.md says how by hand.
    """
    contents = _read(log)
    if contents.checkpoint is None:
        raise StateError(f"the log at {log.describe()} has no checkpoint yet")
    cp = parse_checkpoint(_note_text(contents.checkpoint))
    covered = contents.entries[: cp.size]
    matches = [e for e in covered if e.wave_id == wave_id]
    if not matches:
        raise InputError(f"the log at {log.describe()} has no entry for wave {wave_id!r}")
    entry = matches[-1]
    leaves = [e.leaf for e in covered]
    path = merkle.inclusion_proof(leaves, entry.seq)
    return {
        "format": PROOF_FORMAT,
        "checkpoint": contents.checkpoint.decode("utf-8"),
        "origin": cp.origin,
        "tree_size": cp.size,
        "root": cp.root.hex(),
        "leaf_index": entry.seq,
        "entry": entry.as_dict(),
        "leaf_hash": merkle.leaf_hash(entry.leaf).hex(),
        "inclusion_path": [p.hex() for p in path],
        "earlier_entries": [e.seq for e in matches[:-1]],
    }


def _note_text(note: bytes) -> bytes:
    cut = note.rfind(b"\n\n")
    if cut < 0:
        raise VerificationError("signed note: no blank line separates the text from the signatures")
    return note[:cut + 1]


def verify_wave_proof(proof: dict[str, Any], vkey: NoteVerifier | str,
                      attestation_bytes: bytes | None = None) -> Entry:
    """Check a ``prove_wave`` answer: the checkpoint's signature, then the entry's leaf against its root;
    with the attestation, also that its payload is the leaf."""
    try:
        if proof.get("format") != PROOF_FORMAT:
            raise VerificationError(f"proof: format is not {PROOF_FORMAT}")
        cp = open_checkpoint(str(proof["checkpoint"]).encode("utf-8"), _verifier(vkey))
        entry = _parse_entry(canonical_json(proof["entry"]), "proof entry")
        path = [bytes.fromhex(p) for p in proof["inclusion_path"]]
        index = proof["leaf_index"]
    except (KeyError, TypeError, ValueError, MigratorError) as exc:
        if isinstance(exc, VerificationError):
            raise
        raise VerificationError(f"proof: malformed ({type(exc).__name__}: {exc})") from None
    if index != entry.seq:
        raise VerificationError("proof: leaf_index differs from the entry's seq")
    check_inclusion(cp, entry.leaf, entry.seq, path)
    if attestation_bytes is not None:
        digest, wave_id = _payload_facts(attestation_bytes)
        if digest != entry.payload_sha256 or wave_id != entry.wave_id:
            raise VerificationError("proof: the attestation is not the logged one (payload or wave differs)")
    return entry
