"""Offline verification of a removal attestation. Needs only the formats: imports attest/* and errors.

Each failure raises VerificationError whose message starts with the name of the failed check:
"envelope form", "signature", "statement form", "subject manifest", "subject records",
"merkle root", "coverage", "totals". The checks run in that order; docs/attestation.md lists them.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from migrator.attest.canonical import NotCanonical, loads_canonical
from migrator.attest.dsse import Envelope, parse_envelope_strict
from migrator.attest.keys import PublicKey, keyid, verify_signature
from migrator.attest.merkle import ALGORITHM as MERKLE_ALGORITHM
from migrator.attest.merkle import MerkleBuilder
from migrator.attest.statement import (
    PAYLOAD_TYPE,
    PREDICATE_TYPE_V1,
    RECORDS_SUBJECT,
    STATEMENT_TYPE,
    STATES,
)
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
    if st["predicateType"] != PREDICATE_TYPE_V1:
        raise _fail(bad, f"predicateType is not {PREDICATE_TYPE_V1}")
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

@dataclass
class _RecordStats:
    tree_size: int
    root: bytes
    rows: list[int]
    totals: dict[str, int]
    by_reason: dict[str, int]


def _scan_records(records: bytes) -> _RecordStats:
    bad = "subject records"
    if records and not records.endswith(b"\n"):
        raise _fail(bad, "the last line does not end with a newline")
    lines = records.split(b"\n")[:-1] if records else []
    builder = MerkleBuilder()
    rows: list[int] = []
    counts = dict.fromkeys(STATES, 0)
    by_reason: dict[str, int] = {}
    for n, line in enumerate(lines, start=1):
        try:
            rec = loads_canonical(line)
        except NotCanonical as exc:
            raise _fail(bad, f"line {n} is not canonical JSON: {exc}") from None
        if not isinstance(rec, dict):
            raise _fail(bad, f"line {n} is not a JSON object")
        row, state, reason = rec.get("row"), rec.get("state"), rec.get("reason")
        if not isinstance(row, int) or isinstance(row, bool):
            raise _fail(bad, f"line {n} has no integer row")
        if state not in counts:
            raise _fail(bad, f"line {n} state is not one of {', '.join(STATES)}")
        if reason is not None and not isinstance(reason, str):
            raise _fail(bad, f"line {n} reason is neither a string nor null")
        counts[state] += 1
        if state != "REMOVED":
            if not reason:
                raise _fail(bad, f"line {n} is {state} without a reason")
            by_reason[reason] = by_reason.get(reason, 0) + 1
        rows.append(row)
        builder.add(line)
    totals = {"rows": len(lines), "removed": counts["REMOVED"], "held": counts["HELD"],
              "failed": counts["FAILED"]}
    return _RecordStats(builder.size, builder.root(), rows, totals, by_reason)


def count_manifest_rows(manifest: bytes, name: str = "") -> int:
    """Data rows of a manifest: CSV rows after the header that are not blank, or non-blank JSONL lines.

    The format follows the file name (.csv, .jsonl/.ndjson/.json); otherwise a first non-blank
    byte of "{" means JSONL. CSV is read with the csv module so quoted newlines stay in one row.
    """
    lower = name.lower()
    if lower.endswith((".jsonl", ".ndjson", ".json")):
        jsonl = True
    elif lower.endswith(".csv"):
        jsonl = False
    else:
        jsonl = manifest.lstrip().startswith(b"{")
    try:
        text = manifest.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _fail("coverage", "manifest is not UTF-8") from None
    if jsonl:
        return sum(1 for line in text.split("\n") if line.strip())
    try:
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
        rows = [r for r in reader if any(f.strip() for f in r)]
    except csv.Error as exc:
        raise _fail("coverage", f"manifest CSV cannot be read: {exc}") from None
    return max(len(rows) - 1, 0)  # the first non-blank row is the header


# ---- the verifier -------------------------------------------------------------------------------------

def verify_attestation(envelope: bytes, keys: Sequence[PublicKey], *, threshold: int = 1,
                       records: bytes | None = None, manifest: bytes | None = None,
                       manifest_rows: int | None = None, manifest_name: str | None = None,
                       ) -> VerifiedAttestation:
    """Verify an attestation offline; return what was verified or raise VerificationError.

    ``keys`` are the trusted public keys; ``threshold`` distinct ones must have signed.
    ``records``: the records.jsonl bytes. ``manifest``: the manifest bytes; its data rows are
    counted unless ``manifest_rows`` is given. ``manifest_name`` picks the manifest subject when
    the statement names more than one non-records subject.
    """
    env = parse_envelope_strict(envelope)
    if env.payload_type != PAYLOAD_TYPE:
        raise _fail("envelope form", f"payloadType is not {PAYLOAD_TYPE}")
    signed_by = _check_signatures(env, keys, threshold)
    statement, subjects = _check_statement(env.payload)
    predicate: dict[str, Any] = statement["predicate"]
    tree_size: int = predicate["merkle"]["tree_size"]
    root = bytes.fromhex(predicate["merkle"]["root"])

    manifest_subject: str | None = None
    if manifest is not None or manifest_name is not None:
        others = [n for n in subjects if n != RECORDS_SUBJECT]
        if manifest_name is not None:
            if manifest_name not in others:
                raise _fail("subject manifest", f"the statement has no subject {manifest_name!r}")
            manifest_subject = manifest_name
        elif len(others) == 1:
            manifest_subject = others[0]
        else:
            raise _fail("subject manifest", "the statement does not name exactly one manifest subject")
    if manifest is not None and manifest_subject is not None:
        if hashlib.sha256(manifest).hexdigest() != subjects[manifest_subject]:
            raise _fail("subject manifest",
                        f"SHA-256 differs from the digest of subject {manifest_subject!r}")

    stats: _RecordStats | None = None
    if records is not None:
        if hashlib.sha256(records).hexdigest() != subjects[RECORDS_SUBJECT]:
            raise _fail("subject records", f"SHA-256 differs from the digest of subject {RECORDS_SUBJECT!r}")
        stats = _scan_records(records)
        if stats.tree_size != tree_size:
            raise _fail("merkle root",
                        f"records hold {stats.tree_size} lines, merkle.tree_size is {tree_size}")
        if stats.root != root:
            raise _fail("merkle root", "the root over the records differs from merkle.root")
        for i, row in enumerate(stats.rows, start=1):
            if row != i:
                raise _fail("coverage", f"line {i} holds row {row}; rows must be 1..{tree_size} in order")

    if manifest is not None or manifest_rows is not None:
        expected = manifest_rows
        if expected is None and manifest is not None:
            expected = count_manifest_rows(manifest, manifest_subject or "")
        if expected != tree_size:
            raise _fail("coverage", f"the manifest has {expected} rows, the attestation covers {tree_size}")

    _check_declared_totals(predicate)
    if stats is not None:
        if stats.totals != predicate["totals"]:
            raise _fail("totals",
                        f"records add up to {stats.totals}, the predicate says {predicate['totals']}")
        if stats.by_reason != predicate["exceptions"]["by_reason"]:
            raise _fail("totals", "exceptions.by_reason differs from the records' reasons")

    return VerifiedAttestation(
        envelope=env, statement=statement, predicate=predicate, signed_by=signed_by, subjects=subjects,
        tree_size=tree_size, merkle_root=root, records_checked=records is not None,
        manifest_checked=manifest is not None, manifest_subject=manifest_subject)
