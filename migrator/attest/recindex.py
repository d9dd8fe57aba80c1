"""records.idx: a sidecar to records.jsonl that turns a record proof into a few reads instead of a scan.

The sidecar is never trusted. Every proof made with it is checked against the attestation's signed root
before it is returned, and a sidecar that does not fit the records or the attestation is set aside for a
scan of the records. Only the prover uses it; verifiers (verify.py, proofs.verify_*) never read it.

Format (docs/attestation.md §8), integers unsigned 64-bit big-endian:
  header   b"MIGRIDX1" | n lines | m URI entries | size of records.jsonl | merkle root (32 bytes)
  offsets  n + 1 integers: where each line starts, then the records' size
  levels   the RFC 9162 tree's levels: level k holds the n >> k hashes (32 bytes each) of the aligned
           perfect subtrees of 2**k leaves, for k = 0 .. max(0, bit_length(n) - 1)
  uris     m entries of (first 8 bytes of SHA-256(URI) | leaf index), sorted by bytes
The URI entries list every escape-free string of the form scheme://... in each line, and for each that names
a location (``s3://dc@users/k``) the same without it (``s3://users/k``), so that an unqualified URI finds its
record too; a sidecar written before that lists only the former, and an unqualified URI is then found by a
scan. A URI the sidecar does not list (one with '"', '\\' or control characters, or a damaged entry) is
looked for by a scan.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import re
import struct
import sys
import threading
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from migrator.attest import scan
from migrator.attest.canonical import NotCanonical, loads_canonical
from migrator.attest.merkle import MerkleTree, leaf_hash, level_hashes
from migrator.attest.proofs import RECORD_PROOF_TYPE, matching_uris, pick, scan_needle, verify_leaf
from migrator.attest.statement import RECORDS_SUBJECT
from migrator.attest.verify import parse_attestation
from migrator.errors import InputError, VerificationError
from migrator.files import replace_atomically

MAGIC = b"MIGRIDX1"
_HEADER = struct.Struct(">8sQQQ32s")
_SCHEME = re.compile(rb"[A-Za-z][A-Za-z0-9+.-]*")
_INDEXED = re.compile(r'[A-Za-z][A-Za-z0-9+.-]*://[^"\\\x00-\x1f]*')  # URIs the sidecar lists in full


def index_path(records: Path) -> Path:
    """Where the sidecar of ``records`` lives: records.jsonl -> records.idx."""
    return records.with_suffix(".idx")


def _uris_in(line: bytes) -> set[bytes]:
    """Every escape-free string of the form scheme://... in a canonical JSON line (keys too: a superset).

    Found by its "://": the string is what lies between the quotes around it, and a string's content
    holds no bare quote (a quote inside it is escaped, and escaped strings are not taken)."""
    found, i = set(), line.find(b"://")
    while i >= 0:
        start, end = line.rfind(b'"', 0, i) + 1, line.find(b'"', i)
        if end < 0:
            break
        if start and _SCHEME.fullmatch(line, start, i) and line[start - 2:start - 1] != b"\\":
            uri = line[start:end]
            if b"\\" not in uri:
                found.add(uri)
                head = uri[i - start + 3:].partition(b"/")[0]
                if b"@" in head:                      # named location: listed without it too
                    found.add(uri[:i - start + 3] + uri[i - start + 3 + head.index(b"@") + 1:])
        i = line.find(b"://", end)
    return found


def _key(uri: bytes) -> bytes:
    return hashlib.sha256(uri).digest()[:8]


def _lines(fd: int, size: int) -> Iterator[tuple[int, list[bytes]]]:
    """(offset, whole lines without their newlines) a chunk at a time; the file must end with a newline."""
    for a, b in scan.boundaries(lambda pos, n: os.pread(fd, n, pos), size):
        lines = os.pread(fd, b - a, a).split(b"\n")
        if lines.pop():
            raise VerificationError("subject records: the last line does not end with a newline")
        yield a, lines


class _Tree(MerkleTree):
    """A MerkleTree over levels that are already built (in memory or in a sidecar)."""

    def __init__(self, levels: list[Any], size: int) -> None:      # no rebuild, no copy
        self._levels, self._size = levels, size


def write_index(records: Path, out: Path | None = None) -> Path:
    """Write the sidecar of ``records`` (default: ``index_path(records)``), atomically; returns its path.

    One pass over the records, in chunks; memory is ~90 bytes a record (offsets, tree, URI entries).
    """
    out = out if out is not None else index_path(records)
    offsets, leaves = array("Q"), bytearray()
    buckets = [bytearray() for _ in range(256)]    # URI entries by first byte: each sorted on its own
    sha = hashlib.sha256
    try:
        with open(records, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            for start, lines in _lines(fh.fileno(), size):
                pos, index = start, len(offsets)
                for line in lines:
                    offsets.append(pos)
                    pos += len(line) + 1
                    uris = _uris_in(line)
                    tail = index.to_bytes(8, "big")
                    for uri in uris:
                        key = _key(uri)
                        buckets[key[0]] += key + tail
                    index += 1
                leaves += b"".join([sha(b"\x00" + line).digest() for line in lines])
    except OSError as exc:
        raise InputError(f"cannot read records: {exc.strerror}", file=str(records)) from None
    n = len(offsets)
    offsets.append(size)
    if sys.byteorder == "little":
        offsets.byteswap()
    levels = level_hashes(bytes(leaves))
    del leaves
    entries = sum(len(b) for b in buckets) // 16
    header = _HEADER.pack(MAGIC, n, entries, size, _Tree(levels, n).root())

    def write(fo: BinaryIO) -> None:
        fo.write(header)
        fo.write(offsets.tobytes())
        for level in levels:
            fo.write(level)
        for i, bucket in enumerate(buckets):
            fo.write(b"".join(sorted(bucket[j:j + 16] for j in range(0, len(bucket), 16))))
            buckets[i] = bytearray()

    replace_atomically(out, write, mode=0o600)
    return out


class _Level:
    """Bytes [start, start + length) of a mapped file, sliced like bytes (only [a:b] with both given)."""

    def __init__(self, mm: mmap.mmap, start: int, length: int) -> None:
        self._mm, self._start, self._length = mm, start, length

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, s: slice) -> bytes:
        return self._mm[self._start + s.start:self._start + s.stop]


class RecordIndex:
    """An open sidecar, mapped (only the pages a lookup touches are read). Raises ValueError if malformed."""

    def __init__(self, path: Path) -> None:
        with open(path, "rb") as fh:
            self._mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        mm = self._mm
        try:
            if len(mm) < _HEADER.size:
                raise ValueError("too short")
            magic, n, m, self.records_size, self.root = _HEADER.unpack_from(mm, 0)
            if magic != MAGIC:
                raise ValueError("not a records index")
            self.tree_size, self.entries = n, m
            pos, levels = _HEADER.size + 8 * (n + 1), []
            self._offsets = _HEADER.size
            for k in range(max(1, n.bit_length())):
                levels.append(_Level(mm, pos, 32 * (n >> k)))
                pos += 32 * (n >> k)
            self._uris = pos
            if pos + 16 * m != len(mm):
                raise ValueError("sizes do not add up")
            self.tree = _Tree(levels, n)
        except (ValueError, struct.error):
            mm.close()
            raise

    def close(self) -> None:
        self._mm.close()

    def __enter__(self) -> RecordIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def span(self, index: int) -> tuple[int, int]:
        """Where line ``index`` starts and ends (its newline excluded)."""
        start, nxt = struct.unpack_from(">QQ", self._mm, self._offsets + 8 * index)
        return start, nxt - 1

    def lookup(self, uri: str) -> list[int]:
        """Leaf indices of the lines that may name ``uri`` (same 8-byte key), in order."""
        key, mm, base = _key(uri.encode("utf-8")), self._mm, self._uris
        lo, hi = 0, self.entries
        while lo < hi:                                 # the first entry >= key
            mid = (lo + hi) // 2
            if mm[base + 16 * mid:base + 16 * mid + 8] < key:
                lo = mid + 1
            else:
                hi = mid
        found = []
        while lo < self.entries and mm[base + 16 * lo:base + 16 * lo + 8] == key:
            found.append(int.from_bytes(mm[base + 16 * lo + 8:base + 16 * lo + 16], "big"))
            lo += 1
        return sorted(set(found))                     # two URIs of one line may share a key


# ---- proofs -----------------------------------------------------------------------------------------------

def prove_record_file(attestation: bytes, records: Path, object_uri: str, *, row: int | None = None,
                      index: Path | None = None, use_index: bool = True) -> dict[str, Any]:
    """``proofs.prove_record`` for a records file, in bounded memory: the same proof, the same refusals.

    With the sidecar (``index``, default ``index_path(records)``, when it exists) a proof costs a few
    reads; the records' SHA-256 is then not recomputed, as the proof is checked against the signed root
    instead. Without it, or when it does not fit, the records are scanned in chunks (a few seconds and
    ~100 bytes of memory a record for 1M records).
    """
    env, statement, digests = parse_attestation(attestation)
    merkle = statement["predicate"]["merkle"]
    root, size = bytes.fromhex(merkle["root"]), merkle["tree_size"]
    head = {"type": RECORD_PROOF_TYPE, "payload_sha256": hashlib.sha256(env.payload).hexdigest(),
            "object_uri": object_uri, "root": root.hex()}
    if index is not None and not index.is_file():
        raise InputError("no such index file (leave --index out to use records.idx beside the records, "
                         "or to scan)", file=str(index))
    sidecar = index if index is not None else index_path(records)
    if use_index and sidecar.is_file():
        proof = _by_index(head, records, sidecar, object_uri, row, root, size)
        if proof is not None:
            return proof
    return _by_scan(head, records, object_uri, row, root, size, digests[RECORDS_SUBJECT])


def _pick(hits: list[tuple[int, bytes, list[str]]], object_uri: str, row: int | None) -> tuple[int, bytes, str]:
    """``proofs.pick`` over (leaf index, line, matching URIs): the line, and the URI as its record names it."""
    index, named = pick([(i, found) for i, _, found in hits], object_uri, row)
    return index, next(line for i, line, _ in hits if i == index), named


def _names(line: bytes, object_uri: str) -> list[str]:
    """The URIs of the line's record that ``object_uri`` means ([] for none, or a line that is no record)."""
    try:
        record = loads_canonical(line)
    except NotCanonical:
        return []
    return matching_uris(record, object_uri) if isinstance(record, dict) else []


def _proof(head: dict[str, Any], tree: MerkleTree, index: int, line: bytes, named: str) -> dict[str, Any]:
    return {**head, "object_uri": named, "line": line.decode("utf-8"), "leaf_index": index,
            "tree_size": tree.size, "audit_path": [h.hex() for h in tree.inclusion_proof(index)]}


def _by_index(head: dict[str, Any], records: Path, sidecar: Path, object_uri: str, row: int | None,
              root: bytes, size: int) -> dict[str, Any] | None:
    """The proof by the sidecar, or None when the sidecar does not give one (a scan decides then).

    The sidecar is untrusted: whatever goes wrong with it (damaged numbers, a missing entry, a record it
    points to that is not the one asked for) leaves the answer, proof or refusal, to the scan."""
    try:
        return _by_index_unchecked(head, records, sidecar, object_uri, row, root, size)
    except Exception:  # noqa: BLE001 - see above: never an error or a refusal on the sidecar's word
        return None


def _by_index_unchecked(head: dict[str, Any], records: Path, sidecar: Path, object_uri: str, row: int | None,
                        root: bytes, size: int) -> dict[str, Any] | None:
    ix = RecordIndex(sidecar)
    with ix:
        try:
            with open(records, "rb") as fh:
                if (ix.tree_size, ix.root, ix.records_size) != (size, root, os.fstat(fh.fileno()).st_size):
                    return None
                hits = []
                for i in ix.lookup(object_uri):
                    start, end = ix.span(i)
                    if not 0 <= start < end <= ix.records_size:
                        return None
                    line = os.pread(fh.fileno(), end - start, start)
                    if leaf_hash(line) != ix.tree.leaf_hash(i):
                        return None                    # the records changed since the sidecar was made
                    if named := _names(line, object_uri):
                        hits.append((i, line, named))
        except OSError:
            return None
        if not hits:
            return None                                # unlisted, or a damaged entry: the scan decides
        index, line, uri = _pick(hits, object_uri, row)
        proof = _proof(head, ix.tree, index, line, uri)
    try:
        verify_leaf(proof, root)                       # never hand out a proof that does not check
    except VerificationError:
        return None
    return proof


def _by_scan(head: dict[str, Any], records: Path, object_uri: str, row: int | None, root: bytes, size: int,
             records_sha256: str) -> dict[str, Any]:
    needle, sha = scan_needle(object_uri), hashlib.sha256
    leaves, found = bytearray(), []
    digest: list[str | OSError] = []
    try:
        with open(records, "rb") as fh:
            fd, total = fh.fileno(), os.fstat(fh.fileno()).st_size

            def hash_file() -> None:
                try:
                    digest.append(scan.hash_fd(fd, total))
                except OSError as exc:
                    digest.append(exc)

            hasher = threading.Thread(target=hash_file)
            hasher.start()
            try:
                for _, lines in _lines(fd, total):
                    base = len(leaves) // 32
                    found += [(base + i, line) for i, line in enumerate(lines) if needle in line]
                    leaves += b"".join([sha(b"\x00" + line).digest() for line in lines])
            finally:
                hasher.join()
    except OSError as exc:
        raise InputError(f"cannot read records: {exc.strerror}", file=str(records)) from None
    if isinstance(digest[0], OSError):
        raise InputError(f"cannot read records: {digest[0].strerror}", file=str(records))
    if digest[0] != records_sha256:
        raise VerificationError("subject records: these are not the records this attestation signs")
    tree = MerkleTree(bytes(leaves))
    del leaves
    if tree.size != size or tree.root() != root:
        raise VerificationError("merkle root: the tree over the records differs from merkle.root")
    for i, line in found:
        try:
            loads_canonical(line)
        except NotCanonical as exc:
            raise VerificationError(f"subject records: line {i + 1} is not canonical JSON: {exc}") from None
    index, line, uri = _pick([(i, line, named) for i, line in found if (named := _names(line, object_uri))],
                             object_uri, row)
    proof = _proof(head, tree, index, line, uri)
    verify_leaf(proof, root)                           # never hand out a proof that does not check
    return proof
