"""Offline verification of a removal attestation. Needs only the formats: imports attest/* and errors.

Each failure raises VerificationError whose message starts with the name of the failed check:
"envelope form", "signature", "statement form", "subject manifest", "subject records",
"merkle root", "coverage", "totals", "subject index". The checks run in that order;
docs/attestation.md lists them. Predicates v1 and v2 are both verified.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import chain
from pathlib import Path
from typing import IO, Any

from migrator.attest.canonical import NotCanonical, loads_canonical
from migrator.attest.dsse import Envelope, parse_envelope_strict
from migrator.attest.keys import PublicKey, keyid, verify_signature
from migrator.attest.merkle import ALGORITHM as MERKLE_ALGORITHM
from migrator.attest.scan import RecordScan, scan_records
from migrator.attest.statement import (
    PAYLOAD_TYPE,
    PREDICATE_TYPE_V2,
    PREDICATE_TYPES,
    RECORDS_SUBJECT,
    STATEMENT_TYPE,
    SUBJECTS_SUBJECT,
)
from migrator.attest.subjects import SubjectHasher, check_member, check_subject_index
from migrator.errors import InputError, VerificationError

_HEX64 = re.compile(r"[0-9a-f]{64}")
_RFC3339_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z")


@dataclass(frozen=True)
class VerifiedAttestation:
    envelope: Envelope
    statement: dict[str, Any]
    predicate: dict[str, Any]
    signed_by: tuple[str, ...]          # keyids of the trusted keys whose signatures verified
    subjects: dict[str, str]            # subject name -> sha256 hex
    tree_size: int
    merkle_root: bytes
    records_checked: bool = False
    manifest_checked: bool = False
    manifest_subject: str | None = None
    subjects_checked: bool = False      # subjects.jsonl checked (with the records: the partition too)

    @property
    def predicate_type(self) -> str:
        return str(self.statement["predicateType"])

    @property
    def payload_sha256(self) -> str:
        """SHA-256 of the signed Statement: what proofs name to say which attestation they belong to."""
        return hashlib.sha256(self.envelope.payload).hexdigest()


def _fail(check: str, msg: str) -> VerificationError:
    return VerificationError(f"{check}: {msg}")


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


# ---- signatures -------------------------------------------------------------------------------------

def _check_signatures(env: Envelope, keys: Sequence[PublicKey], threshold: int) -> tuple[str, ...]:
    trusted: dict[str, PublicKey] = {}
    for key in keys:
        trusted.setdefault(keyid(key), key)
    if threshold < 1:
        raise InputError("threshold must be at least 1")
    if len(trusted) < threshold:
        raise InputError(f"threshold {threshold} needs at least {threshold} distinct trusted keys, "
                         f"got {len(trusted)}")
    message = env.pae()
    verified: list[str] = []
    for sig in env.signatures:
        trusted_key = trusted.get(sig.keyid)
        if trusted_key is None:
            continue  # an untrusted keyid is ignored, never counted
        if not verify_signature(trusted_key, message, sig.sig):
            raise _fail("signature", f"signature with trusted keyid {sig.keyid} does not verify")
        verified.append(sig.keyid)  # keyids are distinct (strict form), so keys are distinct
    if len(verified) < threshold:
        raise _fail("signature", f"{len(verified)} valid signature(s) from trusted keys, "
                                 f"threshold is {threshold}")
    return tuple(verified)


# ---- statement and predicate form --------------------------------------------------------------------

def _time(value: Any, name: str) -> datetime:
    if not isinstance(value, str) or not _RFC3339_UTC.fullmatch(value):
        raise _fail("statement form", f"predicate.{name} is not an RFC 3339 UTC time")
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise _fail("statement form", f"predicate.{name} is not a valid time") from None


def _check_statement(payload: bytes) -> tuple[dict[str, Any], dict[str, str]]:
    bad = "statement form"
    try:
        st = loads_canonical(payload)
    except NotCanonical as exc:
        raise _fail(bad, f"payload is not canonical JSON: {exc}") from None
    if not isinstance(st, dict) or set(st) != {"_type", "subject", "predicateType", "predicate"}:
        raise _fail(bad, "statement must have exactly _type, subject, predicateType, predicate")
    if st["_type"] != STATEMENT_TYPE:
        raise _fail(bad, f"_type is not {STATEMENT_TYPE}")
    if st["predicateType"] not in PREDICATE_TYPES:
        raise _fail(bad, f"predicateType is not one of {', '.join(PREDICATE_TYPES)}")
    subjects: dict[str, str] = {}
    if not isinstance(st["subject"], list) or not st["subject"]:
        raise _fail(bad, "subject is not a non-empty array")
    for s in st["subject"]:
        if (not isinstance(s, dict) or set(s) != {"name", "digest"} or not isinstance(s["name"], str)
                or not s["name"] or not isinstance(s["digest"], dict) or set(s["digest"]) != {"sha256"}
                or not isinstance(s["digest"]["sha256"], str) or not _HEX64.fullmatch(s["digest"]["sha256"])):
            raise _fail(bad, "each subject needs a name and exactly a lowercase hex sha256 digest")
        if s["name"] in subjects:
            raise _fail(bad, f"subject {s['name']!r} appears twice")
        subjects[s["name"]] = s["digest"]["sha256"]
    if RECORDS_SUBJECT not in subjects:
        raise _fail(bad, f"no {RECORDS_SUBJECT} subject")
    p = st["predicate"]
    if not isinstance(p, dict):
        raise _fail(bad, "predicate is not an object")
    required = ("wave_id", "tool", "started", "finished", "policy", "totals", "exceptions", "complete",
                "merkle", "scope")
    missing = [k for k in required if k not in p]
    if missing:
        raise _fail(bad, f"predicate lacks {', '.join(missing)}")
    if not isinstance(p["wave_id"], str) or not p["wave_id"]:
        raise _fail(bad, "predicate.wave_id is not a non-empty string")
    tool = p["tool"]
    if not (isinstance(tool, dict) and isinstance(tool.get("name"), str)
            and isinstance(tool.get("version"), str)):
        raise _fail(bad, "predicate.tool needs name and version strings")
    if _time(p["started"], "started") > _time(p["finished"], "finished"):
        raise _fail(bad, "predicate.started is after predicate.finished")
    if not isinstance(p["policy"], dict):
        raise _fail(bad, "predicate.policy is not an object")
    totals = p["totals"]
    if (not isinstance(totals, dict) or set(totals) != {"rows", "removed", "held", "failed"}
            or not all(_is_count(v) for v in totals.values())):
        raise _fail(bad, "predicate.totals needs exactly rows, removed, held, failed as counts")
    ex = p["exceptions"]
    if (not isinstance(ex, dict) or set(ex) != {"held", "failed", "by_reason"}
            or not _is_count(ex["held"]) or not _is_count(ex["failed"])
            or not isinstance(ex["by_reason"], dict)
            or not all(_is_count(v) and v > 0 for v in ex["by_reason"].values())):
        raise _fail(bad, "predicate.exceptions needs held, failed counts and by_reason {reason: count}")
    if not isinstance(p["complete"], bool):
        raise _fail(bad, "predicate.complete is not a boolean")
    m = p["merkle"]
    if (not isinstance(m, dict) or set(m) != {"algorithm", "tree_size", "root"}
            or m["algorithm"] != MERKLE_ALGORITHM or not _is_count(m["tree_size"])
            or not isinstance(m["root"], str) or not _HEX64.fullmatch(m["root"])):
        raise _fail(bad, f"predicate.merkle needs algorithm {MERKLE_ALGORITHM}, tree_size, hex root")
    if not isinstance(p["scope"], list) or not all(isinstance(x, str) for x in p["scope"]):
        raise _fail(bad, "predicate.scope is not an array of strings")
    index = p.get("subjects") if st["predicateType"] == PREDICATE_TYPE_V2 else None
    if st["predicateType"] == PREDICATE_TYPE_V2:
        if "subjects" not in p:
            raise _fail(bad, "predicate lacks subjects (null or the subject index)")
        if index is not None:
            check_member(index, m["tree_size"])
    if (index is not None) != (SUBJECTS_SUBJECT in subjects):
        raise _fail(bad, f"a {SUBJECTS_SUBJECT} subject goes with predicate.subjects, and only with it")
    return st, subjects


def _check_declared_totals(p: dict[str, Any]) -> None:
    """The predicate's own numbers must agree with each other, records or not."""
    t, e = p["totals"], p["exceptions"]
    if t["removed"] + t["held"] + t["failed"] != t["rows"]:
        raise _fail("totals", "removed + held + failed differs from rows")
    if e["held"] != t["held"] or e["failed"] != t["failed"]:
        raise _fail("totals", "exceptions.held/failed differ from totals")
    if sum(e["by_reason"].values()) != t["held"] + t["failed"]:
        raise _fail("totals", "exceptions.by_reason does not add up to held + failed")
    if p["complete"] != (t["removed"] == t["rows"]):
        raise _fail("totals", "complete must be true exactly when every row was removed")
    if p["merkle"]["tree_size"] != t["rows"]:
        raise _fail("totals", "merkle.tree_size differs from totals.rows")


# ---- records and manifest ----------------------------------------------------------------------------

# ASCII whitespace as str.strip() sees it (csv fields are stripped the same way).
_BLANK_CSV = re.compile(rb"(?m)^[ \t\x0b\x0c\x1c-\x1f,]*$")
_BLANK_JSONL = re.compile(rb"(?m)^[ \t\r\x0b\x0c\x1c-\x1f]*$")


def count_manifest_rows(manifest: bytes, name: str = "") -> int:
    """Data rows of a manifest: CSV rows after the header that are not blank, or non-blank JSONL lines.

    The format follows the file name (.csv, .jsonl/.ndjson/.json); otherwise a first non-blank
    byte of "{" means JSONL. CSV is read with the csv module so quoted newlines stay in one row.
    (``_manifest_facts`` counts the same in a file, never holding it whole.)
    """
    lower = name.lower()
    if lower.endswith((".jsonl", ".ndjson", ".json")):
        jsonl = True
    elif lower.endswith(".csv"):
        jsonl = False
    else:
        jsonl = manifest.lstrip().startswith(b"{")
    if _plain(manifest, jsonl):
        # Fast path, same count: ASCII only, and for CSV no quotes, CRs or NULs, so rows are lines.
        nonblank = manifest.count(b"\n") + 1 - len((_BLANK_JSONL if jsonl else _BLANK_CSV).findall(manifest))
        return nonblank if jsonl else max(nonblank - 1, 0)
    try:
        text = manifest.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _fail("coverage", "manifest is not UTF-8") from None
    if jsonl:
        return sum(1 for line in text.split("\n") if line.strip())
    return _csv_rows(io.StringIO(text, newline=""))


def _plain(data: bytes, jsonl: bool) -> bool:
    return data.isascii() and (jsonl or not any(c in data for c in (b'"', b"\r", b"\x00")))


def _csv_rows(text: Iterable[str]) -> int:
    try:
        rows = sum(1 for r in csv.reader(text, strict=True) if any(f.strip() for f in r))
    except csv.Error as exc:
        raise _fail("coverage", f"manifest CSV cannot be read: {exc}") from None
    return max(rows - 1, 0)  # the first non-blank row is the header


_PIECE = 8 << 20


def _manifest_facts(path: Path, name: str) -> tuple[str, int | VerificationError]:
    """(SHA-256 hex, data rows or the coverage error counting met) of a manifest file, read in pieces
    that end at newlines; the count is count_manifest_rows's. A file that is not plain is read again."""
    lower, digest, rows, plain, rest = name.lower(), hashlib.sha256(), 0, True, b""
    if lower.endswith((".jsonl", ".ndjson", ".json", ".csv")):
        jsonl = not lower.endswith(".csv")
    else:
        with _open(path) as fh:
            blocks = iter(lambda: fh.read(1 << 16), b"")
            jsonl = next((b.lstrip() for b in blocks if b.lstrip()), b"").startswith(b"{")
    with _open(path) as fh:
        for block in chain(iter(lambda: fh.read(_PIECE), b""), [b""]):
            digest.update(block)
            piece = rest + block
            cut = piece.rfind(b"\n") + 1 if block else len(piece)
            piece, rest = piece[:cut], piece[cut:]
            plain = plain and _plain(piece, jsonl)
            if plain:
                rows += piece.count(b"\n") + 1 - len((_BLANK_JSONL if jsonl else _BLANK_CSV).findall(piece))
    if plain:
        return digest.hexdigest(), rows if jsonl else max(rows - 1, 0)
    try:
        with _open(path) as fh:
            lines = (raw.decode("utf-8-sig" if i == 0 else "utf-8") for i, raw in enumerate(fh))
            if jsonl:
                return digest.hexdigest(), sum(1 for line in lines if line.strip())
            for _ in lines:
                pass           # all of it is UTF-8 before any CSV error is reported
        with _open(path) as fh:
            return digest.hexdigest(), _csv_rows(io.TextIOWrapper(fh, encoding="utf-8-sig", newline=""))
    except UnicodeDecodeError:
        return digest.hexdigest(), _fail("coverage", "manifest is not UTF-8")
    except VerificationError as exc:
        return digest.hexdigest(), exc


def _open(path: Path) -> IO[bytes]:
    try:
        return open(path, "rb")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}", file=str(path)) from None


# ---- the verifier -------------------------------------------------------------------------------------

def parse_attestation(envelope: bytes) -> tuple[Envelope, dict[str, Any], dict[str, str]]:
    """The envelope's form and its Statement, WITHOUT checking any signature.

    For provers, who check the attestation against the records they hold; never for verifiers.
    Returns (envelope, statement, subjects {name: sha256 hex}).
    """
    env = parse_envelope_strict(envelope)
    if env.payload_type != PAYLOAD_TYPE:
        raise _fail("envelope form", f"payloadType is not {PAYLOAD_TYPE}")
    statement, subjects = _check_statement(env.payload)
    return env, statement, subjects


def _read(data: bytes | Path) -> bytes:
    if isinstance(data, bytes | bytearray):
        return bytes(data)
    try:
        return Path(data).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {data}: {exc.strerror}", file=str(data)) from None


def verify_attestation(envelope: bytes, keys: Sequence[PublicKey], *, threshold: int = 1,
                       records: bytes | Path | None = None, manifest: bytes | Path | None = None,
                       manifest_rows: int | None = None, manifest_name: str | None = None,
                       subjects: bytes | Path | None = None, subject_key: SubjectHasher | None = None,
                       workers: int | None = None) -> VerifiedAttestation:
    """Verify an attestation offline; return what was verified or raise VerificationError.

    ``keys`` are the trusted public keys; ``threshold`` distinct ones must have signed.
    ``records``: records.jsonl (bytes, or a path: large files are then read in parallel). ``manifest``:
    the manifest (bytes or path); its data rows are counted unless ``manifest_rows`` is given.
    ``manifest_name`` picks the manifest subject when the statement names several. ``subjects``:
    subjects.jsonl; checked against the records too when they are given, and each keyed hash against
    ``subject_key`` (the custodian's key) when that is given as well.
    """
    env, statement, subject_digests = parse_attestation(envelope)
    signed_by = _check_signatures(env, keys, threshold)
    predicate: dict[str, Any] = statement["predicate"]
    tree_size: int = predicate["merkle"]["tree_size"]
    root = bytes.fromhex(predicate["merkle"]["root"])
    index_member = predicate.get("subjects") if statement["predicateType"] == PREDICATE_TYPE_V2 else None

    manifest_subject: str | None = None
    if manifest is not None or manifest_name is not None:
        others = [n for n in subject_digests if n not in (RECORDS_SUBJECT, SUBJECTS_SUBJECT)]
        if manifest_name is not None:
            if manifest_name not in others:
                raise _fail("subject manifest", f"the statement has no subject {manifest_name!r}")
            manifest_subject = manifest_name
        elif len(others) == 1:
            manifest_subject = others[0]
        else:
            raise _fail("subject manifest", "the statement does not name exactly one manifest subject")
    counted: int | VerificationError | None = None     # a manifest file's rows, or what counting them met
    if manifest is not None and manifest_subject is not None:     # a file is read once, in pieces
        manifest_sha, counted = (hashlib.sha256(manifest).hexdigest(), None) if isinstance(
            manifest, bytes | bytearray) else _manifest_facts(Path(manifest), manifest_subject)
        if manifest_sha != subject_digests[manifest_subject]:
            raise _fail("subject manifest",
                        f"SHA-256 differs from the digest of subject {manifest_subject!r}")

    scan: RecordScan | None = None
    if records is not None:
        v2 = statement["predicateType"] == PREDICATE_TYPE_V2
        scan = scan_records(records, want_subjects=v2, workers=workers)
        if scan.sha256 != subject_digests[RECORDS_SUBJECT]:
            raise _fail("subject records", f"SHA-256 differs from the digest of subject {RECORDS_SUBJECT!r}")
        if not scan.ends_with_newline:
            raise _fail("subject records", "the last line does not end with a newline")
        if scan.error is not None:
            raise _fail("subject records", f"line {scan.error[0]} {scan.error[1]}")
        if scan.tree_size != tree_size:
            raise _fail("merkle root",
                        f"records hold {scan.tree_size} lines, merkle.tree_size is {tree_size}")
        if scan.root != root:
            raise _fail("merkle root", "the root over the records differs from merkle.root")
        if scan.row_break is not None:
            line, row = scan.row_break
            raise _fail("coverage", f"line {line} holds row {row}; rows must be 1..{tree_size} in order")

    if manifest is not None or manifest_rows is not None:
        expected = manifest_rows
        if expected is None and isinstance(manifest, bytes | bytearray):
            expected = count_manifest_rows(bytes(manifest), manifest_subject or "")
        elif expected is None:
            if isinstance(counted, VerificationError):
                raise counted
            expected = counted
        if expected != tree_size:
            raise _fail("coverage", f"the manifest has {expected} rows, the attestation covers {tree_size}")

    _check_declared_totals(predicate)
    if scan is not None:
        if scan.totals != predicate["totals"]:
            raise _fail("totals",
                        f"records add up to {scan.totals}, the predicate says {predicate['totals']}")
        if scan.by_reason != predicate["exceptions"]["by_reason"]:
            raise _fail("totals", "exceptions.by_reason differs from the records' reasons")

    if index_member is None and scan is not None and scan.subjects and any(scan.subjects):
        raise _fail("subject index", "records name subjects but the attestation commits no subject index")
    if subjects is not None:
        if index_member is None:
            raise _fail("subject index", "this attestation commits no subject index")
        index = _read(subjects)
        if hashlib.sha256(index).hexdigest() != subject_digests[SUBJECTS_SUBJECT]:
            raise _fail("subject index", f"SHA-256 differs from the digest of subject {SUBJECTS_SUBJECT!r}")
        check_subject_index(index, index_member, tree_size,
                            leaf_subjects=scan.subjects if scan is not None else None,
                            hasher=subject_key if scan is not None else None)

    return VerifiedAttestation(
        envelope=env, statement=statement, predicate=predicate, signed_by=signed_by, subjects=subject_digests,
        tree_size=tree_size, merkle_root=root, records_checked=records is not None,
        manifest_checked=manifest is not None, manifest_subject=manifest_subject,
        subjects_checked=subjects is not None)
