"""Offline verification of a removal attestation. Needs only the formats (attest/*, errors, files, manifest_rows).

``verify_attestation(envelope, inputs, policy)`` checks exactly what the policy (``policy.py``) demands.
Each failure raises VerificationError whose message starts with the name of the failed check, in this order:
"envelope form", "statement form", "signature" (each Threshold), "subject manifest" (RequireManifest),
"subject records", "merkle root" (RequireRecords), "coverage" (RequireRecords: rows in order;
RequireManifest, RequireRowCount: the row count), "totals" (always the declared ones; with RequireRecords
the records' too), "subject index" (RequireSubjectIndex; with RequireRecords, records naming subjects need
an index). docs/attestation.md lists them. Predicates v1 and v2 are both verified.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from migrator.attest.canonical import NotCanonical, loads_canonical
from migrator.attest.dsse import Envelope, parse_envelope_strict
from migrator.attest.merkle import ALGORITHM as MERKLE_ALGORITHM
from migrator.attest.policy import (
    Inputs,
    Policy,
    RequireManifest,
    RequireRecords,
    RequireRowCount,
    RequireSubjectIndex,
    Threshold,
    demands,
)
from migrator.attest.scan import RecordScan, scan_records
from migrator.attest.statement import (
    PAYLOAD_TYPE,
    PREDICATE_TYPE_V3,
    PREDICATE_TYPES,
    RECORDS_SUBJECT,
    STATEMENT_TYPE,
    SUBJECTS_SUBJECT,
    WITH_SUBJECTS,
)
from migrator.attest.subjects import check_member, check_subject_index
from migrator.errors import InputError, VerificationError
from migrator.files import read_input
from migrator.manifest_rows import manifest_facts

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
    policy: Policy                      # what was demanded, and so verified
    manifest_subject: str | None = None

    @property
    def records_checked(self) -> bool:
        return bool(demands(self.policy, RequireRecords))

    @property
    def manifest_checked(self) -> bool:
        return bool(demands(self.policy, RequireManifest))

    @property
    def subjects_checked(self) -> bool:
        """subjects.jsonl checked (with the records: the partition too)."""
        return bool(demands(self.policy, RequireSubjectIndex))

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
    v3 = st["predicateType"] == PREDICATE_TYPE_V3
    names = {"rows", "removed", "held", "failed", *(("out_of_scope",) if v3 else ())}
    if (not isinstance(totals, dict) or set(totals) != names
            or not all(_is_count(v) for v in totals.values())):
        raise _fail(bad, f"predicate.totals needs exactly {', '.join(sorted(names))} as counts")
    if v3:
        if "locations" not in p:
            raise _fail(bad, "predicate lacks locations (null or the named locations' identities)")
        if p["locations"] is not None and not (isinstance(p["locations"], list) and all(
                isinstance(x, dict) and isinstance(x.get("name"), str) for x in p["locations"])):
            raise _fail(bad, "predicate.locations is neither null nor an array of named identities")
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
    index = p.get("subjects") if st["predicateType"] in WITH_SUBJECTS else None
    if st["predicateType"] in WITH_SUBJECTS:
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
    out = t.get("out_of_scope", 0)   # v3 only; v1 and v2 have no such state
    if t["removed"] + t["held"] + t["failed"] + out != t["rows"]:
        raise _fail("totals", "removed + held + failed (+ out_of_scope) differs from rows")
    if e["held"] != t["held"] or e["failed"] != t["failed"]:
        raise _fail("totals", "exceptions.held/failed differ from totals")
    if sum(e["by_reason"].values()) != t["held"] + t["failed"]:
        raise _fail("totals", "exceptions.by_reason does not add up to held + failed")
    if p["complete"] != (t["removed"] == t["rows"] - out):
        raise _fail("totals", "complete must be true exactly when every row in scope was removed")
    if p["merkle"]["tree_size"] != t["rows"]:
        raise _fail("totals", "merkle.tree_size differs from totals.rows")


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


def verify_attestation(envelope: bytes, inputs: Inputs, policy: Policy) -> VerifiedAttestation:
    """Verify an attestation offline: exactly what ``policy`` demands, reading ``inputs``; return what was
    verified. The checks run in the module docstring's order. Raises VerificationError naming the failed
    check; InputError for a policy without a Threshold, a RequireSubjectIndex key without RequireRecords,
    a demanded input that is missing, or an input nothing demands.
    """
    thresholds = demands(policy, Threshold)
    want_records = bool(demands(policy, RequireRecords))
    want_manifest = next(iter(demands(policy, RequireManifest)), None)
    want_rows = next(iter(demands(policy, RequireRowCount)), None)
    want_index = next(iter(demands(policy, RequireSubjectIndex)), None)
    if not thresholds:
        raise InputError("the policy names no Threshold: whose signatures count?")
    if want_index is not None and want_index.key is not None and not want_records:
        raise InputError("RequireSubjectIndex(key) checks keyed hashes against the records: add RequireRecords()")
    for name, wanted, given in (("records", want_records, inputs.records),
                                ("manifest", want_manifest is not None, inputs.manifest),
                                ("subjects", want_index is not None, inputs.subjects)):
        if wanted and given is None:
            raise InputError(f"the policy requires the {name}, and none were given", field=name)
        if given is not None and not wanted:
            raise InputError(f"{name} given, but the policy does not require them", field=name)
    records, manifest = inputs.records, inputs.manifest

    env, statement, subject_digests = parse_attestation(envelope)
    signed_by: tuple[str, ...] = ()
    for t in thresholds:
        signed_by += tuple(k for k in t.check(env) if k not in signed_by)
    predicate: dict[str, Any] = statement["predicate"]
    tree_size: int = predicate["merkle"]["tree_size"]
    root = bytes.fromhex(predicate["merkle"]["root"])
    index_member = predicate.get("subjects") if statement["predicateType"] in WITH_SUBJECTS else None

    manifest_subject: str | None = None
    counted: int | VerificationError | None = None     # the manifest's rows, or what counting them met
    if want_manifest is not None and manifest is not None:
        others = [n for n in subject_digests if n not in (RECORDS_SUBJECT, SUBJECTS_SUBJECT)]
        if want_manifest.name is not None:
            if want_manifest.name not in others:
                raise _fail("subject manifest", f"the statement has no subject {want_manifest.name!r}")
            manifest_subject = want_manifest.name
        elif len(others) == 1:
            manifest_subject = others[0]
        else:
            raise _fail("subject manifest", "the statement does not name exactly one manifest subject")
        manifest_sha, counted = manifest_facts(manifest, manifest_subject)     # read once, in pieces
        if manifest_sha != subject_digests[manifest_subject]:
            raise _fail("subject manifest",
                        f"SHA-256 differs from the digest of subject {manifest_subject!r}")

    scan: RecordScan | None = None
    if want_records and records is not None:
        scan = scan_records(records, want_subjects=statement["predicateType"] in WITH_SUBJECTS)
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

    if counted is not None:
        if isinstance(counted, VerificationError):
            raise counted
        if counted != tree_size:
            raise _fail("coverage", f"the manifest has {counted} rows, the attestation covers {tree_size}")
    if want_rows is not None and want_rows.rows != tree_size:
        raise _fail("coverage", f"the manifest has {want_rows.rows} rows, the attestation covers {tree_size}")

    _check_declared_totals(predicate)
    if scan is not None:
        if scan.totals != {"out_of_scope": 0, **predicate["totals"]}:
            raise _fail("totals",
                        f"records add up to {scan.totals}, the predicate says {predicate['totals']}")
        if scan.by_reason != predicate["exceptions"]["by_reason"]:
            raise _fail("totals", "exceptions.by_reason differs from the records' reasons")

    if index_member is None and scan is not None and scan.subjects and any(scan.subjects):
        raise _fail("subject index", "records name subjects but the attestation commits no subject index")
    if want_index is not None and inputs.subjects is not None:
        if index_member is None:
            raise _fail("subject index", "this attestation commits no subject index")
        index = read_input(inputs.subjects, "subject index")
        if hashlib.sha256(index).hexdigest() != subject_digests[SUBJECTS_SUBJECT]:
            raise _fail("subject index", f"SHA-256 differs from the digest of subject {SUBJECTS_SUBJECT!r}")
        check_subject_index(index, index_member, tree_size,
                            leaf_subjects=scan.subjects if scan is not None else None, hasher=want_index.key)

    return VerifiedAttestation(
        envelope=env, statement=statement, predicate=predicate, signed_by=signed_by, subjects=subject_digests,
        tree_size=tree_size, merkle_root=root, policy=policy, manifest_subject=manifest_subject)
