"""The offline verifier: a good attestation passes, and every kind of tampering names its check."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from migrator.attest import dsse, keys, merkle
from migrator.attest.canonical import NotCanonical, canonical_json, loads_canonical, record_line
from migrator.attest.policy import (
    AllOf,
    Inputs,
    Policy,
    RequireManifest,
    RequireRecords,
    RequireRowCount,
    Threshold,
)
from migrator.attest.statement import (
    PAYLOAD_TYPE,
    PREDICATE_TYPE_V1,
    RecordTally,
    build_predicate,
    build_statement,
)
from migrator.attest.verify import verify_attestation
from migrator.errors import InputError, VerificationError
from migrator.manifest_rows import count_manifest_rows
from migrator.records import Record


def record(row: int, state: str = "REMOVED", reason: str | None = None) -> dict[str, Any]:
    src = f"s3://src-bucket/users/{row}/file name ü.bin"
    return {
        "row": row,
        "source": {"uri": src, "version": f"v{row}", "etag": f'"{row:032x}"', "size": 100 + row},
        "replicas": [{"uri": f"gs://backup/users/{row}", "version": "17", "result": "deleted"}],
        "destination": {"uri": f"oci://ns/dest/users/{row}", "version": f"o{row}", "etag": "e"},
        "digests": [{"algorithm": "sha256", "hex": hashlib.sha256(b"%d" % row).hexdigest(),
                     "provenance": "computed"}],
        "evidence": {"source_tier": "declared-checksum", "source": "x-amz-checksum-sha256",
                     "destination": "opc-content-sha256"},
        "deletions": [{"uri": src, "version": f"v{row}", "at": "2025-01-31T12:00:00Z", "kind": "version"}],
        "proof": {"listed_at": "2025-01-31T12:00:01Z", "locations": [src], "empty": state == "REMOVED"},
        "state": state,
        "reason": reason,
    }


@dataclass
class Wave:
    envelope: bytes
    records: bytes
    manifest: bytes
    signers: list[keys.FileSigner]


def make_wave(n: int = 5, states: dict[int, tuple[str, str]] | None = None,
              signers: list[keys.FileSigner] | None = None, manifest_name: str = "manifest.csv",
              mutate_records: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None,
              mutate_predicate: Callable[[dict[str, Any]], object] | None = None) -> Wave:
    signers = signers or [keys.FileSigner(keys.new_private_key("ed25519"))]
    states = states or {}
    recs = [record(i, *states.get(i, ("REMOVED", None))) for i in range(1, n + 1)]
    if mutate_records:
        recs = mutate_records(recs)
    tally, builder = RecordTally(), merkle.MerkleBuilder()
    lines = []
    for r in recs:
        line = record_line(r)
        lines.append(line)
        builder.add(line[:-1])
        tally.add(Record.from_json(r))
    records = b"".join(lines)
    header = "source,destination,subject\n"
    manifest = (header + "".join(f's3://src-bucket/users/{i},"oci://ns/dest/users/{i}","a\nb"\n'
                                  for i in range(1, n + 1))).encode()
    t0 = datetime(2025, 1, 31, 12, 0, tzinfo=UTC)
    predicate = build_predicate(
        wave_id="wave-1", tool_name="migrator", tool_version="0.1.0", started=t0, finished=t0,
        policy={"old_versions": "delete"}, tally=tally, merkle_root=builder.root(), tree_size=builder.size,
        scope=["s3://src-bucket", "gs://backup"], predicate_type=PREDICATE_TYPE_V1)
    if mutate_predicate:
        mutate_predicate(predicate)
    statement = build_statement(
        subjects=[(manifest_name, hashlib.sha256(manifest).hexdigest()),
                  ("records.jsonl", hashlib.sha256(records).hexdigest())],
        predicate_type=PREDICATE_TYPE_V1, predicate=predicate)
    env = dsse.sign_envelope(canonical_json(statement), PAYLOAD_TYPE, signers)
    return Wave(env, records, manifest, signers)


def pubs(w: Wave) -> list[keys.PublicKey]:
    return [s.public_key for s in w.signers]


def check_fails(check: str, w: Wave, **kw: object) -> None:
    """Verify with all that is given (records and manifest unless set to None) demanded; it must fail."""
    args: dict[str, Any] = {"records": w.records, "manifest": w.manifest}
    args.update(kw)
    envelope = args.pop("envelope", w.envelope)
    demands: list[Policy] = [Threshold(args.pop("keys", pubs(w)), args.pop("threshold", 1))]
    demands += [RequireRecords()] if args["records"] is not None else []
    demands += [RequireManifest()] if args["manifest"] is not None else []
    demands += [RequireRowCount(args.pop("manifest_rows"))] if "manifest_rows" in args else []
    with pytest.raises(VerificationError, match=rf"^{check}:"):
        verify_attestation(envelope, Inputs(**args), AllOf(*demands))


def full(w: Wave) -> Policy:
    """The wave's signer, its records and its manifest."""
    return AllOf(Threshold(pubs(w)), RequireRecords(), RequireManifest())


def test_good_attestation_verifies() -> None:
    w = make_wave(6, {2: ("HELD", "legal-hold"), 5: ("FAILED", "checksum-mismatch")})
    v = verify_attestation(w.envelope, Inputs(records=w.records, manifest=w.manifest), full(w))
    assert v.signed_by == (w.signers[0].keyid,)
    assert v.records_checked and v.manifest_checked and v.manifest_subject == "manifest.csv"
    assert v.tree_size == 6
    assert v.predicate["totals"] == {"rows": 6, "removed": 4, "held": 1, "failed": 1}
    assert v.predicate["exceptions"]["by_reason"] == {"checksum-mismatch": 1, "legal-hold": 1}
    assert v.predicate["complete"] is False
    # The envelope alone verifies too (signatures, statement, declared totals).
    verify_attestation(w.envelope, Inputs(), Threshold(pubs(w)))


def test_empty_wave_verifies() -> None:
    w = make_wave(0)
    v = verify_attestation(w.envelope, Inputs(records=w.records, manifest=w.manifest), full(w))
    assert v.tree_size == 0 and v.merkle_root == merkle.EMPTY_ROOT and v.predicate["complete"] is True


def test_every_single_bit_flip_of_the_envelope_is_detected() -> None:
    w = make_wave(1)
    env = w.envelope
    assert len(env) < 3000
    for i in range(len(env)):
        for bit in (0, 7):
            bad = bytearray(env)
            bad[i] ^= 1 << bit
            with pytest.raises(VerificationError):
                verify_attestation(bytes(bad), Inputs(), Threshold(pubs(w)))


@pytest.mark.parametrize("alg", ["ed25519", "ecdsa-p256"])
def test_an_attestation_signed_with_either_key_type_verifies(alg: keys.KeyAlgorithm) -> None:
    w = make_wave(2, signers=[keys.FileSigner(keys.new_private_key(alg))])
    assert verify_attestation(w.envelope, Inputs(records=w.records),
                              AllOf(Threshold(pubs(w)), RequireRecords())).signed_by == (w.signers[0].keyid,)


def test_changed_record_is_detected() -> None:
    w = make_wave(4)
    bad = w.records.replace(b'"state":"REMOVED"', b'"state":"HELD"', 1)
    check_fails("subject records", w, records=bad)


@pytest.mark.parametrize("how", ["removed", "duplicated", "reordered", "changed"])
def test_records_that_do_not_match_the_tree(how: str) -> None:
    w = make_wave(4)
    lines = w.records.splitlines(keepends=True)
    edited = {
        "removed": lines[:2] + lines[3:],
        "duplicated": [*lines, lines[-1]],
        "reordered": [lines[1], lines[0], *lines[2:]],
        "changed": [lines[0].replace(b"users/1", b"users/9"), *lines[1:]],
    }[how]
    check_fails("subject records", w, records=b"".join(edited))


@pytest.mark.parametrize("how", ["removed", "duplicated", "reordered"])
def test_signed_records_with_bad_coverage(how: str) -> None:
    """Rows that were signed as they are (the producer erred) still fail coverage."""
    def edit(recs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return {"removed": recs[:2] + recs[3:], "duplicated": [*recs, recs[-1]],
                "reordered": [recs[1], recs[0], *recs[2:]]}[how]
    w = make_wave(4, mutate_records=edit)
    if how == "removed":
        check_fails("coverage", w)  # 3 records against a 4-row manifest
    else:
        check_fails("coverage", w, manifest=None)


def test_merkle_root_must_match_records() -> None:
    w = make_wave(3, mutate_predicate=lambda p: p["merkle"].update(root="00" * 32))
    check_fails("merkle root", w)


def test_totals_must_match_records() -> None:
    def lie(p: dict[str, Any]) -> None:
        p["totals"].update(removed=3, held=0)
        p["exceptions"].update(held=0, by_reason={})
        p["complete"] = True
    w = make_wave(3, {1: ("HELD", "retention")}, mutate_predicate=lie)
    check_fails("totals", w)
    # Self-consistent without records: only records reveal it.
    verify_attestation(w.envelope, Inputs(), Threshold(pubs(w)))


def test_declared_totals_must_add_up() -> None:
    w = make_wave(3, mutate_predicate=lambda p: p.update(complete=False))
    check_fails("totals", w)
    w = make_wave(3, mutate_predicate=lambda p: p["totals"].update(rows=4))
    check_fails("totals", w, records=None, manifest=None)


def test_records_must_be_canonical_lines() -> None:
    w = make_wave(2)
    check_fails("subject records", w, records=w.records[:-1])
    w2 = make_wave(2, mutate_records=lambda rs: rs)
    assert w2.records.endswith(b"\n")


def test_a_manifest_or_row_count_other_than_the_signed_one_is_refused() -> None:
    w = make_wave(3)
    check_fails("subject manifest", w, manifest=w.manifest + b"s3://x/y,oci://n/b/k,\n")
    check_fails("coverage", w, manifest=None, manifest_rows=4)
    verify_attestation(w.envelope, Inputs(), AllOf(Threshold(pubs(w)), RequireRowCount(3)))


def test_manifest_row_count() -> None:
    csv_data = b'source,destination\r\ns3://a/b,oci://n/b/k\r\n\r\n"s3://a/c\nd",oci://n/b/k2\r\n,\r\n'
    assert count_manifest_rows(csv_data, "m.csv") == 2
    assert count_manifest_rows(b"\xef\xbb\xbfsource\ns3://a/b\n", "m.csv") == 1
    assert count_manifest_rows(b"header-only\n", "m.csv") == 0
    assert count_manifest_rows(b'{"source":"s3://a/b"}\n\n{"source":"s3://a/c"}', "m.jsonl") == 2
    assert count_manifest_rows(b'\n{"source":"s3://a/b"}\n', "unknown") == 1


def test_jsonl_manifest_subject() -> None:
    w = make_wave(2, manifest_name="wave.jsonl")
    manifest = b'{"source":"s3://a/1"}\n{"source":"s3://a/2"}\n'
    # Rebuild with the JSONL manifest's digest: only the subject digest differs.
    with pytest.raises(VerificationError, match=r"^subject manifest"):
        verify_attestation(w.envelope, Inputs(manifest=manifest), AllOf(Threshold(pubs(w)), RequireManifest()))
    with pytest.raises(VerificationError, match=r"^subject manifest"):
        verify_attestation(w.envelope, Inputs(manifest=w.manifest),
                           AllOf(Threshold(pubs(w)), RequireManifest("other.csv")))


def test_untrusted_key_is_never_counted() -> None:
    w = make_wave(1)
    stranger = keys.FileSigner(keys.new_private_key("ed25519"))
    check_fails("signature", w, keys=[stranger.public_key])
    # A stranger's co-signature is ignored, not an error.
    cosigned = dsse.add_signature(w.envelope, stranger)
    verify_attestation(cosigned, Inputs(), Threshold(pubs(w)))


def test_keyid_must_be_the_fingerprint_of_the_verifying_key() -> None:
    w = make_wave(1)
    obj = json.loads(w.envelope)
    obj["signatures"][0]["keyid"] = "ab" * 32
    check_fails("signature", w, envelope=canonical_json(obj))


def test_bad_signature_from_trusted_key_fails() -> None:
    a = keys.FileSigner(keys.new_private_key("ecdsa-p256"))
    w = make_wave(1, signers=[a])
    obj = json.loads(w.envelope)
    other = dsse.sign_envelope(b"something else", PAYLOAD_TYPE, [a])
    obj["signatures"][0]["sig"] = json.loads(other)["signatures"][0]["sig"]
    check_fails("signature", w, envelope=canonical_json(obj))


def test_threshold_two_with_two_keys() -> None:
    a = keys.FileSigner(keys.new_private_key("ed25519"))
    b = keys.FileSigner(keys.new_private_key("ecdsa-p256"))
    w = make_wave(2, signers=[a])
    both = [a.public_key, b.public_key]
    check_fails("signature", w, keys=both, threshold=2)
    cosigned = dsse.add_signature(w.envelope, b)
    v = verify_attestation(cosigned, Inputs(records=w.records, manifest=w.manifest),
                           AllOf(Threshold(both, 2), RequireRecords(), RequireManifest()))
    assert set(v.signed_by) == {a.keyid, b.keyid}
    # The same key listed twice is one key: threshold 2 cannot be met by it.
    with pytest.raises(InputError):
        verify_attestation(cosigned, Inputs(), Threshold([a.public_key, a.public_key], 2))
    with pytest.raises(InputError):
        verify_attestation(cosigned, Inputs(), Threshold(both, 0))


def test_a_signed_statement_of_the_wrong_form_is_refused() -> None:
    a = keys.FileSigner(keys.new_private_key("ed25519"))
    w = make_wave(1, signers=[a])
    st_obj = json.loads(dsse.parse_envelope_strict(w.envelope).payload)
    cases: list[Callable[[Any], object]] = [   # each edits the parsed statement in place
        lambda s: s.update(predicateType="https://example.invalid/other"),
        lambda s: s.update(_type="https://in-toto.io/Statement/v0.1"),
        lambda s: s.update(extra=1),
        lambda s: s["predicate"].pop("scope"),
        lambda s: s["predicate"].update(started="2025-01-31 12:00:00"),
        lambda s: s["predicate"].update(finished="2025-01-30T12:00:00Z"),
        lambda s: s["predicate"]["merkle"].update(algorithm="sha256"),
        lambda s: s["predicate"]["totals"].update(rows=-1),
        lambda s: s["subject"].pop(),
        lambda s: s["subject"][0]["digest"].update(sha256="AB" * 32),
    ]
    for edit in cases:
        obj = json.loads(json.dumps(st_obj))
        edit(obj)
        env = dsse.sign_envelope(canonical_json(obj), PAYLOAD_TYPE, [a])
        with pytest.raises(VerificationError, match=r"^statement form:"):
            verify_attestation(env, Inputs(), Threshold([a.public_key]))
    # A non-canonical payload is refused even when it is signed.
    env = dsse.sign_envelope(json.dumps(st_obj).encode(), PAYLOAD_TYPE, [a])
    with pytest.raises(VerificationError, match=r"^statement form:"):
        verify_attestation(env, Inputs(), Threshold([a.public_key]))
    env = dsse.sign_envelope(canonical_json(st_obj), "application/json", [a])
    with pytest.raises(VerificationError, match=r"^envelope form:"):
        verify_attestation(env, Inputs(), Threshold([a.public_key]))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_loads_canonical_agrees_with_rfc8785(value: Any) -> None:
    """The fast path in loads_canonical accepts exactly the bytes rfc8785 would produce."""
    for data in (json.dumps(value).encode(), json.dumps(value, sort_keys=True, separators=(",", ":"),
                                                        ensure_ascii=False).encode("utf-8", "surrogatepass")):
        try:
            expected = rfc8785.dumps(json.loads(data)) == data
        except (rfc8785.CanonicalizationError, ValueError):
            expected = False
        try:
            loads_canonical(data)
            got = True
        except NotCanonical:
            got = False
        assert got == expected
    try:
        canon = rfc8785.dumps(value)
        rfc8785.dumps(json.loads(canon))  # floats >= 2**53 print as integers JCS then refuses
    except (rfc8785.CanonicalizationError, ValueError):
        return
    loads_canonical(canon)


# ---- policies: stated up front, checked when made, demanded exactly ------------------------------------

def test_a_policy_is_checked_when_it_is_made() -> None:
    w = make_wave(1)
    with pytest.raises(InputError, match="trivially invalid"):
        AllOf()
    with pytest.raises(InputError, match="at least 1"):
        Threshold(pubs(w), 0)
    with pytest.raises(InputError, match="public keys"):
        Threshold([])
    with pytest.raises(InputError, match="2 distinct trusted keys, got 1"):
        Threshold([*pubs(w), *pubs(w)], 2)
    with pytest.raises(InputError, match="at most one RequireManifest"):
        AllOf(Threshold(pubs(w)), AllOf(RequireManifest(), RequireManifest("other.csv")))
    with pytest.raises(TypeError):
        AllOf([Threshold(pubs(w))])  # type: ignore[arg-type]


def test_what_the_policy_demands_needs_its_input_and_nothing_goes_unread() -> None:
    w = make_wave(3)
    with pytest.raises(InputError, match="requires the records") as missing:
        verify_attestation(w.envelope, Inputs(manifest=w.manifest), AllOf(Threshold(pubs(w)), RequireRecords(),
                                                                          RequireManifest()))
    assert missing.value.field == "records"
    with pytest.raises(InputError, match="manifest given, but the policy does not require") as unread:
        verify_attestation(w.envelope, Inputs(records=w.records, manifest=w.manifest),
                           AllOf(Threshold(pubs(w)), RequireRecords()))
    assert unread.value.field == "manifest"
    with pytest.raises(InputError, match="no Threshold"):
        verify_attestation(w.envelope, Inputs(records=w.records), RequireRecords())


def test_the_result_says_what_was_demanded() -> None:
    w = make_wave(3)
    alone = verify_attestation(w.envelope, Inputs(), Threshold(pubs(w)))
    assert not (alone.records_checked or alone.manifest_checked or alone.subjects_checked)
    assert isinstance(alone.policy, Threshold)
    policy = full(w)
    both = verify_attestation(w.envelope, Inputs(records=w.records, manifest=w.manifest), policy)
    assert both.policy is policy and both.records_checked and both.manifest_checked
    # Only what is demanded is checked: a wrong row count fails only when a row count is demanded.
    with pytest.raises(VerificationError, match=r"^coverage: the manifest has 4 rows"):
        verify_attestation(w.envelope, Inputs(), AllOf(Threshold(pubs(w)), RequireRowCount(4)))


def test_every_threshold_of_a_policy_must_hold() -> None:
    a, b = keys.FileSigner(keys.new_private_key("ed25519")), keys.FileSigner(keys.new_private_key("ed25519"))
    w = make_wave(2, signers=[a])
    operator_and_custodian = AllOf(Threshold([a.public_key]), Threshold([b.public_key]))
    with pytest.raises(VerificationError, match=r"^signature: 0 valid"):
        verify_attestation(w.envelope, Inputs(), operator_and_custodian)
    cosigned = dsse.add_signature(w.envelope, b)
    v = verify_attestation(cosigned, Inputs(), operator_and_custodian)
    assert v.signed_by == (a.keyid, b.keyid)


# ---- attest/ stays free of the operator's side -----------------------------------------------------------

FORBIDDEN = ("migrator.stores", "migrator.pipeline", "migrator.journal", "migrator.runner", "migrator.config",
             "migrator.retry")
EXCEPT = {("live.py", "migrator.stores.base")}   # the live check reads through the stores' protocol types


def test_attest_imports_none_of_the_operator_side() -> None:
    """Every import in attest/*.py, at module level or inside a function, checked by its AST."""
    import ast
    from pathlib import Path

    found: list[str] = []
    for path in sorted((Path(__file__).resolve().parents[2] / "migrator" / "attest").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if node.level == 0 else [])
            for name in names:
                if (path.name, name) in EXCEPT:
                    continue
                if any(name == f or name.startswith(f + ".") for f in FORBIDDEN):
                    found.append(f"{path.name}:{node.lineno} imports {name}")
                if isinstance(node, ast.ImportFrom) and name == "migrator":
                    found += [f"{path.name}:{node.lineno} imports migrator.{a.name}" for a in node.names
                              if f"migrator.{a.name}" in FORBIDDEN]
    assert found == []


def test_importing_all_of_attest_loads_none_of_the_operator_side() -> None:
    import subprocess
    import sys

    code = ("import importlib, pkgutil, sys, migrator.attest as a\n"
            "for m in pkgutil.iter_modules(a.__path__): importlib.import_module('migrator.attest.' + m.name)\n"
            "print('\\n'.join(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(out.split())
    operator_side = {m for m in loaded for f in FORBIDDEN if m == f or m.startswith(f + ".")}
    assert operator_side <= {"migrator.stores", "migrator.stores.base"}
    assert "migrator.attest.live" in loaded and "migrator.attest.tlog" in loaded and "migrator.attest.kms" in loaded


def test_out_of_scope_rows_exist_only_in_v3_and_never_count_as_removed() -> None:
    tally = RecordTally()
    for state, reason in (("REMOVED", None), ("OUT_OF_SCOPE", "other residency")):
        tally.count(state, reason)
    assert tally.totals() == {"rows": 2, "removed": 1, "held": 0, "failed": 0, "out_of_scope": 1}
    assert tally.complete and tally.exceptions()["by_reason"] == {}   # complete over the rows in scope
    t0 = datetime(2025, 1, 31, 12, 0, tzinfo=UTC)
    with pytest.raises(InputError, match="has no OUT_OF_SCOPE state"):
        build_predicate(wave_id="w", tool_name="migrator", tool_version="0", started=t0, finished=t0, policy={},
                        tally=tally, merkle_root=b"\0" * 32, tree_size=2, scope=[],
                        predicate_type=PREDICATE_TYPE_V1)
    tally.count("HELD", "archived")
    assert not tally.complete
