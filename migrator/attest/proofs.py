"""Inclusion proofs for one record, and completeness proofs for one data subject.

A proof is a JSON document (docs/attestation.md, "Proofs"). Making one needs the records (and for a
subject, the index and the custodian's key); checking one needs only the attestation, trusted public
keys and the proof: every hash in it is checked against a root the attestation signs.
"""

from __future__ import annotations

import hashlib
import json
from array import array
from bisect import bisect_right
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from migrator.attest import merkle
from migrator.attest.canonical import NotCanonical, canonical_json, loads_canonical
from migrator.attest.merkle import MerkleTree
from migrator.attest.policy import Inputs, Policy
from migrator.attest.statement import RECORDS_SUBJECT, SUBJECTS_SUBJECT, WITH_SUBJECTS
from migrator.attest.subjects import SubjectEntry, SubjectHasher, parse_entry
from migrator.attest.verify import VerifiedAttestation, parse_attestation, verify_attestation
from migrator.errors import InputError, VerificationError
from migrator.files import read_input
from migrator.records import Record, RecordError

RECORD_PROOF_TYPE = "https://provable-migrator.dev/proof/record/v1"
SUBJECT_PROOF_TYPE = "https://provable-migrator.dev/proof/subject/v1"
_LEAF_MEMBERS = {"line", "leaf_index", "tree_size", "audit_path"}


def _fail(msg: str) -> VerificationError:
    return VerificationError(f"proof: {msg}")


def record_uris(record: Mapping[str, Any]) -> list[str]:
    """The object URIs a record names (``Record.uris``); none for a record that breaks its schema."""
    try:
        return Record.from_json(record).uris
    except RecordError:
        return []


# ---- which record an asked URI means -----------------------------------------------------------------------
# A record of a wave with named locations names its URIs with the location (``s3://dc@users/k``); older
# records, and waves without locations, name none. An asked URI that names a location means exactly that
# text; one that names none also means any URI that differs from it only by a location name, so that
# ``s3://users/k`` still finds its record when one location alone holds it.

def unplaced(uri: str) -> str:
    """``s3://dc@users/k`` -> ``s3://users/k``, ``oci://us@ns/b/k`` -> ``oci://ns/b/k``; other text unchanged."""
    scheme, sep, rest = uri.partition("://")
    head = rest.partition("/")[0]
    if not sep or "@" not in head:
        return uri
    return f"{scheme}://{rest[head.index('@') + 1:]}"


def matching_uris(record: Mapping[str, Any], object_uri: str) -> list[str]:
    """The URIs of ``record`` that ``object_uri`` means (see above), sorted; [] when it names none."""
    uris = record_uris(record)
    if unplaced(object_uri) != object_uri:
        return [object_uri] if object_uri in uris else []
    return sorted({u for u in uris if unplaced(u) == object_uri})


def scan_needle(object_uri: str) -> bytes:
    """Bytes every line naming a URI that ``object_uri`` means contains (a scan's cheap first test)."""
    text = canonical_json(object_uri)
    if unplaced(object_uri) != object_uri:
        return text
    return text[text.index(b"://") + 3:]   # what follows a location name too: 'users/k"'


def pick(hits: list[tuple[int, list[str]]], object_uri: str, row: int | None) -> tuple[int, str]:
    """The one (leaf index, URI as the record names it) among ``hits`` (leaf index, matching URIs), or
    InputError: none, a URI named in more than one location, or several records naming it."""
    if row is not None:
        hits = [h for h in hits if h[0] + 1 == row]
    if not hits:
        raise InputError(f"no record of this wave names {object_uri}" + (f" at row {row}" if row else ""))
    forms = sorted({u for _, found in hits for u in found})
    if len(forms) > 1:
        named = "; ".join(f"{u} (row {', '.join(str(i + 1) for i, found in hits if u in found)})" for u in forms)
        raise InputError(f"{object_uri} names no location, and the records name it in {len(forms)}: {named}; "
                         "give the qualified form (scheme://NAME@...)")
    if len(hits) > 1:
        raise InputError(f"{len(hits)} records name {forms[0]} (rows {', '.join(str(i + 1) for i, _ in hits)}); "
                         "pick one with its row")
    return hits[0][0], forms[0]


# ---- the records as lines and a tree ------------------------------------------------------------------

def _uris_of(data: bytes, start: int, end: int) -> list[str]:
    """The plain (escape-free) URIs after "source", "destination" and "replicas" in one line."""
    out: list[bytes] = []
    for key in (b'"source":"', b'"destination":"'):
        i = data.find(key, start, end)
        if i >= 0:
            j = data.find(b'"', i + len(key), end)
            out.append(data[i + len(key):j])
    i = data.find(b'"replicas":["', start, end)
    if i >= 0:
        j = data.find(b'"]', i, end)
        out.extend(data[i + 13:j].split(b'","'))
    return [u.decode("utf-8") for u in out if b"\\" not in u and u]


class Lines:
    """records.jsonl (or subjects.jsonl) as lines, with their SHA-256 and Merkle tree, built once.

    Building costs a pass over the bytes (a few seconds of CPU for a million 1.5 KB records); then a proof
    by leaf index costs ~0.1 ms. ``uri_index`` also maps the URIs of the records' source, destination and
    replicas to their lines, so that a proof by object URI costs ~1 ms instead of a scan of the file. The
    index is a hint: a URI it does not hold (one with escapes, say) is looked up by a scan, and the record
    found is always parsed and checked to name the URI.
    """

    def __init__(self, data: bytes, *, uri_index: bool = False) -> None:
        if data and not data.endswith(b"\n"):
            raise VerificationError("subject records: the last line does not end with a newline")
        self.data = data
        self.sha256 = hashlib.sha256(data).hexdigest()
        self.starts = array("q")
        hashes = bytearray()
        sha = hashlib.sha256
        pos, end = 0, len(data)
        while pos < end:
            nl = data.index(b"\n", pos)
            self.starts.append(pos)
            hashes += sha(b"\x00" + data[pos:nl]).digest()
            pos = nl + 1
        self.tree = MerkleTree(bytes(hashes))
        self._uris: dict[str, list[int]] | None = None
        if uri_index:
            self._uris = {}
            for index, start in enumerate(self.starts):
                for uri in _uris_of(data, start, data.index(b"\n", start)):
                    for key in {uri, unplaced(uri)}:   # found by its unqualified form too
                        found = self._uris.setdefault(key, [])
                        if not found or found[-1] != index:
                            found.append(index)

    def __len__(self) -> int:
        return len(self.starts)

    def line(self, index: int) -> bytes:
        start = self.starts[index]
        return self.data[start:self.data.index(b"\n", start)]

    def candidates(self, uri: str) -> list[int] | None:
        """Lines that may name ``uri`` (from the URI index), or None without an index or a hit."""
        return None if self._uris is None else self._uris.get(uri)

    def leaf_proof(self, index: int) -> dict[str, Any]:
        return {"line": self.line(index).decode("utf-8"), "leaf_index": index, "tree_size": len(self),
                "audit_path": [h.hex() for h in self.tree.inclusion_proof(index)]}


def _lines(data: bytes | Path | Lines) -> Lines:
    return data if isinstance(data, Lines) else Lines(read_input(data, "records"))


def _records_for(statement: dict[str, Any], digests: dict[str, str], records: bytes | Path | Lines) -> Lines:
    lines = _lines(records)
    if lines.sha256 != digests[RECORDS_SUBJECT]:
        raise VerificationError("subject records: these are not the records this attestation signs")
    m = statement["predicate"]["merkle"]
    if len(lines) != m["tree_size"] or lines.tree.root().hex() != m["root"]:
        raise VerificationError("merkle root: the tree over the records differs from merkle.root")
    return lines


def _parse(lines: Lines, index: int) -> Any:
    try:
        return loads_canonical(lines.line(index))
    except NotCanonical as exc:
        raise VerificationError(f"subject records: line {index + 1} is not canonical JSON: {exc}") from None


def _find(lines: Lines, needle: bytes, match: Callable[[dict[str, Any]], bool]) -> list[int]:
    """Indices of the lines that contain ``needle`` and for whose record ``match(record)`` holds."""
    data, found, pos = lines.data, [], lines.data.find(needle)
    while pos >= 0:
        index = bisect_right(lines.starts, pos) - 1
        record = _parse(lines, index)
        if isinstance(record, dict) and match(record):
            found.append(index)
        pos = data.find(needle, data.index(b"\n", pos) + 1)
    return found


# ---- one record ------------------------------------------------------------------------------------------

def prove_record(attestation: bytes, records: bytes | Path | Lines, object_uri: str, *,
                 row: int | None = None) -> dict[str, Any]:
    """An inclusion proof for the record naming ``object_uri`` (as source, destination or replica).

    ``object_uri`` without a location name also finds a record that names it in one location; the proof's
    ``object_uri`` is then the URI as the record names it (``s3://dc@users/k``).

    ``records``: the bytes, a path, or ``Lines`` built once for many proofs (with ``uri_index=True`` a
    proof then takes well under 10 ms). ``row`` picks one record when several name the URI. Refuses
    records that are not the attested ones.
    """
    env, statement, digests = parse_attestation(attestation)
    lines = _records_for(statement, digests, records)

    def names(record: dict[str, Any]) -> bool:
        return bool(matching_uris(record, object_uri))

    candidates = lines.candidates(object_uri)
    if candidates is not None:
        found = [i for i in candidates if isinstance(rec := _parse(lines, i), dict) and names(rec)]
    else:
        found = _find(lines, scan_needle(object_uri), names)
    index, named = pick([(i, matching_uris(_parse(lines, i), object_uri)) for i in found], object_uri, row)
    proof = {"type": RECORD_PROOF_TYPE, "payload_sha256": hashlib.sha256(env.payload).hexdigest(),
             "object_uri": named, "root": lines.tree.root().hex(), **lines.leaf_proof(index)}
    verify_leaf(proof, lines.tree.root())        # never hand out a proof that does not check
    return proof


@dataclass(frozen=True)
class VerifiedProof:
    record: dict[str, Any]
    line: bytes
    leaf_index: int
    tree_size: int
    object_uri: str
    attestation: VerifiedAttestation


def _load(proof: Mapping[str, Any] | bytes | str) -> dict[str, Any]:
    if isinstance(proof, Mapping):
        return dict(proof)
    try:
        obj = json.loads(proof)
    except (ValueError, UnicodeDecodeError):
        raise _fail("not a JSON document") from None
    if not isinstance(obj, dict):
        raise _fail("not a JSON object")
    return obj


def verify_leaf(part: Mapping[str, Any], root: bytes, tree_size: int | None = None) -> tuple[bytes, int]:
    """Check one {line, leaf_index, tree_size, audit_path} against ``root``; returns (line bytes, index)."""
    line, index, size, path = part.get("line"), part.get("leaf_index"), part.get("tree_size"), part.get("audit_path")
    if (not isinstance(line, str) or not isinstance(index, int) or isinstance(index, bool)
            or not isinstance(size, int) or isinstance(size, bool) or not isinstance(path, list)):
        raise _fail("a leaf needs line, leaf_index, tree_size and audit_path")
    if tree_size is not None and size != tree_size:
        raise _fail(f"made for a tree of {size} leaves; the attestation signs {tree_size}")
    try:
        hashes = [bytes.fromhex(h) for h in path]
    except (TypeError, ValueError):
        raise _fail("audit_path holds something other than hex") from None
    if any(len(h) != 32 for h in hashes):
        raise _fail("audit_path entries must be 32-byte hashes")
    raw = line.encode("utf-8")
    merkle.verify_inclusion(raw, index, size, hashes, root)
    return raw, index


def _record(raw: bytes, index: int) -> dict[str, Any]:
    try:
        record = loads_canonical(raw)
    except NotCanonical as exc:
        raise _fail(f"the record is not canonical JSON: {exc}") from None
    if not isinstance(record, dict) or record.get("row") != index + 1:
        raise _fail(f"leaf {index} must be a record of row {index + 1}")
    return record


def verify_proof(proof: Mapping[str, Any] | bytes | str, attestation: bytes, policy: Policy) -> VerifiedProof:
    """Check a record proof against the root the attestation signs under ``policy`` (no records file is
    read, so the policy demands signatures alone). Raises VerificationError."""
    v = verify_attestation(attestation, Inputs(), policy)
    p = _load(proof)
    if p.get("type") != RECORD_PROOF_TYPE or set(p) != {"type", "payload_sha256", "object_uri", "root",
                                                        *_LEAF_MEMBERS}:
        raise _fail(f"not a record proof ({RECORD_PROOF_TYPE}) with exactly its members")
    if p["payload_sha256"] != v.payload_sha256:
        raise _fail("made for another attestation (payload_sha256 differs)")
    if p["root"] != v.merkle_root.hex():
        raise _fail("made for a different root than the attestation signs")
    raw, index = verify_leaf(p, v.merkle_root, v.tree_size)
    record = _record(raw, index)
    uri = p["object_uri"]
    if not isinstance(uri, str) or uri not in record_uris(record):
        raise _fail("the record does not name the proof's object_uri")
    return VerifiedProof(record, raw, index, v.tree_size, uri, v)


# ---- one data subject: all of its records, and no others --------------------------------------------------

def _index_member(statement: dict[str, Any]) -> dict[str, Any]:
    member = statement["predicate"].get("subjects") if statement["predicateType"] in WITH_SUBJECTS else None
    if not isinstance(member, dict):
        raise InputError("this attestation commits no subject index (its manifest named no subjects)")
    return member


def _bisect(index: Lines, target: str, tree_size: int) -> tuple[int, SubjectEntry | None]:
    """(position, entry) of ``target`` in the sorted index; entry None and the insertion point if absent."""
    lo, hi = 0, len(index)
    while lo < hi:
        mid = (lo + hi) // 2
        entry = parse_entry(index.line(mid), tree_size)
        if entry.hash == target:
            return mid, entry
        if entry.hash < target:
            lo = mid + 1
        else:
            hi = mid
    return lo, None


def prove_subject(attestation: bytes, records: bytes | Path | Lines, subject_index: bytes | Path, subject_id: str,
                  key: SubjectHasher) -> dict[str, Any]:
    """All records of one subject with inclusion proofs, the index entry's own proof, and its neighbours.

    For a subject with no records, the proof shows the two adjacent entries between which its keyed hash
    would sort. Refuses an index that does not list exactly the records that name the subject.
    """
    env, statement, digests = parse_attestation(attestation)
    member = _index_member(statement)
    rec = _records_for(statement, digests, records)
    index_bytes = read_input(subject_index, "subject index")
    if hashlib.sha256(index_bytes).hexdigest() != digests[SUBJECTS_SUBJECT]:
        raise VerificationError("subject index: this is not the index this attestation signs")
    if key.key_id != member["key_id"]:
        raise InputError("the subject key is not the key this wave's index was made with (key_id differs)")
    index = Lines(index_bytes)
    if len(index) != member["entries"] or index.tree.root().hex() != member["merkle"]["root"]:
        raise VerificationError("subject index: the tree over the index differs from its signed root")
    target = key.hash(subject_id)
    pos, entry = _bisect(index, target, len(rec))
    # The prover checks the claim before making it: these are all the subject's records.
    needle = b'"subject":' + canonical_json(subject_id)
    named = _find(rec, needle, lambda r: r.get("subject") == subject_id)
    if sorted(named) != list(entry.leaves if entry else ()):
        raise VerificationError("subject index: the index does not list exactly this subject's records "
                                f"(records name it at rows {[i + 1 for i in named]})")
    prev_pos, next_pos = pos - 1, (pos + 1 if entry else pos)
    return {
        "type": SUBJECT_PROOF_TYPE,
        "payload_sha256": hashlib.sha256(env.payload).hexdigest(),
        "subject": subject_id,
        "subject_hash": target,
        "key_id": key.key_id,
        "entry": index.leaf_proof(pos) if entry else None,
        "previous": index.leaf_proof(prev_pos) if prev_pos >= 0 else None,
        "next": index.leaf_proof(next_pos) if next_pos < len(index) else None,
        "records": [rec.leaf_proof(i) for i in (entry.leaves if entry else ())],
    }


@dataclass(frozen=True)
class VerifiedSubjectProof:
    subject: str
    subject_hash: str
    records: list[dict[str, Any]]
    leaf_indices: tuple[int, ...]
    keyed: bool           # the subject's keyed hash was recomputed with the custodian's key
    attestation: VerifiedAttestation

    @property
    def count(self) -> int:
        return len(self.records)


def verify_subject_proof(proof: Mapping[str, Any] | bytes | str, attestation: bytes, policy: Policy, *,
                         subject_key: SubjectHasher | None = None) -> VerifiedSubjectProof:
    """Check a subject proof against the roots the attestation signs under ``policy`` (signatures alone:
    no records or index file is read).

    With ``subject_key`` the subject's keyed hash is recomputed, so the proof shows all of the subject's
    records and, as the index is sorted by hash, that there are no others. Without it, the records shown
    are checked to name the subject, and a proof of "no records" is refused (nothing ties it to the id).
    """
    v = verify_attestation(attestation, Inputs(), policy)
    p = _load(proof)
    members = {"type", "payload_sha256", "subject", "subject_hash", "key_id", "entry", "previous", "next", "records"}
    if p.get("type") != SUBJECT_PROOF_TYPE or set(p) != members:
        raise _fail(f"not a subject proof ({SUBJECT_PROOF_TYPE}) with exactly its members")
    if p["payload_sha256"] != v.payload_sha256:
        raise _fail("made for another attestation (payload_sha256 differs)")
    try:
        member = _index_member(v.statement)
    except InputError:
        raise _fail("the attestation commits no subject index") from None
    subject, target = p["subject"], p["subject_hash"]
    if not isinstance(subject, str) or not isinstance(target, str) or p["key_id"] != member["key_id"]:
        raise _fail("subject, subject_hash or key_id do not fit this attestation's index")
    if subject_key is not None:
        if subject_key.key_id != member["key_id"]:
            raise _fail("the subject key is not the key this wave's index was made with")
        if subject_key.hash(subject) != target:
            raise _fail("subject_hash is not the keyed hash of the subject")
    index_root, entries = bytes.fromhex(member["merkle"]["root"]), member["entries"]

    def neighbour(name: str, want_index: int, below: bool) -> None:
        part = p[name]
        if part is None:
            if 0 <= want_index < entries:
                raise _fail(f"the {name} entry is missing")
            return
        if not isinstance(part, dict) or set(part) != _LEAF_MEMBERS:
            raise _fail(f"{name} is not a leaf proof")
        raw, i = verify_leaf(part, index_root, entries)
        h = parse_entry(raw, v.tree_size).hash
        if i != want_index or (h >= target if below else h <= target):
            raise _fail(f"the {name} entry is not the neighbour of the subject's hash")

    leaves: tuple[int, ...] = ()
    if p["entry"] is None:
        if subject_key is None:
            raise _fail("showing that a subject has no records needs the subject key")
        nxt = p["next"]["leaf_index"] if isinstance(p["next"], dict) else entries
        if not isinstance(nxt, int):
            raise _fail("next is not a leaf proof")
        neighbour("previous", nxt - 1, True)
        neighbour("next", nxt, False)
    else:
        if not isinstance(p["entry"], dict) or set(p["entry"]) != _LEAF_MEMBERS:
            raise _fail("entry is not a leaf proof")
        raw, pos = verify_leaf(p["entry"], index_root, entries)
        entry = parse_entry(raw, v.tree_size)
        if entry.hash != target:
            raise _fail("the index entry is for another subject_hash")
        neighbour("previous", pos - 1, True)
        neighbour("next", pos + 1, False)
        leaves = entry.leaves
    parts = p["records"]
    if not isinstance(parts, list) or len(parts) != len(leaves):
        raise _fail(f"the index lists {len(leaves)} records of the subject; the proof shows "
                    f"{len(parts) if isinstance(parts, list) else 'none'}")
    shown: list[dict[str, Any]] = []
    for want, part in zip(leaves, parts, strict=True):
        if not isinstance(part, dict) or set(part) != _LEAF_MEMBERS:
            raise _fail("a record is not a leaf proof")
        raw, i = verify_leaf(part, v.merkle_root, v.tree_size)
        if i != want:
            raise _fail(f"shows leaf {i} where the index lists leaf {want}")
        record = _record(raw, i)
        if record.get("subject") != subject:
            raise _fail(f"the record of row {i + 1} does not name the subject")
        shown.append(record)
    return VerifiedSubjectProof(subject, target, shown, leaves, subject_key is not None, v)


def verify_any_proof(proof: Mapping[str, Any] | bytes | str, attestation: bytes, policy: Policy, *,
                     subject_key: SubjectHasher | None = None) -> VerifiedProof | VerifiedSubjectProof:
    """``audit verify-proof``: a record proof or a subject proof, told apart by its ``type``."""
    p = _load(proof)
    if p.get("type") == SUBJECT_PROOF_TYPE:
        return verify_subject_proof(p, attestation, policy, subject_key=subject_key)
    return verify_proof(p, attestation, policy)
