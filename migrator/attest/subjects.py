"""Subject completeness: a keyed index from each data subject to all of its records.

An inclusion proof shows that a record is in a wave; it cannot show that no record was left out. So a
wave whose manifest names subjects also commits ``subjects.jsonl``: one canonical JSON line per subject,

    {"count": N, "hash": HMAC-SHA-256(key, subject) in hex, "leaves": [leaf indices of its records]}

sorted by ``hash``, with its own RFC 9162 root in the predicate. The key belongs to the custodian, never
to the operator (docs/attestation.md, "Subject index"): the custodian gives the operator a file of the
keyed hashes of the wave's subjects (``write_subject_hashes``), and the wave builds the index from it.
Without the key, the index reveals counts and positions but not who they belong to.

The index builder and the custodian's files live here; the checks of an index are here too and import
only the formats (the verifier uses them).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from migrator.attest.canonical import NotCanonical, canonical_json, loads_canonical
from migrator.attest.merkle import ALGORITHM as MERKLE_ALGORITHM
from migrator.attest.merkle import MerkleBuilder
from migrator.errors import InputError, VerificationError
from migrator.files import create_exclusive

HASH_ALGORITHM = "hmac-sha256"
HASHES_TYPE = "https://provable-migrator.dev/subject-hashes/v1"
KEY_BYTES = 32
_KEY_ID_LABEL = b"migrator subject key id v1"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_KEY_FILE = re.compile(rb"([0-9a-f]{64})\n?")


def _keyed(key: bytes, subject: str) -> str:
    return hmac.new(key, subject.encode("utf-8"), hashlib.sha256).hexdigest()


class SubjectHasher(Protocol):
    """Gives the keyed hash of a subject: the custodian's key itself, or the custodian's hashes file."""

    @property
    def key_id(self) -> str: ...

    def hash(self, subject: str) -> str: ...


# ---- the custodian's key ------------------------------------------------------------------------------

class SubjectKey:
    """The HMAC key. key_id = hex HMAC-SHA-256(key, "migrator subject key id v1"): names it, reveals nothing."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise InputError(f"a subject key is {KEY_BYTES} bytes")
        self._key = key
        self._key_id = hmac.new(key, _KEY_ID_LABEL, hashlib.sha256).hexdigest()

    @property
    def key_id(self) -> str:
        return self._key_id

    def hash(self, subject: str) -> str:
        return _keyed(self._key, subject)

    def __repr__(self) -> str:  # never show the key
        return f"SubjectKey(key_id={self._key_id!r})"


def generate_subject_key(path: Path | str) -> SubjectKey:
    """Write a new random key (64 hex digits and a newline) to ``path`` with mode 0600; never overwrites."""
    path = Path(path)
    key = secrets.token_bytes(KEY_BYTES)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)   # as `keys generate` makes its folder
    except FileExistsError:   # a file stands where a folder should be
        raise InputError(f"cannot create the folder for {path}: {path.parent} or a folder above it is a file",
                         file=str(path)) from None
    except OSError as exc:
        raise InputError(f"cannot create the folder for {path}: {exc.strerror}", file=str(path)) from None
    try:
        create_exclusive(path, key.hex().encode("ascii") + b"\n", mode=0o600)
    except FileExistsError:
        raise InputError(f"{path} already exists; refusing to overwrite a key", file=str(path)) from None
    return SubjectKey(key)


def load_subject_key(path: Path | str) -> SubjectKey:
    """Read a key written by generate_subject_key. Refuses a file that group or others can access."""
    path = Path(path)
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise InputError("subject key is not a regular file", file=str(path))
        if st.st_mode & 0o077:
            raise InputError(f"subject key is readable or writable by group or others (mode "
                             f"{stat.S_IMODE(st.st_mode):04o}); fix it with: chmod 600 {path}", file=str(path))
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read subject key: {exc.strerror}", file=str(path)) from None
    m = _KEY_FILE.fullmatch(data)
    if m is None:
        raise InputError("not a subject key (64 lowercase hex digits)", file=str(path))
    return SubjectKey(bytes.fromhex(m.group(1).decode("ascii")))


# ---- the custodian's hashes file (what the operator gets instead of the key) --------------------------

class SubjectHashes:
    """Subject -> keyed hash, as the custodian computed them for one wave."""

    def __init__(self, key_id: str, hashes: Mapping[str, str]) -> None:
        self._key_id = key_id
        self._hashes = dict(hashes)

    @property
    def key_id(self) -> str:
        return self._key_id

    def __len__(self) -> int:
        return len(self._hashes)

    def hash(self, subject: str) -> str:
        try:
            return self._hashes[subject]
        except KeyError:
            raise InputError("the custodian's subject hashes do not cover a subject of this wave; "
                             "ask the custodian for hashes of every subject in the manifest") from None


def write_subject_hashes(key: SubjectKey, subjects: Iterable[str], out: Path | str) -> int:
    """The custodian's side: hash each distinct subject into ``out`` (mode 0600). Returns how many.

    Format: canonical JSON lines, first {"key_id", "type"}, then {"hash", "subject"} sorted by subject.
    """
    distinct = sorted(set(subjects))

    def write(fh: BinaryIO) -> None:
        fh.write(canonical_json({"key_id": key.key_id, "type": HASHES_TYPE}) + b"\n")
        for subject in distinct:
            fh.write(canonical_json({"hash": key.hash(subject), "subject": subject}) + b"\n")

    try:
        create_exclusive(Path(out), write, mode=0o600)
    except FileExistsError as exc:
        raise InputError(f"cannot create {out}: {exc.strerror}", file=str(out)) from None
    return len(distinct)


def load_subject_hashes(path: Path | str) -> SubjectHashes:
    path = Path(path)
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise InputError(f"cannot read subject hashes: {exc.strerror}", file=str(path)) from None
    try:
        head = json.loads(lines[0]) if lines else None
        if not isinstance(head, dict) or head.get("type") != HASHES_TYPE \
                or not _HEX64.fullmatch(str(head.get("key_id"))):
            raise InputError(f"not a subject hashes file (first line must name type {HASHES_TYPE})",
                             file=str(path), line=1)
        hashes: dict[str, str] = {}
        for n, raw in enumerate(lines[1:], start=2):
            item = json.loads(raw)
            if (not isinstance(item, dict) or set(item) != {"hash", "subject"}
                    or not isinstance(item["subject"], str) or not _HEX64.fullmatch(str(item["hash"]))
                    or item["subject"] in hashes):
                raise InputError("each line needs a distinct subject and its hash", file=str(path), line=n)
            hashes[item["subject"]] = item["hash"]
    except (ValueError, UnicodeDecodeError):
        raise InputError("subject hashes file is not JSON lines", file=str(path)) from None
    return SubjectHashes(str(head["key_id"]), hashes)


def missing_subjects(hasher: SubjectHasher, subjects: Iterable[str]) -> list[str]:
    """Subjects the hasher cannot hash (check this before a wave starts, not when it attests)."""
    missing = set()
    for subject in subjects:
        try:
            hasher.hash(subject)
        except InputError:
            missing.add(subject)
    return sorted(missing)


# ---- building the index ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class SubjectIndex:
    """subjects.jsonl: ``lines`` each end with a newline; the tree is over the lines without it."""

    lines: list[bytes]
    root: bytes
    records: int          # records that name a subject (the sum of the counts)
    key_id: str

    @property
    def entries(self) -> int:
        return len(self.lines)

    def to_bytes(self) -> bytes:
        return b"".join(self.lines)

    def sha256(self) -> str:
        h = hashlib.sha256()
        for line in self.lines:
            h.update(line)
        return h.hexdigest()

    def predicate_member(self) -> dict[str, Any]:
        """The predicate's ``subjects`` member (predicate v2)."""
        return {"hash": HASH_ALGORITHM, "key_id": self.key_id, "entries": self.entries, "records": self.records,
                "merkle": {"algorithm": MERKLE_ALGORITHM, "tree_size": self.entries, "root": self.root.hex()}}


class SubjectIndexBuilder:
    """Feed records in file order (leaf 0 first); holds only each subject's leaf indices."""

    def __init__(self, hasher: SubjectHasher) -> None:
        self._hasher = hasher
        self._leaves: dict[str, list[int]] = {}
        self._next = 0

    def add(self, record: Mapping[str, Any]) -> None:
        subject = record.get("subject")
        if subject is not None:
            if not isinstance(subject, str):
                raise InputError(f"record {self._next + 1}: subject is not a string")
            self._leaves.setdefault(self._hasher.hash(subject), []).append(self._next)
        self._next += 1

    def finish(self) -> SubjectIndex:
        lines = [canonical_json({"count": len(leaves), "hash": h, "leaves": leaves}) + b"\n"
                 for h, leaves in sorted(self._leaves.items())]
        builder = MerkleBuilder()
        for line in lines:
            builder.add(line[:-1])
        return SubjectIndex(lines, builder.root(), sum(len(v) for v in self._leaves.values()),
                            self._hasher.key_id)


def build_subject_index(records: Iterable[Mapping[str, Any]], key: SubjectHasher) -> tuple[list[bytes], bytes]:
    """(index lines, each ending with a newline; their RFC 9162 root), streaming over the records."""
    builder = SubjectIndexBuilder(key)
    for record in records:
        builder.add(record)
    index = builder.finish()
    return index.lines, index.root


# ---- reading and checking an index (verifier side) -----------------------------------------------------

def _fail(msg: str) -> VerificationError:
    return VerificationError(f"subject index: {msg}")


@dataclass(frozen=True)
class SubjectEntry:
    hash: str
    count: int
    leaves: tuple[int, ...]


def parse_entry(line: bytes, tree_size: int) -> SubjectEntry:
    """One index line (without its newline): canonical, exact members, sorted in-range leaves."""
    try:
        obj = loads_canonical(line)
    except NotCanonical as exc:
        raise _fail(f"entry is not canonical JSON: {exc}") from None
    if not isinstance(obj, dict) or set(obj) != {"count", "hash", "leaves"}:
        raise _fail("an entry has exactly count, hash and leaves")
    h, count, leaves = obj["hash"], obj["count"], obj["leaves"]
    if not isinstance(h, str) or not _HEX64.fullmatch(h):
        raise _fail("entry hash is not 64 lowercase hex digits")
    if not isinstance(leaves, list) or not leaves or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in leaves):
        raise _fail("entry leaves is not a non-empty array of integers")
    if count != len(leaves) or isinstance(count, bool):
        raise _fail("entry count differs from its number of leaves")
    if leaves[0] < 0 or leaves[-1] >= tree_size or any(a >= b for a, b in pairwise(leaves)):
        raise _fail(f"entry leaves must increase strictly within 0..{tree_size - 1}")
    return SubjectEntry(h, count, tuple(leaves))


def check_member(member: Any, tree_size: int) -> None:
    """The predicate v2 ``subjects`` member's form (raises VerificationError "statement form: ...")."""
    bad = VerificationError("statement form: predicate.subjects needs hash, key_id, entries, records, merkle")
    if not isinstance(member, dict) or set(member) != {"hash", "key_id", "entries", "records", "merkle"}:
        raise bad
    m = member["merkle"]
    counts_ok = all(isinstance(member[k], int) and not isinstance(member[k], bool) and member[k] >= 0
                    for k in ("entries", "records"))
    if (member["hash"] != HASH_ALGORITHM or not isinstance(member["key_id"], str)
            or not _HEX64.fullmatch(member["key_id"]) or not counts_ok
            or not isinstance(m, dict) or set(m) != {"algorithm", "tree_size", "root"}
            or m["algorithm"] != MERKLE_ALGORITHM or m["tree_size"] != member["entries"]
            or not isinstance(m["root"], str) or not _HEX64.fullmatch(m["root"])):
        raise bad
    if member["records"] > tree_size or member["entries"] > member["records"]:
        raise VerificationError("statement form: predicate.subjects counts more records than the wave has")


def check_subject_index(index: bytes, member: Mapping[str, Any], tree_size: int, *,
                        leaf_subjects: Sequence[str | None] | None = None,
                        hasher: SubjectHasher | None = None) -> int:
    """Check subjects.jsonl against the signed ``subjects`` member; returns the number of entries.

    Always: canonical lines, hashes strictly increasing, counts right, every leaf in at most one entry,
    the totals and the root. With ``leaf_subjects`` (each record's subject, from the records): the entries
    partition exactly the records that name a subject, one entry per distinct subject. With ``hasher``
    (the custodian's key) as well: each entry's hash is the keyed hash of its records' subject.
    """
    if index and not index.endswith(b"\n"):
        raise _fail("the last line does not end with a newline")
    if hasher is not None and hasher.key_id != member["key_id"]:
        raise _fail("the subject key is not the key this wave's index was made with (key_id differs)")
    seen = bytearray(tree_size)
    builder = MerkleBuilder()
    previous = ""
    listed = 0
    subjects_seen: set[str] = set()
    lines = index.split(b"\n")[:-1] if index else []
    for n, line in enumerate(lines, start=1):
        entry = parse_entry(line, tree_size)
        if entry.hash <= previous:
            raise _fail(f"line {n}: hashes must increase strictly (sorted, one entry per subject)")
        previous = entry.hash
        for leaf in entry.leaves:
            if seen[leaf]:
                raise _fail(f"line {n}: leaf {leaf} is listed by two entries")
            seen[leaf] = 1
        listed += entry.count
        if leaf_subjects is not None:
            subject = leaf_subjects[entry.leaves[0]]
            if subject is None or any(leaf_subjects[i] != subject for i in entry.leaves):
                raise _fail(f"line {n}: its records do not all name one subject")
            if subject in subjects_seen:
                raise _fail(f"line {n}: a subject's records are split over two entries")
            subjects_seen.add(subject)
            if hasher is not None and hasher.hash(subject) != entry.hash:
                raise _fail(f"line {n}: hash is not the keyed hash of its records' subject")
        builder.add(line)
    if len(lines) != member["entries"] or listed != member["records"]:
        raise _fail(f"holds {len(lines)} entries over {listed} records; the predicate says "
                    f"{member['entries']} over {member['records']}")
    if builder.root().hex() != member["merkle"]["root"]:
        raise _fail("the root over the index differs from predicate.subjects.merkle.root")
    if leaf_subjects is not None:
        named = sum(1 for s in leaf_subjects if s is not None)
        if named != listed:
            raise _fail(f"{named} records name a subject but the index lists {listed}: records are missing")
    return len(lines)
